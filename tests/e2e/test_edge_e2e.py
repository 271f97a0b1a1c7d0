"""Issue 12 over real HTTP through `python -m local`: what real callers send is taken, what
attackers send is refused before anything reaches an upstream (the simulators count every
action request they get)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from local.sandbox.contraforce_state import DEMO_WORKSPACE_ID
from local.send_webhook import SANDBOX_WEBHOOK_SECRET
from shared.webhooks import UNLINKING_EVENT, sign
from tests.e2e.conftest import FUNCTION_KEY, Stack

WS = str(DEMO_WORKSPACE_ID)
OTHER_WS = "b7e9d2a4-5c31-4f8e-a6d2-9c0b1e2f3a44"
UNLINK = "/actions/unlink-ticket"
REMOVE = "/actions/remove-linked-incidents"
CF_MIRROR = f"/contraforce/workspaces/{WS}/tickets/unlink"
D3_MIRROR = "/d3/Command/RemoveLinkedIncidents"


def sent(stack: Stack) -> int:
    """Action requests both simulators received."""
    return stack.contraforce.gate.counters.action_requests + stack.d3.gate.counters.action_requests


def ticket_of(stack: Stack, number: str) -> Any:
    incidents = stack.contraforce.state.workspaces[DEMO_WORKSPACE_ID].incidents
    [incident] = [i for i in incidents if i.number == number]
    return incident.ticket


# ---- integer incident numbers, ContraForce's IncidentReference -----------------------------


async def test_sentinel_integer_incident_number_unlinks_on_the_canonical_route(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    reply = await client.post(UNLINK, json={"workspaceId": WS, "incident": {"number": 1001}})
    assert (reply.status_code, reply.json()["status"]) == (200, "succeeded")
    assert ticket_of(sandbox, "1001") is None
    assert sandbox.contraforce.state.effects[0].incident_number == "1001"


async def test_integer_incident_number_on_the_contraforce_mirror(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    reply = await client.post(CF_MIRROR, json={"incident": {"number": 1002}})
    assert (reply.status_code, reply.json()["data"]) == (200, True)


async def test_integer_incident_numbers_in_the_d3_envelope(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    body = {
        "CommandParams": {
            "Linked Incident Numbers to be Removed": ["20231025-131"],
            "Source Incident Number": "20231025-130",
        }
    }
    assert (await client.post(D3_MIRROR, json=body)).status_code == 200
    integers = {"sourceIncident": 20240115501, "linkedIncidents": [20240115502]}
    reply = await client.post(REMOVE, json=integers)
    # Sent as the decimal string: D3 (the simulator) names the number it got back.
    assert "Source incident 20240115501 does not exist" in reply.text, reply.text
    assert sandbox.d3.gate.counters.action_requests == 2


async def test_contraforce_incident_reference_with_its_workspace_id_is_taken(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    incident = {"workspaceId": WS, "number": "1001", "source": "Sentinel"}
    reply = await client.post(UNLINK, json={"workspaceId": WS, "incident": incident})
    assert (reply.status_code, reply.json()["status"]) == (200, "succeeded")


async def test_differing_workspace_ids_are_400_naming_both_and_nothing_is_sent(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    incident = {"workspaceId": OTHER_WS, "number": "1001"}
    reply = await client.post(UNLINK, json={"workspaceId": WS, "incident": incident})
    assert reply.status_code == 400
    assert sorted(reply.json()["errors"]) == ["incident.workspaceId", "workspaceId"]
    assert sent(sandbox) == 0


# ---- dry-run flags and unknown query parameters ---------------------------------------------


@pytest.mark.parametrize("query", ["dryRun", "dryRun=", "dryrun", "DRYRUN=true", "dryrun=1"])
async def test_every_spelling_of_the_dry_run_flag_plans_and_sends_nothing(
    client: httpx.AsyncClient, sandbox: Stack, query: str
) -> None:
    body = {"workspaceId": WS, "incident": {"number": "1001"}}
    reply = await client.post(f"{UNLINK}?{query}", json=body)
    assert (reply.status_code, reply.json()["dryRun"]) == (200, True)
    assert sent(sandbox) == 0
    assert ticket_of(sandbox, "1001") is not None


async def test_dry_run_with_the_key_in_the_code_parameter_sends_nothing(sandbox: Stack) -> None:
    async with httpx.AsyncClient() as http:
        reply = await http.post(
            f"{sandbox.base_url}{D3_MIRROR}?code={FUNCTION_KEY}&dryRun",
            json={
                "CommandParams": {
                    "Linked Incident Numbers to be Removed": ["20231025-131"],
                    "Source Incident Number": "20231025-130",
                }
            },
        )
    assert reply.status_code == 200, reply.text
    assert sent(sandbox) == 0


@pytest.mark.parametrize(
    ("query", "named"),
    [("dry_run=true", "dry_run"), ("dryRun=maybe", "dryRun"), ("dryRun&debug", "debug")],
)
async def test_a_misspelt_flag_or_unknown_parameter_is_400_and_nothing_runs(
    client: httpx.AsyncClient, sandbox: Stack, query: str, named: str
) -> None:
    reply = await client.post(
        f"{UNLINK}?{query}", json={"workspaceId": WS, "incident": {"number": "1001"}}
    )
    assert reply.status_code == 400
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert named in reply.json()["errors"]
    assert sent(sandbox) == 0


# ---- hostile bodies ---------------------------------------------------------------------------

HUGE = b"1" * 4301


@pytest.mark.parametrize("path", [UNLINK, REMOVE, CF_MIRROR, D3_MIRROR])
async def test_an_integer_of_4301_digits_is_400_malformed_json(
    client: httpx.AsyncClient, sandbox: Stack, path: str
) -> None:
    reply = await client.post(
        path, content=b'{"incident": ' + HUGE + b"}", headers={"Content-Type": "application/json"}
    )
    assert (reply.status_code, reply.json()["code"]) == (400, "MALFORMED_JSON")
    assert sent(sandbox) == 0


async def test_a_signed_webhook_with_a_4301_digit_integer_is_400_malformed_json(
    sandbox: Stack,
) -> None:
    body = b'{"type": "' + UNLINKING_EVENT.encode() + b'", "data": {"n": ' + HUGE + b"}}"
    stamp = datetime.now(UTC).isoformat()
    async with httpx.AsyncClient(base_url=sandbox.base_url) as http:
        reply = await http.post(
            "/webhooks/contraforce",
            content=body,
            headers={
                "Content-Type": "application/json",
                "x-functions-key": FUNCTION_KEY,
                "X-CF-Event-Id": "evt-huge-integer",
                "X-CF-Timestamp": stamp,
                "X-CF-Signature": sign(
                    body, secret=SANDBOX_WEBHOOK_SECRET.encode(), timestamp=stamp
                ),
            },
        )
    assert (reply.status_code, reply.json()["code"]) == (400, "MALFORMED_JSON")


@pytest.mark.parametrize("char", ["\u0085", "\u2028", "\u202e", "\u200b", "\ufeff"])
async def test_unicode_controls_in_identifiers_are_400_and_nothing_is_sent(
    client: httpx.AsyncClient, sandbox: Stack, char: str
) -> None:
    body = {"workspaceId": WS, "incident": {"id": f"6d1f0c2a{char}-4e4b"}}
    reply = await client.post(UNLINK, content=json.dumps(body, ensure_ascii=False).encode("utf-8"),
                              headers={"Content-Type": "application/json"})  # fmt: skip
    assert reply.status_code == 400
    assert list(reply.json()["errors"]) == ["incident.id"]
    assert sent(sandbox) == 0


@pytest.mark.parametrize(
    "identity",
    [{"Username": "Mallory"}, {"Site": "Threat Hunting"}, {"Username": "hunter", "Site": "x"}],
)
async def test_a_d3_identity_the_deployment_does_not_allow_is_403_before_anything_is_sent(
    client: httpx.AsyncClient, sandbox: Stack, identity: dict[str, str]
) -> None:
    body = {
        **identity,
        "CommandParams": {
            "Linked Incident Numbers to be Removed": ["20231025-131"],
            "Source Incident Number": "20231025-130",
        },
    }
    reply = await client.post(D3_MIRROR, json=body)
    assert reply.status_code == 403
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert sorted(reply.json()["errors"]) == ["Site", "Username"]
    assert sent(sandbox) == 0


# ---- the host's own refusals have empty bodies ------------------------------------------------


async def test_the_hosts_own_401_and_405_have_empty_bodies(sandbox: Stack) -> None:
    async with httpx.AsyncClient(base_url=sandbox.base_url) as http:
        unauthorized = await http.post(UNLINK, json={})
        not_allowed = await http.get(UNLINK, headers={"x-functions-key": FUNCTION_KEY})
    assert (unauthorized.status_code, unauthorized.content) == (401, b"")
    assert (not_allowed.status_code, not_allowed.content) == (405, b"")
    assert not_allowed.headers["allow"] == "POST"
