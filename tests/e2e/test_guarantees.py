"""Issue 11's "Done when", over real HTTP through `python -m local`: at least once in, at most
once in effect, and an answer that tells the truth (what the README's Guarantees promise).

Each test drives the local host process against the fault-injecting simulators on loopback and
reads the simulators' own effects and request counters: the upstream's view, not the app's.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from local.sandbox.contraforce_state import DEMO_WORKSPACE_ID
from local.sandbox.d3_state import DEMO_SITE
from local.sandbox.faults import Fault, FaultKind, FaultPlan
from local.send_webhook import SANDBOX_WEBHOOK_SECRET
from shared.webhooks import UNLINKING_EVENT, sign
from tests.e2e.conftest import FUNCTION_KEY, Stack, start_host

WS = str(DEMO_WORKSPACE_ID)
TICKETED = "6d1f0c2a-4e4b-4b8f-9d55-0a3c1b2e7f10"  # #1001, linked to ServiceNow INC0012345
NO_TICKET = "1003"  # the Splunk incident with no service ticket
D3_SOURCE = "20231025-130"  # linked to 20231025-131 and 20210127-197 in the D3 sandbox
D3_LINKED = ("20231025-131", "20210127-197")
UNLINK = "/actions/unlink-ticket"
REMOVE = "/actions/remove-linked-incidents"
WEBHOOK = "/webhooks/contraforce"
DEFAULT_MAX_BODY_BYTES = 1_048_576  # shared.config.Settings.max_body_bytes
POLL_SECONDS = 20.0


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"guarantees-{uuid.uuid4()}"}


async def final_answer(
    http: httpx.AsyncClient, operation_id: str, *, seconds: float = POLL_SECONDS
) -> httpx.Response:
    """Poll `operations/{id}` as Logic Apps do, until it is no longer 202 (bounded): the
    queue trigger runs inside the host process, so the wait is that process's, not ours."""
    deadline = time.monotonic() + seconds
    while True:
        reply = await http.get(f"/operations/{operation_id}")
        if reply.status_code != httpx.codes.ACCEPTED:
            return reply
        if time.monotonic() > deadline:
            raise AssertionError(f"operation {operation_id} still 202 after {seconds}s")
        await asyncio.sleep(0.1)


def investigation(incident: dict[str, Any]) -> bytes:
    """An `agent.investigation.completed.v1` event that unlinks (FalsePositive)."""
    event = {
        "type": UNLINKING_EVENT,
        "timestamp": datetime.now(UTC).isoformat(),
        "nonce": str(uuid.uuid4()),  # every test's body (and so its signed content) differs
        "data": {"accountId": WS, "classification": "FalsePositive", **incident},
    }
    return json.dumps(event).encode()


def signed(body: bytes, *, event_id: str) -> dict[str, str]:
    """The headers ContraForce sends, signed with the sandbox secret `python -m local` uses."""
    stamp = datetime.now(UTC).isoformat()
    return {
        "Content-Type": "application/json",
        "X-CF-Schema": UNLINKING_EVENT,
        "X-CF-Event-Id": event_id,
        "X-CF-Timestamp": stamp,
        "X-CF-Signature": sign(body, secret=SANDBOX_WEBHOOK_SECRET.encode(), timestamp=stamp),
    }


def d3_bulk(commands: int, linked_per_command: int, *, width: int) -> dict[str, Any]:
    """`items[]` of RemoveLinkedIncidents on one source: the first command also names the two
    incidents the sandbox links it to, so exactly two links exist to remove."""
    items = []
    for i in range(commands):
        filler = [
            f"guarantees-{i:03d}-{j:03d}-".ljust(width, "x")
            for j in range(linked_per_command - (len(D3_LINKED) if i == 0 else 0))
        ]
        linked = [*D3_LINKED, *filler] if i == 0 else filler
        items.append({"sourceIncident": D3_SOURCE, "linkedIncidents": linked})
    return {"items": items}


