"""The durable path on Azurite: async requests, idempotency, webhooks, the queue worker,
retries with Retry-After, poison and replay - against the simulators over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue.aio import QueueClient
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from local.azurite import PRIVATE_ACCOUNT, Azurite
from local.host import QueueFunction
from local.queues import QueueOptions, QueueRunner, queue_client
from local.sandbox.contraforce_state import DEMO_WORKSPACE_ID
from local.sandbox.faults import Fault, FaultKind, FaultPlan
from shared import lifecycle, storage
from shared.config import get_settings
from shared.core import Core
from shared.durable import operations, worker
from shared.durable.store import caller_key_row
from shared.webhooks import UNLINKING_EVENT, sign
from tests.conftest import Exported, Sandboxes
from tests.functions.conftest import Reply, call, registered

WS = str(DEMO_WORKSPACE_ID)
TICKETED = "6d1f0c2a-4e4b-4b8f-9d55-0a3c1b2e7f10"
SECRET = "current-webhook-secret"
UNLINK = "actions/unlink-ticket"


@dataclass
class Queues:
    work: QueueClient
    poison: QueueClient
    runner: QueueRunner

    async def drain(self, rounds: int = 30) -> int:
        """Run the worker until the work queue has nothing visible; return messages handled."""
        function = QueueFunction(
            function_name="run_queued_action",
            queue_name=storage.QUEUE_NAME,
            connection="AzureWebJobsStorage",
            arg_name="msg",
            handler=registered()["run_queued_action"].get_user_function(),
        )
        handled = 0
        for _ in range(rounds):
            count = await self.runner.drain(function, self.work, self.poison)
            if not count:
                return handled
            handled += count
        raise AssertionError(f"queue still busy after {rounds} rounds")

    async def visible(self, queue: QueueClient) -> list[dict[str, Any]]:
        return [json.loads(m.content) for m in await queue.peek_messages(max_messages=32)]


def _client(azurite: Azurite, name: str) -> QueueClient:
    return queue_client(azurite.connection_string_for(PRIVATE_ACCOUNT), name)


@pytest.fixture
async def queues(
    sandbox: Sandboxes, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Queues]:
    for name, value in {
        "AzureWebJobsStorage": azurite.connection_string_for(PRIVATE_ACCOUNT),
        "QUEUE_MAX_ATTEMPTS": "3",
        "QUEUE_RETRY_MAX_DELAY_SECONDS": "0",
        "RETRY_ATTEMPTS": "2",
        "CONTRAFORCE_WEBHOOK_SECRETS": f"previous-webhook-secret,{SECRET}",
    }.items():
        monkeypatch.setenv(name, value)
    work, poison = _client(azurite, storage.QUEUE_NAME), _client(azurite, storage.POISON_QUEUE_NAME)
    for queue in (work, poison):
        with contextlib.suppress(ResourceExistsError):
            await queue.create_queue()
        await queue.clear_messages()
    runner = QueueRunner(
        options=QueueOptions(max_dequeue_count=3, visibility_timeout=0, lease_seconds=30)
    )
    yield Queues(work, poison, runner)
    await work.close()
    await poison.close()


def unlink_body(incident: str = TICKETED) -> dict[str, Any]:
    return {"workspaceId": WS, "incident": {"id": incident}}


async def poll(reply: Reply) -> Reply:
    operation_id = reply.headers["location"].rsplit("/", 1)[1]
    return await call(
        "get_operation",
        f"operations/{operation_id}",
        method="GET",
        route_params={"operationId": operation_id},
    )


def fail_first(sim: Any, count: int, kind: FaultKind = FaultKind.UNAVAILABLE) -> None:
    sim.faults = FaultPlan(script=[Fault.of(kind)] * count)


# ---- Prefer: respond-async ---------------------------------------------------------------------


async def test_respond_async_answers_202_with_location_then_the_operation_reads_the_outcome(
    queues: Queues, sandbox: Sandboxes
) -> None:
    reply = await call("unlink_ticket", UNLINK, unlink_body(), headers={"Prefer": "respond-async"})
    assert reply.status == 202
    assert reply.headers["location"].endswith(f"/api/operations/{reply.body['operationId']}")
    assert reply.headers["retry-after"] == "5"
    assert (reply.body["status"], reply.body["items"][0]["status"]) == ("pending", "pending")
    assert (await poll(reply)).status == 202
    assert sandbox.contraforce.state.effects == []

    assert await queues.drain() == 1
    final = await poll(reply)
    assert (final.status, final.body["status"]) == (200, "succeeded")
    assert len(sandbox.contraforce.state.effects) == 1


async def test_unknown_operation_is_404_operation_not_found(queues: Queues) -> None:
    missing = str(uuid.uuid4())
    reply = await call(
        "get_operation",
        f"operations/{missing}",
        method="GET",
        route_params={"operationId": missing},
    )
    assert (reply.status, reply.body["code"]) == (404, "OPERATION_NOT_FOUND")


@pytest.mark.parametrize("kind", ["webhook-keys", "caller-key"])
async def test_an_id_naming_a_key_partition_is_404_not_an_operation(
    kind: str, queues: Queues
) -> None:
    keyed = await call("unlink_ticket", UNLINK, unlink_body(), headers={"Idempotency-Key": "k-1"})
    delivered = await deliver(investigation(), event_id=str(uuid.uuid4()))
    assert (keyed.status, delivered.status) == (200, 202)  # both key partitions hold rows
    name = "webhook-keys" if kind == "webhook-keys" else caller_key_row("k-1")[0]
    reply = await call(
        "get_operation", f"operations/{name}", method="GET", route_params={"operationId": name}
    )
    assert (reply.status, reply.body["code"]) == (404, "OPERATION_NOT_FOUND")


async def test_async_request_without_storage_is_503_naming_the_setting(
    sandbox: Sandboxes, monkeypatch: pytest.MonkeyPatch
) -> None:
    reply = await call("unlink_ticket", UNLINK, unlink_body(), headers={"Prefer": "respond-async"})
    assert (reply.status, reply.body["code"]) == (503, "NOT_CONFIGURED")
    assert "AzureWebJobsStorage" in reply.body["settings"]


# ---- Idempotency-Key ---------------------------------------------------------------------------


async def test_repeat_with_the_same_key_returns_the_first_answer_without_acting_again(
    queues: Queues, sandbox: Sandboxes
) -> None:
    headers = {"Idempotency-Key": f"case-{uuid.uuid4()}"}
    first = await call("unlink_ticket", UNLINK, unlink_body(), headers=headers)
    second = await call("unlink_ticket", UNLINK, unlink_body(), headers=headers)
    assert (first.status, second.status) == (200, 200)
    assert second.body["operationId"] == first.body["operationId"]
    assert second.headers["x-operation-id"] == first.body["operationId"]
    assert second.body["items"] == first.body["items"]
    assert sandbox.contraforce.gate.counters.action_requests == 1


async def test_mirror_repeat_with_the_same_key_returns_the_vendors_first_answer(
    queues: Queues, sandbox: Sandboxes
) -> None:
    headers = {"Idempotency-Key": f"mirror-{uuid.uuid4()}"}
    path = f"contraforce/workspaces/{WS}/tickets/unlink"
    replies = [
        await call(
            "contraforce_unlink_ticket",
            path,
            {"incident": {"id": TICKETED}},
            route_params={"workspaceId": WS},
            headers=headers,
        )
        for _ in range(2)
    ]
    assert [r.body["data"] for r in replies] == [True, True]
    assert replies[0].body["meta"] == replies[1].body["meta"]


async def test_same_key_with_a_different_body_is_422(queues: Queues, sandbox: Sandboxes) -> None:
    headers = {"Idempotency-Key": f"reuse-{uuid.uuid4()}"}
    await call("unlink_ticket", UNLINK, unlink_body(), headers=headers)
    reply = await call("unlink_ticket", UNLINK, unlink_body("other-incident"), headers=headers)
    assert (reply.status, reply.body["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert "Idempotency-Key" in reply.body["errors"]


async def test_concurrent_requests_with_one_key_produce_one_upstream_effect(
    queues: Queues, sandbox: Sandboxes
) -> None:
    headers = {"Idempotency-Key": f"race-{uuid.uuid4()}"}
    replies = await asyncio.gather(
        *(call("unlink_ticket", UNLINK, unlink_body(), headers=headers) for _ in range(5))
    )
    assert {r.status for r in replies} <= {200, 202}
    assert len({r.body["operationId"] for r in replies}) == 1
    assert len(sandbox.contraforce.state.effects) == 1
    assert sandbox.contraforce.gate.counters.action_requests == 1


async def test_a_transient_failure_is_not_replayed_to_a_repeat_which_runs_again(
    queues: Queues, sandbox: Sandboxes
) -> None:
    headers = {"Idempotency-Key": f"outage-{uuid.uuid4()}"}
    fail_first(sandbox.contraforce, 2)
    first = await call("unlink_ticket", UNLINK, unlink_body(), headers=headers)
    second = await call("unlink_ticket", UNLINK, unlink_body(), headers=headers)
    assert (first.status, second.status) == (503, 200)
    assert len(sandbox.contraforce.state.effects) == 1


async def test_malformed_idempotency_key_is_400(queues: Queues) -> None:
    reply = await call(
        "unlink_ticket", UNLINK, unlink_body(), headers={"Idempotency-Key": "x" * 300}
    )
    assert (reply.status, list(reply.body["errors"])) == (400, ["Idempotency-Key"])


# ---- ContraForce webhooks ----------------------------------------------------------------------


def investigation(classification: str = "FalsePositive", incident: str = TICKETED) -> bytes:
    event = {
        "type": UNLINKING_EVENT,
        "timestamp": datetime.now(UTC).isoformat(),
        "data": {
            "accountId": WS,
            "incidentId": incident,
            "source": "sentinel",
            "classification": classification,
        },
    }
    return json.dumps(event).encode()


async def deliver(body: bytes, *, event_id: str, secret: str = SECRET, **extra: str) -> Reply:
    stamp = datetime.now(UTC).isoformat()
    headers = {
        "X-CF-Schema": UNLINKING_EVENT,
        "X-CF-Event-Id": event_id,
        "X-CF-Timestamp": stamp,
        "X-CF-Signature": sign(body, secret=secret.encode(), timestamp=stamp),
        **extra,
    }
    return await call("contraforce_webhook", "webhooks/contraforce", raw=body, headers=headers)


async def test_signed_webhook_is_accepted_fast_then_applied_by_the_worker(
    queues: Queues, sandbox: Sandboxes
) -> None:
    reply = await deliver(investigation(), event_id=str(uuid.uuid4()))
    assert reply.status == 202
    assert sandbox.contraforce.gate.counters.action_requests == 0
    await queues.drain()
    assert (await poll(reply)).body["status"] == "succeeded"
    assert len(sandbox.contraforce.state.effects) == 1


async def test_a_delivery_whose_queue_message_was_lost_is_queued_again_by_the_senders_retry(
    queues: Queues, sandbox: Sandboxes
) -> None:
    body, event_id = investigation(), str(uuid.uuid4())
    first = await deliver(body, event_id=event_id)
    await queues.work.clear_messages()  # the send after the record was written never landed
    again = await deliver(body, event_id=event_id)
    assert again.headers["location"] == first.headers["location"]
    await queues.drain()
    assert (await poll(first)).body["status"] == "succeeded"
    assert len(sandbox.contraforce.state.effects) == 1


async def test_webhook_signed_with_the_previous_secret_is_accepted(queues: Queues) -> None:
    reply = await deliver(
        investigation(), event_id=str(uuid.uuid4()), secret="previous-webhook-secret"
    )
    assert reply.status == 202


@pytest.mark.parametrize("secret", ["attacker-secret", ""])
async def test_badly_signed_webhook_is_401_and_nothing_is_queued(
    queues: Queues, secret: str
) -> None:
    reply = await deliver(investigation(), event_id=str(uuid.uuid4()), secret=secret or "x")
    assert (reply.status, reply.media_type, reply.body["code"]) == (
        401,
        "application/problem+json",
        "INVALID_SIGNATURE",
    )
    assert await queues.visible(queues.work) == []


async def test_unsigned_webhook_is_401(queues: Queues) -> None:
    reply = await call("contraforce_webhook", "webhooks/contraforce", raw=investigation())
    assert reply.status == 401
    assert await queues.visible(queues.work) == []


async def test_test_delivery_is_verified_and_acknowledged_without_acting(
    queues: Queues, sandbox: Sandboxes
) -> None:
    body = json.dumps({**json.loads(investigation()), "isTest": True}).encode()
    reply = await deliver(body, event_id=str(uuid.uuid4()), **{"X-CF-Test": "true"})
    assert (reply.status, reply.body["test"]) == (200, True)
    assert await queues.visible(queues.work) == []


async def test_a_test_header_added_to_a_real_signed_delivery_does_not_suppress_it(
    queues: Queues, sandbox: Sandboxes
) -> None:
    reply = await deliver(investigation(), event_id=str(uuid.uuid4()), **{"X-CF-Test": "true"})
    assert reply.status == 202
    await queues.drain()
    assert len(sandbox.contraforce.state.effects) == 1


async def test_event_the_policy_does_not_act_on_is_acknowledged_and_recorded_skipped(
    queues: Queues,
) -> None:
    reply = await deliver(investigation("TruePositive"), event_id=str(uuid.uuid4()))
    assert (reply.status, reply.body["status"]) == (200, "skipped")
    operation_id = reply.body["operationId"]
    recorded = await call(
        "get_operation",
        f"operations/{operation_id}",
        method="GET",
        route_params={"operationId": operation_id},
    )
    assert (recorded.status, recorded.body["status"]) == (200, "skipped")
    assert await queues.visible(queues.work) == []


async def test_same_webhook_five_times_while_upstream_fails_first_three_calls_applies_once(
    queues: Queues, sandbox: Sandboxes
) -> None:
    fail_first(sandbox.contraforce, 3)
    body, event_id = investigation(), str(uuid.uuid4())
    replies = [await deliver(body, event_id=event_id)]
    await queues.drain()  # attempt 1: two calls, both fail; queued again
    replies += [await deliver(body, event_id=event_id) for _ in range(4)]
    await queues.drain()  # attempt 2: one more failure, then success
    assert {r.status for r in replies} <= {200, 202}
    assert len({r.headers["location"] for r in replies if r.status == 202}) == 1
    assert len(sandbox.contraforce.state.effects) == 1
    final = await poll(replies[0])
    assert (final.body["status"], sandbox.contraforce.gate.counters.action_requests) == (
        "succeeded",
        4,
    )


# ---- the worker: retries, permanent failures, poison, replay ------------------------------------


async def test_permanent_upstream_4xx_is_final_and_never_retried(
    queues: Queues, sandbox: Sandboxes
) -> None:
    reply = await call(
        "unlink_ticket",
        UNLINK,
        unlink_body("no-such-incident"),
        headers={"Prefer": "respond-async"},
    )
    await queues.drain()
    final = await poll(reply)
    assert (final.status, final.body["code"]) == (404, "NOT_FOUND")
    assert sandbox.contraforce.gate.counters.action_requests == 1
    assert await queues.visible(queues.poison) == []


async def test_transient_failure_waits_for_the_upstreams_retry_after_before_the_next_attempt(
    queues: Queues, sandbox: Sandboxes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUEUE_RETRY_MAX_DELAY_SECONDS", "300")
    sandbox.contraforce.faults = FaultPlan(script=[Fault(FaultKind.UNAVAILABLE, retry_after=7)] * 2)
    reply = await call("unlink_ticket", UNLINK, unlink_body(), headers={"Prefer": "respond-async"})
    assert await queues.drain() == 1
    assert await queues.visible(queues.work) == []  # queued again, invisible for 7 s
    pending = await poll(reply)
    assert pending.status == 202
    assert "retrying in 7 s" in pending.body["reason"]
    assert sandbox.contraforce.gate.counters.action_requests == 2


def replay_poison_command(azurite: Azurite) -> str:
    """The operator's command, as an operator runs it."""
    result = subprocess.run(
        [sys.executable, "-m", "ila", "replay-poison"],
        env={
            "PATH": os.environ.get("PATH", ""),
            "AzureWebJobsStorage": azurite.connection_string_for(PRIVATE_ACCOUNT),
        },
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout


async def test_poison_after_max_attempts_records_the_reason_then_replay_applies_it(
    queues: Queues, sandbox: Sandboxes, azurite: Azurite
) -> None:
    fail_first(sandbox.contraforce, 100)
    reply = await call("unlink_ticket", UNLINK, unlink_body(), headers={"Prefer": "respond-async"})
    await queues.drain()
    poisoned = await queues.visible(queues.poison)
    assert [m["operationId"] for m in poisoned] == [reply.body["operationId"]]
    failed = await poll(reply)
    assert (failed.status, failed.body["code"]) == (503, "UPSTREAM_UNAVAILABLE")
    assert "moved to the poison queue" in failed.body["outcome"]["reason"]
    assert sandbox.contraforce.gate.counters.action_requests == 6  # 3 attempts x 2 calls

    sandbox.contraforce.faults = FaultPlan()  # the cause is fixed
    printed = replay_poison_command(azurite)
    assert f"replayed operation {reply.body['operationId']}" in printed
    await queues.drain()
    assert (await poll(reply)).body["status"] == "succeeded"
    assert len(sandbox.contraforce.state.effects) == 1
    assert await queues.visible(queues.poison) == []


async def test_queued_runs_record_their_queue_age_and_poisoned_work_counts_once(
    queues: Queues, sandbox: Sandboxes, exported: Exported
) -> None:
    fail_first(sandbox.contraforce, 100)
    await call("unlink_ticket", UNLINK, unlink_body(), headers={"Prefer": "respond-async"})
    await queues.drain()
    assert exported.total("ila.queue.age") == 3  # one per queued run (QUEUE_MAX_ATTEMPTS)
    assert exported.total("ila.operations.poisoned", reason="attempts_exhausted") == 1
    assert exported.total("ila.actions", action="unlink_ticket", status="failed") == 1
    runs = [s for s in exported.spans.get_finished_spans() if s.name == "process operation"]
    attempts = [s for s in exported.spans.get_finished_spans() if s.name == "contraforce"]
    assert (len(runs), len(attempts)) == (3, 6)  # 3 runs x 2 attempts, each under its run
    assert {a.parent.span_id for a in attempts if a.parent} == {
        r.context.span_id for r in runs if r.context
    }


async def test_a_queued_run_links_to_the_call_that_queued_it(
    queues: Queues, sandbox: Sandboxes, exported: Exported
) -> None:
    """OpenTelemetry messaging semantic conventions (semantic-conventions,
    docs/messaging/messaging-spans.md, "Consumer spans"): a "Process" span SHOULD link to the
    creation context of the message it handles, which the producer injects into the message."""
    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    await call(
        "unlink_ticket",
        UNLINK,
        unlink_body(),
        headers={"Prefer": "respond-async", "traceparent": caller},
    )
    [message] = await queues.visible(queues.work)
    await queues.drain()
    spans = exported.spans.get_finished_spans()
    [server] = [s for s in spans if s.kind is SpanKind.SERVER]
    [run] = [s for s in spans if s.name == "process operation"]
    assert server.context is not None
    created = server.context
    assert message["traceparent"] == f"00-{created.trace_id:032x}-{created.span_id:016x}-01"
    assert [(link.context.trace_id, link.context.span_id) for link in run.links] == [
        (server.context.trace_id, server.context.span_id)
    ]
    assert sandbox.contraforce.gate.counters.action_requests == 1


# Not the caller's or the queued run's: the span current where work is looked at or replayed.
ELSEWHERE = trace.NonRecordingSpan(
    trace.SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=False,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
)


async def test_work_found_held_is_sent_again_still_linked_to_the_call_that_queued_it(
    queues: Queues, sandbox: Sandboxes, exported: Exported, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Work a live lease holds is looked at again later by a new message; that message is the
    same work, so it keeps its creation context and the run that finally takes it links to the
    call that queued it (messaging conventions, as above), not to the span that found it held."""
    reply = await call("unlink_ticket", UNLINK, unlink_body(), headers={"Prefer": "respond-async"})
    [queued] = await queues.visible(queues.work)
    settings = get_settings()
    found = await storage.storage(settings)
    store = operations.record_store(found, settings)
    stored = await store.read(reply.body["operationId"])
    assert stored is not None
    hold = timedelta(seconds=30)
    now = datetime.now(UTC)
    await store.save_header(lifecycle.lease(stored[0], owner="another", now=now, hold=hold))
    sent: list[dict[str, Any]] = []
    send_message = found.queue.send_message

    async def recorded(content: str, **options: Any) -> Any:
        sent.append(json.loads(content))
        return await send_message(content, **options)

    monkeypatch.setattr(found.queue, "send_message", recorded)
    [message] = [m async for m in queues.work.receive_messages(max_messages=1)]
    with trace.use_span(ELSEWHERE):
        await worker.process_message(Core.from_settings(settings), message.content, dequeue_count=1)
    assert sent == [queued]  # the message as queued: its operation and the call's context
    assert "traceparent" in queued
    assert sandbox.contraforce.gate.counters.action_requests == 0


async def test_replayed_poison_keeps_the_context_of_the_run_that_gave_up(
    queues: Queues, sandbox: Sandboxes, exported: Exported
) -> None:
    """Replaying poisoned work sends the same work again: the replayed run links to the run
    that gave up (which links to the call), not to wherever the operator replayed it from."""
    fail_first(sandbox.contraforce, 100)
    await call("unlink_ticket", UNLINK, unlink_body(), headers={"Prefer": "respond-async"})
    await queues.drain()
    [poisoned] = await queues.visible(queues.poison)
    assert "traceparent" in poisoned
    with trace.use_span(ELSEWHERE):
        await worker.replay_poison(Core.from_settings(get_settings()))
    assert await queues.visible(queues.work) == [poisoned]


async def test_a_poisoned_request_repeated_with_its_key_is_queued_again_and_applied(
    queues: Queues, sandbox: Sandboxes
) -> None:
    headers = {"Prefer": "respond-async", "Idempotency-Key": f"poisoned-{uuid.uuid4()}"}
    fail_first(sandbox.contraforce, 6)  # 3 attempts x 2 calls: poisoned
    first = await call("unlink_ticket", UNLINK, unlink_body(), headers=headers)
    await queues.drain()
    assert (await poll(first)).status == 503
    repeat = await call("unlink_ticket", UNLINK, unlink_body(), headers=headers)
    assert (repeat.status, repeat.body["operationId"]) == (202, first.body["operationId"])
    await queues.drain()
    assert (await poll(first)).body["status"] == "succeeded"
    assert len(sandbox.contraforce.state.effects) == 1


async def test_duplicate_queue_delivery_does_not_act_twice(
    queues: Queues, sandbox: Sandboxes
) -> None:
    reply = await call("unlink_ticket", UNLINK, unlink_body(), headers={"Prefer": "respond-async"})
    message = json.dumps({"operationId": reply.body["operationId"]})
    await queues.work.send_message(message)
    await queues.drain()
    assert len(sandbox.contraforce.state.effects) == 1
    assert sandbox.contraforce.gate.counters.action_requests == 1


async def test_a_repeat_while_the_first_request_runs_is_202_counting_the_run_under_way(
    queues: Queues, sandbox: Sandboxes
) -> None:
    headers = {"Idempotency-Key": f"running-{uuid.uuid4()}"}
    sandbox.contraforce.faults = FaultPlan(script=[Fault(FaultKind.SLOW, delay=1.0)])
    first = asyncio.create_task(call("unlink_ticket", UNLINK, unlink_body(), headers=headers))
    while sandbox.contraforce.gate.counters.action_requests == 0:  # noqa: ASYNC110 - a counter
        await asyncio.sleep(0.01)  # the first request's upstream call is in flight
    repeat = await call("unlink_ticket", UNLINK, unlink_body(), headers=headers)
    assert (repeat.status, repeat.body["status"], repeat.body["attempts"]) == (202, "pending", 1)
    assert (await first).status == 200
    assert sandbox.contraforce.gate.counters.action_requests == 1


def change_renewals(
    monkeypatch: pytest.MonkeyPatch, *, answer_late: float = 0.0, error: Exception | None = None
) -> list[Any]:
    """Lease renewals (every header saved after the first, the lease, that is not the result)
    every 0.5 s, changed: `error` is raised instead of the write, or the write is applied and
    its answer comes `answer_late` seconds late. Returns the headers saved, in order."""
    from shared.durable.store import RecordStore  # noqa: PLC0415 - the storage path, loaded on use

    monkeypatch.setenv("RETRY_BUDGET_SECONDS", "2")  # a renewal every 0.5 s
    saved: list[Any] = []
    save_header = RecordStore.save_header

    async def changed(store: RecordStore, header: Any) -> Any:
        saved.append(header)
        renewal = len(saved) > 1 and not header.final
        if renewal and error is not None:
            raise error
        answer = await save_header(store, header)
        if renewal:
            await asyncio.sleep(answer_late)
        return answer

    monkeypatch.setattr(RecordStore, "save_header", changed)
    return saved


async def test_a_renewal_in_flight_when_the_work_ends_does_not_stop_the_result_being_recorded(
    queues: Queues, sandbox: Sandboxes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A renewal whose write the store has applied, but whose answer is still on its way when
    the last command is answered: had it been cancelled then, the runner would not know the
    lease's new ETag, its final write would conflict, and the operation would stay pending
    though every command was answered (seen in test_guarantees' long bulk)."""
    saved = change_renewals(monkeypatch, answer_late=1.0)
    sandbox.contraforce.faults = FaultPlan(script=[Fault(FaultKind.SLOW, delay=1.0)])
    headers = {"Idempotency-Key": f"renewal-in-flight-{uuid.uuid4()}"}
    reply = await call("unlink_ticket", UNLINK, unlink_body(), headers=headers)
    assert len(saved) >= 3  # the lease, a renewal, the result
    assert (reply.status, reply.body["status"]) == (200, "succeeded")
    assert sandbox.contraforce.gate.counters.action_requests == 1


async def test_a_renewal_that_fails_unexpectedly_is_logged_and_the_result_still_recorded(
    queues: Queues,
    sandbox: Sandboxes,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    change_renewals(monkeypatch, error=RuntimeError("not a store error this code knows"))
    sandbox.contraforce.faults = FaultPlan(script=[Fault(FaultKind.SLOW, delay=1.0)])
    headers = {"Idempotency-Key": f"renewal-broken-{uuid.uuid4()}"}
    reply = await call("unlink_ticket", UNLINK, unlink_body(), headers=headers)
    assert (reply.status, reply.body["status"]) == (200, "succeeded")
    assert "lease renewal failed" in caplog.text


async def test_keys_past_retention_are_taken_over_and_all_name_the_held_operation(
    queues: Queues,
) -> None:
    """A webhook's event key past retention beside a fresh content key: the delivery is a
    repeat of the held operation, and the stale key is pointed at it (not at a new one)."""
    from incident_link_api.commands import UnlinkTicket  # noqa: PLC0415
    from incident_link_api.contraforce import IncidentReference  # noqa: PLC0415
    from shared.durable.store import webhook_key_rows  # noqa: PLC0415

    store = operations.record_store(await storage.storage(get_settings()), get_settings())
    command = UnlinkTicket(
        workspace_id=DEMO_WORKSPACE_ID,
        incident=IncidentReference.model_validate({"id": TICKETED, "workspaceId": WS}),
    )
    event, content = webhook_key_rows(str(uuid.uuid4()), uuid.uuid4().bytes)
    start = datetime.now(UTC)
    first = await operations.accept(
        store,
        operation_id=str(uuid.uuid4()),
        route="webhook",
        commands=[command],
        keys=[event],
        now=start,
    )
    later = start + timedelta(hours=25)  # the event key is past the 24 h retention
    held = await operations.accept(
        store,
        operation_id=str(uuid.uuid4()),
        route="webhook",
        commands=[command],
        keys=[content],
        now=later,
    )
    again = await operations.accept(
        store,
        operation_id=str(uuid.uuid4()),
        route="webhook",
        commands=[command],
        keys=[event, content],
        now=later,
    )
    assert not held.existing
    assert (again.existing, again.operation.operation_id) == (True, held.operation.operation_id)
    repeat = await operations.accept(
        store,
        operation_id=str(uuid.uuid4()),
        route="webhook",
        commands=[command],
        keys=[event],
        now=later,
    )
    assert (
        repeat.operation.operation_id == held.operation.operation_id != first.operation.operation_id
    )
