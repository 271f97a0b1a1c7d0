"""A model-based test of the durable core (hypothesis `RuleBasedStateMachine`), against Azurite
and the fault-injecting ContraForce simulator over loopback.

The world's moves are rules: new keyed requests (sync, async, webhook), repeats, races of the
same request, a crash armed at any step of the next run (leased, sent, answered, stored,
recorded), a host crash in the middle of a synchronous call, queue deliveries, time passing
(the clock jumps), callers polling, upstream faults (429, 503, reset before the effect,
effect then reset), a store that fails to write, replays of a signed delivery under a new
event id, and an oversized bulk.

No kindness: the only agents that resume work are the ones production has. The queue hides a
message until its delay passes on the model's clock; a message taken by a host that crashes
stays hidden for the queue trigger's own hold (`QUEUE_HOLD_AFTER_CRASH`, 10 minutes in Azure),
one whose function failed for host.json's `visibilityTimeout`; callers only poll. Nothing
re-posts a request or re-queues work for the app. After every step the invariants hold:

(a) no re-send without cause: upstream requests ≤ operations + faults met + lost answers;
(b) an operation says `succeeded` only if the upstream confirmed (the ticket is gone) or an
    ambiguous earlier send preceded a "nothing to do";
(c) at the end, with no caller action, every accepted operation is final within the bound:
    the lease plus a minute after the last step (no 202 forever);
(d) no answer says "not accepted" (503 STORE_UNAVAILABLE) once an upstream request went out;
(e) a replayed signed delivery maps to the first delivery's operation and never acts twice.

The model is tiny: which requests exist, which operations they map to, which were ambiguous.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import stamina
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from incident_link_api.commands import RemoveLinkedIncidents, UnlinkTicket
from incident_link_api.contraforce import IncidentReference
from incident_link_api.outcome import OutcomeStatus
from local.azurite import PRIVATE_ACCOUNT, Azurite
from local.host import load_host_json
from local.queues import QueueOptions, queue_client
from local.sandbox.contraforce_state import DEMO_WORKSPACE_ID
from local.sandbox.faults import Fault, FaultKind, FaultPlan
from local.sandbox.settings import FAST_RETRIES
from shared import service, storage, webhooks
from shared.clients import registry
from shared.config import Settings, get_settings, reset_settings
from shared.core import Core
from shared.durable import attempt, operations, work, worker
from shared.durable.store import RecordStore
from shared.errors import PayloadTooLarge, StoreUnavailable
from tests.conftest import Sandboxes

T = TypeVar("T")
WS = DEMO_WORKSPACE_ID
SECRET = "model-webhook-secret"
TICKETED = ("6d1f0c2a-4e4b-4b8f-9d55-0a3c1b2e7f10", "da7e3b91-21c4-4f0e-8a3b-5e6f7a8b9c02")
NO_TICKET = "splunk-notable-7731"
INCIDENTS = (*TICKETED, NO_TICKET)
STEPS = ("leased", "sent", "answered", "stored", "recorded")
FAULTS = (
    Fault(FaultKind.RATE_LIMITED, retry_after=0),
    Fault(FaultKind.UNAVAILABLE),
    Fault(FaultKind.RESET),
    Fault(FaultKind.APPLIED_THEN_RESET),
)
MAY_ACT_UNSEEN = {FaultKind.RESET.value, FaultKind.APPLIED_THEN_RESET.value}
EXAMPLES = int(os.environ.get("DURABLE_MODEL_EXAMPLES", "30"))
# The queue trigger hides a message it took for 10 minutes; a host that dies holding it leaves
# it hidden that long (Azure/azure-webjobs-sdk#1040, the SDK's maintainer: "this 10 minute
# timeout will only occur in rare cases, say if the host dies"); the local runner does the same.
# A function that raised is visible again after host.json's queues.visibilityTimeout, and
# after queues.maxDequeueCount deliveries the host moves it to the poison queue.
QUEUE = QueueOptions.from_host_json(load_host_json(Path(__file__).parents[2] / "host.json"))
QUEUE_HOLD_AFTER_CRASH = timedelta(seconds=QUEUE.lease_seconds)
QUEUE_HOLD_AFTER_FAILURE = timedelta(seconds=QUEUE.visibility_timeout)
# The promise under test: after a crash, final within the lease plus about a minute.
BOUND_AFTER_LEASE = timedelta(seconds=60)
REAL_HIDE_SECONDS = 3600  # hidden in Azurite until the model's clock reveals it


class Crash(Exception):
    """The process dies here: nothing after this point of the run happens."""


@dataclass
class Request:
    mode: str  # "sync", "async" or "webhook"
    incident: str
    key: str
    body: bytes = b""
    stamp: str = ""
    operation_id: str | None = None
    ambiguous: bool = False  # a send of it may have acted without our seeing the answer
    accepted: bool = False  # the app recorded it (answered, or died after the record)


@dataclass
class World:
    """What the machine is given: the simulators, Azurite and the app's settings."""

    sandboxes: Sandboxes
    azurite: Azurite
    environment: dict[str, str] = field(default_factory=dict)


