"""Issue 25, finding 15: the local host (`python -m local`) against hostile requests.

It compares the function key whole (the first `x-functions-key` line, as Azure's host takes
`values.First()`), and reads no more of a body than its limit on any route, anonymous ones
included, so a 90 MB body to `GET /api/health` is refused without being read.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from local.host import BODY_SIZE_LIMIT_SETTING
from tests.e2e.conftest import FUNCTION_KEY, Stack, start_host

WS = "3f2a6c1e-8b7d-4c55-9a10-2f6e7d8c9b01"
UNLINK = "/actions/unlink-ticket"
BODY = {"workspaceId": WS, "incident": {}}  # refused by the app (400) once the key is taken
MB = 1_048_576
HOSTILE_BODY_BYTES = 90 * MB


class _Counted:
    """A 90 MB request body sent in 1 MB chunks, counting how much of it went out."""

    def __init__(self) -> None:
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        chunk = b"x" * MB
        while self.sent < HOSTILE_BODY_BYTES:
            self.sent += len(chunk)
            yield chunk


def _health_with_a_90_mb_body(base_url: str) -> tuple[int | None, int]:
    """The status of `GET /health` with a 90 MB chunked body (None: the host closed before
    answering), and how many bytes the client got out before that."""
    body = _Counted()
    try:
        reply = httpx.request("GET", f"{base_url}/health", content=iter(body), timeout=30)
    except httpx.TransportError:
        return None, body.sent
    return reply.status_code, body.sent


@pytest.mark.parametrize("key", [f"{FUNCTION_KEY},zzz", f"{FUNCTION_KEY}, {FUNCTION_KEY}", "zzz"])
def test_finding_15_a_function_key_with_more_after_a_comma_is_refused(
    stack: Stack, key: str
) -> None:
    reply = httpx.post(f"{stack.base_url}{UNLINK}", json=BODY, headers={"x-functions-key": key})
    assert reply.status_code == 401


def test_finding_15_the_first_of_two_function_key_header_lines_is_the_key(stack: Stack) -> None:
    headers = [("x-functions-key", FUNCTION_KEY), ("x-functions-key", "zzz")]
    reply = httpx.post(f"{stack.base_url}{UNLINK}", json=BODY, headers=headers)
    assert reply.status_code == 400  # past the host's key check, refused by the app


def test_finding_15_the_host_body_limit_setting_bounds_an_anonymous_route(stack: Stack) -> None:
    host = start_host({**stack.settings, BODY_SIZE_LIMIT_SETTING: str(MB)})
    try:
        status, sent = _health_with_a_90_mb_body(host.base_url)
    finally:
        host.stop()
    assert status in {413, None}
    assert sent < HOSTILE_BODY_BYTES


def test_finding_15_an_anonymous_health_call_reads_at_most_max_body_bytes(stack: Stack) -> None:
    status, sent = _health_with_a_90_mb_body(stack.base_url)
    assert status in {413, None}
    assert sent < HOSTILE_BODY_BYTES
