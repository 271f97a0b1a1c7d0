"""What the sync and async clients share: requests built, answers read, retries decided.

No I/O here; `Client` and `AsyncClient` send what this builds and sleep where it says.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from incident_link_actions_client.errors import (
    PROBLEM_JSON,
    ConnectionFailed,
    LinkActionsError,
    UnexpectedAnswer,
    error_from,
)
from incident_link_api.commands import RemoveLinkedIncidentsInput, UnlinkTicketInput
from incident_link_api.outcome import Outcome

Action = Literal["unlink_ticket", "remove_linked_incidents"]
ACTION_ROUTES: dict[Action, str] = {
    "unlink_ticket": "actions/unlink-ticket",
    "remove_linked_incidents": "actions/remove-linked-incidents",
}
FUNCTION_KEY_HEADER = "x-functions-key"
DEFAULT_POLL_SECONDS = 5.0  # when a 202 names no Retry-After
# Answers worth sending again (with the same Idempotency-Key): a gateway's or the store's
# passing failure. Not UPSTREAM_UNAVAILABLE: the app already retried the upstream within its
# budget, and says with Retry-After when a new call is worth it.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
RETRYABLE_CODES = frozenset({None, "STORE_UNAVAILABLE"})

UnlinkRequest = UnlinkTicketInput | Sequence[UnlinkTicketInput]
RemoveRequest = RemoveLinkedIncidentsInput | Sequence[RemoveLinkedIncidentsInput]
# How each client waits between polls (`tools/generate_sync_client.py` turns one into the other).
AsyncSleep = Callable[[float], Awaitable[None]]
Sleep = Callable[[float], None]


@dataclass(frozen=True)
class Pending:
    """A 202: the operation is queued; poll `location` after `retry_after` seconds."""

    outcome: Outcome
    location: str
    retry_after: float


@dataclass(frozen=True)
class RetryOptions:
    """The client's own retries of one logical call (same Idempotency-Key every time)."""

    attempts: int = 3
    budget_seconds: float = 60.0
    initial_wait_seconds: float = 0.5
    max_wait_seconds: float = 10.0
    retry_after_cap_seconds: float = 30.0


