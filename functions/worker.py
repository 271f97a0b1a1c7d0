"""The queue worker: runs queued actions; retries, poison and dedupe live in shared.durable."""

from __future__ import annotations

import azure.functions as func

from shared.config import get_settings
from shared.durable import work
from shared.storage import QUEUE_NAME

bp = func.Blueprint()


@bp.queue_trigger(arg_name="msg", queue_name=QUEUE_NAME, connection="AzureWebJobsStorage")
async def run_queued_action(msg: func.QueueMessage) -> None:
    await work(get_settings(), msg.get_body().decode(), dequeue_count=msg.dequeue_count or 1)
