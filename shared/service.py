"""The use cases the HTTP edge calls, one function each: perform an action (run now, or record
and run or queue), receive a verified webhook delivery, find an operation. No HTTP here.

`perform()` is the only place that decides between the paths:
- a dry run, or a request with neither `Idempotency-Key` nor `Prefer: respond-async`, runs at
  once and is not recorded;
- a keyed request is recorded (once per key) and run in-process under a lease;
- an asynchronous request is recorded and queued.
Every path settles "nothing to do" by the same rule (`shared.actions.settle`).

The storage path (durable, records, lifecycle, storage, webhooks) is imported by the functions
that take it, on their first use: a direct call, the first call of most instances, never loads
it (tests/unit/test_cold_import.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from incident_link_api.commands import Command
from incident_link_api.outcome import Outcome
from shared import actions
from shared.clients.registry import Upstreams
from shared.config import Settings
from shared.errors import OperationNotFound

if TYPE_CHECKING:  # the storage path loads with its first use (a direct call never needs it)
    from shared import durable, webhooks
    from shared.durable import Operation, Steps
    from shared.lifecycle import RouteKind
    from shared.records import RecordStore
    from shared.storage import Storage

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ActionRequest:
    """One parsed action request, as the edge hands it over."""

    operation_id: str
    route: RouteKind
    commands: Sequence[Command]
    idempotency_key: str | None = None
    respond_async: bool = False
    dry_run: bool = False
    caller: str | None = None


@dataclass(frozen=True)
class Finished:
    """A final Outcome; `recorded` when it is a stored operation's (a repeat gets the same)."""

    outcome: Outcome
    recorded: bool = False


@dataclass(frozen=True)
class Pending:
    """Accepted, not finished: the caller polls `operations/{id}`."""

    operation: Operation


@dataclass(frozen=True)
class Acknowledged:
    """A verified test delivery: nothing recorded, nothing done."""

    event_id: str


@dataclass(frozen=True)
class Skipped:
    """A delivery the policy does not act on, recorded once per event."""

    operation: Operation
    event_id: str


Handled = Finished | Pending


def settled(operation: Operation) -> Handled:
    """A stored operation as the edge renders it: its final Outcome, or pending."""
    if operation.final:
        return Finished(operation.outcome(), recorded=True)
    return Pending(operation)


async def perform(
    request: ActionRequest,
    settings: Settings,
    *,
    upstreams: Upstreams | None = None,
    clock: Clock = _now,
    steps: Steps | None = None,
) -> Handled:
    """Run or record one action request; see the module docstring for which path it takes."""
    upstreams = upstreams or Upstreams.from_settings(settings)
    if request.dry_run or (request.idempotency_key is None and not request.respond_async):
        outcome = await actions.run(
            request.commands,
            upstreams=upstreams,
            settings=settings,
            operation_id=request.operation_id,
            dry_run=request.dry_run,
            caller=request.route,
        )
        return Finished(outcome)
    from shared import durable  # noqa: PLC0415 - the storage path, loaded on first use
    from shared.lifecycle import Held  # noqa: PLC0415
    from shared.records import caller_key_row, check_fits  # noqa: PLC0415

    check_fits(request.operation_id, request.commands, prefix="items")
    found, store = await durable.store_for(settings)
    keys = [caller_key_row(request.idempotency_key)] if request.idempotency_key else []
    claim = await durable.accept(
        store,
        operation_id=request.operation_id,
        route=request.route,
        commands=request.commands,
        keys=keys,
        caller=request.caller,
        now=clock(),
    )
    if request.respond_async:
        return settled(await _enqueue(found, store, claim, clock=clock))
    operation = claim.operation
    if not durable.runnable(operation, clock()):
        return settled(operation)
    try:
        operation = await durable.run_attempt(
            operation,
            store=store,
            upstreams=upstreams,
            settings=settings,
            caller="sync",
            clock=clock,
            steps=steps or durable.no_steps,
        )
    except Held:
        operation = await durable.read(store, operation.operation_id) or operation
    return settled(operation)


