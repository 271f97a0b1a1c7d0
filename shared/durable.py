"""At least once in, exactly once in effect: accept, queue, work, retry, poison, replay.

- `submit()` records an operation (under an idempotency key if there is one) and, when asked,
  queues it; a repeat of the same key returns the recorded operation without acting again.
- `run_now()` runs an idempotent synchronous request and records its Outcome.
- `work()` is the queue worker's whole job: lease the operation, run what is still pending
  through `actions.run`, and record the result. A transient upstream failure is queued again
  after the upstream's `Retry-After` (or a backoff), at most `QUEUE_MAX_ATTEMPTS` times; then
  the work goes to the poison queue with the reason on the operation. A permanent failure
  (4xx) is final at once.
- `replay_poison()` moves poisoned work back after the cause is fixed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared import actions
from shared.config import Settings
from shared.models.commands import Command
from shared.models.outcome import ItemResult, ItemStatus, Outcome, OutcomeStatus, UpstreamInfo
from shared.operations import (
    Claim,
    Conflict,
    OperationRecord,
    OperationStore,
    QueuedWork,
    RouteKind,
    command_hash,
)
from shared.storage import Storage, storage

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
LEASE_MARGIN_SECONDS = 5  # beyond the retry budget, for the answer to be recorded


def _now() -> datetime:
    return datetime.now(UTC)


async def store_for(settings: Settings) -> tuple[Storage, OperationStore]:
    found = await storage(settings)
    retention = timedelta(hours=settings.idempotency_retention_hours)
    return found, OperationStore(found, retention=retention)


def pending_outcome(record: OperationRecord) -> Outcome:
    """The Outcome of an operation that has not finished: what is known so far."""
    if record.outcome is not None and record.final:
        return record.outcome
    if not record.commands:
        return Outcome(
            operation_id=record.operation_id,
            action=None,
            status=record.status,
            items=(),
            started_at=record.created_at,
            finished_at=record.updated_at,
            reason=record.reason,
        )
    upstream = actions.upstream_of(record.commands[0])
    items = tuple(
        ItemResult(target=target, status=ItemStatus.PENDING, upstream=UpstreamInfo(name=upstream))
        for command in record.commands
        for target in actions.targets(command)
    )
    return Outcome(
        operation_id=record.operation_id,
        action=record.action,
        status=record.status if record.final else OutcomeStatus.PENDING,
        items=items,
        upstream=UpstreamInfo(name=upstream),
        attempts=record.attempts,
        started_at=record.created_at,
        reason=record.reason,
    )


def new_record(
    operation_id: str,
    route: RouteKind,
    commands: Sequence[Command],
    *,
    now: datetime,
    status: OutcomeStatus = OutcomeStatus.PENDING,
    reason: str | None = None,
) -> OperationRecord:
    return OperationRecord(
        operation_id=operation_id,
        route=route,
        action=commands[0].kind if commands else None,
        commands=tuple(commands),
        command_hash=command_hash(route, commands),
        status=status,
        pending=tuple(range(len(commands))),
        reason=reason,
        created_at=now,
        updated_at=now,
    )


async def submit(
    settings: Settings,
    *,
    operation_id: str,
    route: RouteKind,
    commands: Sequence[Command],
    key: str | None,
    enqueue: bool,
    clock: Clock = _now,
) -> Claim:
    """Record the operation (once per key) and queue it if asked. Repeats act on nothing."""
    found, store = await store_for(settings)
    now = clock()
    claim = await store.claim(key, new_record(operation_id, route, commands, now=now), now=now)
    if not enqueue or (claim.existing and not _queue_again(claim.record, now)):
        return claim
    if claim.record.final:  # a repeat of work that failed transiently: give it a fresh budget
        again = claim.record.model_copy(
            update={
                "status": OutcomeStatus.PENDING,
                "retryable": False,
                "attempts": 0,
                "reason": "queued again by a repeat of the request",
                "updated_at": now,
            }
        )
        try:
            claim = Claim(await store.save(again), existing=True)
        except Conflict:
            return claim  # a concurrent repeat did it
    await _send(found, QueuedWork(operationId=claim.record.operation_id), delay=0)
    logger.info("operation=%s queued (repeat=%s)", claim.record.operation_id, claim.existing)
    return claim


def _queue_again(record: OperationRecord, now: datetime) -> bool:
    """Should a repeat of queued work send it again? Yes if it failed transiently, if its
    worker died (lease expired), or if it never ran: the first send may have failed after the
    record was written, and a duplicate message is harmless (the worker leases)."""
    if record.final:
        return record.retryable
    if record.lease_until is not None:
        return record.lease_until < now
    return record.attempts == 0


def _abandoned(record: OperationRecord, settings: Settings, now: datetime) -> bool:
    """A repeat may take over a record whose runner vanished or whose failure was transient."""
    if record.final:
        return record.retryable
    if record.lease_until is not None:
        return record.lease_until < now
    quiet = timedelta(seconds=settings.retry_budget_seconds + LEASE_MARGIN_SECONDS)
    return now - record.updated_at > quiet


async def record_skipped(
    settings: Settings, *, operation_id: str, key: str, reason: str, clock: Clock = _now
) -> Claim:
    """Record a delivery the policy does not act on, once per key."""
    _, store = await store_for(settings)
    now = clock()
    record = new_record(
        operation_id, "webhook", (), now=now, status=OutcomeStatus.SKIPPED, reason=reason
    )
    return await store.claim(key, record, now=now)


async def run_now(
    settings: Settings,
    claim: Claim,
    *,
    clock: Clock = _now,
) -> OperationRecord:
    """Run a claimed synchronous request (or return the recorded result of a repeat)."""
    _, store = await store_for(settings)
    record = claim.record
    now = clock()
    if claim.existing and not _abandoned(record, settings, now) and not record.final:
        return record  # another request with this key is running it right now
    if claim.existing and record.final and not record.retryable:
        return record
    leased = await _lease(store, record, settings, now)
    if leased is None:
        return await store.get(record.operation_id) or record
    return await _run_and_record(settings, store, leased, clock=clock, queue=None)


async def _lease(
    store: OperationStore, record: OperationRecord, settings: Settings, now: datetime
) -> OperationRecord | None:
    """Take the operation for one attempt, or None if a live worker holds it."""
    if record.lease_until is not None and record.lease_until > now and not record.final:
        return None
    until = now + timedelta(seconds=settings.retry_budget_seconds + LEASE_MARGIN_SECONDS)
    pending = record.pending or tuple(range(len(record.commands)))
    try:
        return await store.save(
            record.model_copy(
                update={
                    "lease_until": until,
                    "inflight": tuple(sorted(set(record.inflight) | set(pending))),
                    "pending": pending,
                    "status": OutcomeStatus.PENDING,
                    "retryable": False,
                    "updated_at": now,
                }
            )
        )
    except Conflict:
        return None


@dataclass(frozen=True)
class _Result:
    outcome: Outcome
    transient: tuple[int, ...]
    retry_after: float | None


def _merge(record: OperationRecord, ran: Outcome, indexes: Sequence[int]) -> _Result:
    """Fold the results of the commands just run into what earlier attempts recorded."""
    fresh: dict[int, list[ItemResult]] = {index: [] for index in indexes}
    for item in ran.items:
        original = indexes[item.index]
        item = item.model_copy(update={"index": original})
        if original in record.inflight and item.status is ItemStatus.NOT_APPLIED:
            # An earlier attempt sent this and died before recording: the upstream now says
            # there is nothing to do because that attempt did it.
            item = item.model_copy(
                update={
                    "status": ItemStatus.SUCCEEDED,
                    "message": f"already done by an interrupted earlier attempt ({item.message})",
                    "error": None,
                }
            )
        fresh[original].append(item)
    kept = [i for i in (record.outcome.items if record.outcome else ()) if i.index not in fresh]
    items = tuple(
        sorted([*kept, *(i for group in fresh.values() for i in group)], key=lambda i: i.index)
    )
    transient = tuple(
        index
        for index, group in fresh.items()
        if any(i.error is not None and i.error.kind == "unavailable" for i in group)
    )
    waits = [
        i.error.retry_after
        for group in fresh.values()
        for i in group
        if i.error is not None and i.error.retry_after is not None
    ]
    outcome = ran.model_copy(
        update={
            "items": items,
            "status": Outcome.status_of(items),
            "attempts": (record.outcome.attempts if record.outcome else 0) + ran.attempts,
            "started_at": record.created_at,
            "replies": ran.replies,
        }
    )
    return _Result(outcome, transient, max(waits) if waits else None)


async def _run_and_record(
    settings: Settings,
    store: OperationStore,
    record: OperationRecord,
    *,
    clock: Clock,
    queue: Storage | None,
    attempt: int = 1,
) -> OperationRecord:
    indexes = record.pending
    ran = await actions.run(
        [record.commands[i] for i in indexes],
        settings=settings,
        operation_id=record.operation_id,
        caller=f"{record.route}:queued" if queue is not None else record.route,
    )
    result = _merge(record, ran, indexes)
    now = clock()
    update: dict[str, object] = {
        "outcome": result.outcome,
        "attempts": attempt,
        "inflight": (),
        "lease_until": None,
        "updated_at": now,
    }
    if result.transient and queue is not None and attempt < settings.queue_max_attempts:
        delay = min(
            result.retry_after if result.retry_after is not None else 2.0**attempt,
            settings.queue_retry_max_delay_seconds,
        )
        update |= {
            "status": OutcomeStatus.PENDING,
            "pending": result.transient,
            "reason": f"attempt {attempt} hit an unavailable upstream; retrying in {delay:.0f} s",
        }
        saved = await store.save(record.model_copy(update=update))
        await _send(
            queue, QueuedWork(operationId=record.operation_id, attempt=attempt + 1), delay=delay
        )
        return saved
    update |= {"status": result.outcome.status, "pending": result.transient}
    if result.transient:
        reason = f"upstream unavailable after {attempt} attempt(s)"
        if queue is not None:
            reason += "; moved to the poison queue (replay: python -m shared.cli replay-poison)"
        update |= {
            "retryable": True,
            "reason": reason,
            "outcome": result.outcome.model_copy(update={"reason": reason}),
        }
    saved = await store.save(record.model_copy(update=update))
    if result.transient and queue is not None:
        await _send(
            queue,
            QueuedWork(operationId=record.operation_id, attempt=attempt),
            delay=0,
            poison=True,
        )
        logger.warning("operation=%s poisoned after %d attempts", record.operation_id, attempt)
    return saved


async def _send(found: Storage, work: QueuedWork, *, delay: float, poison: bool = False) -> None:
    queue = found.poison if poison else found.queue
    await queue.send_message(work.to_message(), visibility_timeout=round(delay))


class Busy(Exception):
    """Another live worker holds this operation's lease."""


