"""The HTTP edge: requests in, responses out, errors mapped to problems. Nothing else.

The only module in `shared/` that knows `azure.functions`. Each handler in `functions/` calls
one function here (`serve_action`, `serve_operation`, `serve_webhook`, `serve_document`,
`serve_refusal`); each of those maps the request onto one use case of `shared.service` and
maps its result onto a response.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import azure.functions as func

from incident_link_api.outcome import Outcome
from shared import heap, principals, rendering, service, status_links, telemetry
from shared.config import Settings, get_settings
from shared.context import Invocation, set_invocation
from shared.core import Core
from shared.errors import AppError, InvalidPayload, OperationNotFound, PayloadTooLarge
from shared.intake import Incoming, dry_run_requested, query_of
from shared.logsafe import clip
from shared.problems import from_error
from shared.rendering import ProblemStyle, Rendered, render_problem
from shared.routes import RouteFamily

if TYPE_CHECKING:  # the storage path loads with its first use (see shared.service)
    pass

logger = logging.getLogger(__name__)

Renderer = Callable[[Outcome], Rendered]
# What a route does once the edge has set up the invocation: the request in, a rendering out.
RouteBody = Callable[[Invocation], Awaitable[Rendered]]

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
# Key prefixes that name the app's own key spaces: a caller may not use them.
RESERVED_KEY_PREFIXES = ("contraforce-webhook:", "webhook:", "ila-internal:")
_OPERATION_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def invocation_for(req: func.HttpRequest) -> Invocation:
    """A fresh operation id; the caller's correlation id when it sent a usable one."""
    operation_id = str(uuid.uuid4())
    given = (req.headers.get("x-correlation-id") or "").strip()
    trace = _TRACEPARENT.match((req.headers.get("traceparent") or "").strip().lower())
    if _SAFE_ID.match(given):
        correlation_id = given
    elif trace:
        correlation_id = trace.group(1)
    else:
        correlation_id = operation_id
    return Invocation(operation_id=operation_id, correlation_id=correlation_id)


def to_http(rendered: Rendered, invocation: Invocation, *, instance: str) -> func.HttpResponse:
    """The HTTP response. `X-Operation-Id` names the operation the answer is about: this
    request's, or the recorded one a repeat (or a poll) returns."""
    operation_id = rendered.operation_id or invocation.operation_id
    body = rendered.body
    if isinstance(body, dict) and rendered.media_type.endswith("problem+json"):
        body = {**body, "instance": instance, "operationId": operation_id}
    headers = {
        **rendered.headers,
        "X-Operation-Id": operation_id,
        "X-Correlation-Id": invocation.correlation_id,
    }
    return func.HttpResponse(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status_code=rendered.status,
        headers=headers,
        mimetype=rendered.media_type,
        charset="utf-8",
    )


def render_error(exc: Exception, style: ProblemStyle) -> Rendered:
    """Log and map an exception that reached the edge."""
    if isinstance(exc, AppError):
        logger.info("request refused: %s: %s", type(exc).__name__, clip(exc.message, 1000))
    else:
        logger.error("unexpected error while handling a request", exc_info=exc)
    return render_problem(from_error(exc), style)


def incoming_from(req: func.HttpRequest) -> Incoming:
    return Incoming(
        body=req.get_body(),
        content_type=req.headers.get("content-type"),
        route_params=dict(req.route_params),
        query=query_of(req.url),
    )


async def handle(
    req: func.HttpRequest,
    route_body: RouteBody,
    *,
    problem_style: ProblemStyle = "problem",
    public: bool = False,
) -> func.HttpResponse:
    """Set the invocation context, check an Entra caller (unless `public`), run the route,
    map any error to a problem; all of it inside the call's server span."""
    path = _path(req.url)
    with telemetry.http_server_span(
        req.method, route_of(path, req.route_params), req.headers, path=path
    ) as span:
        invocation = invocation_for(req)
        set_invocation(invocation)
        try:
            if not public:  # Entra callers (Easy Auth): 403 unless in ALLOWED_PRINCIPALS
                principal = principals.authorize(req.headers)
                if principal is not None:
                    invocation = replace(invocation, principal=principal.caller)
                    set_invocation(invocation)
            rendered = await route_body(invocation)
        except Exception as exc:  # noqa: BLE001 - the edge: every error becomes a problem answer
            rendered = render_error(exc, problem_style)
        response = to_http(rendered, invocation, instance=path)
        span.answered(
            response.status_code,
            operation_id=rendered.operation_id or invocation.operation_id,
            correlation_id=invocation.correlation_id,
        )
    heap.after_call()  # what this call loaded lives as long as the process
    return response