async def _enqueue(
    found: Storage, store: RecordStore, claim: durable.Claim, *, clock: Clock
) -> Operation:
    """Queue a new operation; queue a repeat again only if its work may have been lost."""
    from shared import durable, lifecycle  # noqa: PLC0415 - the storage path
    from shared.durable import Operation  # noqa: PLC0415
    from shared.records import Conflict  # noqa: PLC0415

    operation = claim.operation
    now = clock()
    if claim.existing and not _lost(operation, now):
        return operation
    if operation.final:  # failed transiently (poisoned): a repeat gives it a fresh budget
        header = lifecycle.reopen(
            operation.header, now=now, reason="queued again by a repeat of the request"
        )
        try:
            operation = Operation(await store.save_header(header), operation.commands)
        except Conflict:
            return await durable.read(store, operation.operation_id) or operation
    await durable.send_work(found, durable.QueuedWork.queued_here(operation.operation_id), delay=0)
    logger.info("operation=%s queued (repeat=%s)", operation.operation_id, claim.existing)
    return operation


def _lost(operation: Operation, now: datetime) -> bool:
    """Could this operation's queue message be gone? If it failed transiently (poisoned), if
    its runner died (lease expired), or if it never ran (the first send may have failed after
    the record was written). A duplicate message is harmless: runners lease."""
    header = operation.header
    if header.final:
        return header.retryable
    if header.lease_until is not None:
        return header.lease_until < now
    return header.attempts == 0


async def receive_delivery(
    delivery: webhooks.Delivery,
    settings: Settings,
    *,
    operation_id: str,
    clock: Clock = _now,
) -> Handled | Acknowledged | Skipped:
    """A verified ContraForce delivery: acknowledged (test), recorded as skipped, or queued.
    Deduplicated on its event id *and* on its signed content, so a replay under a new event
    id never acts twice."""
    from shared import durable, webhooks  # noqa: PLC0415 - the storage path
    from shared.records import webhook_key_rows  # noqa: PLC0415

    decision = webhooks.decide(delivery, unlink_classifications=settings.unlink_classifications())
    if decision.is_test:
        logger.info(
            "webhook event=%s is a test delivery: verified, not acted on", delivery.event_id
        )
        return Acknowledged(delivery.event_id)
    found, store = await durable.store_for(settings)
    keys = webhook_key_rows(delivery.event_id, delivery.signed_content)
    if decision.skipped is not None:
        claim = await durable.accept(
            store,
            operation_id=operation_id,
            route="webhook",
            commands=(),
            keys=keys,
            caller="contraforce-webhook",
            now=clock(),
            skipped=decision.skipped,
        )
        logger.info("webhook event=%s skipped: %s", delivery.event_id, decision.skipped)
        return Skipped(claim.operation, delivery.event_id)
    claim = await durable.accept(
        store,
        operation_id=operation_id,
        route="webhook",
        commands=decision.commands,
        keys=keys,
        caller="contraforce-webhook",
        now=clock(),
    )
    return settled(await _enqueue(found, store, claim, clock=clock))


async def find_operation(settings: Settings, operation_id: str) -> Operation:
    """The stored operation, or `OperationNotFound`."""
    from shared import durable  # noqa: PLC0415 - the storage path

    _, store = await durable.store_for(settings)
    operation = await durable.read(store, operation_id)
    if operation is None:
        raise OperationNotFound(
            f"no operation {operation_id[:64]!r}", errors={"operationId": ["not found"]}
        )
    return operation


async def process_message(
    settings: Settings,
    message: str,
    *,
    dequeue_count: int,
    upstreams: Upstreams | None = None,
    clock: Clock = _now,
    steps: Steps | None = None,
) -> Operation | None:
    """The queue worker's use case."""
    from shared import durable  # noqa: PLC0415 - the storage path

    return await durable.process_message(
        settings,
        message,
        upstreams=upstreams or Upstreams.from_settings(settings),
        dequeue_count=dequeue_count,
        clock=clock,
        steps=steps or durable.no_steps,
    )
