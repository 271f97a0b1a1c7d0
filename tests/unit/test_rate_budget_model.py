"""A model-based test of the shared rate budget (hypothesis `RuleBasedStateMachine`): the real
`SharedBudget`, `BudgetStore` and `Pacer` of up to three instances, on an in-memory table whose
every call waits until the machine lets it reach the store and lets its answer come back.

The world's moves are rules: a call reaches the store (its answer comes back, or is lost as
a timeout would lose it), time passes (renewals fall due; calls still out when
`STORE_TIMEOUT_SECONDS` runs out time out, and may reach the store later anyway), an instance
crashes (a call it had out may still land), a new one starts, demand stops and comes back, the
store goes down and up. Races come from the interleaving: instances whose renewals line up
read the same entity and both try to write it, and the store answers them in any order.

At every moment a limit changes, unless an instance paces alone (its lease lapsed with the
store unreachable, where the design accepts 429s and their backoff) or did within a window:

(a) never above N: for every instance, the most its pacer can have sent within the last
    second (the largest limit it applied within two: test_pacing_model.py), summed, is at
    most N;
(b) never a stall: an instance whose renewal failed after its lease lapsed (from the answer
    that granted it, `LEASE_SECONDS` less `STORE_TIMEOUT_SECONDS`) paces at a positive rate;
and at the end, once the store is up and every call answers, (c) every instance with demand
has a positive share (nobody is starved).

The machine plays the keeper (`SharedBudget._keep`): an instance with demand renews
`RENEW_SECONDS` after its last renewal ended, and its limit drops to 0 when demand stops.
Time is virtual: the event loop's clock is the machine's, so `asyncio.timeout` fires when the
machine moves time past it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from dataclasses import dataclass, field
from typing import Any, cast

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shared.clients.pacing import Pacer
from shared.rate_budget import (
    LEASE_SECONDS,
    RENEW_SECONDS,
    STORE_TIMEOUT_SECONDS,
    BudgetStore,
    SharedBudget,
)
from tests.unit.test_pacing_model import REACH, largest_limit

RATE = 7  # requests per rolling second: small, so fair parts round (3, 2, 2 for three)
SLOTS = 3
EPOCH = 1_700_000_000.0  # the wall clock's origin: Unix seconds, as on a real instance
STORE_PACE = ("prompt", "prompt", "slow", "late")
EXAMPLES = int(os.environ.get("RATE_BUDGET_MODEL_EXAMPLES", "150"))


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock is the machine's: timers fire when the machine moves time."""

    def __init__(self, machine: RateBudgetModel) -> None:
        super().__init__()
        self._machine = machine

    def time(self) -> float:
        return self._machine.now


class Entity(dict[str, Any]):
    """What `get_entity` returns: the properties, with the ETag in `metadata`."""

    def __init__(self, properties: dict[str, Any], etag: str) -> None:
        super().__init__(properties)
        self.metadata = {"etag": etag}


@dataclass
class Call:
    """One table call, parked until the machine lets it reach the store."""

    name: str
    args: tuple[Any, ...]
    answer: asyncio.Future[Any]


