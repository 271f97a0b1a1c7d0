"""A 202's `Location` is followed as given, as Logic Apps polls it: no key, no header."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from local.sandbox.contraforce_state import DEMO_WORKSPACE_ID
from shared import status_links
from tests.e2e.conftest import FUNCTION_KEY, Stack, start_host

WS = str(DEMO_WORKSPACE_ID)
TICKETED = "6d1f0c2a-4e4b-4b8f-9d55-0a3c1b2e7f10"
SECRET = "status-link-secret-of-this-test-0123456789"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
# Per answer: the path, the operation named, when, and the detail (it names the id).
VARYING = {"instance": None, "operationId": None, "detail": None, "timestamp": None}


@pytest.fixture(scope="module")
def base_url(stack: Stack) -> Iterator[str]:
    """A host whose status-link secret the test knows, so it can sign an expired link."""
    host = start_host({**stack.settings, "STATUS_LINK_SECRET": SECRET})
    try:
        yield host.base_url
    finally:
        host.stop()


def signed(base_url: str, operation_id: str, expires: int) -> str:
    query = urlencode(status_links.credential(SECRET.encode(), operation_id, expires))
    return f"{base_url}/operations/{operation_id}/status?{query}"


def accepted(base_url: str) -> httpx.Response:
    reply = httpx.post(
        f"{base_url}/actions/unlink-ticket",
        json={"workspaceId": WS, "incident": {"id": TICKETED}},
        headers={"x-functions-key": FUNCTION_KEY, "Prefer": "respond-async"},
    )
    assert reply.status_code == 202
    return reply


def followed_until_final(location: str, *, seconds: float = 30.0) -> httpx.Response:
    """GET `location` exactly as given, with no header, until it is not a 202 (bounded)."""
    deadline = time.monotonic() + seconds
    while True:
        answer = httpx.get(location)
        if answer.status_code != 202 or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def with_query(location: str, **changes: str) -> str:
    parts = urlsplit(location)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    return urlunsplit(parts._replace(query=urlencode({**query, **changes})))


def test_a_202_location_is_absolute_and_followed_with_no_key_reaches_the_final_answer(
    sandbox: Stack, base_url: str
) -> None:
    location = accepted(base_url).headers["location"]

    assert urlsplit(location).scheme == "http"
    assert urlsplit(location).netloc  # absolute: the app's own address
    final = followed_until_final(location)
    assert final.status_code == 200
    assert final.json()["status"] == "succeeded"


def test_a_tampered_or_expired_status_link_answers_as_an_unknown_operation_does(
    sandbox: Stack, base_url: str
) -> None:
    reply = accepted(base_url)
    location = reply.headers["location"]
    operation_id = reply.headers["x-operation-id"]
    signature = parse_qs(urlsplit(location).query)["sig"][0]
    forged = ("1" if signature[0] == "0" else "0") + signature[1:]
    later = int(time.time()) + 3600

    refused = {
        "tampered": httpx.get(with_query(location, sig=forged)),
        "another expiry": httpx.get(with_query(location, exp=str(later))),
        "expired": httpx.get(signed(base_url, operation_id, int(time.time()) - 1)),
        "no credential": httpx.get(location.split("?")[0]),
    }
    unknown = httpx.get(signed(base_url, UNKNOWN_ID, later))

    assert unknown.status_code == 404
    expected = unknown.json() | VARYING
    for why, answer in refused.items():
        assert answer.status_code == 404, why
        assert answer.headers["content-type"].startswith("application/problem+json"), why
        seen = answer.json() | VARYING
        assert seen == expected, why
        assert answer.json()["detail"] == unknown.json()["detail"].replace(UNKNOWN_ID, operation_id)
