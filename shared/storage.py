"""Azure Storage clients for the durable path: the work queue, its poison queue, the table.

Locally (and in tests) `AzureWebJobsStorage` is a connection string to Azurite; in Azure the
identity-based `AzureWebJobsStorage__queueServiceUri` / `__tableServiceUri` / `__clientId`
settings the Functions host uses too. Built once per process and event loop, like the
upstream clients; queues and the table are created on first use when missing. The Azure
Storage SDK is imported on first use too: it costs a quarter of a second of cold start, and
synchronous requests never need it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.config import Settings
from shared.errors import NotConfigured, StoreUnavailable

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient
    from azure.storage.queue.aio import QueueClient

QUEUE_NAME = "link-actions"
POISON_QUEUE_NAME = f"{QUEUE_NAME}-poison"  # the Functions host's naming


@dataclass
class Storage:
    queue: QueueClient
    poison: QueueClient
    table: TableClient
    credential: Any = None

    async def aclose(self) -> None:
        for client in (self.queue, self.poison, self.table):
            await client.close()
        if self.credential is not None:
            await self.credential.close()


class _Registry:
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.storage: Storage | None = None
        self.ready = False


_registry = _Registry()


def _queue_options() -> dict[str, Any]:
    # The Functions host reads and writes queue messages as Base64 (host.json messageEncoding).
    from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy  # noqa: PLC0415

    return {
        "message_encode_policy": TextBase64EncodePolicy(),
        "message_decode_policy": TextBase64DecodePolicy(),
    }


def _build(settings: Settings) -> Storage:
    from azure.data.tables.aio import TableClient  # noqa: PLC0415 - see the module docstring
    from azure.storage.queue.aio import QueueClient  # noqa: PLC0415

    if settings.azure_web_jobs_storage is not None:
        conn = settings.azure_web_jobs_storage.get_secret_value()
        return Storage(
            queue=QueueClient.from_connection_string(conn, QUEUE_NAME, **_queue_options()),
            poison=QueueClient.from_connection_string(conn, POISON_QUEUE_NAME, **_queue_options()),
            table=TableClient.from_connection_string(conn, settings.operations_table),
        )
    if settings.storage_queue_service_uri is None or settings.storage_table_service_uri is None:
        raise NotConfigured(
            "the durable path needs AzureWebJobsStorage (a connection string) or "
            "AzureWebJobsStorage__queueServiceUri and AzureWebJobsStorage__tableServiceUri",
            settings=[
                "AzureWebJobsStorage",
                "AzureWebJobsStorage__queueServiceUri",
                "AzureWebJobsStorage__tableServiceUri",
            ],
        )
    from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415 - Azure only

    credential = DefaultAzureCredential(managed_identity_client_id=settings.storage_client_id)
    queue_url = str(settings.storage_queue_service_uri)
    return Storage(
        queue=QueueClient(queue_url, QUEUE_NAME, credential=credential, **_queue_options()),
        poison=QueueClient(queue_url, POISON_QUEUE_NAME, credential=credential, **_queue_options()),
        table=TableClient(
            str(settings.storage_table_service_uri),
            settings.operations_table,
            credential=credential,
        ),
        credential=credential,
    )


async def storage(settings: Settings) -> Storage:
    """This process's storage clients, with the queues and the table created if missing."""
    loop = asyncio.get_running_loop()
    if _registry.loop is not loop:
        _registry.loop, _registry.storage, _registry.ready = loop, None, False
    if _registry.storage is None:
        _registry.storage = _build(settings)
    found = _registry.storage
    if not _registry.ready:
        from azure.core.exceptions import AzureError, ResourceExistsError  # noqa: PLC0415

        try:
            for queue in (found.queue, found.poison):
                with contextlib.suppress(ResourceExistsError):
                    await queue.create_queue()
            with contextlib.suppress(ResourceExistsError):
                await found.table.create_table()
        except AzureError as exc:
            raise StoreUnavailable(f"Azure Storage is unreachable ({type(exc).__name__})") from exc
        _registry.ready = True
    return found


async def aclose() -> None:
    found = _registry.storage
    reset()
    if found is not None:
        await found.aclose()


def reset() -> None:
    _registry.loop, _registry.storage, _registry.ready = None, None, False