class SteppedTable:
    """The `TableClient` calls `BudgetStore` makes, each parked as a `Call`."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.call: Call | None = None

    async def _park(self, name: str, *args: Any) -> Any:
        self.call = Call(name, args, self._loop.create_future())
        return await self.call.answer

    async def create_table(self) -> None:
        await self._park("create_table")

    async def get_entity(self, partition_key: str, row_key: str) -> Entity:
        return cast(Entity, await self._park("get_entity", partition_key, row_key))

    async def create_entity(self, entity: dict[str, Any]) -> None:
        await self._park("create_entity", entity)

    async def update_entity(self, entity: dict[str, Any], **conditions: Any) -> None:
        # Only an `IfNotModified` condition makes the store compare ETags.
        conditional = conditions.get("match_condition") == MatchConditions.IfNotModified
        await self._park("update_entity", entity, conditions["etag"] if conditional else None)

    async def close(self) -> None:
        pass


@dataclass
class Instance:
    """One life of an instance: its budget, pacer and table, and what the machine saw of it."""

    budget: SharedBudget
    pacer: Pacer
    table: SteppedTable
    limits: list[tuple[float, int]] = field(default_factory=lambda: [(float("-inf"), 0)])
    alive: bool = True
    demand: bool = True
    renewal: asyncio.Task[None] | None = None
    renewal_started: float = 0.0
    next_renewal: float = 0.0
    lease_until: float = float("-inf")  # from its last successful claim's answer
    alone: bool = False  # paces alone: its lease lapsed while the store did not answer
    claims_seen: int = 0

    def limit_within_reach(self, at: float) -> int:
        """The most this instance's pacer can have sent within the last window: the largest
        limit it applied within the last two (test_pacing_model.py, `REACH`)."""
        return largest_limit(self.limits, at - REACH, at)


class RateBudgetModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 100.0
        self.loop = VirtualTimeLoop(self)
        self.rows: dict[str, tuple[str, dict[str, Any]]] = {}  # RowKey -> (ETag, properties)
        self.table_exists = False
        self.etags = itertools.count(1)
        self.store_up = True
        self.checked_from = float("-inf")  # (a) holds again two windows after pacing alone
        self.slots: list[Instance | None] = [None] * SLOTS
        self.lives: list[Instance] = []
        try:
            self.start_instance(0)
        except BaseException:
            self.loop.close()  # hypothesis calls teardown only once the machine exists
            raise

    # -- plumbing --

    def turn(self) -> None:
        """Run the loop until every task waits on the store or is done."""

        async def turns() -> None:
            for _ in range(20):
                await asyncio.sleep(0)

        self.loop.run_until_complete(turns())

    def settle(self) -> None:
        """Run the loop, see what changed, and check (a) now: limits change only here, so
        every moment a sum over the window can grow is checked."""
        self.turn()
        for instance in self.lives:
            self.observe(instance)
        self.never_above_the_limit()

    def observe(self, instance: Instance) -> None:
        if instance.alive and instance.pacer.limit != instance.limits[-1][1]:
            instance.limits.append((self.now, instance.pacer.limit))
        renewal = instance.renewal
        if renewal is None or not renewal.done():
            return
        renewal.result()  # a renewal never raises
        instance.renewal = None
        instance.table.call = None
        instance.next_renewal = self.now + RENEW_SECONDS
        if instance.budget.claims > instance.claims_seen:
            instance.claims_seen = instance.budget.claims
            instance.lease_until = self.now + LEASE_SECONDS - STORE_TIMEOUT_SECONDS
            self.stops_pacing_alone(instance)
        elif self.now >= instance.lease_until:
            instance.alone = True  # 429s and their backoff are the design here
            assert instance.pacer.limit > 0, "(b) a renewal failed and the instance stalled"

    def stops_pacing_alone(self, instance: Instance) -> None:
        """Its pace is the store's again: what it sent alone is out of reach two windows on."""
        if instance.alone:
            instance.alone = False
            self.checked_from = max(self.checked_from, self.now + REACH)

    def start_instance(self, slot: int) -> None:
        table = SteppedTable(self.loop)
        budget = SharedBudget(
            "d3",
            BudgetStore(cast(Any, table)),
            instance=f"i{len(self.lives)}",
            wall_clock=lambda: EPOCH + self.now,
            clock=lambda: self.now,
        )
        instance = Instance(budget, budget.pacer(RATE), table)
        self.slots[slot] = instance
        self.lives.append(instance)
        self.renew(instance)

    def renew(self, instance: Instance) -> None:
        instance.renewal = self.loop.create_task(instance.budget.renew())
        instance.renewal_started = self.now
        self.settle()

    def reach_store(self, call: Call) -> Any:
        """What the store does with a call that reaches it now: a result or an error."""
        if not self.store_up:
            return ServiceRequestError("the store is unreachable")
        if call.name == "create_table":
            if self.table_exists:
                return ResourceExistsError("TableAlreadyExists")
            self.table_exists = True
            return None
        if not self.table_exists:
            return ResourceNotFoundError("TableNotFound")
        if call.name == "get_entity":
            row = self.rows.get(call.args[1])
            if row is None:
                return ResourceNotFoundError("ResourceNotFound")
            return Entity(row[1], row[0])
        entity = dict(call.args[0])
        row_key = entity["RowKey"]
        current = self.rows.get(row_key)
        if call.name == "create_entity" and current is not None:
            return ResourceExistsError("EntityAlreadyExists")
        if call.name == "update_entity":
            if current is None:
                return ResourceNotFoundError("ResourceNotFound")
            if call.args[1] is not None and current[0] != call.args[1]:
                return ResourceModifiedError("UpdateConditionNotSatisfied")
        self.rows[row_key] = (f'W/"{next(self.etags)}"', entity)
        return None

    def out(self) -> list[Instance]:
        """Instances with a call out to the store."""
        return [i for i in self.lives if i.alive and i.table.call is not None]

    # -- rules --

    def answer(self, instance: Instance, *, lost: bool = False) -> None:
        """The instance's call reaches the store now; its answer comes back, or is lost."""
        call = cast(Call, instance.table.call)
        instance.table.call = None
        result = self.reach_store(call)
        if lost:
            result = TimeoutError()  # it reached the store; its answer did not come back
        if isinstance(result, BaseException):
            call.answer.set_exception(result)
        else:
            call.answer.set_result(result)
        self.settle()

    def answer_all(self, order: st.DataObject | None) -> None:
        """The store answers every call out, until every renewal is done: in an order drawn,
        or else one call of each instance in turn (so instances that renew together race)."""
        while out := self.out():
            if order is None:
                for instance in out:
                    self.answer(instance)
            else:
                self.answer(out[order.draw(st.integers(0, len(out) - 1))])

    @precondition(lambda self: bool(self.out()))
    @rule(pick=st.integers(0, SLOTS - 1), answer_lost=st.booleans())
    def store_answers(self, pick: int, answer_lost: bool) -> None:
        out = self.out()
        self.answer(out[pick % len(out)], lost=answer_lost)

    @rule(seconds=st.floats(0.01, 1.2), store=st.sampled_from(STORE_PACE), order=st.data())
    def time_passes(self, seconds: float, store: str, order: st.DataObject | None) -> None:
        """Move time event by event: renewals fall due, calls out too long time out. The store
        answers at once (`prompt`), or leaves calls out until they time out (`slow`), maybe
        to land after the caller gave up (`late`)."""
        until = self.now + seconds
        while True:
            if store == "prompt":
                self.answer_all(order)
            deadlines = [
                (i.renewal_started + STORE_TIMEOUT_SECONDS, "timeout", i)
                for i in self.lives
                if i.alive and i.renewal is not None
            ] + [
                (i.next_renewal, "renew", i)
                for i in self.lives
                if i.alive and i.demand and i.renewal is None
            ]
            due = min(deadlines, key=lambda d: d[0], default=None)
            if due is None or due[0] > until:
                break
            self.now = max(self.now, due[0])
            instance = due[2]
            if due[1] == "renew":
                self.renew(instance)
                continue
            call = instance.table.call
            if store == "late" and call is not None:
                self.reach_store(call)  # given up on, and lands all the same
            self.settle()  # asyncio.timeout fires: the call is cancelled, the renewal fails
            assert instance.renewal is None, "a renewal outlived its timeout"
        self.now = until
        self.settle()

    @rule(order=st.data())
    def instances_renew_together(self, order: st.DataObject | None) -> None:
        """Every instance with demand renews now (their keepers happen to line up), and the
        store answers their calls in an order drawn: they read the same entity and race."""
        for instance in self.slots:
            if instance is not None and instance.demand and instance.renewal is None:
                self.renew(instance)
        self.answer_all(order)

    @precondition(lambda self: any(self.slots))
    @rule(pick=st.integers(0, SLOTS - 1), call_lands=st.booleans())
    def instance_crashes(self, pick: int, call_lands: bool) -> None:
        alive = [i for i in self.slots if i is not None]
        instance = alive[pick % len(alive)]
        if call_lands and instance.table.call is not None:
            self.reach_store(instance.table.call)
        instance.alive = False
        instance.limits.append((self.now, 0))  # sends nothing more
        self.stops_pacing_alone(instance)
        if instance.renewal is not None:
            instance.renewal.cancel()
            instance.renewal = None
        self.slots[self.slots.index(instance)] = None
        self.settle()

    @precondition(lambda self: None in self.slots)
    @rule()
    def instance_starts(self) -> None:
        self.start_instance(self.slots.index(None))

    @rule(pick=st.integers(0, SLOTS - 1))
    def demand_stops_or_comes_back(self, pick: int) -> None:
        instance = self.slots[pick]
        if instance is None:
            return
        if instance.demand and instance.renewal is None:
            instance.demand = False
            instance.pacer.set_limit(0)  # the keeper ends: the lease lapses
            self.stops_pacing_alone(instance)
        elif not instance.demand:
            instance.demand = True
            self.renew(instance)
        self.settle()

    @rule(up=st.booleans())
    def store_goes_down_or_up(self, up: bool) -> None:
        self.store_up = up

    # -- invariants --

    @invariant()
    def never_above_the_limit(self) -> None:
        """(a), unless an instance paces alone or did within the last window."""
        if self.now < self.checked_from or any(i.alone for i in self.lives):
            return
        in_window = [i.limit_within_reach(self.now) for i in self.lives]
        assert sum(in_window) <= RATE, f"(a) {in_window} at {self.now:.3f}: above {RATE}/s"

    def teardown(self) -> None:
        try:
            self.store_up = True
            for _ in range(10):  # 10 s: every lease lapses or is renewed, lingering ends
                self.instances_renew_together(None)  # and race
                self.time_passes(1.0, "prompt", None)
            for instance in self.slots:
                if instance is not None and instance.demand:
                    assert instance.pacer.limit > 0, "(c) an instance with demand starved"
        finally:
            for instance in self.lives:
                if instance.renewal is not None:
                    instance.renewal.cancel()
            self.turn()
            self.loop.close()


