"""The shared rate budget's arithmetic: instances' shares never add up to more than N in any
rolling second, newcomers get their fair part, lapsed leases free their share."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.rate_budget import (
    LEASE_SECONDS,
    LINGER_SECONDS,
    BudgetStore,
    Share,
    SharedBudget,
    allot,
)

LIMIT = 50


def renewals() -> st.SearchStrategy[list[tuple[int, float]]]:
    """(instance, seconds since the previous renewal by anyone)."""
    return st.lists(st.tuples(st.integers(0, 4), st.floats(0, 1.5)), min_size=1, max_size=60)


@given(steps=renewals())
def test_shares_in_force_within_any_second_never_add_up_to_more_than_the_limit(
    steps: list[tuple[int, float]],
) -> None:
    shares: dict[str, Share] = {}
    now = 1000.0
    grants: dict[str, list[tuple[float, int]]] = {}  # instance -> (when, share)
    for instance, wait in steps:
        now += wait
        mine, shares = allot(shares, f"i{instance}", limit=LIMIT, now=now)
        grants.setdefault(f"i{instance}", []).append((now, mine))

    def in_force(instance: str, at: float) -> int:
        """The pacer limit an instance applies at `at`: its last grant until its lease lapses."""
        before = [(when, share) for when, share in grants[instance] if when <= at]
        if not before or at >= before[-1][0] + LEASE_SECONDS:
            return 0
        return before[-1][1]

    moments = sorted({when for g in grants.values() for when, _ in g})
    for t in moments:
        # An instance's sends within (t - 1, t] are bounded by the largest limit it applied then.
        total = 0
        for name, history in grants.items():
            points = [t - 1 + 1e-9] + [w for w, _ in history if t - 1 < w <= t]
            total += max(in_force(name, p) for p in points)
        assert total <= LIMIT, (t, total)


def test_an_instance_alone_gets_the_whole_rate() -> None:
    mine, _ = allot({}, "a", limit=LIMIT, now=0.0)
    assert mine == LIMIT


def test_a_newcomer_gets_its_fair_part_once_the_holder_renews_and_its_old_share_lapses() -> None:
    _, shares = allot({}, "a", limit=LIMIT, now=0.0)
    first, shares = allot(shares, "b", limit=LIMIT, now=0.1)
    assert first == 0  # a holds everything
    a_share, shares = allot(shares, "a", limit=LIMIT, now=1.0)
    assert a_share == LIMIT // 2
    still, shares = allot(shares, "b", limit=LIMIT, now=1.1)
    assert still == 0  # a's old 50 still counts: its requests are in the upstream's last second
    later, shares = allot(shares, "b", limit=LIMIT, now=1.0 + LINGER_SECONDS + 0.01)
    assert later == LIMIT // 2


def test_a_lapsed_lease_frees_its_share() -> None:
    _, shares = allot({}, "a", limit=LIMIT, now=0.0)
    during, shares = allot(shares, "b", limit=LIMIT, now=LEASE_SECONDS + 0.01)
    assert during == 0  # a's last requests are still in the upstream's last second
    mine, shares = allot(shares, "b", limit=LIMIT, now=LEASE_SECONDS + LINGER_SECONDS + 0.01)
    assert mine == LIMIT
    assert "a" not in shares


class FlakyStore:
    """Answers claims from a script: a share, or an exception (the store down)."""

    def __init__(self, *answers: int | Exception) -> None:
        self.answers = list(answers)
        self.applied: list[int | None] = []  # what each claim said the pacer applied

    async def claim(
        self,
        upstream: str,  # noqa: ARG002
        me: str,  # noqa: ARG002
        *,
        limit: int,  # noqa: ARG002
        now: float,  # noqa: ARG002
        applied: int | None = None,
    ) -> int:
        self.applied.append(applied)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def aclose(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_with_the_store_down_an_instance_keeps_its_share_then_paces_alone_at_it() -> None:
    clock = Clock()
    budget = SharedBudget(
        "d3", cast(BudgetStore, FlakyStore(13, OSError(), OSError())), clock=clock
    )
    pacer = budget.pacer(50)
    await budget.renew()
    assert pacer.limit == 13
    await budget.renew()  # down, lease still valid: the share stands
    clock.now += LEASE_SECONDS
    await budget.renew()  # down, lease lapsed: pace alone at the last share
    assert (pacer.limit, budget.claims, budget.failures) == (13, 1, 2)


async def test_with_the_store_down_from_the_start_an_instance_paces_at_the_full_rate() -> None:
    budget = SharedBudget("d3", cast(BudgetStore, FlakyStore(TimeoutError())))
    pacer = budget.pacer(50)
    assert pacer.limit == 0  # nothing leaves before the first claim answers or fails
    await budget.renew()
    assert pacer.limit == 50


async def test_requests_waiting_for_a_share_keep_the_lease_renewed_until_they_get_one() -> None:
    """A bug: the keeper renewed only while new requests came, so requests waiting at a share
    of 0 (all permits held elsewhere) stopped the renewals and waited forever."""
    answers: list[int | Exception] = [0, 0, 0, 0, 0, 0, 5]
    budget = SharedBudget("d3", cast(BudgetStore, FlakyStore(*answers)))
    pacer = budget.pacer(50)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("shared.rate_budget.RENEW_SECONDS", 0.001)
        patch.setattr("shared.rate_budget.LEASE_SECONDS", 0.002)
        async with asyncio.timeout(5), pacer.slot():
            pass
    assert pacer.limit == 5
    await budget.aclose()


def test_instances_renewing_every_second_settle_on_fair_parts() -> None:
    """A bug: each renewal of a cut share restarted its lingering, so the old share counted
    for ever and the other instances stayed at 0."""
    shares: dict[str, Share] = {}
    got: dict[str, int] = {}
    for second in range(8):
        for n, name in enumerate("abcd"):
            got[name], shares = allot(shares, name, limit=LIMIT, now=second + n * 0.01)
    assert sorted(got.values()) == [11, 13, 13, 13]


async def test_a_claim_tells_the_store_what_the_pacer_applied_and_what_is_still_out() -> None:
    """A cut share counts as long as what was granted under it may: each claim says the
    largest limit applied since the last claim, or more while requests of a larger share are
    still out to a slow upstream (it may count them as late as it answers)."""
    store = FlakyStore(7, 3, 3, 3)
    budget = SharedBudget("d3", cast(BudgetStore, store))
    pacer = budget.pacer(50)
    await budget.renew()  # nothing applied yet: 7
    slots = [pacer.slot() for _ in range(7)]
    for slot in slots:
        await slot.__aenter__()  # seven requests out, unanswered
    await budget.renew()  # cut to 3
    await budget.renew()  # the seven are still out
    for slot in slots:
        await slot.__aexit__(None, None, None)
    assert pacer.limit == 3
    await budget.renew()  # answered: the claim that saw them out covers their last second
    assert store.applied == [0, 7, 7, 3]