WORLD: list[World] = []


@dataclass
class Hidden:
    message_id: str
    pop_receipt: str
    due: datetime


class ModelQueue:
    """The work queue on the model's clock: a message sent with a delay (or taken by a host)
    is hidden in Azurite until the model's clock passes its due time, then made visible. Every
    other call goes to the real queue client."""

    def __init__(self, real: Any, clock: Callable[[], datetime]) -> None:
        self.real = real
        self.clock = clock
        self.hidden: list[Hidden] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def send_message(self, content: str, *, visibility_timeout: int = 0) -> Any:
        if visibility_timeout <= 0:
            return await self.real.send_message(content)
        sent = await self.real.send_message(content, visibility_timeout=REAL_HIDE_SECONDS)
        due = self.clock() + timedelta(seconds=visibility_timeout)
        self.hidden.append(Hidden(sent.id, sent.pop_receipt, due))
        return sent

    async def hide(self, message: Any, for_: timedelta) -> None:
        """A taken message stays hidden `for_` (its host died, or its function raised)."""
        self.hidden.append(Hidden(message.id, message.pop_receipt, self.clock() + for_))

    async def reveal_due(self) -> None:
        now = self.clock()
        due = [h for h in self.hidden if h.due <= now]
        self.hidden = [h for h in self.hidden if h.due > now]
        for hidden in due:
            await self.real.update_message(
                hidden.message_id, pop_receipt=hidden.pop_receipt, visibility_timeout=0
            )


