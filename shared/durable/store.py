"""Operation records and idempotency keys in one Azure Table (`RecordStore`): reading,
creating and replacing them under ETags, and claiming keys. What an entity holds and how big it
may be is `shared.durable.entities`.

One partition per operation (`PartitionKey` = operation id):
- `RowKey "operation"`: the header (`OperationHeader`): state, lease, attempts, status, reason.
- `RowKey "command-00000"`, …: one `CommandRow` per command.

Idempotency keys live in key spaces of their own, so no caller can claim a webhook's key:
- a caller's `Idempotency-Key`: `PartitionKey "key:<sha256('caller' NUL key)>"`, `RowKey "key"`;
- a webhook delivery: `PartitionKey "webhook-keys"`, `RowKey "event:<sha256(event id)>"` and
  `"content:<sha256(timestamp.body)>"`, inserted in one transaction (both or neither), so a
  replay of the signed content under a new event id finds the first delivery's operation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any

from shared.durable.entities import (
    COMMAND_ROW_PREFIX,
    HEADER_ROW,
    TRANSACTION_LIMIT_BYTES,
    TRANSACTION_MAX_ENTITIES,
    WEBHOOK_KEYS,
    digest,
    entity_size,
    fitted,
    header_entity,
    header_from,
    row_entity,
    row_from,
)
from shared.errors import IdempotencyConflict, StoreUnavailable
from shared.lifecycle import CommandRow, OperationHeader
from shared.storage import Storage


@dataclass(frozen=True)
class KeyClaim:
    """What a set of idempotency keys maps to: a new operation id, or an existing one."""

    operation_id: str
    existing: bool


class Conflict(Exception):
    """Someone else changed the entity since it was read."""


def _store_error(what: str, exc: Exception) -> StoreUnavailable:
    return StoreUnavailable(f"the operations table failed to {what} ({type(exc).__name__})")


def caller_key_row(key: str) -> tuple[str, str]:
    return "key:" + digest(b"caller\x00" + key.encode()), "key"


def webhook_key_rows(event_id: str, signed_content: bytes) -> list[tuple[str, str]]:
    return [
        (WEBHOOK_KEYS, "event:" + digest(event_id)),
        (WEBHOOK_KEYS, "content:" + digest(signed_content)),
    ]


class RecordStore:
    """Operation headers, command rows and idempotency keys in one Azure Table. The Azure SDK
    is imported where it is used, like `shared.storage`: a cold start does not pay for it."""

    def __init__(self, storage: Storage, *, retention: timedelta) -> None:
        self._table = storage.table
        self._retention = retention

    # -- reading --

    async def read(self, operation_id: str) -> tuple[OperationHeader, list[CommandRow]] | None:
        """The header and command rows of an operation, or None if it has no header."""
        from azure.core.exceptions import AzureError  # noqa: PLC0415

        header: OperationHeader | None = None
        rows: list[CommandRow] = []
        # Only an operation's own rows: the id may name a key partition ("webhook-keys",
        # "key:…"), whose rows are no operation's and must not be scanned for one.
        # The SDK reads a parameter's name up to the next space: none may touch a ")".
        query = (
            "PartitionKey eq @pk and "
            "( RowKey eq @header or ( RowKey ge @first and RowKey lt @end ) )"
        )
        parameters = {
            "pk": operation_id,
            "header": HEADER_ROW,
            "first": COMMAND_ROW_PREFIX,
            "end": COMMAND_ROW_PREFIX[:-1] + chr(ord(COMMAND_ROW_PREFIX[-1]) + 1),
        }
        try:
            async for entity in self._table.query_entities(query, parameters=parameters):
                if entity["RowKey"] == HEADER_ROW:
                    header = header_from(entity)
                else:
                    rows.append(row_from(entity))
        except AzureError as exc:
            raise _store_error("read an operation", exc) from exc
        if header is None:
            return None
        return header, sorted(rows, key=lambda row: row.index)

    # -- writing --

    async def create(
        self, header: OperationHeader, rows: Sequence[CommandRow]
    ) -> tuple[OperationHeader, list[CommandRow]] | None:
        """Write the command rows, then the header: an operation exists once its header
        does. Rows are only ever inserted, never overwritten, so a second writer of the same
        key (finishing what it thinks a dead writer left) cannot change rows a live one
        holds. None if another writer created the header first."""
        from azure.core.exceptions import AzureError, ResourceExistsError  # noqa: PLC0415

        batch: list[dict[str, Any]] = []
        size = 0
        try:
            for row in rows:
                entity = row_entity(row)
                if batch and (
                    len(batch) >= TRANSACTION_MAX_ENTITIES
                    or size + entity_size(entity) > TRANSACTION_LIMIT_BYTES // 2
                ):
                    await self._insert_rows(batch)
                    batch, size = [], 0
                batch.append(entity)
                size += entity_size(entity)
            if batch:
                await self._insert_rows(batch)
            meta = await self._table.create_entity(header_entity(header))
        except ResourceExistsError:
            return None
        except AzureError as exc:
            raise _store_error("record the operation", exc) from exc
        stored = await self.read(header.operation_id)
        if stored is None:
            raise StoreUnavailable("the operation just recorded could not be read back")
        return header.model_copy(update={"etag": meta.get("etag")}), stored[1]

    async def _insert_rows(self, entities: list[dict[str, Any]]) -> None:
        """Insert rows in one transaction; where some exist already, insert the rest alone."""
        from azure.core.exceptions import HttpResponseError  # noqa: PLC0415

        try:
            await self._table.submit_transaction([("create", entity) for entity in entities])
        except HttpResponseError as exc:
            if exc.status_code != HTTPStatus.CONFLICT:
                raise
            for entity in entities:
                await self._insert_quietly(entity)

    async def save_header(self, header: OperationHeader) -> OperationHeader:
        """Replace the header if nobody changed it since it was read; else raise Conflict."""
        meta = await self._replace(header_entity(header), header.etag)
        return header.model_copy(update={"etag": meta.get("etag")})

    async def save_row(self, row: CommandRow) -> CommandRow:
        """Replace a command row (clipped to fit) if nobody changed it; else raise Conflict."""
        row = fitted(row)
        meta = await self._replace(row_entity(row), row.etag)
        return row.model_copy(update={"etag": meta.get("etag")})

    async def _replace(self, entity: dict[str, Any], etag: str | None) -> Any:
        from azure.core import MatchConditions  # noqa: PLC0415
        from azure.core.exceptions import (  # noqa: PLC0415
            AzureError,
            HttpResponseError,
            ResourceExistsError,
            ResourceNotFoundError,
        )
        from azure.data.tables import UpdateMode  # noqa: PLC0415 - the SDK loads on first use

        try:
            return await self._table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceNotFoundError, ResourceExistsError) as exc:
            raise Conflict(entity["PartitionKey"]) from exc
        except HttpResponseError as exc:
            if exc.status_code == HTTPStatus.PRECONDITION_FAILED:
                raise Conflict(entity["PartitionKey"]) from exc
            raise _store_error("update a record", exc) from exc
        except AzureError as exc:
            raise _store_error("update a record", exc) from exc

    # -- idempotency keys --

    async def claim_keys(
        self, rows: Sequence[tuple[str, str]], *, operation_id: str, digest: str, now: datetime
    ) -> KeyClaim:
        """Map every key to `operation_id` (all of them in one transaction), or find the
        operation one of them already maps to. Keys past retention are taken over. The same
        key for a different request is `IdempotencyConflict` (422)."""
        from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError  # noqa: PLC0415

        entries = [
            {
                "PartitionKey": partition,
                "RowKey": row,
                "operationId": operation_id,
                "commandHash": digest,
                "createdAt": now.isoformat(),
            }
            for partition, row in rows
        ]
        try:
            await self._table.submit_transaction([("create", entry) for entry in entries])
            return KeyClaim(operation_id, existing=False)
        except (ResourceExistsError, HttpResponseError) as exc:
            if getattr(exc, "status_code", None) not in {HTTPStatus.CONFLICT, None}:
                raise _store_error("claim an idempotency key", exc) from exc
        except AzureError as exc:
            raise _store_error("claim an idempotency key", exc) from exc
        return await self._resolve(entries, now=now)

    async def _resolve(self, entries: list[dict[str, Any]], *, now: datetime) -> KeyClaim:
        from azure.core import MatchConditions  # noqa: PLC0415
        from azure.core.exceptions import AzureError, ResourceNotFoundError  # noqa: PLC0415
        from azure.data.tables import UpdateMode  # noqa: PLC0415 - the SDK loads on first use

        taken: list[Any] = []  # keys that map to an operation already
        missing: list[dict[str, Any]] = []
        stale: list[tuple[dict[str, Any], str | None]] = []  # past retention: taken over below
        try:
            for entry in entries:
                try:
                    found = await self._table.get_entity(entry["PartitionKey"], entry["RowKey"])
                except ResourceNotFoundError:
                    missing.append(entry)
                    continue
                if now - datetime.fromisoformat(found["createdAt"]) > self._retention:
                    stale.append((entry, found.metadata["etag"]))
                    continue
                taken.append(found)
        except AzureError as exc:
            raise _store_error("read an idempotency key", exc) from exc
        if taken and any(found["commandHash"] != entries[0]["commandHash"] for found in taken):
            raise IdempotencyConflict(
                "this Idempotency-Key was already used with a different request; "
                "use a new key for a new request",
                errors={"Idempotency-Key": ["was used with a different request"]},
            )
        # Every key ends up naming one operation: the existing one, else the new one.
        target = taken[0]["operationId"] if taken else entries[0]["operationId"]
        try:
            for entry, etag in stale:
                await self._table.update_entity(
                    entry | {"operationId": target},
                    mode=UpdateMode.REPLACE,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except AzureError as exc:
            raise _store_error("take over an idempotency key", exc) from exc
        for entry in missing:
            await self._insert_quietly(entry | {"operationId": target})
        return KeyClaim(target, existing=bool(taken))

    async def _insert_quietly(self, entry: dict[str, Any]) -> None:
        from azure.core.exceptions import AzureError, ResourceExistsError  # noqa: PLC0415

        try:
            await self._table.create_entity(entry)
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise _store_error("claim an idempotency key", exc) from exc
