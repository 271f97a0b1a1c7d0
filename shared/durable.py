"""At least once in, at most once in effect: accept, lease, run, record, retry, poison, replay.

The moves are those of `shared.lifecycle`'s state machine; this module makes them durable:
- `accept()` records an operation (once per idempotency key) with a row per command.
- `run_attempt()` leases it, keeps the lease alive while it works, marks each command SENT
  before its request leaves and ANSWERED once its answer is stored, then records the operation
  (final) or requeues it. A transient failure is queued again after the upstream's
  `Retry-After` (or a backoff), at most `QUEUE_MAX_ATTEMPTS` attempts; then the message goes to
  the poison queue with the reason on the operation. A permanent failure (4xx) is final at once.
- `process_message()` is the queue worker's whole job; `replay_poison()` moves poisoned work
  back once the cause is fixed.

`Steps` lets a test stop a run at any step, as a crash would (the model-based test does).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import stamina

from incident_link_api.commands import Command
from incident_link_api.outcome import ItemResult, ItemStatus, Outcome, OutcomeStatus, UpstreamInfo
from shared import actions, lifecycle, retrying, telemetry
from shared.clients.registry import Upstreams
from shared.config import Settings
from shared.errors import StoreUnavailable
from shared.lifecycle import (
    CommandMark,
    CommandRow,
    Held,
    OperationHeader,
    OperationState,
    RouteKind,
)
from shared.records import Conflict, RecordStore, command_hash
from shared.storage import Storage, storage

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# A step of a run: "leased", "sent" (marked, before the request leaves), "answered" (the
# upstream answered, not yet stored), "stored" (the answer is stored), "recorded".
Steps = Callable[[str], Awaitable[None]]
LEASE_MARGIN_SECONDS = 5.0


def _now() -> datetime:
    return datetime.now(UTC)


async def no_steps(_: str) -> None:
    return None


@dataclass(frozen=True)
class QueuedWork:
    """The queue message: which operation (commands stay in the table), and the W3C
    `traceparent` of the span that queued it, when something is traced, so the run links back
    to the call that asked for it. Work sent again as it was (held by a live lease, replayed
    from the poison queue) keeps that context."""

    operation_id: str
    traceparent: str | None = None

    @classmethod
    def queued_here(cls, operation_id: str) -> QueuedWork:
        """Work for `operation_id` whose creation context is the current span."""
        return cls(operation_id, telemetry.creation_context())

    def to_message(self) -> str:
        data = {"operationId": self.operation_id}
        if self.traceparent is not None:
            data["traceparent"] = self.traceparent
        return json.dumps(data)

    @classmethod
    def from_message(cls, message: str) -> QueuedWork:
        data = json.loads(message)
        operation_id = data.get("operationId") if isinstance(data, dict) else None
        if not isinstance(operation_id, str) or not operation_id:
            raise ValueError("queue message has no operationId")
        traceparent = data.get("traceparent")
        return cls(operation_id, traceparent if isinstance(traceparent, str) else None)


@dataclass(frozen=True)
class Operation:
    """An operation as stored: its header and one row per command."""

    header: OperationHeader
    commands: tuple[CommandRow, ...]

    @property
    def operation_id(self) -> str:
        return self.header.operation_id

    @property
    def final(self) -> bool:
        return self.header.final

    def outcome(self) -> Outcome:
        """What is known: answered commands' items, the rest pending (or failed, if final)."""
        header = self.header
        if not self.commands:
            return Outcome(
                operation_id=header.operation_id,
                action=header.action,
                status=header.status,
                items=(),
                started_at=header.created_at,
                finished_at=header.finished_at,
                reason=header.reason,
            )
        upstream = actions.upstream_of(self.commands[0].command)
        groups = [(row.index, _items_of(row)) for row in self.commands]
        outcome = actions.outcome_of(
            groups,
            operation_id=header.operation_id,
            action=header.action,
            upstream=upstream,
            # Upstream attempts so far; while the first run is under way, the runs started.
            attempts=max(
                sum(item.attempts for _, group in groups for item in group), header.attempts
            ),
            started_at=header.created_at,
            finished_at=header.finished_at,
            replies=tuple(row.reply for row in self.commands if row.reply is not None),
            reason=header.reason,
        )
        status = header.status if header.final else OutcomeStatus.PENDING
        return outcome.model_copy(update={"status": status})


