"""The local host runs queue triggers as the Functions host does, against Azurite."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue.aio import QueueClient

from local.azurite import Azurite
from local.host import LocalHost
from local.queues import QueueOptions, QueueRunner, queue_client
from shared.config import Settings

OPTIONS = QueueOptions(max_dequeue_count=3, visibility_timeout=0, lease_seconds=30)


def _client(azurite: Azurite, name: str) -> QueueClient:
    return queue_client(azurite.connection_string, name)


@pytest.fixture
async def queues(azurite: Azurite) -> AsyncIterator[tuple[str, QueueClient, QueueClient]]:
    name = f"q{uuid.uuid4().hex[:12]}"
    work, poison = _client(azurite, name), _client(azurite, f"{name}-poison")
    for queue in (work, poison):
        with contextlib.suppress(ResourceExistsError):
            await queue.create_queue()
    yield name, work, poison
    for queue in (work, poison):
        await queue.delete_queue()
        await queue.close()


def host_for(queue_name: str, handler: Any) -> LocalHost:
    bp = func.Blueprint()
    bp.queue_trigger(arg_name="msg", queue_name=queue_name, connection="AzureWebJobsStorage")(
        handler
    )
    app = func.FunctionApp()
    app.register_functions(bp)
    return LocalHost(app, host_json={}, function_key="k")


async def test_a_message_is_delivered_with_its_body_and_deleted_after_success(
    azurite: Azurite, queues: tuple[str, QueueClient, QueueClient]
) -> None:
    name, work, poison = queues
    seen: list[tuple[bytes, int | None]] = []

    async def handler(msg: func.QueueMessage) -> None:
        seen.append((msg.get_body(), msg.dequeue_count))

    [function] = host_for(name, handler).queue_functions
    await work.send_message('{"hello": 1}')
    runner = QueueRunner(
        options=OPTIONS, environ={"AzureWebJobsStorage": azurite.connection_string}
    )
    assert await runner.drain(function, work, poison) == 1
    assert seen == [(b'{"hello": 1}', 1)]
    assert await work.peek_messages() == []


async def test_a_failing_message_is_retried_then_moved_to_the_poison_queue(
    azurite: Azurite, queues: tuple[str, QueueClient, QueueClient]
) -> None:
    name, work, poison = queues
    counts: list[int | None] = []

    def handler(msg: func.QueueMessage) -> None:
        counts.append(msg.dequeue_count)
        raise RuntimeError("boom")

    [function] = host_for(name, handler).queue_functions
    await work.send_message("payload")
    runner = QueueRunner(
        options=OPTIONS, environ={"AzureWebJobsStorage": azurite.connection_string}
    )
    for _ in range(OPTIONS.max_dequeue_count):
        assert await runner.drain(function, work, poison) == 1
    assert counts == [1, 2, 3]
    assert await work.peek_messages() == []
    assert [m.content for m in await poison.peek_messages()] == ["payload"]


def test_queue_options_come_from_host_json() -> None:
    options = QueueOptions.from_host_json(
        {
            "extensions": {
                "queues": {
                    "maxDequeueCount": 7,
                    "visibilityTimeout": "00:00:30",
                    "maxPollingInterval": "00:00:02",
                }
            }
        }
    )
    assert (
        options.max_dequeue_count,
        options.visibility_timeout,
        options.max_polling_interval,
    ) == (7, 30.0, 2.0)


def test_host_json_bounds_the_attempts_the_worker_is_configured_with() -> None:
    host_json = json.loads((Path(__file__).parents[2] / "host.json").read_text())
    assert host_json["extensions"]["queues"]["maxDequeueCount"] == Settings().queue_max_attempts