async def work(
    settings: Settings,
    message: str,
    *,
    dequeue_count: int,
    clock: Clock = _now,
) -> OperationRecord | None:
    """Handle one queue message. Returns the record as left, None if there was nothing to do.

    Raises (so the host redelivers) only when another live worker holds the operation, or on
    an unexpected error; on the host's last delivery the error is recorded on the operation.
    """
    payload = QueuedWork.model_validate(json.loads(message))
    found, store = await store_for(settings)
    record = await store.get(payload.operation_id)
    if record is None:
        logger.warning("operation=%s not found; message dropped", payload.operation_id)
        return None
    if record.final and not record.retryable:
        logger.info(
            "operation=%s already %s; duplicate delivery ignored",
            record.operation_id,
            record.status.value,
        )
        return record
    leased = await _lease(store, record, settings, clock())
    if leased is None:
        raise Busy(f"operation {record.operation_id} is being worked on elsewhere")
    try:
        return await _run_and_record(
            settings,
            store,
            leased,
            clock=clock,
            queue=found,
            attempt=max(payload.attempt, record.attempts + 1),
        )
    except Exception as exc:
        if dequeue_count >= settings.queue_max_attempts:
            failed = await store.get(record.operation_id)
            if failed is not None:
                await store.save(
                    failed.model_copy(
                        update={
                            "reason": f"delivery {dequeue_count} failed ({type(exc).__name__}); "
                            "the host moves the message to the poison queue",
                            "lease_until": None,
                            "updated_at": clock(),
                        }
                    )
                )
        raise


async def replay_poison(settings: Settings, *, limit: int = 1000) -> list[str]:
    """Move poisoned work back to the work queue with a fresh attempt budget."""
    found, store = await store_for(settings)
    moved: list[str] = []
    async for message in found.poison.receive_messages(max_messages=32, visibility_timeout=60):
        work_item = QueuedWork.model_validate(json.loads(message.content))
        record = await store.get(work_item.operation_id)
        if record is not None and record.final and not record.retryable:
            await found.poison.delete_message(message)
            continue
        if record is not None:
            await store.save(
                record.model_copy(
                    update={
                        "status": OutcomeStatus.PENDING,
                        "retryable": False,
                        "attempts": 0,
                        "reason": "replayed from the poison queue",
                        "updated_at": _now(),
                    }
                )
            )
        await _send(found, QueuedWork(operationId=work_item.operation_id), delay=0)
        await found.poison.delete_message(message)
        moved.append(work_item.operation_id)
        if len(moved) >= limit:
            break
    return moved
