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
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

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

PROBLEM_JSON = "application/problem+json"
DEFAULT_RETRY_AFTER_SECONDS = 30


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


def _title(status: int) -> str:
    return HTTPStatus(status).phrase


def item_error(exc: UpstreamError) -> ItemError:
    """What an upstream error means for the items it concerned."""
    if isinstance(exc, UpstreamRejected):
        return ItemError(
            kind="auth_rejected" if isinstance(exc, UpstreamAuthRejected) else "rejected",
            message=exc.message,
            code=exc.code,
            upstream_status=exc.status,
            request_id=exc.request_id,
            errors=exc.errors or None,
        )
    unavailable = exc if isinstance(exc, UpstreamUnavailable) else None
    return ItemError(
        kind="unavailable",
        message=exc.message,
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
            title=_title(503),
            status=503,
            detail=f"{error.message}; try again later",
            code="UPSTREAM_UNAVAILABLE",
            retry_after=max(1, math.ceil(wait)),
            **common,
        )
    if error.kind == "auth_rejected":
        return Problem(
            title=_title(502),
            status=502,
            detail=f"{upstream} refused this app's credentials ({error.message}); an operator "
            "must fix the configured credentials",
            code="UPSTREAM_AUTH_REJECTED",
            **common,
        )
    if error.kind == "rejected":
        status = error.upstream_status or 400
        return Problem(
            title=_title(status),
            status=status,
            detail=error.message,
            code=error.code or "UPSTREAM_REJECTED",
            errors=error.errors,
            **common,
        )
    return Problem(
        title=_title(409),
        status=409,
        detail=error.message,
        code="NOT_APPLIED",
        **common,
    )


def from_error(exc: Exception) -> Problem:
    """The answer for any exception that reached the edge."""
    if isinstance(exc, RequestRejected):
        return Problem(
            title=_title(exc.status),
            status=exc.status,
            detail=exc.message,
            code=exc.code,
            errors=exc.errors or None,
        )
    if isinstance(exc, NotConfigured):
        return Problem(
            title=_title(503),
            status=503,
            detail=f"the app is not configured for this action: {exc.message}",
            code="NOT_CONFIGURED",
            settings=list(exc.settings),
        )
    if isinstance(exc, UpstreamError):
        return from_upstream(exc.upstream, item_error(exc))
    if isinstance(exc, StoreUnavailable):
        return Problem(
            title=_title(503),
            status=503,
            detail=f"{exc.message}; the request was not accepted, retry it",
            code="STORE_UNAVAILABLE",
            retry_after=DEFAULT_RETRY_AFTER_SECONDS,
        )
    detail = exc.message if isinstance(exc, AppError) else "unexpected error; see the app's logs"
    return Problem(title=_title(500), status=500, detail=detail, code="INTERNAL_ERROR")
