"""Operation records and idempotency keys on Azure Tables, always within the store's limits.

One partition per operation (`PartitionKey` = operation id):
- `RowKey "operation"`: the header (`OperationHeader`): state, lease, attempts, status, reason.
- `RowKey "command-00000"`, …: one `CommandRow` per command: the command, its mark, its items
  and the upstream's reply. Results never pile up in one entity, so a bulk's record grows with
  its commands, not against one entity's limit.

Idempotency keys live in key spaces of their own, so no caller can claim a webhook's key:
- a caller's `Idempotency-Key`: `PartitionKey "key:<sha256('caller' NUL key)>"`, `RowKey "key"`;
- a webhook delivery: `PartitionKey "webhook-keys"`, `RowKey "event:<sha256(event id)>"` and
  `"content:<sha256(timestamp.body)>"`, inserted in one transaction (both or neither), so a
  replay of the signed content under a new event id finds the first delivery's operation.

Limits (learn.microsoft.com/azure/storage/tables/scalability-targets): 1 MiB an entity, 255
properties with the three system ones, 64 KiB a string property (UTF-16), 100 entities and
4 MiB a transaction. Text is stored as ASCII-only JSON (`\\uXXXX` escapes) in chunks of
`CHUNK_CHARS`, so a chunk is at most 60,000 bytes. `entity_size` is the documented formula
("How the size of an entity is calculated in Windows Azure table storage", Microsoft archive
blog): 4 + 2·len(PartitionKey + RowKey) + Σ (8 + 2·len(name) + size(value)). A request whose
record could not fit is refused before it acts (`PayloadTooLarge`); an answer is clipped to fit
(upstream messages shortened) before it is written, so a write never fails for its size.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any

from pydantic import TypeAdapter

from incident_link_api.commands import Command
from incident_link_api.contraforce import ApiResponseOfboolean
from incident_link_api.d3 import D3CommandResponse
from incident_link_api.outcome import ItemError, ItemResult, OutcomeStatus, VendorReply
from shared.errors import IdempotencyConflict, PayloadTooLarge, StoreUnavailable
from shared.lifecycle import CommandMark, CommandRow, OperationHeader, OperationState
from shared.storage import Storage

ENTITY_LIMIT_BYTES = 1024 * 1024
PROPERTY_LIMIT_BYTES = 64 * 1024
MAX_PROPERTIES = 252  # 255 less PartitionKey, RowKey and Timestamp
TRANSACTION_LIMIT_BYTES = 4 * 1024 * 1024
TRANSACTION_MAX_ENTITIES = 100
CHUNK_CHARS = 30_000  # ASCII characters: 60,000 bytes of UTF-16, under the property limit
MAX_STORED_MESSAGE = 1_000  # characters of one upstream message kept in a record
# What an answered item can add to a command row at most (its target, status, upstream, a
# clipped message, a clipped error) plus its share of the upstream's reply; used to refuse,
# before acting, a request whose record could not fit.
ITEM_BUDGET_BYTES = 2 * (2 * MAX_STORED_MESSAGE + 1_200)
HEADER_ROW = "operation"
WEBHOOK_KEYS = "webhook-keys"

_COMMAND = TypeAdapter(Command)
_ITEMS = TypeAdapter(tuple[ItemResult, ...])


def command_hash(route: str, commands: Sequence[Command]) -> str:
    """A stable fingerprint of what a request asks for (route and Commands)."""
    canonical = json.dumps(
        [route, [command.model_dump(mode="json") for command in commands]],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _digest(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


# ---- sizes ------------------------------------------------------------------------------------


def _value_size(value: Any) -> int:
    if isinstance(value, bool):
        return 1
    if isinstance(value, int):
        return 8
    if isinstance(value, float):
        return 8
    return 4 + 2 * len(str(value))


def entity_size(entity: dict[str, Any]) -> int:
    """The stored size of an entity, by Microsoft's formula (see the module docstring)."""
    keys = len(entity["PartitionKey"]) + len(entity["RowKey"])
    return (
        4
        + 2 * keys
        + sum(
            8 + 2 * len(name) + _value_size(value)
            for name, value in entity.items()
            if name not in {"PartitionKey", "RowKey"}
        )
    )


def _ascii_json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=True, separators=(",", ":"))


def _pack(name: str, text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    parts = [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)] or [""]
    return {f"{name}{i}": part for i, part in enumerate(parts)} | {f"{name}Parts": len(parts)}


