"""Entra callers over real HTTP: the local host in its own process, with the App Service
Authentication stand-in (local/easy_auth.py) forwarding a real-shaped principal, as Easy Auth
does for a Logic App's managed identity. An allowed principal acts, an unknown one gets 403
and nothing happens upstream, and without App Service Authentication a forged header is
ignored (the caller is judged by its function key alone)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from local.sandbox.contraforce_state import DEMO_WORKSPACE_ID
from tests.e2e.conftest import FUNCTION_KEY, HostProcess, Stack, start_host
from tests.principals import (
    LOGIC_APP_CLIENT_ID,
    LOGIC_APP_OBJECT_ID,
    UNKNOWN_CLIENT_ID,
    UNKNOWN_OBJECT_ID,
    header_for,
    principal_document,
)

WS = str(DEMO_WORKSPACE_ID)
TICKETED = "6d1f0c2a-4e4b-4b8f-9d55-0a3c1b2e7f10"
UNLINK = "/actions/unlink-ticket"


def ticket_of(stack: Stack, incident: str) -> Any:
    return stack.contraforce.state.incident(DEMO_WORKSPACE_ID, incident).ticket


def easy_auth_host(stack: Stack, client_id: str, object_id: str) -> HostProcess:
    """A host behind the stand-in, whose every caller is (client_id, object_id)."""
    return start_host(
        {
            **stack.settings,
            "ALLOWED_PRINCIPALS": f"{LOGIC_APP_CLIENT_ID}",
            "LOCAL_EASY_AUTH_PRINCIPAL": json.dumps(principal_document(client_id, object_id)),
        }
    )


@pytest.fixture(scope="module")
def allowed_host(stack: Stack) -> Iterator[HostProcess]:
    host = easy_auth_host(stack, LOGIC_APP_CLIENT_ID, LOGIC_APP_OBJECT_ID)
    yield host
    host.stop()


@pytest.fixture(scope="module")
def unknown_host(stack: Stack) -> Iterator[HostProcess]:
    host = easy_auth_host(stack, UNKNOWN_CLIENT_ID, UNKNOWN_OBJECT_ID)
    yield host
    host.stop()


async def post(base_url: str, path: str, body: Any, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(
        base_url=base_url, headers={"x-functions-key": FUNCTION_KEY, **headers}, timeout=30
    ) as http:
        return await http.post(path, json=body)


async def test_an_allowed_managed_identity_unlinks_the_ticket(
    sandbox: Stack, allowed_host: HostProcess
) -> None:
    reply = await post(
        allowed_host.base_url, UNLINK, {"workspaceId": WS, "incident": {"id": TICKETED}}
    )
    assert (reply.status_code, reply.json()["status"]) == (200, "succeeded")
    assert ticket_of(sandbox, TICKETED) is None


async def test_an_unknown_principal_gets_403_problem_and_nothing_happens(
    sandbox: Stack, unknown_host: HostProcess
) -> None:
    reply = await post(
        unknown_host.base_url, UNLINK, {"workspaceId": WS, "incident": {"id": TICKETED}}
    )
    assert reply.status_code == 403
    assert reply.headers["content-type"].startswith("application/problem+json")
    problem = reply.json()
    assert problem["code"] == "FORBIDDEN"
    assert UNKNOWN_CLIENT_ID in problem["detail"]
    assert "principal" in problem["errors"]
    assert ticket_of(sandbox, TICKETED) is not None
    assert sandbox.contraforce.state.effects == []


async def test_behind_easy_auth_a_client_cannot_swap_in_another_principal(
    sandbox: Stack, unknown_host: HostProcess
) -> None:
    """Easy Auth drops a client's own X-MS-CLIENT-PRINCIPAL; so does the stand-in."""
    forged = header_for(LOGIC_APP_CLIENT_ID, LOGIC_APP_OBJECT_ID)
    reply = await post(
        unknown_host.base_url,
        UNLINK,
        {"workspaceId": WS, "incident": {"id": TICKETED}},
        **{"X-MS-CLIENT-PRINCIPAL": forged},
    )
    assert reply.status_code == 403
    assert ticket_of(sandbox, TICKETED) is not None