class Retry(Exception):
    """One attempt that may succeed if sent again: a transport error or a passing failure."""

    def __init__(
        self,
        *,
        response: httpx.Response | None = None,
        cause: httpx.TransportError | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__("retry")
        self.response = response
        self.cause = cause
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryHook:
    """stamina's `on`: retry a `Retry` (after the answer's Retry-After, capped), nothing else."""

    options: RetryOptions

    def __call__(self, exc: Exception) -> bool | float:
        if not isinstance(exc, Retry):
            return False
        if exc.retry_after is not None:
            return min(exc.retry_after, self.options.retry_after_cap_seconds)
        return True


def new_idempotency_key() -> str:
    """One key per logical call; the client's own retries of that call reuse it."""
    return f"ila-{uuid.uuid4()}"


def body_of(request: BaseModel | Sequence[BaseModel]) -> dict[str, Any]:
    """A canonical body: one item, or `{"items": [...]}` for a sequence (bulk)."""
    if isinstance(request, BaseModel):
        return request.model_dump(mode="json", by_alias=True, exclude_none=True)
    items = list(request)
    if not items:
        raise ValueError("a bulk call needs at least one item")
    return {
        "items": [item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in items]
    }


def action_request(
    http: httpx.Client | httpx.AsyncClient,
    action: Action,
    body: dict[str, Any],
    *,
    idempotency_key: str,
    dry_run: bool,
    respond_async: bool,
) -> httpx.Request:
    headers = {"Idempotency-Key": idempotency_key}
    if respond_async:
        headers["Prefer"] = "respond-async"
    params = {"dryRun": "true"} if dry_run else None
    return http.build_request(
        "POST", ACTION_ROUTES[action], json=body, headers=headers, params=params
    )


def operation_path(operation_id: str) -> str:
    if not operation_id.strip():
        raise ValueError("operation_id must not be empty")
    return f"operations/{quote(operation_id.strip(), safe='')}"


def _problem_code(response: httpx.Response) -> str | None:
    if not response.headers.get("content-type", "").startswith(PROBLEM_JSON):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


# The range a `Retry-After` is read into, before any arithmetic: the app's own
# (`shared.clients.bounds.RETRY_AFTER_MAX_SECONDS`; a test keeps the two equal).
RETRY_AFTER_MAX_SECONDS = 3600


def _clamped(seconds: float) -> int:
    """`seconds` as whole seconds within 0..RETRY_AFTER_MAX_SECONDS (NaN and below 0: 0)."""
    if not seconds > 0:
        return 0
    if seconds >= RETRY_AFTER_MAX_SECONDS:
        return RETRY_AFTER_MAX_SECONDS
    return math.ceil(seconds)


def parse_retry_after(value: str | None, *, now: datetime) -> int | None:
    """`Retry-After` as whole seconds from `now` (delta-seconds or an HTTP-date), clamped to
    0..`RETRY_AFTER_MAX_SECONDS` before any arithmetic; None if unusable.

    The app reads its upstreams' `Retry-After` the same way (`shared.clients.classify`, a test
    holds the two to the same answers); the client keeps its own copy because it must install
    and import without the app's `shared`.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():  # str.isdigit() is also true for "²" and "٣"
        if len(text) > len(str(RETRY_AFTER_MAX_SECONDS)):  # never int() a 400-digit number
            return RETRY_AFTER_MAX_SECONDS
        return _clamped(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return _clamped((when - now).total_seconds())
    except OverflowError:  # a date too far from `now` to subtract
        return RETRY_AFTER_MAX_SECONDS if when > now else 0


def retry_after_of(response: httpx.Response) -> int | None:
    """An answer's `Retry-After`, each value of a repeated header parsed alone: the longest
    usable wait, or None."""
    now = datetime.now(UTC)
    waits = [
        seconds
        for value in response.headers.get_list("retry-after")
        if (seconds := parse_retry_after(value, now=now)) is not None
    ]
    return max(waits, default=None)


def check_transient(response: httpx.Response) -> httpx.Response:
    """Raise `Retry` for an answer worth sending again; return any other answer."""
    if response.status_code in RETRYABLE_STATUSES and _problem_code(response) in RETRYABLE_CODES:
        raise Retry(response=response, retry_after=retry_after_of(response))
    return response


def gave_up(exc: Retry) -> LinkActionsError:
    """What the caller sees when the client's retries ran out."""
    if exc.response is not None:
        return error_from(exc.response)
    return ConnectionFailed(f"no answer from the app: {type(exc.cause).__name__}: {exc.cause}")


def _outcome_of(response: httpx.Response) -> Outcome:
    try:
        return Outcome.model_validate_json(response.content)
    except ValidationError as exc:
        raise UnexpectedAnswer(
            f"HTTP {response.status_code} is not an Outcome: {exc}", status=response.status_code
        ) from exc


def read(response: httpx.Response, *, base_url: httpx.URL) -> Outcome | Pending:
    """An answer as the Outcome (200, 207), a `Pending` (202), or the typed error it carries."""
    status = response.status_code
    if status in {200, 207}:
        return _outcome_of(response)
    if status == 202:
        location = response.headers.get("location")
        if not location:
            raise UnexpectedAnswer("HTTP 202 without a Location to poll", status=status)
        return Pending(
            _outcome_of(response),
            same_origin(response.request.url.join(location), base_url),
            retry_after_of(response) or DEFAULT_POLL_SECONDS,
        )
    raise error_from(response)


def same_origin(url: httpx.URL, base_url: httpx.URL) -> str:
    """A Location is followed only on the app's own origin: the function key goes with it."""
    if (url.scheme, url.host, url.port) != (base_url.scheme, base_url.host, base_url.port):
        raise UnexpectedAnswer(f"refusing to poll {url.scheme}://{url.host}: not the app's origin")
    return str(url)


def document(response: httpx.Response, *, allowed: set[int]) -> dict[str, Any]:
    """A JSON document answer (health, the API descriptions)."""
    if response.status_code not in allowed:
        raise error_from(response)
    try:
        body = response.json()
    except ValueError as exc:
        raise UnexpectedAnswer("not JSON", status=response.status_code) from exc
    if not isinstance(body, dict):
        raise UnexpectedAnswer("not a JSON object", status=response.status_code)
    return body