def _items_of(row: CommandRow) -> tuple[ItemResult, ...]:
    if row.mark is CommandMark.ANSWERED or row.items:
        return row.items
    upstream = UpstreamInfo(name=actions.upstream_of(row.command))
    return tuple(
        ItemResult(target=target, status=ItemStatus.PENDING, upstream=upstream)
        for target in actions.targets(row.command)
    )


@dataclass(frozen=True)
class Claim:
    """The operation a request maps to, and whether it existed already."""

    operation: Operation
    existing: bool


async def store_for(settings: Settings) -> tuple[Storage, RecordStore]:
    found = await storage(settings)
    retention = timedelta(hours=settings.idempotency_retention_hours)
    return found, RecordStore(found, retention=retention)


async def read(store: RecordStore, operation_id: str) -> Operation | None:
    stored = await store.read(operation_id)
    return None if stored is None else Operation(stored[0], tuple(stored[1]))


# ---- accept -----------------------------------------------------------------------------------


def _fresh(
    operation_id: str,
    route: RouteKind,
    commands: Sequence[Command],
    *,
    now: datetime,
    caller: str | None,
) -> tuple[OperationHeader, list[CommandRow]]:
    header = OperationHeader(
        operation_id=operation_id,
        route=route,
        action=commands[0].kind if commands else None,
        command_count=len(commands),
        command_hash=command_hash(route, commands),
        caller=caller,
        created_at=now,
        updated_at=now,
    )
    rows = [
        CommandRow(operation_id=operation_id, index=index, command=command)
        for index, command in enumerate(commands)
    ]
    return header, rows


async def accept(
    store: RecordStore,
    *,
    operation_id: str,
    route: RouteKind,
    commands: Sequence[Command],
    keys: Sequence[tuple[str, str]] = (),
    caller: str | None = None,
    now: datetime,
    skipped: str | None = None,
) -> Claim:
    """Record an operation, once per set of keys: a repeat gets the recorded one. `skipped`
    records a webhook event the policy does not act on (no commands, final at once)."""
    header, rows = _fresh(operation_id, route, commands, now=now, caller=caller)
    if skipped is not None:
        header = lifecycle.record(header, status=OutcomeStatus.SKIPPED, now=now, reason=skipped)
    if keys:
        claim = await store.claim_keys(
            keys, operation_id=operation_id, digest=header.command_hash, now=now
        )
        if claim.held:
            found = await read(store, claim.operation_id)
            if found is not None:
                return Claim(found, existing=True)
            # The first writer died between its key and its record: finish its work.
            header = header.model_copy(update={"operation_id": claim.operation_id})
            rows = [row.model_copy(update={"operation_id": claim.operation_id}) for row in rows]
    created = await store.create(header, rows)
    if created is None:  # a concurrent writer of the same key created it first
        found = await read(store, header.operation_id)
        if found is None:
            raise StoreUnavailable("the operation could not be read after a concurrent write")
        return Claim(found, existing=True)
    return Claim(Operation(created[0], tuple(created[1])), existing=False)


def runnable(operation: Operation, now: datetime) -> bool:
    """May a runner lease it now? Not if final (unless retryable) or held by a live lease."""
    header = operation.header
    if header.final:
        return header.retryable
    return not header.lease_live(now)


# ---- one attempt ------------------------------------------------------------------------------


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
            except Held:
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
    caller: str = "queued",
    clock: Clock = _now,
    steps: Steps = no_steps,
) -> Operation:
    """Lease `operation`, run the commands still pending, and record the result.

    Returns the operation as this attempt left it, which is the truth even when the last
    write failed after upstream effects (the store then still says SENT, which a later
    attempt reads as ambiguous). Raises `Held` if another runner holds a live lease."""
    owner = uuid.uuid4().hex
    header = lifecycle.lease(operation.header, owner=owner, now=clock(), hold=lease_hold(settings))
    try:
        header = await store.save_header(header)
    except Conflict as exc:
        raise Held(operation.operation_id) from exc
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
        done.outcome(), caller=f"{header.route}:{caller}", upstream=_upstream_name(done)
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
    items = tuple(item for row in rows for item in _items_of(row))
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
    if queue is not None and delay is not None:
        await send_work(queue, QueuedWork.queued_here(header.operation_id), delay=delay)
    elif queue is not None and header.retryable:
        await send_work(queue, QueuedWork.queued_here(header.operation_id), delay=0, poison=True)
        telemetry.record_poisoned("attempts_exhausted")
        logger.warning(
            "operation=%s poisoned after %d attempts", header.operation_id, header.attempts
        )
    return Operation(header, rows)


