"""The queue worker: runs queued actions; leases, retries, poison and dedupe live in the core."""

from __future__ import annotations

import azure.functions as func

from shared import heap
from shared.config import get_settings
from shared.core import Core
from shared.storage import QUEUE_NAME

bp = func.Blueprint()


@bp.queue_trigger(arg_name="msg", queue_name=QUEUE_NAME, connection="AzureWebJobsStorage")
async def run_queued_action(msg: func.QueueMessage) -> None:
    from shared.durable import worker  # noqa: PLC0415 - the storage path loads with its first use

    try:
        await worker.process_message(
            Core.from_settings(get_settings()),
            msg.get_body().decode(),
            dequeue_count=msg.dequeue_count or 1,
        )
    finally:
        heap.after_call()  # what this run loaded lives as long as the process
