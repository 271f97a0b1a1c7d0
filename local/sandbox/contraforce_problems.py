"""ContraForce's error and envelope shapes: ApiProblemDetails, `{data, meta}`, `X-Request-Id`."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_JSON = "application/problem+json"
REQUEST_ID_HEADER = "X-Request-Id"

Now = Callable[[], datetime]

_TITLES: Mapping[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_TYPES: Mapping[int, str] = {
    400: "https://tools.ietf.org/html/rfc9110#section-15.5.1",
    401: "https://tools.ietf.org/html/rfc9110#section-15.5.2",
    403: "https://tools.ietf.org/html/rfc9110#section-15.5.4",
    404: "https://tools.ietf.org/html/rfc9110#section-15.5.5",
    405: "https://tools.ietf.org/html/rfc9110#section-15.5.6",
    429: "https://tools.ietf.org/html/rfc6585#section-4",
    500: "https://tools.ietf.org/html/rfc9110#section-15.6.1",
    503: "https://tools.ietf.org/html/rfc9110#section-15.6.4",
}
VALIDATION_TITLE = "One or more validation errors occurred."


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def iso_timestamp(moment: datetime) -> str:
    """UTC ISO 8601 with a `Z` suffix, e.g. `2025-01-31T12:00:00.123456Z`."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def request_id_of(request: Request) -> str:
    """The id `RequestIdMiddleware` gave this request (a fresh one if it did not run)."""
    state = request.scope.setdefault("state", {})
    request_id = state.get("request_id")
    if not isinstance(request_id, str):
        request_id = state["request_id"] = str(uuid.uuid4())
    return request_id


class RequestIdMiddleware:
    """Gives every request a fresh id and answers it in `X-Request-Id`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stamp the id on the scope and the response headers."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if REQUEST_ID_HEADER not in headers:
                    headers[REQUEST_ID_HEADER] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)


class ProblemError(Exception):
    """An error answered as ApiProblemDetails."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str | None = None,
        target: str | None = None,
        errors: Mapping[str, list[str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title
        self.target = target
        self.errors = dict(errors) if errors is not None else None
        self.headers = dict(headers or {})


def problem_response(request: Request, problem: ProblemError, now: Now = utc_now) -> JSONResponse:
    """ApiProblemDetails as `application/problem+json`, carrying the request's id."""
    request_id = request_id_of(request)
    body: dict[str, Any] = {
        "type": _TYPES.get(problem.status, "about:blank"),
        "title": problem.title or _TITLES.get(problem.status, "Error"),
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.url.path,
        "code": problem.code,
        "requestId": request_id,
        "timestamp": iso_timestamp(now()),
    }
    if problem.target is not None:
        body["target"] = problem.target
    if problem.errors is not None:
        body["errors"] = problem.errors
    headers = {**problem.headers, REQUEST_ID_HEADER: request_id}
    return JSONResponse(body, status_code=problem.status, headers=headers, media_type=PROBLEM_JSON)


def data_response(request: Request, data: Any, now: Now = utc_now) -> JSONResponse:
    """The v2 success envelope `{data, meta{requestId, timestamp}}`."""
    request_id = request_id_of(request)
    meta = {"requestId": request_id, "timestamp": iso_timestamp(now())}
    return JSONResponse({"data": data, "meta": meta}, headers={REQUEST_ID_HEADER: request_id})
