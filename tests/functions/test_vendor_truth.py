"""Answers that tell what the operation did (issue 24 items 3-5, issue 25 item 16), through the
registered handlers, on Azurite, against the sandbox simulators with their fault plans:

- after a send whose answer was lost (`applied_then_reset`), "nothing to do" is a success marked
  *inferred*, and both mirrors say so in the vendor's shape, with `X-ILA-Outcome-Inferred`;
- an operation that never got an answer after a send that may have acted reads *unknown*
  (`OUTCOME_UNKNOWN`), never plain failed, and its replay never acts twice;
- a concurrent duplicate on a mirror route waits for the first request and answers as it did,
  or gets the vendor-shaped 409 + Retry-After, never our 202.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from local.sandbox.contraforce_state import DEMO_WORKSPACE_ID
from local.sandbox.d3_state import DEMO_SITE
from local.sandbox.faults import Fault, FaultKind, FaultPlan
from shared import service
from shared.config import get_settings
from shared.core import Core
from shared.durable import worker
from tests.conftest import Sandboxes, load_json
from tests.functions.conftest import Reply, call
from tests.functions.test_durable import Queues, queues

WS = str(DEMO_WORKSPACE_ID)
TICKETED = "6d1f0c2a-4e4b-4b8f-9d55-0a3c1b2e7f10"  # incident #1001, linked to ServiceNow
SEED = load_json("d3-remove-linked-incidents.samples.json")
SOURCE = "20231025-130"  # linked to 20210127-197 and 20231025-131, not to 20210127-198
INFERRED = "x-ila-outcome-inferred"
UNLINK = "actions/unlink-ticket"
CF_PATH = f"contraforce/workspaces/{WS}/tickets/unlink"
D3_PATH = "d3/Command/RemoveLinkedIncidents"
__all__ = ["queues"]  # the fixture, used by name


@pytest.fixture
def stored(queues: Queues, monkeypatch: pytest.MonkeyPatch) -> Queues:
    """The app's storage on Azurite, its queues empty (test_durable's `queues`), with two
    queued attempts before the poison queue."""
    monkeypatch.setenv("QUEUE_MAX_ATTEMPTS", "2")
    return queues


def keyed(prefix: str) -> dict[str, str]:
    return {"Idempotency-Key": f"{prefix}-{uuid.uuid4()}"}


async def cf_mirror(**kw: Any) -> Reply:
    return await call(
        "contraforce_unlink_ticket",
        CF_PATH,
        {"incident": {"id": TICKETED}},
        route_params={"workspaceId": WS},
        **kw,
    )


async def d3_mirror(linked: list[str], **kw: Any) -> Reply:
    body = {
        **SEED["request"],
        "CommandParams": {
            "Source Incident Number": SOURCE,
            "Linked Incident Numbers to be Removed": linked,
        },
    }
    return await call("d3_remove_linked_incidents", D3_PATH, body, **kw)


async def unlink(**kw: Any) -> Reply:
    return await call(
        "unlink_ticket", UNLINK, {"workspaceId": WS, "incident": {"id": TICKETED}}, **kw
    )


async def poll(operation_id: str) -> Reply:
    return await call(
        "get_operation",
        f"operations/{operation_id}",
        method="GET",
        route_params={"operationId": operation_id},
    )


def lose_answers(sim: Any, count: int = 1) -> None:
    """The next `count` requests take effect upstream, and their answers are lost."""
    sim.faults = FaultPlan(script=[Fault.of(FaultKind.APPLIED_THEN_RESET)] * count)


# ---- inferred successes: marked, and answered in the vendor's shape ---------------------------


async def test_contraforce_mirror_answers_data_true_after_a_lost_answer_marked_inferred(
    sandbox: Sandboxes,
) -> None:
    lose_answers(sandbox.contraforce)
    reply = await cf_mirror()
    assert (reply.status, reply.body["data"], reply.headers[INFERRED]) == (200, True, "true")
    assert reply.body["meta"]["requestId"]  # the re-send's own envelope, data corrected
    assert len(sandbox.contraforce.state.effects) == 1


async def test_contraforce_mirror_confirmed_success_carries_no_inferred_header(
    sandbox: Sandboxes,
) -> None:
    reply = await cf_mirror()
    assert (reply.status, reply.body["data"]) == (200, True)
    assert INFERRED not in reply.headers


async def test_d3_mirror_counts_the_incidents_of_a_lost_answer_as_removed(
    sandbox: Sandboxes,
) -> None:
    lose_answers(sandbox.d3)
    reply = await d3_mirror(["20210127-197", "20231025-131"])
    data = reply.body["returnData"]
    assert (reply.status, reply.body["error"], data["Status"], data["ErrorData"]) == (
        200,
        "",
        "Successful",
        [],
    )
    assert reply.headers[INFERRED] == "true"
    assert sandbox.d3.state.links(DEMO_SITE, SOURCE) == []
    assert len(sandbox.d3.state.effects) == 2


async def test_canonical_items_say_a_success_after_a_lost_answer_was_inferred(
    sandbox: Sandboxes,
) -> None:
    lose_answers(sandbox.contraforce)
    reply = await unlink()
    [item] = reply.body["items"]
    assert (reply.status, item["status"], item["inferred"]) == (200, "succeeded", True)
    assert item["message"].startswith("inferred:")
    assert reply.headers[INFERRED] == "true"


async def test_canonical_confirmed_success_is_not_inferred(sandbox: Sandboxes) -> None:
    reply = await unlink()
    [item] = reply.body["items"]
    assert (reply.status, item["inferred"]) == (200, False)
    assert INFERRED not in reply.headers


async def test_a_recorded_mirror_answer_repeated_with_its_key_still_says_done(
    stored: Queues, sandbox: Sandboxes
) -> None:
    headers = keyed("cf-inferred")
    lose_answers(sandbox.contraforce)
    first = await cf_mirror(headers=headers)
    repeat = await cf_mirror(headers=headers)
    assert [r.body["data"] for r in (first, repeat)] == [True, True]
    assert repeat.headers[INFERRED] == "true"
    assert len(sandbox.contraforce.state.effects) == 1


# ---- outcome unknown: a poisoned operation that may have acted ---------------------------------


async def test_a_keyed_call_whose_every_send_lost_its_answer_is_outcome_unknown_not_failed(
    stored: Queues, sandbox: Sandboxes
) -> None:
    lose_answers(sandbox.contraforce, 100)
    reply = await unlink(headers=keyed("unknown"))
    assert (reply.status, reply.body["code"]) == (503, "OUTCOME_UNKNOWN")
    assert int(reply.headers["retry-after"]) > 0
    assert reply.body["outcome"]["status"] == "unknown"
    [item] = reply.body["outcome"]["items"]
    assert (item["status"], item["error"]["code"]) == ("unknown", "OUTCOME_UNKNOWN")
    assert "may have acted" in item["message"]
    polled = await poll(reply.headers["x-operation-id"])
    assert (polled.status, polled.body["code"], polled.body["outcome"]["status"]) == (
        503,
        "OUTCOME_UNKNOWN",
        "unknown",
    )
    assert len(sandbox.contraforce.state.effects) == 1  # it did act


async def test_an_outcome_unknown_repeated_with_its_key_succeeds_inferred_and_acts_once(
    stored: Queues, sandbox: Sandboxes
) -> None:
    headers = keyed("unknown-repeat")
    lose_answers(sandbox.contraforce, 100)
    first = await unlink(headers=headers)
    sandbox.contraforce.faults = FaultPlan()  # the cause is fixed
    repeat = await unlink(headers=headers)
    [item] = repeat.body["items"]
    assert (first.status, repeat.status, item["inferred"]) == (503, 200, True)
    assert len(sandbox.contraforce.state.effects) == 1


async def test_a_repeat_that_meets_an_outage_after_a_lost_answer_still_reads_unknown(
    stored: Queues, sandbox: Sandboxes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRY_ATTEMPTS", "1")  # one send per call
    headers = keyed("unknown-then-outage")
    sandbox.contraforce.faults = FaultPlan(
        script=[Fault.of(FaultKind.APPLIED_THEN_RESET)] + [Fault.of(FaultKind.UNAVAILABLE)] * 100
    )
    first = await unlink(headers=headers)
    repeat = await unlink(headers=headers)  # this send is refused with a 503: it did nothing
    assert [r.body["code"] for r in (first, repeat)] == ["OUTCOME_UNKNOWN", "OUTCOME_UNKNOWN"]
    assert repeat.body["outcome"]["status"] == "unknown"
    assert sandbox.contraforce.gate.counters.action_requests == 2


async def test_a_keyed_call_the_upstream_refused_to_serve_stays_failed_unavailable(
    stored: Queues, sandbox: Sandboxes
) -> None:
    sandbox.contraforce.faults = FaultPlan(script=[Fault.of(FaultKind.UNAVAILABLE)] * 100)
    reply = await unlink(headers=keyed("plain-outage"))
    assert (reply.status, reply.body["code"], reply.body["outcome"]["status"]) == (
        503,
        "UPSTREAM_UNAVAILABLE",
        "failed",
    )
    assert sandbox.contraforce.state.effects == []


async def test_mirrors_answer_an_unknown_outcome_in_their_own_problem_shape(
    stored: Queues, sandbox: Sandboxes
) -> None:
    lose_answers(sandbox.contraforce, 100)
    lose_answers(sandbox.d3, 100)
    contraforce = await cf_mirror(headers=keyed("cf-unknown"))
    d3 = await d3_mirror(["20231025-131"], headers=keyed("d3-unknown"))
    for reply in (contraforce, d3):
        assert (reply.status, reply.media_type, reply.body["code"]) == (
            503,
            "application/problem+json",
            "OUTCOME_UNKNOWN",
        )
        assert "retry-after" in reply.headers
    assert "may have acted" in d3.body["Error"]
    assert "Error" not in contraforce.body


async def test_a_poisoned_queued_operation_that_may_have_acted_reads_unknown_and_replays_once(
    stored: Queues, sandbox: Sandboxes
) -> None:
    lose_answers(sandbox.contraforce, 100)
    accepted = await unlink(headers={"Prefer": "respond-async"})
    await stored.drain()
    operation_id = accepted.body["operationId"]
    poisoned = await poll(operation_id)
    assert (poisoned.status, poisoned.body["code"], poisoned.body["outcome"]["status"]) == (
        503,
        "OUTCOME_UNKNOWN",
        "unknown",
    )
    assert "poison queue" in poisoned.body["outcome"]["reason"]

    sandbox.contraforce.faults = FaultPlan()
    assert await worker.replay_poison(Core.from_settings(get_settings())) == [operation_id]
    await stored.drain()
    replayed = await poll(operation_id)
    [item] = replayed.body["items"]
    assert (replayed.status, item["status"], item["inferred"]) == (200, "succeeded", True)
    assert len(sandbox.contraforce.state.effects) == 1


# ---- a concurrent duplicate on a mirror route: never our 202 -----------------------------------


async def first_in_flight(sim: Any, request: Any) -> asyncio.Task[Reply]:
    """Start `request` against a slow upstream; return once its upstream call is in flight."""
    sim.faults = FaultPlan(script=[Fault(FaultKind.SLOW, delay=1.0)])
    first = asyncio.create_task(request)
    while sim.gate.counters.action_requests == 0:  # noqa: ASYNC110 - a counter, not an event
        await asyncio.sleep(0.01)
    return first


async def test_a_contraforce_mirror_duplicate_waits_for_the_first_and_answers_as_it_did(
    stored: Queues, sandbox: Sandboxes
) -> None:
    headers = keyed("cf-race")
    first = await first_in_flight(sandbox.contraforce, cf_mirror(headers=headers))
    repeat = await cf_mirror(headers=headers)
    answered = await first
    assert (repeat.status, repeat.body) == (200, answered.body)
    assert "location" not in repeat.headers
    assert sandbox.contraforce.gate.counters.action_requests == 1


async def test_a_d3_mirror_duplicate_waits_for_the_first_and_answers_as_it_did(
    stored: Queues, sandbox: Sandboxes
) -> None:
    headers = keyed("d3-race")
    first = await first_in_flight(sandbox.d3, d3_mirror(["20231025-131"], headers=headers))
    repeat = await d3_mirror(["20231025-131"], headers=headers)
    answered = await first
    assert (repeat.status, repeat.body) == (200, answered.body)
    assert repeat.body["returnData"]["Status"] == "Successful"
    assert sandbox.d3.gate.counters.action_requests == 1


async def test_a_mirror_duplicate_still_running_after_the_wait_is_a_vendor_shaped_409(
    stored: Queues, sandbox: Sandboxes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "DUPLICATE_WAIT_SECONDS", 0.0)
    cf_headers, d3_headers = keyed("cf-busy"), keyed("d3-busy")
    cf_first = await first_in_flight(sandbox.contraforce, cf_mirror(headers=cf_headers))
    d3_first = await first_in_flight(sandbox.d3, d3_mirror(["20231025-131"], headers=d3_headers))
    contraforce = await cf_mirror(headers=cf_headers)
    d3 = await d3_mirror(["20231025-131"], headers=d3_headers)
    for reply in (contraforce, d3):
        assert (reply.status, reply.media_type, reply.body["code"]) == (
            409,
            "application/problem+json",
            "OPERATION_IN_PROGRESS",
        )
        assert int(reply.headers["retry-after"]) > 0
        assert "location" not in reply.headers
    assert "still running" in d3.body["Error"]
    assert contraforce.headers["x-operation-id"] == (await cf_first).headers["x-operation-id"]
    await d3_first
    retried = await cf_mirror(headers=cf_headers)
    assert (retried.status, retried.body["data"]) == (200, True)
    assert sandbox.contraforce.gate.counters.action_requests == 1


async def test_a_canonical_duplicate_still_answers_202_with_location(
    stored: Queues, sandbox: Sandboxes
) -> None:
    headers = keyed("canonical-race")
    first = await first_in_flight(sandbox.contraforce, unlink(headers=headers))
    repeat = await unlink(headers=headers)
    await first
    assert (repeat.status, repeat.body["status"]) == (202, "pending")
    assert repeat.headers["location"]