class DurableCore(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = WORLD[0]
        self.loop = asyncio.new_event_loop()
        self.offset = timedelta(0)
        self.requests: list[Request] = []
        self.armed: str | None = None
        self.store_failures = 0  # writes of a command row still to fail
        self.unstored: set[str] = set()  # operations an answer of which failed to be stored
        self.allowance = 0  # upstream requests with a cause beyond one per operation
        self.sim = self.world.sandboxes.contraforce
        self.sim.reset()
        self.settings: Settings = get_settings()
        self.work = queue_client(
            self.world.azurite.connection_string_for(PRIVATE_ACCOUNT), storage.QUEUE_NAME
        )
        real = self.run(storage.storage(self.settings))  # creates the queues and the table
        self.run(self.work.clear_messages())
        self.queue = ModelQueue(real.queue, self.clock)
        self.storage = storage.Storage(queue=self.queue, poison=real.poison, table=real.table)  # type: ignore[arg-type]

    # -- plumbing --

    def run(self, awaitable: Awaitable[T]) -> T:
        return self.loop.run_until_complete(awaitable)

    def clock(self) -> datetime:
        return datetime.now(UTC) + self.offset

    @property
    def core(self) -> Core:
        """The process's clients, and storage whose queue runs on this model's clock."""
        built = Core.from_settings(self.settings, clock=self.clock)

        async def open_storage() -> storage.Storage:
            await storage.storage(self.settings)
            return self.storage

        return Core(built.settings, built.upstreams, open_storage, self.clock)

    def advance(self, by: timedelta) -> None:
        """Time passes: what the queue hid until now becomes visible."""
        self.offset += by
        self.run(self.queue.reveal_due())

    async def steps(self, step: str) -> None:
        if self.armed == step:
            self.armed = None
            if step == "answered":
                self.allowance += 1  # the request went out; its answer dies with us
            raise Crash(step)

    def teardown(self) -> None:
        try:
            self.settle()
            for request in self.requests:
                operation = self.operation(request)
                if operation is None:
                    assert not request.accepted, f"{request.mode} request accepted, not stored"
                    continue  # never accepted: the caller was told so, and repeats or not
                assert operation.final, (
                    f"(c) {request.mode} operation {operation.operation_id} still "
                    f"{operation.header.state.value} {self.bound} after the last step, with no "
                    f"caller action: {operation.header.reason}"
                )
        finally:
            self.run(self.work.close())
            self.run(registry.aclose())
            self.run(storage.aclose())
            self.loop.close()

    def operation(self, request: Request) -> operations.Operation | None:
        if request.operation_id is None:
            return None

        async def read() -> operations.Operation | None:
            store = operations.record_store(await storage.storage(self.settings), self.settings)
            return await operations.read(store, request.operation_id or "")

        return self.run(read())

    def consumed(self, act: Callable[[], T]) -> tuple[T | BaseException, list[str]]:
        """Run `act`; return its result (or the exception) and the faults it met."""
        before = [entry["kind"] for entry in self.sim.faults.to_json()["script"]]
        requests = self.sim.gate.counters.action_requests
        try:
            result: T | BaseException = act()
        except (Crash, StoreUnavailable) as exc:
            result = exc
        met = before[: len(before) - len(self.sim.faults.to_json()["script"])]
        self.allowance += len(met)
        if isinstance(result, StoreUnavailable):
            assert self.sim.gate.counters.action_requests == requests, (
                "(d) a request went upstream and the answer said 'not accepted'"
            )
        return result, met

    def note(self, request: Request, met: list[str]) -> None:
        if MAY_ACT_UNSEEN & set(met):
            request.ambiguous = True

    # -- acting as callers --

    def perform(self, request: Request) -> None:
        command = UnlinkTicket(
            workspace_id=WS,
            incident=IncidentReference.model_validate(
                {"id": request.incident, "workspaceId": str(WS)}
            ),
        )
        action = service.ActionRequest(
            operation_id=str(uuid.uuid4()),
            route="canonical",
            commands=[command],
            idempotency_key=request.key,
            respond_async=request.mode == "async",
        )
        result, met = self.consumed(
            lambda: self.run(service.perform(action, self.core, steps=self.steps))
        )
        self.note(request, met)
        self.remember(request, result)
        if isinstance(result, Crash):
            # The host died after accepting (every step comes after the record): the caller
            # got no answer, and the operation is the one this request created, if it is new.
            request.accepted = True
            request.operation_id = request.operation_id or action.operation_id
            if result.args[0] in {"sent", "answered"}:
                request.ambiguous = True

    def deliver(self, request: Request, event_id: str) -> None:
        headers = {
            "X-CF-Event-Id": event_id,
            "X-CF-Timestamp": request.stamp,
            "X-CF-Signature": webhooks.sign(
                request.body, secret=SECRET.encode(), timestamp=request.stamp
            ),
        }
        delivery = webhooks.verify(
            headers, request.body, secrets=(SECRET.encode(),), now=datetime.now(UTC)
        )
        result, _ = self.consumed(
            lambda: self.run(
                service.receive_delivery(delivery, self.core, operation_id=str(uuid.uuid4()))
            )
        )
        self.remember(request, result)

    def remember(self, request: Request, result: object) -> None:
        operation_id = None
        if isinstance(result, service.Finished):
            operation_id = result.outcome.operation_id
        elif isinstance(result, service.Pending):
            operation_id = result.operation.operation_id
        if operation_id is None:
            return
        assert request.operation_id in {None, operation_id}, (
            "(e) a repeat mapped to another operation"
        )
        request.operation_id = operation_id
        request.accepted = True

    def process_one(self) -> bool:
        messages = self.run(self._receive())
        if not messages:
            return False
        message = messages[0]
        result, met = self.consumed(
            lambda: self.run(
                worker.process_message(
                    self.core,
                    message.content,
                    dequeue_count=message.dequeue_count,
                    steps=self.steps,
                )
            )
        )
        operation_id = work.QueuedWork.from_message(message.content).operation_id
        for request in self.requests:
            if request.operation_id == operation_id:
                self.note(request, met)
                if isinstance(result, Crash) and result.args[0] in {"sent", "answered"}:
                    request.ambiguous = True
        if isinstance(result, Crash):  # the host died holding it: the queue's own hold
            self.run(self.queue.hide(message, QUEUE_HOLD_AFTER_CRASH))
        elif isinstance(result, BaseException):
            if message.dequeue_count >= QUEUE.max_dequeue_count:  # the host poisons it
                self.run(self.work.delete_message(message))
            else:
                self.run(self.queue.hide(message, QUEUE_HOLD_AFTER_FAILURE))
        else:
            self.run(self.work.delete_message(message))
        return True

    async def _receive(self) -> list[Any]:
        return [
            m
            async for m in self.work.receive_messages(
                max_messages=1, visibility_timeout=REAL_HIDE_SECONDS
            )
        ]

    @property
    def bound(self) -> timedelta:
        return attempt.lease_hold(self.settings) + BOUND_AFTER_LEASE

    def settle(self) -> None:
        """The faults end; the model's time passes up to the bound, in small steps, with only
        the queue's deliveries resuming work (no caller repeats, nothing re-queued for us)."""
        self.armed, self.store_failures = None, 0
        self.sim.faults = FaultPlan()
        end = self.clock() + self.bound
        while True:
            while self.process_one():
                pass
            if self.clock() >= end:
                return
            self.advance(timedelta(seconds=5))

    # -- rules --

    @initialize(incident=st.sampled_from(INCIDENTS), mode=st.sampled_from(["sync", "async"]))
    def first_request(self, incident: str, mode: str) -> None:
        assert self.sim.gate.counters.action_requests == 0
        self.new_request(incident, mode)

    @initialize(incident=st.sampled_from(INCIDENTS))
    def first_webhook(self, incident: str) -> None:
        self.new_webhook(incident)

    @rule(incident=st.sampled_from(INCIDENTS), mode=st.sampled_from(["sync", "async"]))
    def new_request(self, incident: str, mode: str) -> None:
        request = Request(mode, incident, key=f"model-{uuid.uuid4()}")
        self.requests.append(request)
        self.perform(request)

    @rule(incident=st.sampled_from(INCIDENTS))
    def new_webhook(self, incident: str) -> None:
        event = {
            "type": webhooks.UNLINKING_EVENT,
            "data": {
                "accountId": str(WS),
                "incidentId": incident,
                "classification": "FalsePositive",
            },
        }
        request = Request(
            "webhook",
            incident,
            key=str(uuid.uuid4()),
            body=json.dumps(event).encode(),
            stamp=datetime.now(UTC).isoformat(),
        )
        self.requests.append(request)
        self.deliver(request, request.key)

    @precondition(lambda self: bool(self.requests))
    @rule(data=st.data())
    def repeat(self, data: st.DataObject) -> None:
        request = data.draw(st.sampled_from(self.requests))
        if request.mode == "webhook":
            self.deliver(request, request.key)
        else:
            self.perform(request)

    @precondition(lambda self: any(r.mode == "webhook" for r in self.requests))
    @rule(data=st.data())
    def replay_under_a_new_event_id(self, data: st.DataObject) -> None:
        request = data.draw(st.sampled_from([r for r in self.requests if r.mode == "webhook"]))
        self.deliver(request, str(uuid.uuid4()))

    @precondition(lambda self: any(r.mode != "webhook" for r in self.requests))
    @rule(data=st.data())
    def race(self, data: st.DataObject) -> None:
        request = data.draw(st.sampled_from([r for r in self.requests if r.mode != "webhook"]))
        command = UnlinkTicket(
            workspace_id=WS,
            incident=IncidentReference.model_validate(
                {"id": request.incident, "workspaceId": str(WS)}
            ),
        )

        async def both() -> list[Any]:
            return await asyncio.gather(
                *(
                    service.perform(
                        service.ActionRequest(
                            operation_id=str(uuid.uuid4()),
                            route="canonical",
                            commands=[command],
                            idempotency_key=request.key,
                            respond_async=request.mode == "async",
                        ),
                        self.core,
                    )
                    for _ in range(2)
                ),
                return_exceptions=True,
            )

        results, met = self.consumed(lambda: self.run(both()))
        self.note(request, met)
        for result in results if isinstance(results, list) else []:
            assert not isinstance(result, Exception) or isinstance(result, StoreUnavailable), (
                f"a race ended in {result!r}"
            )
            self.remember(request, result)

    @rule(step=st.sampled_from(STEPS))
    def crash_at(self, step: str) -> None:
        self.armed = step

    @rule(incident=st.sampled_from(INCIDENTS), step=st.sampled_from(STEPS[:-1]))
    def host_crashes_mid_sync_call(self, incident: str, step: str) -> None:
        """A keyed synchronous call whose host dies while it runs: the caller gets nothing."""
        self.armed = step
        self.new_request(incident, "sync")
        self.armed = None

    @precondition(lambda self: any(r.operation_id for r in self.requests))
    @rule(data=st.data())
    def caller_polls(self, data: st.DataObject) -> None:
        """A caller follows its Location: reading never changes what happens."""
        request = data.draw(st.sampled_from([r for r in self.requests if r.operation_id]))
        found = self.run(service.find_operation(self.core, request.operation_id or ""))
        assert found.operation_id == request.operation_id

    @rule(faults=st.lists(st.sampled_from(FAULTS), min_size=1, max_size=3))
    def upstream_faults(self, faults: list[Fault]) -> None:
        self.sim.faults = FaultPlan(script=faults)

    @rule(count=st.integers(min_value=1, max_value=3))
    def store_fails(self, count: int) -> None:
        self.store_failures = count

    @rule()
    def queue_delivers(self) -> None:
        self.process_one()

    @rule(seconds=st.sampled_from([5, 30, 61, 600]))
    def time_passes(self, seconds: int) -> None:
        self.advance(timedelta(seconds=seconds))

    @rule()
    def oversized_bulk_is_refused_before_it_acts(self) -> None:
        d3_requests = self.world.sandboxes.d3.gate.counters.action_requests
        command = RemoveLinkedIncidents(
            site="Security Operations",
            username="Admin",
            source_incident="20231025-130",
            linked_incidents=tuple(f"20240101-{n}" for n in range(400)),
        )
        action = service.ActionRequest(
            operation_id=str(uuid.uuid4()),
            route="canonical",
            commands=[command],
            idempotency_key=f"big-{uuid.uuid4()}",
        )
        with pytest.raises(PayloadTooLarge, match="1048576 bytes an entity"):
            self.run(service.perform(action, self.core))
        assert self.world.sandboxes.d3.gate.counters.action_requests == d3_requests

    # -- invariants --

    @invariant()
    def no_resend_without_cause(self) -> None:
        operations = len({r.operation_id for r in self.requests if r.operation_id})
        sent = self.sim.gate.counters.action_requests
        assert sent <= operations + self.allowance, (
            f"(a) {sent} upstream requests for {operations} operations "
            f"with {self.allowance} faults or lost answers"
        )

    @invariant()
    def a_final_record_agrees_with_its_commands(self) -> None:
        for request in self.requests:
            operation = self.operation(request)
            if operation is None or not operation.final:
                continue
            sent = [row.index for row in operation.commands if row.mark.value == "sent"]
            assert sent == [], (
                f"operation {operation.operation_id} is recorded "
                f"{operation.header.status.value} while commands {sent} still read SENT"
            )

    @invariant()
    def success_is_never_claimed_without_cause(self) -> None:
        unlinked = {effect.incident_id for effect in self.sim.state.effects}
        for request in self.requests:
            operation = self.operation(request)
            if operation is None or operation.header.status is not OutcomeStatus.SUCCEEDED:
                continue
            ambiguous = request.ambiguous or request.operation_id in self.unstored
            assert request.incident in unlinked or ambiguous, (
                f"(b) {request.incident} reported unlinked, but the upstream never confirmed "
                "and no send was ambiguous"
            )


@contextlib.contextmanager
def failing_row_writes(machine_of: Callable[[], DurableCore | None]) -> Iterator[None]:
    """Writes of answers fail while the current machine asks for it (the store is down)."""
    original = RecordStore.save_row

    async def save_row(store: RecordStore, row: Any) -> Any:
        machine = machine_of()
        if machine is not None and machine.store_failures > 0 and row.mark.value == "answered":
            machine.store_failures -= 1  # the store goes down just as an answer comes back
            machine.allowance += 1  # this answer may never be stored: a resend may follow
            machine.unstored.add(row.operation_id)  # so what a resend finds is ambiguous
            raise StoreUnavailable("the operations table failed (injected)")
        return await original(store, row)

    RecordStore.save_row = save_row  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        RecordStore.save_row = original  # type: ignore[method-assign]


@pytest.mark.slow
def test_durable_core_holds_its_invariants_under_crashes_repeats_races_and_faults(
    sandboxes: Sandboxes, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = {
        **sandboxes.settings,
        **FAST_RETRIES,
        "RETRY_ATTEMPTS": "2",
        "RETRY_BUDGET_SECONDS": "5",
        "HTTP_TIMEOUT_SECONDS": "2",
        "AzureWebJobsStorage": azurite.connection_string_for(PRIVATE_ACCOUNT),
        "QUEUE_MAX_ATTEMPTS": "3",
        "QUEUE_RETRY_MAX_DELAY_SECONDS": "0",
        "MAX_BULK_ITEMS": "1000",
        "CONTRAFORCE_WEBHOOK_SECRETS": SECRET,
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    WORLD[:] = [World(sandboxes, azurite, environment)]
    current: list[DurableCore] = []

    class Machine(DurableCore):
        def __init__(self) -> None:
            super().__init__()
            current[:] = [self]

    randomize = os.environ.get("DURABLE_MODEL_RANDOM") == "1"
    print(  # noqa: T201 - the run count and seed are part of the result
        f"durable model: {EXAMPLES} runs of up to 12 steps, "
        f"{'random seed' if randomize else 'derandomized (fixed seed from the test name)'}"
    )
    with (
        stamina.set_testing(True, attempts=2),
        failing_row_writes(lambda: current[0] if current else None),
    ):
        run_state_machine_as_test(
            Machine,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=12,
                deadline=None,
                derandomize=not randomize,
                database=None,
                suppress_health_check=[HealthCheck.too_slow],
                # No shrinking: a failing run is printed as found, and CI stays bounded.
                phases=[Phase.explicit, Phase.reuse, Phase.generate],
            ),
        )
