"""The HTTP edge every action trigger shares: context → parse → run → answer; errors → problems.

The only module in `shared/` that knows `azure.functions`. Handlers in `functions/` call one
function here (`respond()` with the parser and renderer of their route family, or
`operation_status()`, `receive_webhook()`) and nothing else.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import azure.functions as func

from shared import actions, answers, durable, webhooks
from shared.answers import Answer, ProblemStyle, problem_answer
from shared.config import Settings, get_settings
from shared.context import Invocation, set_invocation
from shared.errors import AppError, InvalidPayload, NotFound, PayloadTooLarge
from shared.intake import Incoming, Parser, dry_run_requested, query_of
from shared.models.outcome import Outcome, OutcomeStatus
from shared.operations import OperationRecord, RouteKind
from shared.problems import from_error

logger = logging.getLogger(__name__)

Renderer = Callable[[Outcome], Answer]

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_OPERATION_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
POLL_AFTER_SECONDS = 5
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


def to_http(answer: Answer, invocation: Invocation, *, instance: str) -> func.HttpResponse:
    """The HTTP response. `X-Operation-Id` names the operation the answer is about: this
    request's, or the recorded one a repeat (or a poll) returns."""
    operation_id = answer.operation_id or invocation.operation_id
    body = answer.body
    if isinstance(body, dict) and answer.media_type.endswith("problem+json"):
        body = {**body, "instance": instance, "operationId": operation_id}
    headers = {
        **answer.headers,
        "X-Operation-Id": operation_id,
        "X-Correlation-Id": invocation.correlation_id,
    }
    return func.HttpResponse(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status_code=answer.status,
        headers=headers,
        mimetype=answer.media_type,
        charset="utf-8",
    )


def error_answer(exc: Exception, style: ProblemStyle) -> Answer:
    """Log and map an exception that reached the edge."""
    if isinstance(exc, AppError):
        logger.info("request refused: %s: %s", type(exc).__name__, exc.message)
    else:
        logger.error("unexpected error while handling a request", exc_info=exc)
    return problem_answer(from_error(exc), style)


def incoming_from(req: func.HttpRequest) -> Incoming:
    return Incoming(
        body=req.get_body(),
        content_type=req.headers.get("content-type"),
        route_params=dict(req.route_params),
        query=query_of(req.url),
    )


Work = Callable[[Invocation], Awaitable[Answer]]


async def answer(
    req: func.HttpRequest, work: Work, *, problem_style: ProblemStyle = "problem"
) -> func.HttpResponse:
    """The edge itself: set the invocation context, do the work, map any error to a problem."""
    invocation = invocation_for(req)
    set_invocation(invocation)
    try:
        result = await work(invocation)
    except Exception as exc:  # noqa: BLE001 - the edge: every error becomes a problem answer
        result = error_answer(exc, problem_style)
    return to_http(result, invocation, instance=_path(req.url))


async def answer_with(
    req: func.HttpRequest, build: Callable[[], Answer | dict[str, Any]]
) -> func.HttpResponse:
    """Answer a read-only route from a function of no arguments (a JSON document or an Answer)."""

    async def work(_: Invocation) -> Answer:
        result = build()
        return result if isinstance(result, Answer) else Answer(200, result)

    return await answer(req, work)


async def respond(
    req: func.HttpRequest,
    *,
    parse: Parser,
    render: Renderer,
    route: RouteKind,
    problem_style: ProblemStyle = "problem",
) -> func.HttpResponse:
    """Run one action request end to end and answer it.

    Synchronous by default. With `Prefer: respond-async` the request is queued and answered
    202 + Location; with an `Idempotency-Key` a repeat returns the first request's answer.
    """

    async def work(invocation: Invocation) -> Answer:
        settings = get_settings()
        incoming = incoming_from(req)
        dry_run = dry_run_requested(incoming)
        commands = parse(incoming, settings)
        key = idempotency_key(req)
        queued = prefers_async(req)
        if dry_run or (key is None and not queued):
            outcome = await actions.run(
                commands,
                settings=settings,
                operation_id=invocation.operation_id,
                dry_run=dry_run,
                caller=route,
            )
            return render(outcome)
        claim = await durable.submit(
            settings,
            operation_id=invocation.operation_id,
            route=route,
            commands=commands,
            key=key,
            enqueue=queued,
        )
        record = claim.record if queued else await durable.run_now(settings, claim)
        return _recorded(record, render, req.url)

    return await answer(req, work, problem_style=problem_style)


