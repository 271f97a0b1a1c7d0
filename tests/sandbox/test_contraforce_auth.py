"""ContraForce sandbox auth: Basic service accounts, optional bearer tokens, workspace roles."""

from __future__ import annotations

import httpx
import pytest

from local.sandbox.contraforce_state import (
    DEMO_CLIENT_ID,
    DEMO_OTHER_WORKSPACE_ID,
    DEMO_WORKSPACE_ID,
    ContraForceState,
)
from tests.sandbox.conftest import CF_UNLINK
from tests.sandbox.fakes import basic

BODY = {"incident": {"number": "1003"}}


async def test_service_account_basic_credentials_are_accepted(
    cf_client: httpx.AsyncClient, cf_auth: dict[str, str]
) -> None:
    response = await cf_client.post(CF_UNLINK, json=BODY, headers=cf_auth)
    assert response.status_code == 200


async def test_missing_credentials_get_401_unauthorized_problem(
    cf_client: httpx.AsyncClient,
) -> None:
    response = await cf_client.post(CF_UNLINK, json=BODY)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "UNAUTHORIZED"
    assert response.headers["www-authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    "authorization",
    [
        basic(DEMO_CLIENT_ID, "wrong-secret"),
        basic("unknown-client", "sandbox-secret"),
        "Basic not-base64!!",
        "Basic " + "c2FuZGJveC1jbGllbnQ=",  # "sandbox-client", no colon
        "Bearer some-token",  # no bearer tokens configured in the demo
        "Digest whatever",
    ],
)
async def test_invalid_credentials_get_401_unauthorized(
    cf_client: httpx.AsyncClient, authorization: str
) -> None:
    response = await cf_client.post(CF_UNLINK, json=BODY, headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"


async def test_configured_bearer_token_is_accepted(
    cf_client: httpx.AsyncClient, cf_state: ContraForceState
) -> None:
    cf_state.bearer_tokens["entra-token"] = frozenset({DEMO_WORKSPACE_ID})
    response = await cf_client.post(
        CF_UNLINK, json=BODY, headers={"Authorization": "Bearer entra-token"}
    )
    assert response.status_code == 200


async def test_unknown_bearer_token_is_rejected(
    cf_client: httpx.AsyncClient, cf_state: ContraForceState
) -> None:
    cf_state.bearer_tokens["entra-token"] = frozenset({DEMO_WORKSPACE_ID})
    response = await cf_client.post(
        CF_UNLINK, json=BODY, headers={"Authorization": "Bearer other-token"}
    )
    assert response.status_code == 401


async def test_credentials_without_role_on_the_workspace_get_403(
    cf_client: httpx.AsyncClient, cf_auth: dict[str, str]
) -> None:
    path = f"/api/v2/workspaces/{DEMO_OTHER_WORKSPACE_ID}/tickets/unlink"
    response = await cf_client.post(path, json={"incident": {"number": "2001"}}, headers=cf_auth)
    assert response.status_code == 403
    assert response.json()["code"] == "INSUFFICIENT_WORKSPACE_ROLE"


async def test_refused_request_changes_nothing(
    cf_client: httpx.AsyncClient, cf_state: ContraForceState
) -> None:
    await cf_client.post(CF_UNLINK, json={"incident": {"number": "1001"}})
    assert cf_state.workspaces[DEMO_WORKSPACE_ID].incidents[0].ticket is not None
    assert cf_state.effects == []
