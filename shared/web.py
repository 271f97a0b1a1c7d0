"""The HTTP edge every action trigger shares: context → parse → run → answer; errors → problems.

The only module in `shared/` that knows `azure.functions`. Handlers in `functions/` call
`respond()` with the parser and renderer of their route family and nothing else.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

import azure.functions as func

from shared import actions
from shared.answers import Answer, ProblemStyle, problem_answer
from shared.config import Settings, get_settings
from shared.context import Invocation, set_invocation
from shared.errors import AppError
from shared.intake import Incoming, dry_run_requested
from shared.models.commands import Command
from shared.models.outcome import Outcome
from shared.problems import from_error

logger = logging.getLogger(__name__)

Parser = Callable[[Incoming, Settings], list[Command]]
Renderer = Callable[[Outcome], Answer]

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
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
    body = answer.body
    if isinstance(body, dict) and answer.media_type.endswith("problem+json"):
        body = {**body, "instance": instance, "operationId": invocation.operation_id}
    headers = {
        **answer.headers,
        "X-Operation-Id": invocation.operation_id,
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
        query=dict(req.params),
    )


async def respond(
    req: func.HttpRequest,
    *,
    parse: Parser,
    render: Renderer,
    problem_style: ProblemStyle = "problem",
) -> func.HttpResponse:
    """Run one action request end to end and answer it."""
    invocation = invocation_for(req)
    set_invocation(invocation)
    try:
        settings = get_settings()
        incoming = incoming_from(req)
        dry_run = dry_run_requested(incoming)
        commands = parse(incoming, settings)
        outcome = await actions.run(
            commands, settings=settings, operation_id=invocation.operation_id, dry_run=dry_run
        )
        answer = render(outcome)
    except Exception as exc:  # noqa: BLE001 - the edge: every error becomes a problem answer
        answer = error_answer(exc, problem_style)
    return to_http(answer, invocation, instance=_path(req.url))


def refuse(req: func.HttpRequest, exc: AppError) -> func.HttpResponse:
    """Answer a request that is refused before any action (e.g. an unknown action)."""
    invocation = invocation_for(req)
    return to_http(error_answer(exc, "problem"), invocation, instance=_path(req.url))


def _path(url: str) -> str:
    return urlsplit(url).path