def _recorded(record: OperationRecord, render: Renderer, url: str) -> Answer:
    """A recorded operation's answer: its final answer, or 202 + Location while pending."""
    if record.final and record.outcome is not None:
        return replace(render(record.outcome), operation_id=record.operation_id)
    return accepted(record, url)


def accepted(record: OperationRecord, url: str) -> Answer:
    """202 + Location + Retry-After: the Logic Apps asynchronous polling pattern."""
    location = urljoin(url, f"/api/operations/{record.operation_id}")
    body = durable.pending_outcome(record).model_dump(mode="json", by_alias=True)
    headers = {"Location": location, "Retry-After": str(POLL_AFTER_SECONDS)}
    return Answer(202, body, headers=headers, operation_id=record.operation_id)


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
    return key


def prefers_async(req: func.HttpRequest) -> bool:
    preferences = (req.headers.get("prefer") or "").lower().replace(" ", "")
    return "respond-async" in preferences.split(",")


async def operation_status(req: func.HttpRequest) -> func.HttpResponse:
    """`GET operations/{operationId}`: 202 while pending, then the final answer."""

    async def work(_: Invocation) -> Answer:
        operation_id = req.route_params.get("operationId", "")
        record = None
        if _OPERATION_ID.match(operation_id):
            store = (await durable.store_for(get_settings()))[1]
            record = await store.get(operation_id)
        if record is None:
            raise NotFound(
                f"no operation {operation_id[:64]!r}", errors={"operationId": ["not found"]}
            )
        if record.status is OutcomeStatus.SKIPPED:
            outcome = durable.pending_outcome(record)
            return Answer(200, outcome.model_dump(mode="json", by_alias=True))
        return _recorded(record, answers.canonical, req.url)

    return await answer(req, work)


async def receive_webhook(
    req: func.HttpRequest, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> func.HttpResponse:
    """`POST webhooks/contraforce`: verify, then queue (202), skip (200) or acknowledge a test."""

    async def work(invocation: Invocation) -> Answer:
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
        return await _webhook_answer(settings, delivery, invocation.operation_id, req.url)

    return await answer(req, work)


async def _webhook_answer(
    settings: Settings, delivery: webhooks.Delivery, operation_id: str, url: str
) -> Answer:
    if delivery.is_test:
        logger.info(
            "webhook event=%s is a test delivery: verified, not acted on", delivery.event_id
        )
        return Answer(200, {"status": "acknowledged", "test": True, "eventId": delivery.event_id})
    decision = webhooks.decide(delivery, unlink_classifications=settings.unlink_classifications())
    key = f"contraforce-webhook:{delivery.event_id}"
    if decision.skipped is not None:
        claim = await durable.record_skipped(
            settings, operation_id=operation_id, key=key, reason=decision.skipped
        )
        logger.info("webhook event=%s skipped: %s", delivery.event_id, decision.skipped)
        return Answer(
            200,
            {
                "status": "skipped",
                "reason": claim.record.reason,
                "eventId": delivery.event_id,
                "operationId": claim.record.operation_id,
            },
        )
    claim = await durable.submit(
        settings,
        operation_id=operation_id,
        route="webhook",
        commands=decision.commands,
        key=key,
        enqueue=True,
    )
    return _recorded(claim.record, answers.canonical, url)


async def refuse(req: func.HttpRequest, exc: AppError) -> func.HttpResponse:
    """Answer a request that is refused before any action (e.g. an unknown action)."""

    async def work(_: Invocation) -> Answer:
        raise exc

    return await answer(req, work)


def _path(url: str) -> str:
    return urlsplit(url).path
