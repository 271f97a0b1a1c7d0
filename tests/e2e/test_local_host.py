"""Every route over real HTTP through the local host, asserting effects on the simulators."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from local.sandbox.contraforce_state import DEMO_WORKSPACE_ID, ServiceAccount
from local.sandbox.d3_state import DEMO_SITE
from local.sandbox.faults import Fault, FaultKind, FaultPlan
from tests.conftest import load_json
from tests.e2e.conftest import FUNCTION_KEY, Stack

WS = str(DEMO_WORKSPACE_ID)
TICKETED = "6d1f0c2a-4e4b-4b8f-9d55-0a3c1b2e7f10"
SEED = load_json("d3-remove-linked-incidents.samples.json")
UNLINK = "/actions/unlink-ticket"
REMOVE = "/actions/remove-linked-incidents"


def ticket_of(stack: Stack, incident: str) -> Any:
    return stack.contraforce.state.incident(DEMO_WORKSPACE_ID, incident).ticket


async def test_health_is_anonymous_and_ready(sandbox: Stack) -> None:
    async with httpx.AsyncClient() as anonymous:
        reply = await anonymous.get(f"{sandbox.base_url}/health")
    assert (reply.status_code, reply.json()["status"]) == (200, "healthy")


@pytest.mark.parametrize("headers", [{}, {"x-functions-key": "wrong"}])
async def test_missing_or_wrong_function_key_is_401_and_nothing_happens(
    sandbox: Stack, headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(headers=headers) as stranger:
        reply = await stranger.post(
            f"{sandbox.base_url}{UNLINK}", json={"workspaceId": WS, "incident": {"id": TICKETED}}
        )
    assert reply.status_code == 401
    assert ticket_of(sandbox, TICKETED) is not None


async def test_function_key_in_the_code_query_parameter_is_accepted(sandbox: Stack) -> None:
    async with httpx.AsyncClient() as http:
        reply = await http.post(
            f"{sandbox.base_url}{UNLINK}",
            params={"code": FUNCTION_KEY},
            json={"workspaceId": WS, "incident": {"id": TICKETED}},
        )
    assert reply.status_code == 200


async def test_unlink_succeeds_and_the_ticket_is_gone(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    reply = await client.post(UNLINK, json={"workspaceId": WS, "incident": {"id": TICKETED}})
    assert (reply.status_code, reply.json()["status"]) == (200, "succeeded")
    assert reply.headers["x-operation-id"] == reply.json()["operationId"]
    assert ticket_of(sandbox, TICKETED) is None


async def test_contraforce_mirror_answers_the_vendor_envelope_then_data_false(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    path = f"/contraforce/workspaces/{WS}/tickets/unlink"
    first = await client.post(path, json={"incident": {"number": "1001"}})
    second = await client.post(path, json={"incident": {"number": "1001"}})
    assert [first.json()["data"], second.json()["data"]] == [True, False]
    assert len(sandbox.contraforce.state.effects) == 1


async def test_d3_mirror_seed_sample_is_partially_successful_and_the_link_is_removed(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    reply = await client.post("/d3/Command/RemoveLinkedIncidents", json=SEED["request"])
    assert (reply.status_code, reply.json()) == (200, SEED["response_200"])
    assert sandbox.d3.state.links(DEMO_SITE, "20231025-130") == ["20231025-131"]


async def test_canonical_partial_success_is_207(client: httpx.AsyncClient, sandbox: Stack) -> None:
    reply = await client.post(
        REMOVE,
        json={
            "sourceIncident": "20231025-130",
            "linkedIncidents": ["20231025-131", "20210127-198"],
        },
    )
    assert reply.status_code == 207
    assert [i["status"] for i in reply.json()["items"]] == ["succeeded", "not_applied"]
    assert sandbox.d3.state.links(DEMO_SITE, "20231025-130") == ["20210127-197"]


async def test_upstream_4xx_passes_through(client: httpx.AsyncClient, sandbox: Stack) -> None:
    reply = await client.post(UNLINK, json={"workspaceId": WS, "incident": {"id": "nope"}})
    assert (reply.status_code, reply.json()["code"]) == (404, "NOT_FOUND")
    assert reply.headers["content-type"].startswith("application/problem+json")


async def test_upstream_429_then_503_are_recovered_by_retries(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    sandbox.contraforce.faults = FaultPlan(
        script=[Fault.of(FaultKind.RATE_LIMITED), Fault.of(FaultKind.UNAVAILABLE)]
    )
    reply = await client.post(UNLINK, json={"workspaceId": WS, "incident": {"id": TICKETED}})
    assert (reply.status_code, reply.json()["attempts"]) == (200, 3)
    assert ticket_of(sandbox, TICKETED) is None


async def test_upstream_outage_is_503_with_retry_after(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    sandbox.d3.faults = FaultPlan(script=[Fault.of(FaultKind.SERVER_ERROR)] * 10)
    reply = await client.post(
        REMOVE, json={"sourceIncident": "20231025-130", "linkedIncidents": ["20231025-131"]}
    )
    assert (reply.status_code, reply.json()["upstream"]) == (503, "d3")
    assert int(reply.headers["retry-after"]) >= 1
    assert sandbox.d3.state.links(DEMO_SITE, "20231025-130") == ["20210127-197", "20231025-131"]


async def test_credentials_revoked_upstream_is_502(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    accounts = sandbox.contraforce.state.accounts
    account = next(iter(accounts.values()))
    accounts[account.client_id] = ServiceAccount(
        account.client_id, "rotated-elsewhere", account.workspaces
    )
    reply = await client.post(UNLINK, json={"workspaceId": WS, "incident": {"id": TICKETED}})
    assert (reply.status_code, reply.json()["code"]) == (502, "UPSTREAM_AUTH_REJECTED")


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b'{"workspaceId": "abc", "incident": {"id": "1"}}', "application/json", 400),
        (b"workspaceId=abc", "application/x-www-form-urlencoded", 415),
    ],
)
async def test_bad_input_is_problem_json(
    client: httpx.AsyncClient, content: bytes, content_type: str, status: int
) -> None:
    reply = await client.post(UNLINK, content=content, headers={"content-type": content_type})
    assert reply.status_code == status
    assert reply.headers["content-type"].startswith("application/problem+json")


async def test_unknown_action_is_404_problem(client: httpx.AsyncClient) -> None:
    reply = await client.post("/actions/relink", json={})
    assert (reply.status_code, reply.json()["code"]) == (404, "NOT_FOUND")


async def test_unknown_route_is_404_and_wrong_method_is_405(client: httpx.AsyncClient) -> None:
    assert (await client.get("/nowhere")).status_code == 404
    assert (await client.get(UNLINK)).status_code == 405


async def test_dry_run_sends_nothing(client: httpx.AsyncClient, sandbox: Stack) -> None:
    reply = await client.post(
        UNLINK, params={"dryRun": "true"}, json={"workspaceId": WS, "incident": {"id": TICKETED}}
    )
    assert reply.json()["items"][0]["request"]["headers"]["Authorization"] == "Basic ***"
    assert sandbox.contraforce.gate.counters.action_requests == 0
