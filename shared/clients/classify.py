"""What one attempt's outcome means for the call, decided in one pure function: `classify`.

The send loop (`shared.clients.http.ResilientHttp`) hands each outcome here, an upstream's answer
or the transport error it got instead, and acts on the decision: a `Retry` is tried again
through stamina within the call's budget (its `retry_after` is the upstream's wait hint, capped
there); an `Accept`, `Reject` or `GiveUp` goes back to the upstream's client, which reads the
body, and for a `Reject` or `GiveUp` raises the typed error (`shared.clients.http.error_for`).
No I/O, no budget, no clock but the one handed in to read a `Retry-After` date.

| outcome                                      | decision                                          |
|----------------------------------------------|---------------------------------------------------|
| 2xx                                          | `Accept`                                          |
| 408, 429, 500, 502, 503, 504                 | `Retry`, with `Retry-After` (seconds or date,     |
|                                              | clamped to 0..`RETRY_AFTER_MAX_SECONDS`)          |
| 401                                          | `Reject(auth=True)`: our credentials refused      |
| any other 4xx (400, 403, 404, 409, 422, 499) | `Reject`                                          |
| any other status (1xx, 3xx, 501, 505-599)    | `GiveUp`: `UpstreamUnavailable`                   |
| `httpx.TimeoutException`                     | `Retry`, "timed out (...)"                        |
| any other `httpx.TransportError`             | `Retry`, "connection failed (...)"                |

A transport error after the request went out (`MAY_HAVE_ACTED`) is a `Retry` marked
`may_have_acted`: the upstream may have acted on it and its answer been lost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import overload

import httpx

from shared.clients.bounds import RETRY_AFTER_MAX_SECONDS, clamp_retry_after

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

# Failures after the request went out and before an answer came back: the upstream may have
# acted on it. (A connect error or timeout, a pool timeout or a failed write never reached it.)
MAY_HAVE_ACTED = (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError)


@dataclass(frozen=True, slots=True)
class Accept:
    """A 2xx: the upstream's answer, for its client to read."""


@dataclass(frozen=True, slots=True)
class Retry:
    """A failure that another attempt may fix."""

    reason: str  # for the retry log and the final error: "answered HTTP 503", "timed out (...)"
    status: int | None = None  # the answer's status; None when there was no answer
    retry_after: int | None = (
        None  # the upstream's `Retry-After`, clamped (`shared.clients.bounds`)
    )
    may_have_acted: bool = False  # the request went out and its answer was lost


@dataclass(frozen=True, slots=True)
class Reject:
    """A 4xx that no retry fixes: the upstream refused this request (`auth`: refused *our*
    credentials, 401)."""

    auth: bool = False


@dataclass(frozen=True, slots=True)
class GiveUp:
    """An answer that no retry fixes and that is neither a success nor a refusal (a 3xx, a 501):
    the upstream is unavailable to this call."""


Decision = Accept | Retry | Reject | GiveUp
FinalDecision = Accept | Reject | GiveUp  # what a delivered answer is: retries are over

ACCEPT = Accept()
GIVE_UP = GiveUp()
REJECT = Reject()
AUTH_REJECT = Reject(auth=True)


@overload
def classify(outcome: httpx.TransportError, *, now: Callable[[], datetime]) -> Retry: ...
@overload
def classify(outcome: httpx.Response, *, now: Callable[[], datetime]) -> Decision: ...
def classify(
    outcome: httpx.Response | httpx.TransportError, *, now: Callable[[], datetime]
) -> Decision:
    """The decision for one attempt's `outcome` (no answer at all is always a `Retry`). `now`
    is called only to read the `Retry-After` of an answer to retry."""
    if isinstance(outcome, httpx.TransportError):
        return _transport_failure(outcome)
    status = outcome.status_code
    if HTTPStatus.OK <= status < HTTPStatus.MULTIPLE_CHOICES:
        return ACCEPT
    if status in RETRYABLE_STATUSES:
        return Retry(
            f"answered HTTP {status}",
            status=status,
            retry_after=retry_after_of(outcome.headers, now=now()),
        )
    if status == HTTPStatus.UNAUTHORIZED:
        return AUTH_REJECT
    if HTTPStatus.BAD_REQUEST <= status < HTTPStatus.INTERNAL_SERVER_ERROR:
        return REJECT
    return GIVE_UP


def _transport_failure(exc: httpx.TransportError) -> Retry:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
    return Retry(f"{kind} ({type(exc).__name__})", may_have_acted=isinstance(exc, MAY_HAVE_ACTED))


def parse_retry_after(value: str | None, *, now: datetime) -> int | None:
    """`Retry-After` as whole seconds from `now` (delta-seconds or an HTTP-date), clamped to
    0..`RETRY_AFTER_MAX_SECONDS` before any arithmetic; None if unusable (a fraction, a sign,
    anything but ASCII digits or a date). 400 digits are the top of the range, not `inf`."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():  # str.isdigit() is also true for "²" and "٣"
        if len(text) > len(str(RETRY_AFTER_MAX_SECONDS)):  # never int() a 400-digit number
            return RETRY_AFTER_MAX_SECONDS
        return clamp_retry_after(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return clamp_retry_after((when - now).total_seconds())
    except OverflowError:  # a date too far from `now` to subtract
        return RETRY_AFTER_MAX_SECONDS if when > now else 0


def retry_after_of(headers: httpx.Headers, *, now: datetime) -> int | None:
    """An answer's `Retry-After`, each of its values parsed alone (a repeated header is not
    one comma-joined value): the longest usable wait, or None if none is usable."""
    waits = [
        seconds
        for value in headers.get_list("retry-after")
        if (seconds := parse_retry_after(value, now=now)) is not None
    ]
    return max(waits, default=None)
