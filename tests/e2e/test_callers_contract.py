"""Issue 26 over real HTTP through `python -m local`: what real callers (a D3 playbook, a
Sentinel-triggered Logic App, ContraForce's webhooks) send, answered as they expect."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.sandbox.contraforce_state import DEMO_WORKSPACE_ID
from tests.e2e.conftest import Stack
from tests.e2e.test_guarantees import investigation, signed

DATA = Path(__file__).parents[1] / "data"
WS = str(DEMO_WORKSPACE_ID)
UNLINK = "/actions/unlink-ticket"
REMOVE = "/actions/remove-linked-incidents"
D3_MIRROR = "/d3/Command/RemoveLinkedIncidents"
WEBHOOK = "/webhooks/contraforce"
LINKED = "Linked Incident Numbers to be Removed"
SOURCE = "Source Incident Number"
MISSING_SOURCE = "20991231-999"  # no such incident in the D3 sandbox


def sent(stack: Stack) -> int:
    return stack.contraforce.gate.counters.action_requests + stack.d3.gate.counters.action_requests


def sentinel_trigger() -> dict[str, Any]:
    """A Sentinel incident trigger's incident, as a Logic App gets it."""
    trigger: dict[str, Any] = json.loads((DATA / "sentinel_incident_trigger.json").read_text())
    return trigger


# ---- 1. D3's blank Source Incident Number: D3 decides -------------------------------------


async def test_blank_d3_source_is_forwarded_on_the_d3_route_and_d3_answers(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    body = {"CommandParams": {LINKED: ["20231025-131"], SOURCE: ""}}
    reply = await client.post(D3_MIRROR, json=body)
    assert sandbox.d3.gate.counters.action_requests == 1  # sent as D3 takes it
    assert "Source Incident Number" in reply.json()["Error"], reply.text  # D3's own words


async def test_blank_source_on_the_canonical_route_is_a_400_naming_the_field(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    reply = await client.post(REMOVE, json={"sourceIncident": "", "linkedIncidents": ["1"]})
    assert reply.status_code == 400
    assert list(reply.json()["errors"]) == ["sourceIncident"]
    assert sent(sandbox) == 0


# ---- 2. D3's failure in a 200 --------------------------------------------------------------


async def test_d3_failure_in_a_200_is_d3s_own_answer_on_the_d3_route(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    body = {"CommandParams": {LINKED: ["20231025-131"], SOURCE: MISSING_SOURCE}}
    reply = await client.post(D3_MIRROR, json=body)
    assert reply.status_code == 200, reply.text
    assert reply.json()["error"] == f"Source incident {MISSING_SOURCE} does not exist."


async def test_d3_failure_in_a_200_is_a_4xx_problem_with_d3s_message_on_canonical(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    reply = await client.post(
        REMOVE, json={"sourceIncident": MISSING_SOURCE, "linkedIncidents": ["20231025-131"]}
    )
    assert 400 <= reply.status_code < 500, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert f"Source incident {MISSING_SOURCE} does not exist." in reply.json()["detail"]


# ---- 3. Sentinel's identifiers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value_of"),
    [("id", lambda t: t["id"]), ("number", lambda t: t["id"]), ("number", lambda t: t["name"])],
    ids=["arm-id-as-id", "arm-id-as-number", "guid-name-as-number"],
)
async def test_sentinel_identifier_gets_a_400_saying_to_send_the_incident_number(
    client: httpx.AsyncClient, sandbox: Stack, field: str, value_of: Any
) -> None:
    incident = {field: value_of(sentinel_trigger()), "source": "Sentinel"}
    reply = await client.post(UNLINK, json={"workspaceId": WS, "incident": incident})
    assert reply.status_code == 400, reply.text
    problem = reply.json()
    assert problem["code"] == "SENTINEL_IDENTIFIER"
    assert "properties.incidentNumber" in problem["errors"][f"incident.{field}"][0]
    assert sent(sandbox) == 0


async def test_sentinel_identifier_gets_the_same_guidance_on_the_contraforce_route(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    route = f"/contraforce/workspaces/{WS}/tickets/unlink"
    reply = await client.post(route, json={"incident": {"id": sentinel_trigger()["id"]}})
    assert (reply.status_code, reply.json()["code"]) == (400, "SENTINEL_IDENTIFIER")


async def test_sentinel_incident_number_from_the_trigger_unlinks(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    number = sentinel_trigger()["properties"]["incidentNumber"]
    incident = {"number": number, "source": "Sentinel"}
    reply = await client.post(UNLINK, json={"workspaceId": WS, "incident": incident})
    assert (reply.status_code, reply.json()["status"]) == (200, "succeeded"), reply.text


# ---- 6. the query is part of the contract ---------------------------------------------------


async def test_dry_run_on_a_signed_webhook_is_refused_and_sends_nothing(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    delivery = investigation({"incidentNumber": 1001, "source": "sentinel"})
    reply = await client.post(
        f"{WEBHOOK}?dryRun=true",
        content=delivery,
        headers=signed(delivery, event_id=str(uuid.uuid4())),
    )
    assert reply.status_code == 400, reply.text
    assert list(reply.json()["errors"]) == ["dryRun"]
    assert sent(sandbox) == 0
    assert sandbox.contraforce.state.effects == []


@pytest.mark.parametrize("route", [UNLINK, REMOVE, D3_MIRROR, WEBHOOK])
async def test_unknown_query_parameter_is_a_400_naming_it(
    client: httpx.AsyncClient, sandbox: Stack, route: str
) -> None:
    delivery = investigation({"incidentNumber": 1001, "source": "sentinel"})
    reply = await client.post(
        f"{route}?foo=bar",
        content=delivery,
        headers=signed(delivery, event_id=str(uuid.uuid4())),
    )
    assert reply.status_code == 400, reply.text
    assert list(reply.json()["errors"]) == ["foo"]
    assert sent(sandbox) == 0


# ---- 7. the host's empty 401 --------------------------------------------------------------


async def test_wrong_key_is_the_hosts_empty_401_as_both_documents_say(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    reply = await client.post(UNLINK, json={}, headers={"x-functions-key": "wrong"})
    assert (reply.status_code, reply.content) == (401, b"")
    for document in ("openapi.json", "swagger.json"):
        described = (await client.get(f"/{document}")).json()["paths"]["/actions/unlink-ticket"]
        unauthorized = described["post"]["responses"]["401"]
        assert "empty 401" in unauthorized["description"]
        assert "content" not in unauthorized
        assert "schema" not in unauthorized
