"""`run(commands) -> Outcome`: the only place that decides what an action does and means.

Each command becomes one upstream call (`run_command`); each call becomes one or more items:
- ContraForce `data: true` → succeeded; `data: false` (or missing) → "nothing to do".
- D3 returns one answer per command: each requested incident is its own item; an incident in
  `ErrorData` is "nothing to do" with D3's own message; `Status: Failed` or a non-empty `error`
  is not_applied for the rest. *Partially Successful* therefore becomes `partially_succeeded`.
- "Nothing to do" is not_applied, except after an ambiguous earlier send of the same command
  (`settle`, the one rule every path uses; see `shared.lifecycle`): then it is a success marked
  `inferred`, so a caller can tell it from a confirmed one.
- An upstream error becomes a failed item carrying the upstream's status, code and requestId;
  when no usable answer came after a send that may have acted, the item is `unknown`
  (`OUTCOME_UNKNOWN`, `outcome_unknown`): it may have happened, and a repeat of the same command
  (keyed or replayed) finds out without acting twice.
Commands run with bounded concurrency (`BULK_CONCURRENCY`); clients pace requests themselves.
The clients come in as `Upstreams`, so the core runs on any transport.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from incident_link_api.base import Upstream
from incident_link_api.commands import Action, Command, RemoveLinkedIncidents, UnlinkTicket
from incident_link_api.outcome import (
    OUTCOME_UNKNOWN,
    ItemError,
    ItemResult,
    ItemStatus,
    Outcome,
    UpstreamInfo,
    VendorReply,
)
from shared import telemetry
from shared.clients.registry import Upstreams
from shared.config import Settings
from shared.context import current_invocation
from shared.errors import UpstreamError, UpstreamUnavailable
from shared.logsafe import clip
from shared.problems import item_error

logger = logging.getLogger(__name__)

D3_SUCCESS_STATUSES = frozenset({"successful", "partially successful"})
NOTHING_TO_DO = "NOTHING_TO_DO"  # ItemError.code of an answer that says there was nothing to undo


def upstream_of(command: Command) -> Upstream:
    return "contraforce" if isinstance(command, UnlinkTicket) else "d3"


async def run(
    commands: Sequence[Command],
    *,
    upstreams: Upstreams,
    settings: Settings,
    operation_id: str,
    dry_run: bool = False,
    route: str = "direct",
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Outcome:
    """Run every command (or, with `dry_run`, only describe its upstream request)."""
    if not commands:
        raise ValueError("run() needs at least one command")
    started = clock()
    gate = asyncio.Semaphore(settings.bulk_concurrency)

    async def run_gated(command: Command) -> CommandRun:
        async with gate:
            if dry_run:
                return _plan(command, upstreams)
            return await run_command(command, upstreams, settings=settings)

    if len(commands) == 1:  # most calls: no tasks to gather
        ran = [await run_gated(commands[0])]
    else:
        ran = await asyncio.gather(*(run_gated(command) for command in commands))
    outcome = outcome_of(
        [(index, result.items) for index, result in enumerate(ran)],
        operation_id=operation_id,
        action=commands[0].action,
        upstream=upstream_of(commands[0]),
        attempts=sum(result.attempts for result in ran),
        started_at=started,
        finished_at=clock(),
        replies=tuple(result.reply for result in ran if result.reply is not None),
        dry_run=dry_run,
    )
    log_outcome(outcome, route=route, upstream=upstream_of(commands[0]))
    return outcome


def outcome_of(
    results: Sequence[tuple[int, Sequence[ItemResult]]],
    *,
    operation_id: str,
    action: Action | None,
    upstream: Upstream,
    attempts: int,
    started_at: datetime,
    finished_at: datetime | None,
    replies: tuple[VendorReply, ...] = (),
    dry_run: bool = False,
    reason: str | None = None,
) -> Outcome:
    """The Outcome of commands' items, each item numbered by its command's index."""
    items = tuple(
        item if item.index == index else item.model_copy(update={"index": index})
        for index, group in results
        for item in group
    )
    single = items[0].upstream if len(results) == 1 and len(items) == 1 else None
    return Outcome(
        operation_id=operation_id,
        action=action,
        status=Outcome.status_of(items),
        items=items,
        upstream=single or UpstreamInfo(name=upstream),
        attempts=attempts,
        dry_run=dry_run,
        started_at=started_at,
        finished_at=finished_at,
        reason=reason,
        replies=replies,
    )


def log_outcome(outcome: Outcome, *, route: str, mode: str | None = None, upstream: str) -> None:
    """One structured line per action: what a SOC engineer greps for. Never a secret.

    The line's fields are also its attributes (`ila.*`, customDimensions in Application
    Insights), and a finished action that was not a dry run counts in the actions metric.
    Its `caller` field (`ila.caller`, the metric's `caller`) is the route kind, and for a
    recorded operation how its attempt ran: `canonical`, `webhook:queued`, `d3_mirror:sync`."""
    caller = route if mode is None else f"{route}:{mode}"
    invocation = current_invocation()
    correlation_id = invocation.correlation_id if invocation else outcome.operation_id
    request_ids = sorted(  # the upstream's strings: escaped and clipped, like any untrusted
        {
            clip(i.upstream.request_id, 80)
            for i in outcome.items
            if i.upstream and i.upstream.request_id
        }
    )
    elapsed = (
        (outcome.finished_at - outcome.started_at).total_seconds() * 1000
        if outcome.finished_at
        else 0.0
    )
    action = outcome.action or "-"
    logger.info(
        "action operation=%s correlation=%s caller=%s action=%s upstream=%s items=%d "
        "status=%s attempts=%d upstream_request_ids=%s duration_ms=%.0f dry_run=%s",
        outcome.operation_id,
        correlation_id,
        caller,
        outcome.action,
        upstream,
        len(outcome.items),
        outcome.status.value,
        outcome.attempts,
        clip(",".join(request_ids), 2000) if request_ids else "-",
        elapsed,
        outcome.dry_run,
        extra={
            "ila.event": "action",
            "ila.operation_id": outcome.operation_id,
            "ila.correlation_id": correlation_id,
            "ila.caller": caller,
            "ila.action": action,
            "ila.upstream": upstream,
            "ila.status": outcome.status.value,
            "ila.attempts": outcome.attempts,
        },
    )
    if not outcome.dry_run and outcome.status.final:
        telemetry.record_action(action, outcome.status.value, caller=caller)


@dataclass(frozen=True)
class CommandRun:
    """What one command produced: its items, the upstream's reply if any, and attempts."""

    items: tuple[ItemResult, ...]
    reply: VendorReply | None = None
    attempts: int = 0
    may_have_acted: bool = False  # a send went out and lost its answer: it may have acted

    @property
    def transient(self) -> bool:
        """No usable answer (unavailable): running the command again may succeed."""
        return any(i.error is not None and i.error.kind == "unavailable" for i in self.items)

    @property
    def retry_after(self) -> float | None:
        waits = [i.error.retry_after for i in self.items if i.error and i.error.retry_after]
        return max(waits) if waits else None


def settle(items: Sequence[ItemResult], *, ambiguous: bool) -> tuple[ItemResult, ...]:
    """The one rule for "nothing to do": a success only after an ambiguous earlier send of the
    same command (its effect may have happened and its answer was lost); else not_applied."""
    if not ambiguous:
        return tuple(items)
    return tuple(
        item.model_copy(
            update={
                "status": ItemStatus.SUCCEEDED,
                "message": "inferred: done by an earlier send of this command whose answer was "
                f"lost (the upstream now answers: {item.message})",
                "inferred": True,
                "error": None,
            }
        )
        if item.error is not None and item.error.code == NOTHING_TO_DO
        else item
        for item in items
    )


def outcome_unknown(items: Sequence[ItemResult]) -> tuple[ItemResult, ...]:
    """The items of a command with no usable answer after a send that may have acted:
    `unknown`, not failed or pending, for it may have happened. Answered items stay as they
    are."""
    return tuple(_unknown(item) if _unanswered(item) else item for item in items)


def _unanswered(item: ItemResult) -> bool:
    return item.status in {ItemStatus.FAILED, ItemStatus.UNKNOWN, ItemStatus.PENDING} and (
        item.error is None or item.error.kind == "unavailable"
    )


def _unknown(item: ItemResult) -> ItemResult:
    cause = item.error.message if item.error is not None else "no answer recorded"
    message = (
        "outcome unknown: a send of this command may have acted upstream and its answer was "
        f"lost ({cause}); it may have happened"
    )
    error = (item.error or ItemError(kind="unavailable", message=message)).model_copy(
        update={"message": message, "code": OUTCOME_UNKNOWN}
    )
    return item.model_copy(
        update={"status": ItemStatus.UNKNOWN, "message": message, "error": error}
    )


async def run_command(
    command: Command, upstreams: Upstreams, *, settings: Settings, ambiguous: bool = False
) -> CommandRun:
    """Send one command and settle its answer. `ambiguous`: an earlier attempt (recorded by
    the durable core) sent it and lost the answer."""
    ran = await _execute(command, upstreams, settings)
    items = settle(ran.items, ambiguous=ambiguous or ran.may_have_acted)
    return CommandRun(items, ran.reply, ran.attempts, ran.may_have_acted)


def targets(command: Command) -> list[str]:
    """The item targets one command produces, in order."""
    if isinstance(command, UnlinkTicket):
        return [command.target]
    return [f"{command.source_incident}/{linked}" for linked in command.linked_incidents]


def _plan(command: Command, upstreams: Upstreams) -> CommandRun:
    if isinstance(command, UnlinkTicket):
        cf = upstreams.contraforce()
        request = cf.describe(cf.prepare_unlink(command))
    else:
        d3 = upstreams.d3()
        request = d3.describe(d3.prepare_remove(command))
    # One request per command, shown once: on its first item. The others point at it, so a
    # dry run's answer grows with the request, not with its square (100 linked incidents
    # would otherwise repeat a 100-number body 100 times).
    first, *rest = targets(command)
    return CommandRun(
        (
            ItemResult(target=first, status=ItemStatus.PLANNED, request=request),
            *(
                ItemResult(
                    target=target,
                    status=ItemStatus.PLANNED,
                    message=f"planned: in the same upstream request as {first}",
                )
                for target in rest
            ),
        )
    )


async def _execute(command: Command, upstreams: Upstreams, settings: Settings) -> CommandRun:
    try:
        if isinstance(command, UnlinkTicket):
            return await _unlink_ticket(command, upstreams)
        return await _remove_linked_incidents(command, upstreams)
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
        items = tuple(
            ItemResult(
                target=target,
                status=ItemStatus.FAILED,
                message=error.message,
                upstream=upstream,
                attempts=exc.attempts,
                error=error,
            )
            for target in targets(command)
        )
        may_have_acted = isinstance(exc, UpstreamUnavailable) and exc.may_have_acted
        return CommandRun(
            outcome_unknown(items) if may_have_acted else items,
            attempts=exc.attempts,
            may_have_acted=may_have_acted,
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


async def _unlink_ticket(command: UnlinkTicket, upstreams: Upstreams) -> CommandRun:
    answer = await upstreams.contraforce().unlink_ticket(command)
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
                code=NOTHING_TO_DO,
                upstream_status=answer.status,
                request_id=answer.request_id,
            ),
        )
    return CommandRun((item,), answer.reply, answer.attempts, answer.may_have_acted)


async def _remove_linked_incidents(
    command: RemoveLinkedIncidents, upstreams: Upstreams
) -> CommandRun:
    answer = await upstreams.d3().remove_linked_incidents(command)
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
        not_linked = per_incident.get(linked)
        failure = not_linked or overall_failure
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
                error=ItemError(
                    kind="not_applied",
                    message=failure,
                    code=NOTHING_TO_DO if not_linked else None,
                    upstream_status=answer.status,
                ),
            )
        )
    return CommandRun(tuple(items), reply, answer.attempts, answer.may_have_acted)
