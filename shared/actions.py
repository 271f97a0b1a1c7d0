"""`run(commands) -> Outcome`: the only place that decides what an action does and means.

Each command becomes one upstream call; each call becomes one or more item results:
- ContraForce `data: true` → succeeded; `data: false` (or missing) → not_applied, never a success.
- D3 returns one answer per command: each requested incident is its own item; an incident in
  `ErrorData` is not_applied with D3's own message; `Status: Failed` or a non-empty `error`
  fails the rest. *Partially Successful* therefore becomes `partially_succeeded`.
- An upstream error becomes a failed item carrying the upstream's status, code and requestId.
Commands run with bounded concurrency (`BULK_CONCURRENCY`); clients pace requests themselves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from shared.clients import registry
from shared.config import Settings
from shared.context import current_invocation
from shared.errors import Upstream, UpstreamError
from shared.models.commands import Action, Command, RemoveLinkedIncidents, UnlinkTicket
from shared.models.outcome import (
    ItemError,
    ItemResult,
    ItemStatus,
    Outcome,
    UpstreamInfo,
    VendorReply,
)
from shared.problems import item_error

logger = logging.getLogger(__name__)

D3_SUCCESS_STATUSES = frozenset({"successful", "partially successful"})


def action_of(command: Command) -> Action:
    return command.kind


def upstream_of(command: Command) -> Upstream:
    return "contraforce" if isinstance(command, UnlinkTicket) else "d3"


async def run(
    commands: Sequence[Command],
    *,
    settings: Settings,
    operation_id: str,
    dry_run: bool = False,
    caller: str = "direct",
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Outcome:
    """Run every command (or, with `dry_run`, only describe its upstream request)."""
    if not commands:
        raise ValueError("run() needs at least one command")
    started = clock()
    gate = asyncio.Semaphore(settings.bulk_concurrency)

    async def one(command: Command) -> _Ran:
        async with gate:
            if dry_run:
                return _plan(command, settings)
            return await _execute(command, settings)

    ran = await asyncio.gather(*(one(command) for command in commands))
    items = tuple(
        item.model_copy(update={"index": index})
        for index, result in enumerate(ran)
        for item in result.items
    )
    replies = tuple(result.reply for result in ran if result.reply is not None)
    single = ran[0].items[0].upstream if len(commands) == 1 and ran[0].items else None
    outcome = Outcome(
        operation_id=operation_id,
        action=action_of(commands[0]),
        status=Outcome.status_of(items),
        items=items,
        upstream=single or UpstreamInfo(name=upstream_of(commands[0])),
        attempts=sum(result.attempts for result in ran),
        dry_run=dry_run,
        started_at=started,
        finished_at=clock(),
        replies=replies,
    )
    _log(outcome, caller=caller, upstream=upstream_of(commands[0]))
    return outcome


def _log(outcome: Outcome, *, caller: str, upstream: str) -> None:
    """One structured line per action: what a SOC engineer greps for. Never a secret."""
    invocation = current_invocation()
    request_ids = sorted(
        {i.upstream.request_id for i in outcome.items if i.upstream and i.upstream.request_id}
    )
    elapsed = (
        (outcome.finished_at - outcome.started_at).total_seconds() * 1000
        if outcome.finished_at
        else 0.0
    )
    logger.info(
        "action operation=%s correlation=%s caller=%s action=%s upstream=%s items=%d "
        "status=%s attempts=%d upstream_request_ids=%s duration_ms=%.0f dry_run=%s",
        outcome.operation_id,
        invocation.correlation_id if invocation else outcome.operation_id,
        caller,
        outcome.action,
        upstream,
        len(outcome.items),
        outcome.status.value,
        outcome.attempts,
        ",".join(request_ids) or "-",
        elapsed,
        outcome.dry_run,
    )


class _Ran:
    """What one command produced: its items, the upstream's reply if any, attempts."""

    __slots__ = ("attempts", "items", "reply")

    def __init__(
        self, items: list[ItemResult], *, reply: VendorReply | None = None, attempts: int = 0
    ) -> None:
        self.items = items
        self.reply = reply
        self.attempts = attempts


def targets(command: Command) -> list[str]:
    """The item targets one command produces, in order."""
    if isinstance(command, UnlinkTicket):
        return [command.target]
    return [f"{command.source_incident}/{linked}" for linked in command.linked_incidents]