def route_of(path: str, route_params: Mapping[str, str]) -> str:
    """The path with each route parameter's segment shown as `{name}`: a span name that does
    not grow with every workspace or operation id. Each parameter names one segment, the last
    that holds its value (parameters follow the fixed part of every route)."""
    segments = path.split("/")
    for name, value in route_params.items():
        for index in reversed(range(len(segments))):
            if value and segments[index] == value:
                segments[index] = f"{{{name}}}"
                break
    return "/".join(segments)


async def serve_document(
    req: func.HttpRequest, build: Callable[[], Rendered | dict[str, Any]]
) -> func.HttpResponse:
    """A public (anonymous) read-only route from a function of no arguments."""

    async def render_document(_: Invocation) -> Rendered:
        result = build()
        return result if isinstance(result, Rendered) else Rendered(200, result)

    return await handle(req, render_document, public=True)


async def serve_action(req: func.HttpRequest, family: RouteFamily) -> func.HttpResponse:
    """One action request of a route family: parse it, hand it to `service.perform`, render
    what came back."""

    async def perform(invocation: Invocation) -> Rendered:
        settings = get_settings()
        incoming = incoming_from(req)
        request = service.ActionRequest(
            operation_id=invocation.operation_id,
            route=family.kind,
            dry_run=dry_run_requested(incoming),
            commands=family.parse(incoming, settings),
            idempotency_key=idempotency_key(req),
            respond_async=prefers_async(req),
            sender=invocation.principal,
        )
        handled = await service.perform(request, Core.from_settings(settings))
        return _rendered(handled, family.render, req, settings, style=family.problem_style)

    return await handle(req, perform, problem_style=family.problem_style)


def _rendered(
    handled: service.Handled,
    render: Renderer,
    req: func.HttpRequest,
    settings: Settings,
    *,
    style: ProblemStyle = "problem",
) -> Rendered:
    match handled:
        case service.Pending(operation):
            location = status_location(operation.operation_id, req, settings)
            return rendering.accepted(operation.outcome(), location=location)
        case service.InProgress(operation):
            return rendering.in_progress(
                operation.operation_id, style, retry_after=rendering.POLL_AFTER_SECONDS
            )
        case service.Finished(outcome, recorded=True):
            return rendering.recorded(outcome, render)
        case service.Finished(outcome):
            return render(outcome)


def status_location(
    operation_id: str, req: func.HttpRequest, settings: Settings, *, now: datetime | None = None
) -> str:
    """Where to poll, absolute: the configured public base URL, else the platform's host name
    (never the request's Host header). With STATUS_LINK_SECRET set, the anonymous status route
    with a signed, expiring credential: a Logic App polls it as given, with no key or header.
    Unset, the operators' route, with the caller's `code` kept when it authenticated that way."""
    base = ""
    if settings.public_base_url is not None:
        base = str(settings.public_base_url).rstrip("/")
    elif settings.website_hostname is not None:
        base = f"https://{settings.website_hostname}"
    secret = settings.status_link_secret
    if secret is not None:
        moment = now or datetime.now(UTC)
        expires = int(moment.timestamp() + settings.idempotency_retention_hours * 3600)
        query = status_links.credential(secret.get_secret_value().encode(), operation_id, expires)
        return f"{base}/api/operations/{operation_id}/status?{urlencode(query)}"
    location = f"{base}/api/operations/{operation_id}"
    code = req.params.get("code")
    if code:
        location += "?" + urlencode({"code": code})
    return location


