"""What the app cannot be made to answer: mapped by status, unknown codes, foreign Locations."""

from __future__ import annotations

import httpx
import pytest

from incident_link_actions_client import (
    AccessDeniedError,
    BadRequestError,
    Client,
    RetryOptions,
    ServerError,
    UnavailableError,
    UnexpectedAnswer,
)
from incident_link_actions_client.errors import error_class
from tools import generate_sync_client

FAST = RetryOptions(attempts=3, initial_wait_seconds=0.0, max_wait_seconds=0.0)


def client_answering(*responses: httpx.Response) -> tuple[Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return Client("http://app.test/api", retry=FAST, transport=httpx.MockTransport(handler)), seen


@pytest.mark.parametrize(
    ("status", "code", "upstream", "expected"),
    [
        (403, "FORBIDDEN", None, AccessDeniedError),
        (403, "SOME_NEW_CODE", None, AccessDeniedError),
        (418, "SOME_NEW_CODE", None, BadRequestError),
        (500, "INTERNAL_ERROR", None, ServerError),
        (507, None, None, ServerError),
        (503, "SOME_NEW_CODE", None, UnavailableError),
    ],
)
def test_unknown_codes_map_by_status(
    status: int, code: str | None, upstream: str | None, expected: type
) -> None:
    assert error_class(status, code, upstream) is expected


def test_a_gateways_html_503_is_retried_then_raised_as_unavailable() -> None:
    html = httpx.Response(503, text="<html>busy</html>", headers={"content-type": "text/html"})
    ila, seen = client_answering(html)
    with pytest.raises(UnavailableError):
        ila.health()
    assert len(seen) == 3


def test_a_202_pointing_at_another_origin_is_not_followed() -> None:
    pending = {
        "operationId": "x",
        "action": "unlink_ticket",
        "status": "pending",
        "items": [],
        "startedAt": "2026-01-01T00:00:00Z",
    }
    answer = httpx.Response(202, json=pending, headers={"location": "https://evil.test/api/x"})
    ila, seen = client_answering(answer)
    with pytest.raises(UnexpectedAnswer, match="not the app's origin"):
        ila.operation("x", wait=True)
    assert all(request.url.host == "app.test" for request in seen)


def test_a_200_that_is_not_an_outcome_is_an_unexpected_answer() -> None:
    ila, _ = client_answering(httpx.Response(200, json={"hello": "world"}))
    with pytest.raises(UnexpectedAnswer):
        ila.operation("x")


def test_the_sync_client_is_what_unasync_generates_from_the_async_one() -> None:
    assert generate_sync_client.SYNC_SOURCE.read_text(encoding="utf-8") == (
        generate_sync_client.generated()
    )
