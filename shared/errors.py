"""The app's exceptions: one small tree, mapped to answers in one place (`shared.problems`).

```
AppError
├── RequestRejected              the caller's request is wrong; never retried
│   ├── InvalidPayload           400, with `errors` keyed by field
│   ├── InvalidSignature         401: a webhook not provably from ContraForce
│   ├── Forbidden                403: the caller may not do this (identity, principal)
│   ├── NotFound                 404
│   │   └── OperationNotFound    404 OPERATION_NOT_FOUND: no operation has this id
│   ├── PayloadTooLarge          413 (body size or number of items)
│   ├── UnsupportedMediaType     415
│   └── IdempotencyConflict      422: the same Idempotency-Key with a different request
├── NotConfigured                503: a setting the action needs is missing or invalid
├── StoreUnavailable             503: the operations table or queue could not be reached
└── UpstreamError                an upstream API failed; `upstream` names it
    ├── UpstreamUnavailable      no usable answer after retries (transport, timeout, 429, 5xx)
    └── UpstreamRejected         the upstream answered 4xx: `status`, `code`, `request_id`
        └── UpstreamAuthRejected the upstream refused *our* credentials (401)
```

A type exists only where a caller handles it differently. Messages never carry a secret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from incident_link_api.base import Upstream
from shared.clients.bounds import clamp_retry_after


class AppError(Exception):
    """Base of every error this app raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RequestRejected(AppError):
    """The caller sent something we will not act on."""

    status = 400
    code = "BAD_REQUEST"

    def __init__(
        self,
        message: str,
        *,
        errors: Mapping[str, Sequence[str]] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.errors: dict[str, list[str]] = {k: list(v) for k, v in (errors or {}).items()}
        if code is not None:
            self.code = code


class InvalidPayload(RequestRejected):
    status = 400
    code = "VALIDATION_ERROR"


class Forbidden(RequestRejected):
    """The caller is known but may not do what it asked (an identity or principal not allowed)."""

    status = 403
    code = "FORBIDDEN"


class NotFound(RequestRejected):
    status = 404
    code = "NOT_FOUND"


class OperationNotFound(NotFound):
    """No operation has this id (unlike an operation whose own answer was an upstream 404)."""

    code = "OPERATION_NOT_FOUND"


class PayloadTooLarge(RequestRejected):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(RequestRejected):
    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class InvalidSignature(RequestRejected):
    """A webhook delivery that is not provably from ContraForce: nothing is done."""

    status = 401
    code = "INVALID_SIGNATURE"


class IdempotencyConflict(RequestRejected):
    status = 422
    code = "IDEMPOTENCY_KEY_REUSED"


class StoreUnavailable(AppError):
    """Azure Storage (operations table, queue) failed; the request was not accepted."""


class NotConfigured(AppError):
    """Settings are missing or invalid; `settings` names them (never their values)."""

    def __init__(self, message: str, *, settings: Sequence[str]) -> None:
        super().__init__(message)
        self.settings = tuple(settings)


class UpstreamError(AppError):
    """An upstream call did not do what we asked."""

    def __init__(self, message: str, *, upstream: Upstream, attempts: int) -> None:
        super().__init__(message)
        self.upstream: Upstream = upstream
        self.attempts = attempts


class UpstreamUnavailable(UpstreamError):
    """Transport error, timeout, 429 or 5xx, still failing when the retry budget ran out.

    `retry_after` (the upstream's wait hint, passed on to our caller) is whole seconds within
    0..`RETRY_AFTER_MAX_SECONDS` whatever it is given (`shared.clients.bounds`): what we tell
    a caller is bounded however the error was built."""

    def __init__(
        self,
        message: str,
        *,
        upstream: Upstream,
        attempts: int,
        status: int | None = None,
        retry_after: float | None = None,
        may_have_acted: bool = False,
    ) -> None:
        super().__init__(message, upstream=upstream, attempts=attempts)
        self.status = status
        self.retry_after = None if retry_after is None else clamp_retry_after(retry_after)
        # A request went out and lost its answer: the upstream may have acted on it.
        self.may_have_acted = may_have_acted


class UpstreamRejected(UpstreamError):
    """The upstream answered 4xx: retrying the same request cannot help."""

    def __init__(
        self,
        message: str,
        *,
        upstream: Upstream,
        attempts: int,
        status: int,
        code: str | None = None,
        request_id: str | None = None,
        errors: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        super().__init__(message, upstream=upstream, attempts=attempts)
        self.status = status
        self.code = code
        self.request_id = request_id
        self.errors: dict[str, list[str]] = {k: list(v) for k, v in (errors or {}).items()}


class UpstreamAuthRejected(UpstreamRejected):
    """The upstream refused the credentials this app is configured with."""
