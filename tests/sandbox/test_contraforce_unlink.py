"""ContraForce sandbox unlink: real state changes, matching rules, and its 400/404 answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from local.sandbox.contraforce import ContraForceSimulator
from local.sandbox.contraforce_state import (
    DEMO_WORKSPACE_ID,
    ContraForceState,
    Ticket,
    demo_state,
)
from tests.sandbox.conftest import CF_UNLINK

SENTINEL_ID = "6d1f0c2a-4e4b-4b8f-9d55-0a3c1b2e7f10"  # demo incident #1001, linked


async def test_unlink_removes_the_ticket_and_answers_data_true(
    cf_client: httpx.AsyncClient, cf_auth: dict[str, str], cf_state: ContraForceState
) -> None:
    body = {"incident": {"id": SENTINEL_ID, "source": "Sentinel"}}
    response = await cf_client.post(CF_UNLINK, json=body, headers=cf_auth)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["data"] is True
    assert cf_state.incident(DEMO_WORKSPACE_ID, SENTINEL_ID).ticket is None
    [effect] = cf_state.effects
    assert (effect.incident_number, effect.ticket) == ("1001", Ticket("ServiceNow", "INC0012345"))


async def test_second_unlink_answers_data_false_and_records_no_effect(
    cf_client: httpx.AsyncClient, cf_auth: dict[str, str], cf_state: ContraForceState
) -> None:
    body = {"incident": {"id": SENTINEL_ID}}
    await cf_client.post(CF_UNLINK, json=body, headers=cf_auth)
    response = await cf_client.post(CF_UNLINK, json=body, headers=cf_auth)
    assert response.status_code == 200
    assert response.json()["data"] is False
    assert len(cf_state.effects) == 1


async def test_incident_is_matched_by_number_when_id_is_absent(
    cf_client: httpx.AsyncClient, cf_auth: dict[str, str], cf_state: ContraForceState
) -> None:
    body = {"incident": {"id": None, "number": "1001", "workspaceId": str(DEMO_WORKSPACE_ID)}}
    response = await cf_client.post(CF_UNLINK, json=body, headers=cf_auth)
    assert response.json()["data"] is True
    assert cf_state.incident(DEMO_WORKSPACE_ID, SENTINEL_ID).ticket is None


async def test_id_wins_over_number_when_both_are_given(
    cf_client: httpx.AsyncClient, cf_auth: dict[str, str], cf_state: ContraForceState
) -> None:
    body = {"incident": {"id": SENTINEL_ID, "number": "1002"}}
    await cf_client.post(CF_UNLINK, json=body, headers=cf_auth)
    assert cf_state.incident(DEMO_WORKSPACE_ID, SENTINEL_ID).ticket is None
    assert cf_state.incident(DEMO_WORKSPACE_ID, "da7e3b91-21c4-4f0e-8a3b-5e6f7a8b9c02").ticket


async def test_source_that_does_not_match_the_incident_is_404(
    cf_client: httpx.AsyncClient, cf_auth: dict[str, str], cf_state: ContraForceState
) -> None:
    body = {"incident": {"id": SENTINEL_ID, "source": "QRadar"}}
    response = await cf_client.post(CF_UNLINK, json=body, headers=cf_auth)
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"
    assert cf_state.incident(DEMO_WORKSPACE_ID, SENTINEL_ID).ticket is not None


async def test_unknown_incident_is_404_not_found(
    cf_client: httpx.AsyncClient, cf_auth: dict[str, str]
) -> None:
    body = {"incident": {"number": "999999"}}
    response = await cf_client.post(CF_UNLINK, json=body, headers=cf_auth)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "NOT_FOUND"


async def test_unknown_workspace_is_404_not_found(
    cf_client: httpx.AsyncClient, cf_auth: dict[str, str]
) -> None:
    path = "/api/v2/workspaces/00000000-0000-4000-8000-000000000000/tickets/unlink"
    response = await cf_client.post(path, json={"incident": {"number": "1"}}, headers=cf_auth)
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


async def test_workspace_id_that_is_not_a_uuid_is_400_validation_error(
    cf_client: httpx.AsyncClient, cf_auth: dict[str, str]
) -> None:
    path = "/api/v2/workspaces/abc/tickets/unlink"
    response = await cf_client.post(path, json={"incident": {"number": "1"}}, headers=cf_auth)
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert "workspaceId" in response.json()["errors"]


async def test_malformed_json_is_400_bad_request(
    cf_client: httpx.AsyncClient, cf_auth: dict[str, str]
) -> None:
    headers = {**cf_auth, "Content-Type": "application/json"}
    response = await cf_client.post(CF_UNLINK, content=b'{"incident": ', headers=headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({}, "incident"),
        ({"incident": None}, "incident"),
        ({"incident": "1001"}, "incident"),
        ({"incident": {}}, "incident"),
        ({"incident": {"id": "", "number": None}}, "incident"),
        ({"incident": {"number": "1001", "source": "Elastic"}}, "incident.source"),
        ({"incident": {"number": 1001}}, "incident.number"),
        ({"incident": {"id": ["x"]}}, "incident.id"),
        ({"incident": {"number": "1001", "workspaceId": "nope"}}, "incident.workspaceId"),
        (
            {"incident": {"number": "1001", "workspaceId": "b7e9d2a4-5c31-4f8e-a6d2-9c0b1e2f3a44"}},
            "incident.workspaceId",
        ),
        ([1, 2], ""),
    ],
)
async def test_invalid_body_is_400_validation_error_keyed_by_json_path(
    cf_client: httpx.AsyncClient, cf_auth: dict[str, str], body: Any, key: str
) -> None:
    response = await cf_client.post(CF_UNLINK, json=body, headers=cf_auth)
    assert response.status_code == 400
    problem = response.json()
    assert problem["code"] == "VALIDATION_ERROR"
    assert list(problem["errors"]) == [key]
    assert all(isinstance(m, str) for m in problem["errors"][key])


async def test_every_answer_has_a_fresh_request_id_in_header_and_body(
    cf_client: httpx.AsyncClient, cf_auth: dict[str, str]
) -> None:
    ok = await cf_client.post(CF_UNLINK, json={"incident": {"number": "1003"}}, headers=cf_auth)
    refused = await cf_client.post(CF_UNLINK, json={})
    assert ok.headers["x-request-id"] == ok.json()["meta"]["requestId"]
    assert refused.headers["x-request-id"] == refused.json()["requestId"]
    assert ok.headers["x-request-id"] != refused.headers["x-request-id"]


async def test_meta_and_problem_timestamps_are_utc_iso() -> None:
    moment = datetime(2025, 1, 31, 12, 0, 0, 123456, tzinfo=UTC)
    sim = ContraForceSimulator(demo_state(), now=lambda: moment)
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cf.test") as client:
        refused = await client.post(CF_UNLINK, json={})
    assert refused.json()["timestamp"] == "2025-01-31T12:00:00.123456Z"


async def test_problem_details_carry_every_documented_member(
    cf_client: httpx.AsyncClient,
) -> None:
    response = await cf_client.post(CF_UNLINK, json={})
    problem = response.json()
    assert {"type", "title", "status", "detail", "instance", "code", "requestId", "timestamp"} <= (
        problem.keys()
    )
    assert problem["status"] == 401
    assert problem["instance"] == CF_UNLINK
