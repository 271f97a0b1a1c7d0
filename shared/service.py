"""The use cases the HTTP edge calls, one function each: perform an action (run now, or record
and run or queue), receive a verified webhook delivery, find an operation. No HTTP here.

`perform()` is the only place that decides between the paths:
- a dry run, or a request with neither `Idempotency-Key` nor `Prefer: respond-async`, runs at
  once and is not recorded;
- a keyed request is recorded (once per key) and run in-process under a lease;
- an asynchronous request is recorded and queued.
Every path settles "nothing to do" by the same rule (`shared.actions.settle`).

A keyed repeat that meets its first request still running is `Pending` (the edge answers 202 +
Location) on a canonical route. A mirror route's caller was written for a vendor that never
answers 202: its repeat waits, bounded (`DUPLICATE_WAIT_SECONDS`, and never past the first
run's lease), for the first to finish and answers the same way, else it is `InProgress`, which
the edge answers with the vendor-shaped 409 + Retry-After.

Each use case takes the `Core` the edge hands in (settings, upstream clients, storage, clock).
The storage path (durable, lifecycle, webhooks, the Azure SDK) is imported by the functions that
take it, on their first use: a direct call, the first call of most instances, never loads it
(tests/unit/test_cold_import.py). The queue worker is `shared.durable.worker`, called directly.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from incident_link_api.commands import Command
from incident_link_api.outcome import Outcome
from shared import actions
from shared.core import Core
from shared.errors import OperationNotFound

if TYPE_CHECKING:  # the storage path loads with its first use (a direct call never needs it)
    from shared import webhooks
    from shared.durable.attempt import Steps
    from shared.durable.operations import Claim, Operation
    from shared.durable.store import RecordStore
    from shared.routes import RouteKind
    from shared.storage import Storage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActionRequest:
    """One parsed action request, as the edge hands it over."""

    operation_id: str
    route: RouteKind
    commands: Sequence[Command]
    idempotency_key: str | None = None
    respond_async: bool = False
    dry_run: bool = False
    sender: str | None = None  # the Entra principal behind App Service Authentication, if any


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


@dataclass(frozen=True)
class InProgress:
    """A mirror route's repeat whose first request was still running when the wait ended:
    the caller retries (a vendor-shaped 409 + Retry-After), never polls."""

    operation: Operation


Handled = Finished | Pending | InProgress
WEBHOOK_SENDER = "contraforce-webhook"  # how an operation record names a webhook's sender
# Mirror routes: how long a repeat waits for its first request at most, and how often it looks.
MIRROR_ROUTES = frozenset({"contraforce_mirror", "d3_mirror"})
DUPLICATE_WAIT_SECONDS = 10.0
DUPLICATE_POLL_SECONDS = 0.25


def as_handled(operation: Operation) -> Handled:
    """A stored operation as the edge renders it: its final Outcome, or pending."""
    if operation.final:
        return Finished(operation.outcome(), recorded=True)
    return Pending(operation)


async def perform(request: ActionRequest, core: Core, *, steps: Steps | None = None) -> Handled:
    """Run or record one action request; see the module docstring for which path it takes."""
    settings = core.settings
    if request.dry_run or (request.idempotency_key is None and not request.respond_async):
        outcome = await actions.run(
            request.commands,
            upstreams=core.upstreams,
            settings=settings,
            operation_id=request.operation_id,
            dry_run=request.dry_run,
            route=request.route,
        )
        return Finished(outcome)
    from shared import lifecycle  # noqa: PLC0415 - the storage path, loaded on first use
    from shared.durable import attempt, operations  # noqa: PLC0415
    from shared.durable.entities import check_fits  # noqa: PLC0415
    from shared.durable.store import caller_key_row  # noqa: PLC0415
    from shared.lifecycle import LeaseHeld, Move  # noqa: PLC0415

    check_fits(request.operation_id, request.commands, prefix="items")
    storage = await core.open_storage()
    store = operations.record_store(storage, settings)
    # Before the record: if this host dies at any point after it, the message resumes it.
    await attempt.send_recovery(storage, request.operation_id, settings)
    keys = (
        [caller_key_row(scoped_key(request.idempotency_key, request.sender))]
        if request.idempotency_key
        else []
    )
    claim = await operations.accept(
        store,
        operation_id=request.operation_id,
        route=request.route,
        commands=request.commands,
        keys=keys,
        sender=request.sender,
        now=core.clock(),
    )
    if request.respond_async:
        return as_handled(await _enqueue(storage, store, claim, core))
    operation = claim.operation
    if not lifecycle.allowed(Move.LEASE, operation.header, core.clock()):
        return await _sync_answer(request, operation, core)
    try:
        operation = await attempt.run_attempt(
            operation,
            store=store,
            upstreams=core.upstreams,
            settings=settings,
            watch=storage if claim.existing else None,  # a new one has its message already
            mode="sync",
            clock=core.clock,
            steps=steps or attempt.no_steps,
        )
    except LeaseHeld:
        operation = await operations.read(store, operation.operation_id) or operation
    return await _sync_answer(request, operation, core)


async def _sync_answer(request: ActionRequest, operation: Operation, core: Core) -> Handled:
    """A synchronous keyed request's answer; on a mirror route, a first request still running
    is waited for (see the module docstring)."""
    if operation.final or request.route not in MIRROR_ROUTES:
        return as_handled(operation)
    wait = DUPLICATE_WAIT_SECONDS
    if operation.header.lease_until is not None:
        wait = min(wait, (operation.header.lease_until - core.clock()).total_seconds())
    for _ in range(max(0, math.ceil(wait / DUPLICATE_POLL_SECONDS))):
        await asyncio.sleep(DUPLICATE_POLL_SECONDS)
        operation = await find_operation(core, operation.operation_id)
        if operation.final:
            return as_handled(operation)
    return InProgress(operation)


async def _enqueue(storage: Storage, store: RecordStore, claim: Claim, core: Core) -> Operation:
    """Queue a new operation; queue a repeat again only if its work may have been lost."""
    from shared import lifecycle  # noqa: PLC0415 - the storage path
    from shared.durable import operations, work  # noqa: PLC0415
    from shared.durable.operations import Operation  # noqa: PLC0415
    from shared.durable.store import Conflict  # noqa: PLC0415
    from shared.lifecycle import Phase  # noqa: PLC0415

    operation = claim.operation
    now = core.clock()
    current = lifecycle.phase(operation.header, now)
    # A repeat is queued again only if its work may be gone: poisoned, or a lost run (lease
    # expired, or never ran). A duplicate message is harmless: runners lease.
    lost = current is Phase.POISONED or lifecycle.recoverable(operation.header, now)
    if claim.existing and not lost:
        return operation
    if current is Phase.POISONED:  # failed transiently: a repeat gives it a fresh budget
        header = lifecycle.reopen(
            operation.header, now=now, reason="queued again by a repeat of the request"
        )
        try:
            operation = Operation(await store.save_header(header), operation.commands)
        except Conflict:
            return await operations.read(store, operation.operation_id) or operation
    await work.send_work(storage, work.QueuedWork.queued_here(operation.operation_id), delay=0)
    logger.info("operation=%s queued (repeat=%s)", operation.operation_id, claim.existing)
    return operation


async def receive_delivery(
    delivery: webhooks.Delivery, core: Core, *, operation_id: str
) -> Handled | Acknowledged | Skipped:
    """A verified ContraForce delivery: acknowledged (test), recorded as skipped, or queued.
    Deduplicated on its event id *and* on its signed content, so a replay under a new event
    id never acts twice."""
    from shared import webhooks  # noqa: PLC0415 - the storage path
    from shared.durable import attempt, operations  # noqa: PLC0415
    from shared.durable.store import webhook_key_rows  # noqa: PLC0415

    decision = webhooks.decide(
        delivery, unlink_classifications=core.settings.unlink_classifications()
    )
    if decision.is_test:
        logger.info(
            "webhook event=%s is a test delivery: verified, not acted on", delivery.event_id
        )
        return Acknowledged(delivery.event_id)
    storage = await core.open_storage()
    store = operations.record_store(storage, core.settings)
    if decision.skipped is None:  # before the record: resumes it if this host dies after
        await attempt.send_recovery(storage, operation_id, core.settings)
    keys = webhook_key_rows(delivery.event_id, delivery.signed_content)
    claim = await operations.accept(
        store,
        operation_id=operation_id,
        route="webhook",
        commands=decision.commands,
        keys=keys,
        sender=WEBHOOK_SENDER,
        now=core.clock(),
        skipped=decision.skipped,
    )
    if decision.skipped is not None:
        logger.info("webhook event=%s skipped: %s", delivery.event_id, decision.skipped)
        return Skipped(claim.operation, delivery.event_id)
    return as_handled(await _enqueue(storage, store, claim, core))


def scoped_key(key: str, sender: str | None) -> str:
    """The key as its caller's own: an Entra principal's keys are its alone; callers with only a
    function key share one space, the one every key was in before keys were scoped (so their
    records still answer a repeat). A caller's key is printable ASCII: no NUL to collide with."""
    return key if sender is None else f"{sender}\0{key}"


async def find_operation(core: Core, operation_id: str, *, reader: str | None = None) -> Operation:
    """The stored operation, or `OperationNotFound`. An Entra principal (`reader`) finds only
    the operations it sent; without one (a function key, a valid status link) any is found."""
    from shared.durable import operations  # noqa: PLC0415 - the storage path

    store = operations.record_store(await core.open_storage(), core.settings)
    operation = await operations.read(store, operation_id)
    if operation is None or (reader is not None and operation.header.sender != reader):
        raise OperationNotFound(
            f"no operation {operation_id[:64]!r}", errors={"operationId": ["not found"]}
        )
    return operation