async def test_a_forged_header_is_ignored_when_app_service_authentication_is_off(
    client: httpx.AsyncClient, sandbox: Stack
) -> None:
    """The session host has no ALLOWED_PRINCIPALS: if it trusted the header, this would be 403."""
    reply = await client.post(
        UNLINK,
        json={"workspaceId": WS, "incident": {"id": TICKETED}},
        headers={"X-MS-CLIENT-PRINCIPAL": header_for(UNKNOWN_CLIENT_ID, UNKNOWN_OBJECT_ID)},
    )
    assert (reply.status_code, reply.json()["status"]) == (200, "succeeded")
    assert ticket_of(sandbox, TICKETED) is None


async def test_anonymous_routes_answer_whoever_calls(unknown_host: HostProcess) -> None:
    async with httpx.AsyncClient(base_url=unknown_host.base_url) as anonymous:
        health = await anonymous.get("/health")
        document = await anonymous.get("/swagger.json")
    assert health.status_code == 200
    assert document.status_code == 200
    assert document.headers["access-control-allow-origin"] == "*"


async def test_the_function_key_is_still_required_behind_easy_auth(
    allowed_host: HostProcess,
) -> None:
    """The Functions host checks keys before the app sees the principal
    (https://github.com/Azure/azure-functions-host/issues/11394)."""
    async with httpx.AsyncClient(base_url=allowed_host.base_url) as keyless:
        reply = await keyless.post(UNLINK, json={"workspaceId": WS, "incident": {"id": TICKETED}})
    assert reply.status_code == 401


@pytest.fixture(scope="module")
def two_principals(stack: Stack) -> Iterator[tuple[HostProcess, HostProcess]]:
    """Two hosts on one storage, each behind the stand-in as another allowed principal."""
    both = {**stack.settings, "ALLOWED_PRINCIPALS": f"{LOGIC_APP_CLIENT_ID},{UNKNOWN_CLIENT_ID}"}
    hosts = [
        start_host(
            {**both, "LOCAL_EASY_AUTH_PRINCIPAL": json.dumps(principal_document(client, obj))}
        )
        for client, obj in (
            (LOGIC_APP_CLIENT_ID, LOGIC_APP_OBJECT_ID),
            (UNKNOWN_CLIENT_ID, UNKNOWN_OBJECT_ID),
        )
    ]
    yield hosts[0], hosts[1]
    for host in hosts:
        host.stop()


async def test_another_principals_idempotency_key_makes_a_new_operation(
    sandbox: Stack, two_principals: tuple[HostProcess, HostProcess]
) -> None:
    a, b = two_principals
    body = {"workspaceId": WS, "incident": {"id": TICKETED}}
    first = await post(a.base_url, UNLINK, body, **{"Idempotency-Key": "shared-key-1"})
    await post(a.base_url, UNLINK, body, **{"Idempotency-Key": "shared-key-2"})
    assert first.status_code == 200

    same = await post(b.base_url, UNLINK, body, **{"Idempotency-Key": "shared-key-1"})
    other_body = {"workspaceId": WS, "incident": {"id": "not-" + TICKETED[4:]}}
    other = await post(b.base_url, UNLINK, other_body, **{"Idempotency-Key": "shared-key-2"})

    assert same.headers["x-operation-id"] != first.headers["x-operation-id"]
    assert other.status_code != 422  # B cannot learn that A holds the key


async def test_another_principals_operation_reads_as_404(
    sandbox: Stack, two_principals: tuple[HostProcess, HostProcess]
) -> None:
    a, b = two_principals
    body = {"workspaceId": WS, "incident": {"id": TICKETED}}
    reply = await post(a.base_url, UNLINK, body, **{"Idempotency-Key": "a-only-key-1"})
    operation = f"/operations/{reply.headers['x-operation-id']}"

    async with httpx.AsyncClient(headers={"x-functions-key": FUNCTION_KEY}, timeout=30) as http:
        own = await http.get(a.base_url + operation)
        theirs = await http.get(b.base_url + operation)
        unknown = await http.get(b.base_url + "/operations/00000000-0000-4000-8000-000000000000")

    assert own.status_code == 200
    assert theirs.status_code == 404
    assert theirs.headers["content-type"].startswith("application/problem+json")
    assert theirs.json()["title"] == unknown.json()["title"]
