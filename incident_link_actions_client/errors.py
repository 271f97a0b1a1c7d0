"""The client's errors: one small tree, built from the app's problem+json in one place.

```
LinkActionsError
├── ConnectionFailed              no answer at all, after the client's own retries
├── UnexpectedAnswer              not what the API documents (not JSON, wrong shape)
├── StillPending                  waited as long as allowed; the operation is still running
└── ApiError                      a problem+json answer: status, code, detail, errors, …
    ├── BadRequestError           our 4xx: the request is wrong; sending it again will not help
    │   ├── AccessDeniedError     401/403: function key, identity or signature refused
    │   ├── NotFoundError         404: no such route or operation
    │   ├── ContentTooLargeError  413: the body or the number of items is over the limit
    │   └── KeyReusedError        422: the same Idempotency-Key with a different request
    ├── NotAppliedError           409: the upstream answered and did not do it
    ├── UpstreamRefusedError      the upstream's own 4xx, passed through
    ├── UpstreamCredentialsError  502: the upstream refused the app's credentials
    ├── UnavailableError          429/502/503/504: try again later (`retry_after`)
    ├── SettingsError             503: a setting the action needs is missing (`settings`)
    └── ServerError               500 and any other 5xx
```

Each `ApiError` is named by the answer it stands for (its status or the app's `code`), with an
`Error` suffix; none reuses a name of the app's own exceptions (`shared/errors.py`), whose tree
is the server's. A code the client does not know maps by its status, so new codes on the server
never break it.
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


class BadRequestError(ApiError):
    """The app refused the request itself (4xx); change it before sending it again."""


class AccessDeniedError(BadRequestError):
    """401 or 403: the function key, the caller's identity or a webhook signature was refused."""


class NotFoundError(BadRequestError):
    """404: no such route, action or operation."""


class ContentTooLargeError(BadRequestError):
    """413: the body or the number of items is over MAX_BODY_BYTES / MAX_BULK_ITEMS."""


class KeyReusedError(BadRequestError):
    """422: this Idempotency-Key was used for a different request."""


class NotAppliedError(ApiError):
    """409: the upstream answered and did not do it (e.g. the incident had no ticket)."""


class UpstreamRefusedError(ApiError):
    """The upstream refused the request (its own 4xx, `code` and `request_id` passed through)."""


class UpstreamCredentialsError(ApiError):
    """502: the upstream refused the app's credentials; an operator must fix them."""


class UnavailableError(ApiError):
    """The app or its upstream is unavailable for now; `retry_after` says when to try again."""


class SettingsError(ApiError):
    """503: the app lacks a setting the action needs; `settings` names it (never its value)."""


class ServerError(ApiError):
    """500 or another 5xx the app does not document: a bug or a platform failure."""


# The app's own codes, where the code decides more than the status does.
_BY_UPSTREAM_CODE: dict[str, type[ApiError]] = {
    "NOT_APPLIED": NotAppliedError,
    "UPSTREAM_AUTH_REJECTED": UpstreamCredentialsError,
    "UPSTREAM_UNAVAILABLE": UnavailableError,
}
_BY_CODE: dict[str, type[ApiError]] = {
    "NOT_CONFIGURED": SettingsError,
    "STORE_UNAVAILABLE": UnavailableError,
    "IDEMPOTENCY_KEY_REUSED": KeyReusedError,
    "TOO_MANY_ITEMS": ContentTooLargeError,
    "PAYLOAD_TOO_LARGE": ContentTooLargeError,
}
_BY_STATUS: dict[int, type[ApiError]] = {
    401: AccessDeniedError,
    403: AccessDeniedError,
    404: NotFoundError,
    409: NotAppliedError,
    413: ContentTooLargeError,
    422: KeyReusedError,
    429: UnavailableError,
    502: UnavailableError,
    503: UnavailableError,
    504: UnavailableError,
}


def error_class(status: int, code: str | None, upstream: str | None) -> type[ApiError]:
    """The error type of an answer: known codes first, then the upstream's 4xx, then status."""
    if code in _BY_UPSTREAM_CODE:
        return _BY_UPSTREAM_CODE[code]
    if upstream is not None and 400 <= status < 500:
        return UpstreamRefusedError
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return BadRequestError if status < 500 else ServerError


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