def idempotency_key(req: func.HttpRequest) -> str | None:
    value: str | None = req.headers.get("idempotency-key")
    if value is None:
        return None
    key = value.strip().strip('"')
    if not _IDEMPOTENCY_KEY.match(key):
        raise InvalidPayload(
            "Idempotency-Key must be 1 to 255 printable ASCII characters",
            errors={"Idempotency-Key": ["must be 1 to 255 printable ASCII characters"]},
        )
    if key.lower().startswith(RESERVED_KEY_PREFIXES):
        reserved = ", ".join(RESERVED_KEY_PREFIXES)
        raise InvalidPayload(
            f"Idempotency-Key may not start with a reserved prefix ({reserved})",
            errors={"Idempotency-Key": [f"may not start with {reserved}"]},
        )
    return key


def prefers_async(req: func.HttpRequest) -> bool:
    preferences = (req.headers.get("prefer") or "").lower().replace(" ", "")
    return "respond-async" in preferences.split(",")


async def serve_operation(req: func.HttpRequest) -> func.HttpResponse:
    """`GET operations/{operationId}` (function key): 202 while pending, then the final answer."""

    async def find(invocation: Invocation) -> Rendered:
        settings = get_settings()
        operation_id = req.route_params.get("operationId", "")
        if not _OPERATION_ID.match(operation_id):
            raise _not_found(operation_id)
        return await _operation_answer(operation_id, req, settings, reader=invocation.principal)

    return await handle(req, find)


async def serve_operation_status(
    req: func.HttpRequest, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> func.HttpResponse:
    """`GET operations/{operationId}/status?exp=&sig=` (anonymous): the operation, for a
    valid, unexpired status link only. An unknown id, a bad link and an expired one get the
    same 404, so a caller without a link cannot learn whether an id exists."""

    async def find(_: Invocation) -> Rendered:
        settings = get_settings()
        operation_id = req.route_params.get("operationId", "")
        secret = settings.status_link_secret
        if (
            secret is None
            or not _OPERATION_ID.match(operation_id)
            or not status_links.is_valid(
                secret.get_secret_value().encode(), operation_id, dict(req.params), now=clock()
            )
        ):
            raise _not_found(operation_id)
        return await _operation_answer(operation_id, req, settings)

    return await handle(req, find, public=True)


def _not_found(operation_id: str) -> OperationNotFound:
    return OperationNotFound(
        f"no operation {operation_id[:64]!r}", errors={"operationId": ["not found"]}
    )


async def _operation_answer(
    operation_id: str, req: func.HttpRequest, settings: Settings, *, reader: str | None = None
) -> Rendered:
    core = Core.from_settings(settings)
    operation = await service.find_operation(core, operation_id, reader=reader)
    if operation.skipped:
        return rendering.skipped(operation.outcome())
    return _rendered(service.as_handled(operation), rendering.canonical, req, settings)


async def serve_webhook(
    req: func.HttpRequest, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> func.HttpResponse:
    """`POST webhooks/contraforce`: verify, then queue (202), skip (200) or acknowledge a test."""

    from shared import webhooks  # noqa: PLC0415 - loaded with the first delivery

    async def receive(invocation: Invocation) -> Rendered:
        settings = get_settings()
        body = req.get_body()
        if len(body) > settings.max_body_bytes:
            raise PayloadTooLarge(f"body exceeds {settings.max_body_bytes} bytes (MAX_BODY_BYTES)")
        authorization = settings.contraforce_webhook_authorization
        delivery = webhooks.verify(
            dict(req.headers),
            body,
            secrets=settings.webhook_secrets(),
            now=clock(),
            authorization=authorization.get_secret_value() if authorization else None,
        )
        handled = await service.receive_delivery(
            delivery, Core.from_settings(settings), operation_id=invocation.operation_id
        )
        match handled:
            case service.Acknowledged(event_id):
                return rendering.delivery_acknowledged(event_id)
            case service.Skipped(operation, event_id):
                return rendering.delivery_skipped(
                    event_id=event_id,
                    operation_id=operation.operation_id,
                    reason=operation.header.reason,
                )
            case _:
                return _rendered(handled, rendering.canonical, req, settings)

    return await handle(req, receive)


async def serve_refusal(req: func.HttpRequest, exc: AppError) -> func.HttpResponse:
    """Answer a request that is refused before any action (e.g. an unknown action)."""

    async def refuse(_: Invocation) -> Rendered:
        raise exc

    return await handle(req, refuse)


def _path(url: str) -> str:
    return urlsplit(url).path
