"""Crash recovery (issue 24): every accepted operation has a message that resumes it once its
lease runs out, so a host crash needs no caller action. Against Azurite and the simulator; the
recovery message's delay is set to 0 here and the worker's clock moved past the lease, which
stands for the wait the real delay makes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from incident_link_api.commands import UnlinkTicket
from incident_link_api.contraforce import IncidentReference
from incident_link_api.outcome import OutcomeStatus
from local.sandbox.faults import Fault, FaultKind, FaultPlan
from shared import lifecycle, service, storage
from shared.config import get_settings
from shared.core import Core
from shared.durable import attempt, operations, work, worker
from tests.conftest import Sandboxes
from tests.functions.test_durable import TICKETED, WS, Queues, queues

__all__ = ["queues"]  # the fixture, used by name


class Crash(Exception):
    """The host died at this step."""


def _command() -> UnlinkTicket:
    return UnlinkTicket(
        workspace_id=uuid.UUID(WS),
        incident=IncidentReference.model_validate({"id": TICKETED, "workspaceId": WS}),
    )


def _request() -> service.ActionRequest:
    return service.ActionRequest(
        operation_id=str(uuid.uuid4()),
        route="canonical",
        commands=[_command()],
        idempotency_key=f"recovery-{uuid.uuid4()}",
    )


def crashing_at(step: str) -> attempt.Steps:
    async def steps(name: str) -> None:
        if name == step:
            raise Crash(name)

    return steps


async def _messages(queues: Queues) -> list[work.QueuedWork]:
    received = [m async for m in queues.work.receive_messages(max_messages=32)]
    for message in received:
        await queues.work.delete_message(message)
    return [work.QueuedWork.from_message(m.content) for m in received]


@pytest.fixture
def at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attempt, "recovery_delay", lambda _: 0.0)


@pytest.mark.parametrize("step", ["leased", "sent", "answered"])
async def test_a_keyed_sync_call_cut_off_by_a_crash_is_finished_by_its_recovery_message(
    step: str, queues: Queues, sandbox: Sandboxes, at_once: None
) -> None:
    settings = get_settings()
    request = _request()
    with pytest.raises(Crash):
        await service.perform(request, Core.from_settings(settings), steps=crashing_at(step))
    later = datetime.now(UTC) + attempt.lease_hold(settings) + timedelta(seconds=11)
    core = Core.from_settings(settings, clock=lambda: later)
    [recovery] = await _messages(queues)
    assert (recovery.operation_id, recovery.recovery) == (request.operation_id, True)
    recovered = await worker.process_message(core, recovery.to_message(), dequeue_count=1)
    assert recovered is not None
    assert recovered.final
    assert recovered.header.status is OutcomeStatus.SUCCEEDED
    # Crashed before the request left (leased, sent): one request in all; after it acted
    # (answered): the recovery sends again, and "nothing to do" after an ambiguous send is done.
    expected = 2 if step == "answered" else 1
    assert sandbox.contraforce.gate.counters.action_requests == expected


async def test_a_recovery_message_for_a_finished_operation_sends_nothing(
    queues: Queues, sandbox: Sandboxes, at_once: None
) -> None:
    settings = get_settings()
    request = _request()
    done = await service.perform(request, Core.from_settings(settings))
    assert isinstance(done, service.Finished)
    sent = sandbox.contraforce.gate.counters.action_requests
    [recovery] = await _messages(queues)
    later = datetime.now(UTC) + attempt.lease_hold(settings) + timedelta(seconds=11)
    again = await worker.process_message(
        Core.from_settings(settings, clock=lambda: later), recovery.to_message(), dequeue_count=1
    )
    assert again is not None
    assert again.final
    assert sandbox.contraforce.gate.counters.action_requests == sent


async def test_a_recovery_message_under_a_live_lease_looks_again_when_it_ends(
    queues: Queues, sandbox: Sandboxes, at_once: None
) -> None:
    settings = get_settings()
    request = _request()
    with pytest.raises(Crash):
        await service.perform(request, Core.from_settings(settings), steps=crashing_at("sent"))
    [recovery] = await _messages(queues)
    held = await worker.process_message(
        Core.from_settings(settings), recovery.to_message(), dequeue_count=1
    )
    assert held is not None
    assert lifecycle.phase(held.header, datetime.now(UTC)) is lifecycle.Phase.RUNNING
    assert sandbox.contraforce.gate.counters.action_requests == 0
    store = operations.record_store(await storage.storage(settings), settings)
    still = await operations.read(store, request.operation_id)
    assert still is not None
    assert not still.final


async def test_a_queued_retry_recorded_just_before_a_crash_still_has_its_message(
    queues: Queues, sandbox: Sandboxes
) -> None:
    """The retry's message goes before the record that says "queued again": a host dying
    between the two would otherwise leave a queued retry (not recoverable: it has run) that
    no message ever runs."""
    settings = get_settings()
    request = service.ActionRequest(
        operation_id=str(uuid.uuid4()),
        route="canonical",
        commands=[_command()],
        respond_async=True,
    )
    await service.perform(request, Core.from_settings(settings))
    queued = [m for m in await _messages(queues) if not m.recovery]
    assert [m.operation_id for m in queued] == [request.operation_id]
    sandbox.contraforce.faults = FaultPlan(script=[Fault.of(FaultKind.UNAVAILABLE)] * 2)
    with pytest.raises(Crash):
        await worker.process_message(
            Core.from_settings(settings),
            queued[0].to_message(),
            dequeue_count=1,
            steps=crashing_at("recorded"),
        )
    retries = [m for m in await _messages(queues) if not m.recovery]
    assert [m.operation_id for m in retries] == [request.operation_id]
    done = await worker.process_message(
        Core.from_settings(settings), retries[0].to_message(), dequeue_count=1
    )
    assert done is not None
    assert done.header.status is OutcomeStatus.SUCCEEDED
