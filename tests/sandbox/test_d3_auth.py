"""D3 sandbox auth: API key in a configurable header, or a `d3jwt` HS256 token for the user."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import pytest

from local.sandbox.d3 import DEFAULT_JWT_SECRET, D3Auth, D3Simulator
from local.sandbox.d3_state import D3State
from tests.sandbox.conftest import D3_KEY_HEADERS, D3_REMOVE
from tests.sandbox.fakes import FakeClock

BODY = {
    "Username": "Admin",
    "Site": "Security Operations",
    "CommandParams": {
        "Linked Incident Numbers to be Removed": ["20240301-002"],
        "Source Incident Number": "20240301-001",
    },
}
INVALID = {"Error": "Invalid authentication key."}


def token(claims: dict[str, Any], secret: str = DEFAULT_JWT_SECRET) -> dict[str, str]:
    return {"d3jwt": jwt.encode(claims, secret, algorithm="HS256")}


async def test_api_key_in_the_configured_header_is_accepted(d3_client: httpx.AsyncClient) -> None:
    response = await d3_client.post(D3_REMOVE, json=BODY, headers=D3_KEY_HEADERS)
    assert response.status_code == 200
    assert response.json()["returnData"]["Status"] == "Successful"


async def test_api_key_header_name_is_configurable(d3_state: D3State) -> None:
    auth = D3Auth(api_key_header="X-Custom-Key", api_keys=frozenset({"k1"}))
    sim = D3Simulator(d3_state, auth=auth)
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://d3.test") as client:
        accepted = await client.post(D3_REMOVE, json=BODY, headers={"X-Custom-Key": "k1"})
        refused = await client.post(D3_REMOVE, json=BODY, headers={"X-D3-API-Key": "k1"})
    assert (accepted.status_code, refused.status_code) == (200, 401)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-D3-API-Key": "wrong-key"},
        {"X-D3-API-Key": ""},
        {"d3jwt": "not.a.jwt"},
    ],
)
async def test_missing_or_wrong_credentials_get_401_invalid_authentication_key(
    d3_client: httpx.AsyncClient, headers: dict[str, str], d3_state: D3State
) -> None:
    response = await d3_client.post(D3_REMOVE, json=BODY, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.json() == INVALID
    assert d3_state.effects == []


async def test_jwt_for_the_body_username_is_accepted(d3_client: httpx.AsyncClient) -> None:
    response = await d3_client.post(D3_REMOVE, json=BODY, headers=token({"Username": "Admin"}))
    assert response.status_code == 200


async def test_jwt_carrying_the_body_site_is_accepted(d3_client: httpx.AsyncClient) -> None:
    claims = {"Username": "Admin", "Site": "Security Operations"}
    response = await d3_client.post(D3_REMOVE, json=BODY, headers=token(claims))
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("claims", "secret"),
    [
        ({"Username": "Admin"}, "another-secret-that-is-long-enough-for-hs256"),
        ({"Username": "soc.analyst"}, DEFAULT_JWT_SECRET),
        ({"Username": "Admin", "Site": "Threat Hunting"}, DEFAULT_JWT_SECRET),
        ({"username": "Admin"}, DEFAULT_JWT_SECRET),
    ],
)
async def test_jwt_with_wrong_signature_user_or_site_is_rejected(
    d3_client: httpx.AsyncClient, claims: dict[str, Any], secret: str
) -> None:
    response = await d3_client.post(D3_REMOVE, json=BODY, headers=token(claims, secret))
    assert response.status_code == 401
    assert response.json() == INVALID


async def test_jwt_is_checked_against_exp_with_the_injected_clock(d3_state: D3State) -> None:
    clock = FakeClock(start=1_700_000_000)
    sim = D3Simulator(d3_state, auth=D3Auth(clock=clock))
    headers = token({"Username": "Admin", "exp": 1_700_000_060})
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://d3.test") as client:
        before = await client.post(D3_REMOVE, json=BODY, headers=headers)
        clock.advance(60)
        after = await client.post(D3_REMOVE, json=BODY, headers=headers)
    assert (before.status_code, after.status_code) == (200, 401)


async def test_jwt_auth_can_be_turned_off(d3_state: D3State) -> None:
    sim = D3Simulator(d3_state, auth=D3Auth(jwt_secret=None))
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://d3.test") as client:
        response = await client.post(D3_REMOVE, json=BODY, headers=token({"Username": "Admin"}))
    assert response.status_code == 401


async def test_username_that_is_not_a_user_of_the_site_is_401(
    d3_client: httpx.AsyncClient,
) -> None:
    body = {**BODY, "Username": "mallory"}
    response = await d3_client.post(D3_REMOVE, json=body, headers=D3_KEY_HEADERS)
    assert response.status_code == 401
    assert response.json() == INVALID


def test_jwt_secret_shorter_than_32_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        D3Auth(jwt_secret="sandbox-d3-jwt-secret")
