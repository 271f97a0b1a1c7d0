"""Pacing as the limit is written: no rolling window over N, no wait below it, the ideal grid.

D3 documents "50 requests per second" (seeds/vendor-notes.md): a cap on every rolling second,
which the sandbox simulators enforce the same way (local/sandbox/faults.py, `FaultPlan`).
"""

from __future__ import annotations

import bisect

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.clients.pacing import Pacer, SlidingWindow, window_for


class FakeTime:
    """An injected clock; `sleep` advances it by the delay plus a fixed lateness."""

    def __init__(self, lateness: float = 0.0) -> None:
        self.now = 0.0
        self.lateness = lateness
        self.woke: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now += delay + self.lateness
        self.woke.append(self.now)


def most_in_any_window(times: list[float], window: float) -> int:
    """The largest number of `times` inside any half-open window [t, t + window)."""
    ordered = sorted(times)
    return max(
        (bisect.bisect_left(ordered, t + window) - i for i, t in enumerate(ordered)), default=0
    )


arrivals = st.lists(
    st.floats(min_value=0, max_value=5, allow_nan=False), min_size=1, max_size=300
).map(sorted)


@given(arrivals=arrivals, limit=st.integers(1, 60), window=st.sampled_from([1.0, 1.02, 2.5]))
def test_no_window_ever_holds_more_than_the_limit(
    arrivals: list[float], limit: int, window: float
) -> None:
    pacing = SlidingWindow(limit, window)
    slots = [pacing.reserve(now) for now in arrivals]
    assert most_in_any_window(slots, window) <= limit
    assert all(slot >= now for slot, now in zip(slots, arrivals, strict=True))


@given(arrivals=arrivals, limit=st.integers(1, 60))
def test_a_caller_below_the_limit_never_waits(arrivals: list[float], limit: int) -> None:
    pacing = SlidingWindow(limit, 1.0)
    slots: list[float] = []
    for now in arrivals:
        in_window = sum(1 for slot in slots if slot > now - 1.0)
        slot = pacing.reserve(now)
        if in_window < limit:
            assert slot == now
        slots.append(slot)


@given(arrivals=arrivals, limit=st.integers(1, 60))
def test_a_waiting_caller_gets_the_earliest_slot_the_window_allows(
    arrivals: list[float], limit: int
) -> None:
    pacing = SlidingWindow(limit, 1.0)
    slots = [pacing.reserve(now) for now in arrivals]
    for i, (slot, now) in enumerate(zip(slots, arrivals, strict=True)):
        if slot > now:  # waited: exactly when the request `limit` places earlier leaves the window
            assert slot == slots[i - limit] + 1.0


async def test_ten_sequential_calls_below_the_limit_do_not_wait() -> None:
    clock = FakeTime()
    pacer = Pacer(20, clock=clock, sleep=clock.sleep)
    waits = []
    for _ in range(10):
        waits.append(await pacer.acquire())
        clock.now += 0.001  # the call itself
    assert waits == [0.0] * 10


async def test_a_burst_beyond_the_limit_waits_for_the_window_to_roll() -> None:
    clock = FakeTime()
    pacer = Pacer(5, guard_seconds=0.0, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        assert await pacer.acquire() == 0.0
    assert await pacer.acquire() == pytest.approx(1.0)


async def test_a_late_wake_up_keeps_its_slot_on_the_ideal_grid() -> None:
    clock = FakeTime(lateness=0.004)  # every sleeper wakes 4 ms late
    pacer = Pacer(2, guard_seconds=0.0, clock=clock, sleep=clock.sleep)
    for _ in range(2 + 2 * 10):
        await pacer.acquire()
    # Slots 1 s apart per chain: the 10th wait of each chain ends at 10 s (+ lateness once),
    # not 10 x (1 s + 4 ms) as when each wait starts from the last wake-up.
    assert clock.woke[-1] == pytest.approx(10.004)


@pytest.mark.parametrize(
    ("rate", "expected"), [(50.0, (50, 1.0)), (20.5, (20, 1.0)), (1.0, (1, 1.0)), (0.5, (1, 2.0))]
)
def test_rates_become_a_whole_count_per_window_never_above_the_rate(
    rate: float, expected: tuple[int, float]
) -> None:
    assert window_for(rate) == expected


@pytest.mark.parametrize("rate", [0.0, -1.0, float("inf"), float("nan")])
def test_an_unusable_rate_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="rate must be"):
        window_for(rate)