def _unpack(entity: Any, name: str) -> str | None:
    count = entity.get(f"{name}Parts")
    if count is None:
        return None
    return "".join(entity[f"{name}{i}"] for i in range(int(count)))


def _clip(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


# ---- rows ↔ entities --------------------------------------------------------------------------


def _row_key(index: int) -> str:
    return f"command-{index:05d}"


def _header_entity(header: OperationHeader) -> dict[str, Any]:
    return {
        "PartitionKey": header.operation_id,
        "RowKey": HEADER_ROW,
        "route": header.route,
        "action": header.action or "",
        "commandCount": header.command_count,
        "commandHash": header.command_hash,
        "state": header.state.value,
        "status": header.status.value,
        "attempts": header.attempts,
        "leaseOwner": header.lease_owner or "",
        "leaseUntil": header.lease_until.isoformat() if header.lease_until else "",
        "retryable": header.retryable,
        "reason": _clip(header.reason, 2_000) or "",
        "caller": _clip(header.caller, 256) or "",
        "createdAt": header.created_at.isoformat(),
        "updatedAt": header.updated_at.isoformat(),
        "finishedAt": header.finished_at.isoformat() if header.finished_at else "",
    }


def _header_from(entity: Any) -> OperationHeader:
    def moment(name: str) -> datetime | None:
        text = entity.get(name) or ""
        return datetime.fromisoformat(text) if text else None

    return OperationHeader(
        operation_id=entity["PartitionKey"],
        route=entity["route"],
        action=entity.get("action") or None,
        command_count=int(entity.get("commandCount", 0)),
        command_hash=entity["commandHash"],
        state=OperationState(entity["state"]),
        status=OutcomeStatus(entity["status"]),
        attempts=int(entity.get("attempts", 0)),
        lease_owner=entity.get("leaseOwner") or None,
        lease_until=moment("leaseUntil"),
        retryable=bool(entity.get("retryable", False)),
        reason=entity.get("reason") or None,
        caller=entity.get("caller") or None,
        created_at=datetime.fromisoformat(entity["createdAt"]),
        updated_at=datetime.fromisoformat(entity["updatedAt"]),
        finished_at=moment("finishedAt"),
        etag=entity.metadata.get("etag"),
    )


def _row_entity(row: CommandRow) -> dict[str, Any]:
    items = [item.model_dump(mode="json", by_alias=True) for item in row.items]
    reply = row.reply.model_dump(mode="json", by_alias=True) if row.reply is not None else None
    error = row.last_error.model_dump(mode="json", by_alias=True) if row.last_error else None
    return {
        "PartitionKey": row.operation_id,
        "RowKey": _row_key(row.index),
        "index": row.index,
        "mark": row.mark.value,
        "sends": row.sends,
        "ambiguous": row.ambiguous,
        **_pack("command", _ascii_json(row.command.model_dump(mode="json", by_alias=True))),
        **_pack("items", _ascii_json(items) if items else None),
        **_pack("reply", _ascii_json(reply) if reply is not None else None),
        **_pack("lastError", _ascii_json(error) if error is not None else None),
    }


def _reply_from(command: Command, text: str | None) -> VendorReply | None:
    if not text:
        return None
    model = ApiResponseOfboolean if command.kind == "unlink_ticket" else D3CommandResponse
    return model.model_validate_json(text)


def _row_from(entity: Any) -> CommandRow:
    command = _COMMAND.validate_json(_unpack(entity, "command") or "{}")
    items = _unpack(entity, "items")
    error = _unpack(entity, "lastError")
    return CommandRow(
        operation_id=entity["PartitionKey"],
        index=int(entity["index"]),
        command=command,
        mark=CommandMark(entity["mark"]),
        sends=int(entity.get("sends", 0)),
        ambiguous=bool(entity.get("ambiguous", False)),
        items=_ITEMS.validate_json(items) if items else (),
        reply=_reply_from(command, _unpack(entity, "reply")),
        last_error=ItemError.model_validate_json(error) if error else None,
        etag=entity.metadata.get("etag"),
    )


def _fits(entity: dict[str, Any]) -> bool:
    return entity_size(entity) <= ENTITY_LIMIT_BYTES and len(entity) - 2 <= MAX_PROPERTIES


def _clip_items(items: Iterable[ItemResult], limit: int) -> tuple[ItemResult, ...]:
    def clip_error(error: ItemError | None) -> ItemError | None:
        if error is None:
            return None
        return error.model_copy(update={"message": _clip(error.message, limit) or ""})

    return tuple(
        item.model_copy(
            update={"message": _clip(item.message, limit), "error": clip_error(item.error)}
        )
        for item in items
    )


def fitted(row: CommandRow) -> CommandRow:
    """The row as it can be stored: upstream messages clipped, and, if that is not enough,
    the vendor's reply dropped (the items keep what it said). Refused requests never get here."""
    row = row.model_copy(update={"items": _clip_items(row.items, MAX_STORED_MESSAGE)})
    if _fits(_row_entity(row)):
        return row
    row = row.model_copy(update={"reply": None, "items": _clip_items(row.items, 120)})
    if _fits(_row_entity(row)):
        return row
    raise ValueError(f"command {row.index} of {row.operation_id} cannot fit an entity")


def check_fits(operation_id: str, commands: Sequence[Command], *, prefix: str) -> None:
    """Refuse, before anything runs, a request whose record could not be stored."""
    for index, command in enumerate(commands):
        row = CommandRow(operation_id=operation_id, index=index, command=command)
        pending = entity_size(_row_entity(row))
        items = len(command.linked_incidents) if command.kind == "remove_linked_incidents" else 1
        worst = pending + items * ITEM_BUDGET_BYTES
        if worst > ENTITY_LIMIT_BYTES:
            most = max(1, (ENTITY_LIMIT_BYTES - pending) // ITEM_BUDGET_BYTES)
            where = f"{prefix}[{index}]" if len(commands) > 1 else prefix or "body"
            raise PayloadTooLarge(
                f"{where}: the record of this command and its {items} results could reach "
                f"{worst} bytes, over Azure Table's limit of {ENTITY_LIMIT_BYTES} bytes an "
                f"entity; send at most {most} incidents per command",
                errors={where: [f"at most {most} incidents per command can be recorded"]},
                code="RECORD_TOO_LARGE",
            )


# ---- the store --------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyClaim:
    """What a set of idempotency keys maps to: a new operation id, or a held one."""

    operation_id: str
    held: bool


class Conflict(Exception):
    """Someone else changed the entity since it was read."""


def _store_error(what: str, exc: Exception) -> StoreUnavailable:
    return StoreUnavailable(f"the operations table failed to {what} ({type(exc).__name__})")


def caller_key_row(key: str) -> tuple[str, str]:
    return "key:" + _digest(b"caller\x00" + key.encode()), "key"


def webhook_key_rows(event_id: str, signed_content: bytes) -> list[tuple[str, str]]:
    return [
        (WEBHOOK_KEYS, "event:" + _digest(event_id)),
        (WEBHOOK_KEYS, "content:" + _digest(signed_content)),
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
        try:
            async for entity in self._table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": operation_id}
            ):
                if entity["RowKey"] == HEADER_ROW:
                    header = _header_from(entity)
                else:
                    rows.append(_row_from(entity))
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
                entity = _row_entity(row)
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
            meta = await self._table.create_entity(_header_entity(header))
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
        meta = await self._replace(_header_entity(header), header.etag)
        return header.model_copy(update={"etag": meta.get("etag")})

    async def save_row(self, row: CommandRow) -> CommandRow:
        """Replace a command row (clipped to fit) if nobody changed it; else raise Conflict."""
        row = fitted(row)
        meta = await self._replace(_row_entity(row), row.etag)
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
            return KeyClaim(operation_id, held=False)
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

        held: list[Any] = []
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
                held.append(found)
        except AzureError as exc:
            raise _store_error("read an idempotency key", exc) from exc
        if held and any(found["commandHash"] != entries[0]["commandHash"] for found in held):
            raise IdempotencyConflict(
                "this Idempotency-Key was already used with a different request; "
                "use a new key for a new request",
                errors={"Idempotency-Key": ["was used with a different request"]},
            )
        # Every key ends up naming one operation: the held one, else the new one.
        target = held[0]["operationId"] if held else entries[0]["operationId"]
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
        return KeyClaim(target, held=bool(held))

    async def _insert_quietly(self, entry: dict[str, Any]) -> None:
        from azure.core.exceptions import AzureError, ResourceExistsError  # noqa: PLC0415

        try:
            await self._table.create_entity(entry)
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise _store_error("claim an idempotency key", exc) from exc
