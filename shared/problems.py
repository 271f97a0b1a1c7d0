"""Typed errors → RFC 9457 `application/problem+json`, in one place.

The body has the shape of ContraForce's `ApiProblemDetails` (`type`, `title`, `status`,
`detail`, `instance`, `code`, `requestId`, `timestamp`, `target`, `errors` keyed by field), plus
extension members: `operationId`, `upstream`, `upstreamStatus`, `retryAfter`, `settings`,
`outcome`. No handler builds an error body by hand.

| error                     | status                 | code                          |
|---------------------------|------------------------|-------------------------------|
| RequestRejected & kin     | its own (400…415)      | its own                       |
| NotConfigured             | 503                    | NOT_CONFIGURED                |
| StoreUnavailable          | 503 + Retry-After      | STORE_UNAVAILABLE             |
| UpstreamAuthRejected      | 502                    | UPSTREAM_AUTH_REJECTED        |
| UpstreamRejected          | the upstream's 4xx     | the upstream's, else UPSTREAM_REJECTED |
| UpstreamUnavailable       | 503 + Retry-After      | UPSTREAM_UNAVAILABLE          |
| not applied (no error)    | 409                    | NOT_APPLIED                   |
| anything else             | 500                    | INTERNAL_ERROR                |

Every status from 100 to 599 has a title (`status_title`): the standard phrase where
`http.HTTPStatus` knows one, else its class's generic name with the number ("Client Error 499",
"Server Error 520"), so an upstream's own status never turns into our 500. Text that came from a
caller or an upstream (`errors` member names and messages, `detail`) is clipped and escaped
(`shared.logsafe.clip`): a 200 KB field name is never a 400 KB answer.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Final

from pydantic import Field

from incident_link_api.base import CamelModel, Upstream
from incident_link_api.outcome import ItemError
from shared.errors import (
    AppError,
    NotConfigured,
    RequestRejected,
    StoreUnavailable,
    UpstreamAuthRejected,
    UpstreamError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from shared.logsafe import clip

PROBLEM_JSON = "application/problem+json"
DEFAULT_RETRY_AFTER_SECONDS = 30
# RFC 9110 section 15: the first digit names the class; a status with no registered phrase is
# named by its class.
_CLASSES: Final = {
    1: "Informational",
    2: "Success",
    3: "Redirection",
    4: "Client Error",
    5: "Server Error",
}
_STANDARD_TITLES: Final = {status.value: status.phrase for status in HTTPStatus}
MAX_DETAIL_CHARS = 1000  # of a caller's or an upstream's text in `detail` or an `errors` message
MAX_ERRORS = 100  # `errors` members shown; the rest are counted under "…"


class Problem(CamelModel):
    """One problem document; `headers` travel beside it, not in it."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    code: str
    request_id: str | None = None
    timestamp: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
    target: str | None = None
    errors: dict[str, list[str]] | None = None
    operation_id: str | None = None
    upstream: Upstream | None = None
    upstream_status: int | None = None
    retry_after: int | None = None
    settings: list[str] | None = None
    outcome: dict[str, Any] | None = None
    error: str | None = Field(
        default=None, alias="Error", description="D3-style routes: D3's own Error member."
    )

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}

    def body(self, **extra: Any) -> dict[str, Any]:
        return {**self.model_dump(mode="json", by_alias=True, exclude_none=True), **extra}


def status_title(status: int) -> str:
    """A problem's `title` for any status: the standard phrase, else a generic one."""
    standard = _STANDARD_TITLES.get(status)
    if standard is not None:
        return standard
    kind = _CLASSES.get(status // 100)
    return f"{kind} {status}" if kind else f"HTTP Status {status}"


def bounded_errors(errors: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
    """`errors` with every member name and message clipped, and at most MAX_ERRORS members."""
    if not errors:
        return None
    bounded: dict[str, list[str]] = {}
    for index, (name, messages) in enumerate(errors.items()):
        if index == MAX_ERRORS:
            bounded["…"] = [f"{len(errors) - MAX_ERRORS} more member(s) not shown"]
            break
        shown = bounded.setdefault(clip(name), [])
        shown.extend(clip(message, MAX_DETAIL_CHARS) for message in messages[:MAX_ERRORS])
    return bounded


def item_error(exc: UpstreamError) -> ItemError:
    """What an upstream error means for the items it concerned; the upstream's own text
    (message, code, request id, `errors`) clipped once, here."""
    if isinstance(exc, UpstreamRejected):
        return ItemError(
            kind="auth_rejected" if isinstance(exc, UpstreamAuthRejected) else "rejected",
            message=clip(exc.message, MAX_DETAIL_CHARS),
            code=None if exc.code is None else clip(exc.code),
            upstream_status=exc.status,
            request_id=None if exc.request_id is None else clip(exc.request_id),
            errors=bounded_errors(exc.errors),
        )
    unavailable = exc if isinstance(exc, UpstreamUnavailable) else None
    return ItemError(
        kind="unavailable",
        message=clip(exc.message, MAX_DETAIL_CHARS),
        upstream_status=unavailable.status if unavailable else None,
        retry_after=unavailable.retry_after if unavailable else None,
    )


def from_upstream(upstream: Upstream, error: ItemError) -> Problem:
    """The answer for an upstream failure (or refusal) that decides a request's status."""
    common: dict[str, Any] = {
        "upstream": upstream,
        "upstream_status": error.upstream_status,
        "request_id": error.request_id,
    }
    if error.kind == "unavailable":
        wait = error.retry_after if error.retry_after is not None else DEFAULT_RETRY_AFTER_SECONDS
        return Problem(
            title=status_title(503),
            status=503,
            detail=f"{error.message}; try again later",
            code="UPSTREAM_UNAVAILABLE",
            retry_after=max(1, math.ceil(wait)),
            **common,
        )
    if error.kind == "auth_rejected":
        return Problem(
            title=status_title(502),
            status=502,
            detail=f"{upstream} refused this app's credentials ({error.message}); an operator "
            "must fix the configured credentials",
            code="UPSTREAM_AUTH_REJECTED",
            **common,
        )
    if error.kind == "rejected":
        status = error.upstream_status or 400
        return Problem(
            title=status_title(status),
            status=status,
            detail=error.message,
            code=error.code or "UPSTREAM_REJECTED",
            errors=error.errors,
            **common,
        )
    return Problem(
        title=status_title(409),
        status=409,
        detail=error.message,
        code="NOT_APPLIED",
        **common,
    )


def from_error(exc: Exception) -> Problem:
    """The answer for any exception that reached the edge."""
    if isinstance(exc, RequestRejected):
        return Problem(
            title=status_title(exc.status),
            status=exc.status,
            detail=clip(exc.message, MAX_DETAIL_CHARS),
            code=exc.code,
            errors=bounded_errors(exc.errors),
        )
    if isinstance(exc, NotConfigured):
        return Problem(
            title=status_title(503),
            status=503,
            detail=f"the app is not configured for this action: {exc.message}",
            code="NOT_CONFIGURED",
            settings=list(exc.settings),
        )
    if isinstance(exc, UpstreamError):
        return from_upstream(exc.upstream, item_error(exc))
    if isinstance(exc, StoreUnavailable):
        return Problem(
            title=status_title(503),
            status=503,
            detail=f"{exc.message}; the request was not accepted, retry it",
            code="STORE_UNAVAILABLE",
            retry_after=DEFAULT_RETRY_AFTER_SECONDS,
        )
    detail = exc.message if isinstance(exc, AppError) else "unexpected error; see the app's logs"
    return Problem(title=status_title(500), status=500, detail=detail, code="INTERNAL_ERROR")
