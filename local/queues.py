"""Queue triggers for the local host, the way the Functions host runs them.

Each queue-triggered function's queue is polled (backing off to host.json's
`maxPollingInterval` while empty); a message is hidden while its function runs, deleted when
the function returns, made visible again after host.json's `visibilityTimeout` when it raises,
and moved to `<queue>-poison` once its dequeue count reaches `maxDequeueCount`. Messages are
Base64 text, as host.json's `messageEncoding` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.functions.queue import QueueMessage as TriggerMessage
from azure.storage.queue import QueueMessage, TextBase64DecodePolicy, TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from local.host import QueueFunction

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


def _seconds(value: str | None, default: float) -> float:
    if not value:
        return default
    hours, minutes, seconds = (float(part) for part in value.split(":"))
    return timedelta(hours=hours, minutes=minutes, seconds=seconds).total_seconds()


@dataclass(frozen=True)
class QueueOptions:
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0
    max_polling_interval: float = 60.0
    batch_size: int = 16
    lease_seconds: float = 600.0  # how long a running message stays hidden (the host: 10 min)

    @classmethod
    def from_host_json(
        cls, host_json: Mapping[str, Any], *, lease_seconds: float = 600.0
    ) -> QueueOptions:
        queues = host_json.get("extensions", {}).get("queues", {})
        return cls(
            max_dequeue_count=int(queues.get("maxDequeueCount", 5)),
            visibility_timeout=_seconds(queues.get("visibilityTimeout"), 0.0),
            max_polling_interval=_seconds(queues.get("maxPollingInterval"), 60.0),
            batch_size=int(queues.get("batchSize", 16)),
            lease_seconds=lease_seconds,
        )


def queue_client(connection: str, queue: str) -> QueueClient:
    """A queue client that reads and writes Base64 text, as the Functions host does."""
    return QueueClient.from_connection_string(
        connection,
        queue,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
    )


class QueueRunner:
    """Polls the queues of the functions it is started with and invokes them until stopped."""

    def __init__(
        self,
        *,
        options: QueueOptions,
        environ: Mapping[str, str] = os.environ,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._options = options
        self._environ = environ
        self._sleep = sleep
        self._tasks: list[asyncio.Task[None]] = []
        self._clients: list[QueueClient] = []

    def _connection(self, function: QueueFunction) -> str:
        name = function.connection or "AzureWebJobsStorage"
        value = self._environ.get(name)
        if not value:
            raise RuntimeError(f"queue function {function.function_name}: {name} is not set")
        return value

    async def start(self, functions: Sequence[QueueFunction]) -> None:
        for function in functions:
            connection = self._connection(function)
            queue = queue_client(connection, function.queue_name)
            poison = queue_client(connection, f"{function.queue_name}-poison")
            self._clients += [queue, poison]
            for client in (queue, poison):
                with contextlib.suppress(ResourceExistsError):
                    await client.create_queue()
            self._tasks.append(asyncio.create_task(self._poll(function, queue, poison)))
            logger.info(
                "queue trigger %s listening on %s", function.function_name, function.queue_name
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for client in self._clients:
            await client.close()
        self._tasks, self._clients = [], []

    async def _poll(self, function: QueueFunction, queue: QueueClient, poison: QueueClient) -> None:
        idle = 0.05
        while True:
            try:
                handled = await self.drain(function, queue, poison)
            except Exception:
                logger.exception("polling %s failed", function.queue_name)
                handled = 0
            if handled:
                idle = 0.05
                continue
            await self._sleep(idle)
            idle = min(idle * 2, self._options.max_polling_interval)

    async def drain(self, function: QueueFunction, queue: QueueClient, poison: QueueClient) -> int:
        """Receive one batch and run it; return how many messages were handled."""
        batch = [
            message
            async for message in queue.receive_messages(
                max_messages=self._options.batch_size,
                visibility_timeout=round(self._options.lease_seconds),
            )
        ]
        await asyncio.gather(*(self._handle(function, queue, poison, m) for m in batch))
        return len(batch)

    async def _handle(
        self,
        function: QueueFunction,
        queue: QueueClient,
        poison: QueueClient,
        message: QueueMessage,
    ) -> None:
        trigger = TriggerMessage(  # what the worker builds for a queueTrigger
            id=message.id,
            body=str(message.content).encode(),
            dequeue_count=message.dequeue_count,
            pop_receipt=message.pop_receipt,
            insertion_time=message.inserted_on,
            expiration_time=message.expires_on,
            time_next_visible=message.next_visible_on,
        )
        try:
            result = function.handler(**{function.arg_name: trigger})
            if inspect.isawaitable(result):
                await result
        except Exception:
            count = message.dequeue_count or 1
            logger.exception(
                "%s failed on delivery %d of message %s", function.function_name, count, message.id
            )
            if count >= self._options.max_dequeue_count:
                await poison.send_message(message.content)
                await queue.delete_message(message)
                logger.warning("message %s moved to %s-poison", message.id, function.queue_name)
            else:
                await queue.update_message(
                    message, visibility_timeout=round(self._options.visibility_timeout)
                )
            return
        await queue.delete_message(message)
