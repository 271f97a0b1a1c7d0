"""One attempt at an operation: lease it, keep the lease alive while work runs, mark each
command SENT before its request leaves and ANSWERED once its answer is stored, then record the
operation (final, or poisoned) or requeue it.

A transient failure is queued again after the upstream's `Retry-After` (or a backoff), at most
`QUEUE_MAX_ATTEMPTS` attempts; then the work goes to the poison queue with the reason on the
operation. A permanent failure (4xx) is final at once. Without a queue (the synchronous path),
a transient failure is recorded poisoned at once: a repeat of the request runs it again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

import stamina

from incident_link_api.outcome import Outcome
from shared import actions, lifecycle, retrying, telemetry
from shared.clients.registry import Upstreams
from shared.config import Settings
from shared.durable.operations import Operation, items_of, read
from shared.durable.store import Conflict, RecordStore
from shared.durable.work import QueuedWork, send_work
from shared.errors import StoreUnavailable
from shared.lifecycle import CommandMark, CommandRow, LeaseHeld, OperationHeader
from shared.storage import Storage

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# A step of a run: "leased", "sent" (marked, before the request leaves), "answered" (the
# upstream answered, not yet stored), "stored" (the answer is stored), "recorded".
Steps = Callable[[str], Awaitable[None]]
# How the attempt was started: in the request that asked for it, or by the queue worker.
Mode = Literal["sync", "queued"]
LEASE_MARGIN_SECONDS = 5.0
# How long after a lease runs out its recovery message becomes visible: enough for the
# lease's holder, if it lives, to have recorded or renewed.
RECOVERY_MARGIN_SECONDS = 10.0


def _now() -> datetime:
    return datetime.now(UTC)


async def no_steps(_: str) -> None:
    return None


def lease_hold(settings: Settings) -> timedelta:
    """Long enough for one command's whole retry budget twice over; renewed while work runs."""
    return timedelta(seconds=2 * settings.retry_budget_seconds + LEASE_MARGIN_SECONDS)


class _Lease:
    """A held lease, renewed in the background while work runs; `usable` says whether a send
    may still start. Leaving it stops the renewals and waits for one in flight: cancelled
    mid-write, a renewal may have changed the stored lease (and its ETag) without `header`
    knowing, and the result would then fail to record."""

    def __init__(
        self, store: RecordStore, header: OperationHeader, settings: Settings, clock: Clock
    ) -> None:
        self.store = store
        self.header = header
        self.settings = settings
        self.clock = clock
        self.lost = False
        self._ended = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def usable(self) -> bool:
        until = self.header.lease_until
        budget = timedelta(seconds=self.settings.retry_budget_seconds)
        return not self.lost and until is not None and until - self.clock() > budget

    async def renew(self) -> None:
        owner = self.header.lease_owner or ""
        for _ in range(3):
            try:
                self.header = await self.store.save_header(
                    lifecycle.renew(
                        self.header,
                        owner=owner,
                        now=self.clock(),
                        hold=lease_hold(self.settings),
                    )
                )
            except Conflict:
                found = await self.store.read(self.header.operation_id)
                if found is None or found[0].lease_owner != owner:
                    break
                self.header = found[0]
            except LeaseHeld:
                break
            else:
                return
        self.lost = True
        logger.warning("operation=%s lease lost: no new request starts", self.header.operation_id)

    async def _keep(self) -> None:
        every = max(0.5, self.settings.retry_budget_seconds / 4)
        while not self.lost:
            try:
                await asyncio.wait_for(self._ended.wait(), timeout=every)
            except TimeoutError:
                pass
            else:
                return  # the work ended: no renewal after it
            try:
                await self.renew()
            except StoreUnavailable:
                logger.warning(
                    "operation=%s lease renewal failed; will retry", self.header.operation_id
                )

    async def __aenter__(self) -> _Lease:
        self._task = asyncio.create_task(self._keep())
        return self

    async def __aexit__(self, *_: object) -> None:
        self._ended.set()
        if self._task is None:
            return
        try:
            await self._task
        except Exception:  # the result's write still checks the lease's ETag
            logger.exception("operation=%s lease renewal failed", self.header.operation_id)


def recovery_delay(settings: Settings) -> float:
    """When a recovery message sent with a lease becomes visible: once that lease ran out."""
    return lease_hold(settings).total_seconds() + RECOVERY_MARGIN_SECONDS


async def send_recovery(storage: Storage, operation_id: str, settings: Settings) -> None:
    """Queue the message that resumes `operation_id` if the run about to start is lost. A
    failure to send is logged, not raised: the run goes on, and only a crash now would need
    the message."""
    from azure.core.exceptions import AzureError  # noqa: PLC0415 - the storage SDK, loaded on use

    try:
        await send_work(
            storage, QueuedWork.recovery_of(operation_id), delay=recovery_delay(settings)
        )
    except AzureError as exc:
        logger.warning(
            "operation=%s recovery message not queued (%s)", operation_id, type(exc).__name__
        )


@stamina.retry(on=StoreUnavailable, attempts=4, wait_initial=0.2, wait_max=2.0, timeout=10.0)
async def _store_answer(store: RecordStore, row: CommandRow) -> CommandRow:
    """An answer is written until it sticks (a failed write after an effect is retried)."""
    retrying.use_our_retry_log()  # before the first retry is scheduled
    return await store.save_row(row)