# ---- 1. "nothing to do" is not_applied on every path -------------------------------------------


async def test_nothing_to_do_is_the_same_409_keyed_or_not_and_a_webhook_polls_to_not_applied(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    body = {"workspaceId": WS, "incident": {"number": NO_TICKET}}
    unkeyed = await client.post(UNLINK, json=body)
    keyed = await client.post(UNLINK, json=body, headers=key())
    delivery = investigation({"incidentNumber": int(NO_TICKET)})
    accepted = await client.post(
        WEBHOOK, content=delivery, headers=signed(delivery, event_id=str(uuid.uuid4()))
    )
    assert accepted.status_code == 202
    polled = await final_answer(client, accepted.headers["x-operation-id"])

    def answer(reply: httpx.Response) -> tuple[int, str | None, str | None]:
        body = reply.json()
        return reply.status_code, body.get("code"), body.get("outcome", body).get("status")

    assert answer(unkeyed) == (409, "NOT_APPLIED", "failed")
    assert answer(keyed) == answer(unkeyed)
    assert answer(polled) == answer(unkeyed)
    assert sandbox.contraforce.gate.counters.action_requests == 3  # one send each, no retries
    assert sandbox.contraforce.state.effects == []


# ---- 2. an effect whose answer was lost ---------------------------------------------------------


async def test_upstream_that_unlinks_then_resets_is_a_success_after_two_requests(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    sandbox.contraforce.faults = FaultPlan(script=[Fault(FaultKind.APPLIED_THEN_RESET)])
    reply = await client.post(UNLINK, json={"workspaceId": WS, "incident": {"id": TICKETED}})
    outcome = reply.json()
    assert (reply.status_code, outcome.get("status"), outcome.get("attempts")) == (
        200,
        "succeeded",
        2,
    )
    assert len(sandbox.contraforce.state.effects) == 1
    assert sandbox.contraforce.gate.counters.action_requests == 2


# ---- 3. a large keyed bulk is recorded (or refused before it acts) -------------------------------


async def test_keyed_bulk_of_100_by_100_is_recorded_and_its_repeat_calls_no_upstream(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    assert sorted(sandbox.d3.state.links(DEMO_SITE, D3_SOURCE)) == sorted(D3_LINKED)
    content = json.dumps(d3_bulk(100, 100, width=62)).encode()
    assert 600_000 < len(content) < DEFAULT_MAX_BODY_BYTES  # issue 11's ~650 KB request
    headers = {**key(), "Content-Type": "application/json"}
    first = await client.post(REMOVE, content=content, headers=headers, timeout=120)
    calls = sandbox.d3.gate.counters.action_requests
    if first.status_code == httpx.codes.REQUEST_ENTITY_TOO_LARGE:
        assert calls == 0  # refused before anything ran
        return
    assert first.status_code == 207, first.text[:500]  # two links removed, the rest not linked
    assert (calls, len(sandbox.d3.state.effects)) == (100, 2)
    operation_id = first.headers["x-operation-id"]
    assert first.json()["operationId"] == operation_id
    recorded = await final_answer(client, operation_id)
    again = await client.post(REMOVE, content=content, headers=headers, timeout=120)
    assert (recorded.status_code, recorded.json()["status"]) == (207, "partially_succeeded")
    assert (again.status_code, again.headers["x-operation-id"]) == (207, operation_id)
    assert sandbox.d3.gate.counters.action_requests == calls


# ---- 4. a lease that holds while a long bulk runs ---------------------------------------------


async def test_long_bulk_repeated_after_the_lease_time_sends_each_command_once(
    sandbox: Stack,
) -> None:
    commands, concurrency, delay, budget = 72, 6, 1.0, 2.0
    lease_seconds = 2 * budget + 5  # shared.durable.lease_hold, before any renewal
    sandbox.d3.faults = FaultPlan(script=[Fault(FaultKind.SLOW, delay=delay)] * commands)
    host = start_host(
        {
            **sandbox.settings,
            "RETRY_BUDGET_SECONDS": str(budget),
            "BULK_CONCURRENCY": str(concurrency),
        }
    )
    body = {
        "items": [
            {"sourceIncident": D3_SOURCE, "linkedIncidents": [D3_LINKED[0]]},
            *(
                {"sourceIncident": D3_SOURCE, "linkedIncidents": [f"guarantees-slow-{i:02d}"]}
                for i in range(1, commands)
            ),
        ]
    }
    headers = {**key(), "x-functions-key": FUNCTION_KEY}
    try:
        async with httpx.AsyncClient(base_url=host.base_url, headers=headers, timeout=60) as http:
            first = asyncio.create_task(http.post(REMOVE, json=body))
            started = time.monotonic()
            while sandbox.d3.gate.counters.action_requests == 0:  # the lease is taken
                assert time.monotonic() - started < POLL_SECONDS, "the bulk never started"
                await asyncio.sleep(0.05)
            # The bulk takes about commands / concurrency * delay = 12 s; repeat it once the
            # first lease (9 s) would have ended had it not been renewed.
            await asyncio.sleep(lease_seconds + 0.5)
            assert not first.done(), "the bulk ended before its first lease: nothing proved"
            repeat = await http.post(REMOVE, json=body)
            done = await first
            after = await http.post(REMOVE, json=body)
    finally:
        host.stop()
    assert repeat.status_code in {202, 207}, repeat.text[:500]
    assert (done.status_code, after.status_code) == (207, 207), done.text[:500]
    assert repeat.headers["x-operation-id"] == done.headers["x-operation-id"]
    assert sandbox.d3.gate.counters.action_requests == commands
    assert len(sandbox.d3.state.effects) == 1


# ---- 5. webhook replay ---------------------------------------------------------------------------


async def test_signed_delivery_replayed_under_a_new_event_id_does_not_act_again(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    delivery = investigation({"incidentId": TICKETED, "source": "sentinel"})
    headers = signed(delivery, event_id=str(uuid.uuid4()))
    first = await client.post(WEBHOOK, content=delivery, headers=headers)
    assert first.status_code == 202
    applied = await final_answer(client, first.headers["x-operation-id"])
    assert (applied.status_code, applied.json()["status"]) == (200, "succeeded")

    replay = await client.post(
        WEBHOOK, content=delivery, headers={**headers, "X-CF-Event-Id": str(uuid.uuid4())}
    )
    assert replay.status_code < 500, replay.text[:500]
    replayed = await final_answer(client, replay.headers["x-operation-id"])
    assert replayed.status_code == 200
    assert replay.headers["x-operation-id"] == first.headers["x-operation-id"]
    assert sandbox.contraforce.gate.counters.action_requests == 1
    assert len(sandbox.contraforce.state.effects) == 1


# ---- 6. separate key spaces ----------------------------------------------------------------------


async def test_caller_key_in_the_webhook_key_space_is_400_and_the_delivery_still_acts(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    event_id = str(uuid.uuid4())
    refused = await client.post(
        UNLINK,
        json={"workspaceId": WS, "incident": {"id": TICKETED}},
        headers={"Idempotency-Key": f"contraforce-webhook:{event_id}"},
    )
    assert refused.status_code == 400
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert list(refused.json()["errors"]) == ["Idempotency-Key"]
    assert sandbox.contraforce.gate.counters.action_requests == 0

    delivery = investigation({"incidentId": TICKETED, "source": "sentinel"})
    accepted = await client.post(
        WEBHOOK, content=delivery, headers=signed(delivery, event_id=event_id)
    )
    applied = await final_answer(client, accepted.headers["x-operation-id"])
    assert (applied.status_code, applied.json()["status"]) == (200, "succeeded")
    assert len(sandbox.contraforce.state.effects) == 1