async def send_work(
    found: Storage, work: QueuedWork, *, delay: float, poison: bool = False
) -> None:
    queue = found.poison if poison else found.queue
    await queue.send_message(work.to_message(), visibility_timeout=round(delay))


# ---- the queue worker -------------------------------------------------------------------------


async def process_message(
    settings: Settings,
    message: str,
    *,
    upstreams: Upstreams,
    dequeue_count: int,
    clock: Clock = _now,
    steps: Steps = no_steps,
) -> Operation | None:
    """Handle one queue message. Returns the operation as left, None if there was none.

    A duplicate of finished work is ignored; work held by a live lease is looked at again
    once that lease would expire (the holder may die). Raises only on an unexpected error,
    so the host redelivers; on its last delivery the error is noted on the operation."""
    work = QueuedWork.from_message(message)
    operation_id = work.operation_id
    found, store = await store_for(settings)
    operation = await read(store, operation_id)
    if operation is None:
        logger.warning("operation=%s not found; message dropped", operation_id)
        return None
    header = operation.header
    if header.final:
        logger.info(
            "operation=%s already %s; duplicate delivery ignored", operation_id, header.status.value
        )
        return operation
    now = clock()
    if header.lease_live(now) and header.lease_until is not None:
        wait = (header.lease_until - now).total_seconds() + 1
        logger.info(
            "operation=%s held by a live runner; looking again in %.0f s", operation_id, wait
        )
        await send_work(found, work, delay=wait)
        return operation
    telemetry.record_queue_age((now - header.created_at).total_seconds())
    with telemetry.queue_span(
        operation_id, dequeue_count=dequeue_count, traceparent=work.traceparent
    ):
        try:
            return await run_attempt(
                operation,
                store=store,
                upstreams=upstreams,
                settings=settings,
                queue=found,
                clock=clock,
                steps=steps,
            )
        except Held:
            logger.info("operation=%s taken by another runner first", operation_id)
            return operation
        except Exception as exc:
            if dequeue_count >= settings.queue_max_attempts:
                await _note_failure(store, operation_id, exc, dequeue_count, clock)
                telemetry.record_poisoned("delivery_failed")
            raise


async def _note_failure(
    store: RecordStore, operation_id: str, exc: Exception, dequeue_count: int, clock: Clock
) -> None:
    with contextlib.suppress(StoreUnavailable, Conflict):
        stored = await store.read(operation_id)
        if stored is not None and not stored[0].final:
            await store.save_header(
                stored[0].model_copy(
                    update={
                        "reason": f"delivery {dequeue_count} failed ({type(exc).__name__}); "
                        "the host moves the message to the poison queue",
                        "updated_at": clock(),
                    }
                )
            )


async def replay_poison(settings: Settings, *, limit: int = 1000) -> list[str]:
    """Move poisoned work back to the work queue with a fresh attempt budget."""
    found, store = await store_for(settings)
    moved: list[str] = []
    async for message in found.poison.receive_messages(max_messages=32, visibility_timeout=60):
        work = QueuedWork.from_message(message.content)
        operation_id = work.operation_id
        operation = await read(store, operation_id)
        if operation is not None and operation.final and not operation.header.retryable:
            await found.poison.delete_message(message)
            continue
        if operation is not None and operation.header.final:
            await store.save_header(
                lifecycle.reopen(
                    operation.header, now=_now(), reason="replayed from the poison queue"
                )
            )
        await send_work(found, work, delay=0)
        await found.poison.delete_message(message)
        moved.append(operation_id)
        if len(moved) >= limit:
            break
    return moved


__all__ = ["Claim", "Held", "Operation", "OperationState", "accept", "process_message", "read"]