TestRateBudgetModel = RateBudgetModel.TestCase
TestRateBudgetModel.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=40,
    deadline=None,
    derandomize=os.environ.get("RATE_BUDGET_MODEL_RANDOM") != "1",  # CI replays a fixed seed
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
    # No shrinking: a failing run is printed as found, and CI stays bounded.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)


def test_a_cut_share_counts_until_what_was_granted_under_it_is_out_of_reach() -> None:
    """A bug: a cut share lingered 2 s from the claim that cut it. Here a's claim is computed
    at 101.0 and reaches its pacer at 101.4; requests its pacer granted under 7 just before
    leave up to 102.4 and stay in the upstream's window to 103.4, but b was given 3 at 103.1."""
    machine = RateBudgetModel()
    try:
        machine.time_passes(0.1, "prompt", None)  # a claims at 100.0: 7
        machine.instance_starts()
        machine.time_passes(0.0, "prompt", None)  # b claims at 100.1: 0, a holds everything
        a, b = machine.lives
        machine.time_passes(0.9, "slow", None)  # 101.0: a renews, its call stays out
        machine.time_passes(0.1, "slow", None)  # 101.1: b renews
        machine.answer(b)
        machine.answer(b)  # b reads and writes first: still 0
        machine.time_passes(0.3, "slow", None)
        machine.answer(a)
        machine.answer(a)  # 101.4: a's read and write land, a is cut to its fair part
        assert (a.pacer.limit, b.pacer.limit) == (4, 0)
        machine.time_passes(2.8, "prompt", None)  # b renews at 102.1, 103.1, 104.1: (a) checked
        assert (a.pacer.limit, b.pacer.limit) == (4, 3)
    finally:
        machine.teardown()


def test_a_cut_whose_answer_is_lost_counts_until_the_pacer_has_it() -> None:
    """Found in review: a's claim at 101.0 cut it from 7 to 4 and landed, but its answer was
    lost, so a's pacer kept 7 until its next claim's answer (102.0). The lingering ran from the
    claim that cut (to 103.5), and b was given 3 at 103.6, while requests a granted under 7 up
    to 102.0 could still be in the upstream's window. Now each claim tells the store the
    largest limit its pacer applied since the last one: a's claim at 102.0 says 7, and 7 still
    counts to 104.5."""
    machine = RateBudgetModel()
    try:
        machine.time_passes(0.6, "prompt", None)  # a claims at 100.0: 7
        machine.instance_starts()
        machine.time_passes(0.0, "prompt", None)  # b claims at 100.6: 0
        a, b = machine.lives
        machine.time_passes(0.4, "slow", None)  # 101.0: a renews
        machine.answer(a)
        machine.answer(a, lost=True)  # the cut lands; its answer does not come back
        assert (a.pacer.limit, b.pacer.limit) == (7, 0)
        machine.time_passes(4.2, "prompt", None)  # (a) checked at every change
        assert (a.pacer.limit, b.pacer.limit) == (4, 3)
    finally:
        machine.teardown()