async def run_attempt(
    operation: Operation,
    *,
    store: RecordStore,
    upstreams: Upstreams,
    settings: Settings,
    queue: Storage | None = None,
    watch: Storage | None = None,
    mode: Mode = "queued",
    clock: Clock = _now,
    steps: Steps = no_steps,
) -> Operation:
    """Lease `operation`, run the commands still pending, and record the result. With
    `queue`, a transient failure is queued again (or poisoned); with `watch`, a recovery
    message is queued with the lease, so a crash of this run is resumed once it runs out.

    Returns the operation as this attempt left it, which is the truth even when the last
    write failed after upstream effects (the store then still says SENT, which a later
    attempt reads as ambiguous). Raises `LeaseHeld` if another runner holds a live lease."""
    owner = uuid.uuid4().hex
    header = lifecycle.lease(operation.header, owner=owner, now=clock(), hold=lease_hold(settings))
    try:
        header = await store.save_header(header)
    except Conflict as exc:
        raise LeaseHeld(operation.operation_id) from exc
    if watch is not None:
        await send_recovery(watch, operation.operation_id, settings)
    await steps("leased")
    rows = {row.index: lifecycle.takeover(row) for row in operation.commands}
    gate = asyncio.Semaphore(settings.bulk_concurrency)
    lease = _Lease(store, header, settings, clock)

    unstored: list[int] = []  # answered here, but the store still says SENT

    async def send_one(row: CommandRow) -> None:
        async with gate:
            if not lease.usable():
                return
            try:
                row = await store.save_row(lifecycle.mark_sent(row))
            except Conflict:
                lease.lost = True  # someone else touched this command: stop starting sends
                return
            rows[row.index] = row
            await steps("sent")
            ran = await actions.run_command(
                row.command, upstreams, settings=settings, ambiguous=row.ambiguous
            )
            await steps("answered")
            row = lifecycle.answered(
                row,
                items=ran.items,
                reply=ran.reply,
                transient=ran.transient,
                may_have_acted=ran.may_have_acted,
            )
            rows[row.index] = row
            try:
                rows[row.index] = await _store_answer(store, row)
            except (StoreUnavailable, Conflict):
                unstored.append(row.index)
                logger.exception(
                    "operation=%s command=%d answer not stored; a later attempt resends it",
                    row.operation_id,
                    row.index,
                )
                return
            await steps("stored")

    async with lease:
        await asyncio.gather(
            *(send_one(row) for row in rows.values() if row.mark is not CommandMark.ANSWERED)
        )
    header = lease.header
    done = Operation(header, tuple(rows[index] for index in sorted(rows)))
    # A lost lease: whoever holds it now records the operation. An answer not stored: the
    # record must not say final while the store says SENT; the lease runs out and a later
    # attempt resends that command (ambiguous, so "nothing to do" then counts as done).
    if not lease.lost and not unstored:
        done = await _record(
            done, store=store, settings=settings, queue=queue, clock=clock, steps=steps
        )
    actions.log_outcome(
        done.outcome(), route=header.route, mode=mode, upstream=_upstream_name(done)
    )
    return done


def _upstream_name(operation: Operation) -> str:
    if not operation.commands:
        return "-"
    return actions.upstream_of(operation.commands[0].command)


async def _record(
    operation: Operation,
    *,
    store: RecordStore,
    settings: Settings,
    queue: Storage | None,
    clock: Clock,
    steps: Steps,
) -> Operation:
    header, rows = operation.header, operation.commands
    now = clock()
    unanswered = [row for row in rows if row.mark is not CommandMark.ANSWERED]
    items = tuple(item for row in rows for item in items_of(row))
    status = Outcome.status_of(items)
    delay: float | None = None
    if not unanswered:
        header = lifecycle.record(header, status=status, now=now)
    elif queue is not None and header.attempts < settings.queue_max_attempts:
        waits = [
            r.last_error.retry_after
            for r in unanswered
            if r.last_error and r.last_error.retry_after
        ]
        delay = min(
            max(waits) if waits else 2.0**header.attempts, settings.queue_retry_max_delay_seconds
        )
        header = lifecycle.requeue(
            header,
            now=now,
            reason=f"attempt {header.attempts} hit an unavailable upstream; "
            f"retrying in {delay:.0f} s",
        )
    else:
        reason = f"upstream unavailable after {header.attempts} attempt(s)"
        if queue is not None:
            reason += "; moved to the poison queue (replay: ila replay-poison)"
        header = lifecycle.record(header, status=status, now=now, retryable=True, reason=reason)
    # The retry's (or the poison queue's) message goes first: a crash between it and the
    # record leaves an expired lease, which the message (or the recovery message) resumes;
    # the other order would leave a queued retry that no message ever runs.
    if queue is not None and delay is not None:
        await send_work(queue, QueuedWork.queued_here(header.operation_id), delay=delay)
    elif queue is not None and header.retryable:
        await send_work(queue, QueuedWork.queued_here(header.operation_id), delay=0, poison=True)
    try:
        header = await store.save_header(header)
    except Conflict:
        found = await read(store, header.operation_id)
        return found if found is not None else Operation(header, rows)
    except StoreUnavailable:
        logger.exception(
            "operation=%s result not recorded; a later attempt records it", header.operation_id
        )
        return Operation(header, rows)
    await steps("recorded")
    if queue is not None and delay is None and header.retryable:
        telemetry.record_poisoned("attempts_exhausted")
        logger.warning(
            "operation=%s poisoned after %d attempts", header.operation_id, header.attempts
        )
    return Operation(header, rows)
