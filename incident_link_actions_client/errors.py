"""The client's errors: one small tree, built from the app's problem+json in one place.

```
LinkActionsError
├── ConnectionFailed          no answer at all, after the client's own retries
├── UnexpectedAnswer          an answer that is not what the API documents (not JSON, wrong shape)
├── StillPending              waited as long as allowed; the operation is still running
└── ApiError                  a problem+json answer: status, code, detail, errors, outcome, …
    ├── RequestRejected       our 4xx: the request is wrong; sending it again will not help
    │   ├── AccessDenied      401/403: the function key, identity or signature was refused
    │   ├── NotFound          404: no such route or operation
    │   ├── PayloadTooLarge   413: the body or the number of items is over the app's limit
    │   └── IdempotencyConflict 422: the same Idempotency-Key with a different request
    ├── NotApplied            409: the upstream answered and did not do it (nothing linked)
    ├── UpstreamRejected      the upstream's own 4xx, passed through
    ├── UpstreamAuthRejected  502: the upstream refused the app's credentials (an operator fixes)
    ├── Unavailable           429/502/503/504: try again later (`retry_after`)
    ├── NotConfigured         503: a setting the action needs is missing (`settings` names it)
    └── ServerError           500 and any other 5xx
```

A code the client does not know maps by its status, so new codes on the server never break it.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import ValidationError

from incident_link_api.outcome import Outcome

PROBLEM_JSON = "application/problem+json"


class LinkActionsError(Exception):
    """Base of every error the client raises."""


class ConnectionFailed(LinkActionsError):
    """No answer reached us (connection refused, timeout, dropped) after the client's retries."""


class UnexpectedAnswer(LinkActionsError):
    """The app answered something the API does not document."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class StillPending(LinkActionsError):
    """The operation is still pending after the longest wait allowed; poll it again later."""

    def __init__(self, message: str, *, outcome: Outcome) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.operation_id = outcome.operation_id


class ApiError(LinkActionsError):
    """An answer the app gave as problem+json (or a bare error status)."""

    def __init__(self, problem: dict[str, Any], *, status: int, outcome: Outcome | None) -> None:
        self.problem = problem
        self.status = status
        self.code: str | None = _text(problem.get("code"))
        self.title: str | None = _text(problem.get("title"))
        self.detail: str | None = _text(problem.get("detail"))
        errors = problem.get("errors")
        self.errors: dict[str, list[str]] = (
            {str(k): [str(m) for m in v] for k, v in errors.items() if isinstance(v, list)}
            if isinstance(errors, dict)
            else {}
        )
        self.outcome = outcome
        self.operation_id: str | None = _text(problem.get("operationId"))
        self.request_id: str | None = _text(problem.get("requestId"))
        self.upstream: str | None = _text(problem.get("upstream"))
        self.upstream_status: int | None = _int(problem.get("upstreamStatus"))
        self.retry_after: int | None = _int(problem.get("retryAfter"))
        settings = problem.get("settings")
        self.settings: list[str] = [str(s) for s in settings] if isinstance(settings, list) else []
        super().__init__(f"HTTP {status} {self.code or self.title or ''}: {self.detail or ''}")


class RequestRejected(ApiError):
    """The app refused the request itself (4xx); change it before sending it again."""


class AccessDenied(RequestRejected):
    """401 or 403: the function key, the caller's identity or a webhook signature was refused."""


class NotFound(RequestRejected):
    """404: no such route, action or operation."""


class PayloadTooLarge(RequestRejected):
    """413: the body or the number of items is over MAX_BODY_BYTES / MAX_BULK_ITEMS."""


class IdempotencyConflict(RequestRejected):
    """422: this Idempotency-Key was used for a different request."""


class NotApplied(ApiError):
    """409: the upstream answered and did not do it (e.g. the incident had no ticket)."""


class UpstreamRejected(ApiError):
    """The upstream refused the request (its own 4xx, `code` and `request_id` passed through)."""


class UpstreamAuthRejected(ApiError):
    """502: the upstream refused the app's credentials; an operator must fix them."""


class Unavailable(ApiError):
    """The app or its upstream is unavailable for now; `retry_after` says when to try again."""


class NotConfigured(ApiError):
    """503: the app lacks a setting the action needs; `settings` names it (never its value)."""


class ServerError(ApiError):
    """500 or another 5xx the app does not document: a bug or a platform failure."""


# The app's own codes, where the code decides more than the status does.
_BY_UPSTREAM_CODE: dict[str, type[ApiError]] = {
    "NOT_APPLIED": NotApplied,
    "UPSTREAM_AUTH_REJECTED": UpstreamAuthRejected,
    "UPSTREAM_UNAVAILABLE": Unavailable,
}
_BY_CODE: dict[str, type[ApiError]] = {
    "NOT_CONFIGURED": NotConfigured,
    "STORE_UNAVAILABLE": Unavailable,
    "IDEMPOTENCY_KEY_REUSED": IdempotencyConflict,
    "TOO_MANY_ITEMS": PayloadTooLarge,
    "PAYLOAD_TOO_LARGE": PayloadTooLarge,
}
_BY_STATUS: dict[int, type[ApiError]] = {
    401: AccessDenied,
    403: AccessDenied,
    404: NotFound,
    409: NotApplied,
    413: PayloadTooLarge,
    422: IdempotencyConflict,
    429: Unavailable,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}


def error_class(status: int, code: str | None, upstream: str | None) -> type[ApiError]:
    """The error type of an answer: known codes first, then the upstream's 4xx, then status."""
    if code in _BY_UPSTREAM_CODE:
        return _BY_UPSTREAM_CODE[code]
    if upstream is not None and 400 <= status < 500:
        return UpstreamRejected
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return RequestRejected if status < 500 else ServerError


def problem_of(response: httpx.Response) -> dict[str, Any]:
    """The problem document of an error answer; a bare or non-JSON answer gives a minimal one."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    return {"status": response.status_code, "title": response.reason_phrase}


def error_from(response: httpx.Response) -> ApiError:
    """The typed error for an answer that is not a success, with the Outcome inside if any."""
    problem = problem_of(response)
    outcome = None
    if isinstance(problem.get("outcome"), dict):
        try:
            outcome = Outcome.model_validate(problem["outcome"])
        except ValidationError as exc:
            raise UnexpectedAnswer(
                f"HTTP {response.status_code}: the Outcome inside the problem is not valid: {exc}",
                status=response.status_code,
            ) from exc
    cls = error_class(
        response.status_code, _text(problem.get("code")), _text(problem.get("upstream"))
    )
    return cls(problem, status=response.status_code, outcome=outcome)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
