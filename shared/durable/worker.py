"""The queue worker's whole job (`process_message`: one message, one attempt at most) and
`replay_poison`, which moves poisoned work back once its cause is fixed."""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime

from shared import lifecycle, telemetry
from shared.core import Clock, Core
from shared.durable.attempt import RECOVERY_MARGIN_SECONDS, Steps, no_steps, run_attempt
from shared.durable.operations import Operation, read, record_store
from shared.durable.store import Conflict, RecordStore
from shared.durable.work import QueuedWork, send_work
from shared.errors import StoreUnavailable
from shared.lifecycle import LeaseHeld, Phase
from shared.storage import Storage

logger = logging.getLogger(__name__)


async def process_message(
    core: Core, message: str, *, dequeue_count: int, steps: Steps = no_steps
) -> Operation | None:
    """Handle one queue message. Returns the operation as left, None if there was none.

    A duplicate of finished work is ignored; work held by a live lease is looked at again
    once that lease would expire (the holder may die). Raises only on an unexpected error,
    so the host redelivers; on its last delivery the error is noted on the operation."""
    settings, clock = core.settings, core.clock
    work = QueuedWork.from_message(message)
    operation_id = work.operation_id
    storage = await core.open_storage()
    store = record_store(storage, settings)
    operation = await read(store, operation_id)
    if operation is None:
        logger.warning("operation=%s not found; message dropped", operation_id)
        return None
    header = operation.header
    now = clock()
    if work.recovery:
        if not lifecycle.recoverable(header, now):
            return await _recovery_not_needed(storage, work, operation, now)
        logger.warning(
            "operation=%s recovering: its run was lost (%s, %d attempt(s))",
            operation_id,
            lifecycle.phase(header, now).value,
            header.attempts,
        )
    match lifecycle.phase(header, now):
        case Phase.DONE | Phase.POISONED | Phase.SKIPPED:
            logger.info(
                "operation=%s already %s; duplicate delivery ignored",
                operation_id,
                header.status.value,
            )
            return operation
        case Phase.RUNNING:
            wait = (header.lease_until - now).total_seconds() + 1 if header.lease_until else 1
            logger.info(
                "operation=%s held by a live runner; looking again in %.0f s", operation_id, wait
            )
            await send_work(storage, work, delay=wait)
            return operation
        case Phase.QUEUED | Phase.LEASE_EXPIRED:
            pass
    telemetry.record_queue_age((now - header.created_at).total_seconds())
    with telemetry.queue_span(
        operation_id, dequeue_count=dequeue_count, traceparent=work.traceparent
    ):
        try:
            return await run_attempt(
                operation,
                store=store,
                upstreams=core.upstreams,
                settings=settings,
                queue=storage,
                watch=storage,
                clock=clock,
                steps=steps,
            )
        except LeaseHeld:
            logger.info("operation=%s taken by another runner first", operation_id)
            return operation
        except Exception as exc:
            if dequeue_count >= settings.queue_max_attempts:
                await _note_failure(store, operation_id, exc, dequeue_count, clock)
                telemetry.record_poisoned("delivery_failed")
            raise


async def _recovery_not_needed(
    storage: Storage, work: QueuedWork, operation: Operation, now: datetime
) -> Operation:
    """A recovery message for an operation that does not need it: dropped, unless a live lease
    holds the operation, when it looks again once that lease would have run out."""
    header = operation.header
    if lifecycle.phase(header, now) is Phase.RUNNING and header.lease_until is not None:
        wait = (header.lease_until - now).total_seconds() + RECOVERY_MARGIN_SECONDS
        await send_work(storage, work, delay=wait)
    return operation


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


async def replay_poison(core: Core, *, limit: int = 1000) -> list[str]:
    """Move poisoned work back to the work queue with a fresh attempt budget."""
    storage = await core.open_storage()
    store = record_store(storage, core.settings)
    moved: list[str] = []
    async for message in storage.poison.receive_messages(max_messages=32, visibility_timeout=60):
        work = QueuedWork.from_message(message.content)
        operation_id = work.operation_id
        operation = await read(store, operation_id)
        now = core.clock()
        match None if operation is None else lifecycle.phase(operation.header, now):
            case Phase.DONE | Phase.SKIPPED:  # finished since: nothing to replay
                await storage.poison.delete_message(message)
                continue
            case Phase.POISONED if operation is not None:
                await store.save_header(
                    lifecycle.reopen(
                        operation.header, now=now, reason="replayed from the poison queue"
                    )
                )
            case _:  # not recorded final (or not found): the worker decides
                pass
        await send_work(storage, work, delay=0)
        await storage.poison.delete_message(message)
        moved.append(operation_id)
        if len(moved) >= limit:
            break
    return moved