def _plan(command: Command, settings: Settings) -> _Ran:
    if isinstance(command, UnlinkTicket):
        cf = registry.contraforce(settings)
        request = cf.describe(cf.prepare_unlink(command))
    else:
        d3 = registry.d3(settings)
        request = d3.describe(d3.prepare_remove(command))
    return _Ran(
        [
            ItemResult(target=target, status=ItemStatus.PLANNED, request=request)
            for target in targets(command)
        ]
    )


async def _execute(command: Command, settings: Settings) -> _Ran:
    try:
        if isinstance(command, UnlinkTicket):
            return await _unlink_ticket(command, settings)
        return await _remove_linked_incidents(command, settings)
    except UpstreamError as exc:
        error = _for_caller(item_error(exc), command, settings)
        logger.warning(
            "upstream=%s failed kind=%s status=%s code=%s request_id=%s attempts=%d",
            exc.upstream,
            error.kind,
            error.upstream_status,
            error.code,
            error.request_id,
            exc.attempts,
        )
        upstream = UpstreamInfo(
            name=exc.upstream, status=error.upstream_status, request_id=error.request_id
        )
        return _Ran(
            [
                ItemResult(
                    target=target,
                    status=ItemStatus.FAILED,
                    message=error.message,
                    upstream=upstream,
                    attempts=exc.attempts,
                    error=error,
                )
                for target in targets(command)
            ],
            attempts=exc.attempts,
        )


def _for_caller(error: ItemError, command: Command, settings: Settings) -> ItemError:
    """D3 checks the body's Username and Site against the key or token. When the caller chose
    a user or site other than the configured ones, D3's 401 refuses *that* identity, not our
    credentials: the caller's request is what must change (403), not the app's settings."""
    if error.kind != "auth_rejected" or not isinstance(command, RemoveLinkedIncidents):
        return error
    if (command.username, command.site) == (settings.d3_default_username, settings.d3_default_site):
        return error
    return error.model_copy(
        update={
            "kind": "rejected",
            "upstream_status": 403,
            "code": "UPSTREAM_USER_REFUSED",
            "message": f"D3 refused Username {command.username!r} on Site {command.site!r} "
            f"({error.message}); the configured credential must be allowed for that user and site",
        }
    )


async def _unlink_ticket(command: UnlinkTicket, settings: Settings) -> _Ran:
    answer = await registry.contraforce(settings).unlink_ticket(command)
    upstream = UpstreamInfo(name="contraforce", status=answer.status, request_id=answer.request_id)
    if answer.reply.data is True:
        item = ItemResult(
            target=command.target,
            status=ItemStatus.SUCCEEDED,
            message="service ticket unlinked",
            upstream=upstream,
            attempts=answer.attempts,
        )
    else:
        message = (
            f"ContraForce answered data={str(answer.reply.data).lower()}: no service ticket "
            "was unlinked (the incident may have none linked)"
        )
        item = ItemResult(
            target=command.target,
            status=ItemStatus.NOT_APPLIED,
            message=message,
            upstream=upstream,
            attempts=answer.attempts,
            error=ItemError(
                kind="not_applied",
                message=message,
                upstream_status=answer.status,
                request_id=answer.request_id,
            ),
        )
    return _Ran([item], reply=answer.reply, attempts=answer.attempts)


async def _remove_linked_incidents(command: RemoveLinkedIncidents, settings: Settings) -> _Ran:
    answer = await registry.d3(settings).remove_linked_incidents(command)
    reply = answer.reply
    data = reply.return_data
    d3_status = (data.status if data else None) or ""
    per_incident = (
        {item.incident_number.strip(): item.error_message for item in (data.error_data or [])}
        if data
        else {}
    )
    overall_failure = reply.error or (
        None
        if d3_status.strip().lower() in D3_SUCCESS_STATUSES
        else f"D3 reported Status {d3_status!r}"
    )
    upstream = UpstreamInfo(name="d3", status=answer.status)
    items = []
    for linked in command.linked_incidents:
        failure = per_incident.get(linked) or overall_failure
        target = f"{command.source_incident}/{linked}"
        if failure is None:
            items.append(
                ItemResult(
                    target=target,
                    status=ItemStatus.SUCCEEDED,
                    message="link removed",
                    upstream=upstream,
                    attempts=answer.attempts,
                )
            )
            continue
        items.append(
            ItemResult(
                target=target,
                status=ItemStatus.NOT_APPLIED,
                message=failure,
                upstream=upstream,
                attempts=answer.attempts,
                error=ItemError(kind="not_applied", message=failure, upstream_status=answer.status),
            )
        )
    return _Ran(items, reply=reply, attempts=answer.attempts)
