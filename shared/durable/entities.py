"""How operations are stored as Azure Table entities, always within the store's limits: the
entity codec (rows ↔ entities) and the size rules. Pure: `shared.durable.store` does the I/O.

One partition per operation (`PartitionKey` = operation id):
- `RowKey "operation"`: the header (`OperationHeader`): state, lease, attempts, status, reason.
- `RowKey "command-00000"`, …: one `CommandRow` per command: the command, its mark, its items
  and the upstream's reply. Results never pile up in one entity, so a bulk's record grows with
  its commands, not against one entity's limit.

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
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from incident_link_api.commands import Command
from incident_link_api.contraforce import ApiResponseOfboolean
from incident_link_api.d3 import D3CommandResponse
from incident_link_api.outcome import ItemError, ItemResult, OutcomeStatus, VendorReply
from shared.errors import PayloadTooLarge
from shared.lifecycle import CommandMark, CommandRow, OperationHeader, OperationState

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
COMMAND_ROW_PREFIX = "command-"
WEBHOOK_KEYS = "webhook-keys"

_COMMAND = TypeAdapter(Command)
_ITEMS = TypeAdapter(tuple[ItemResult, ...])


def command_hash(route: str, commands: Sequence[Command]) -> str:
    """A stable fingerprint of what a request asks for (route and Commands)."""
    canonical = json.dumps(
        [route, [_fingerprinted(command) for command in commands]],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _fingerprinted(command: Command) -> dict[str, Any]:
    # Field names, as ever; `action` under its first name, `kind` (see incident_link_api).
    data = command.model_dump(mode="json")
    data["kind"] = data.pop("action")
    return data


def digest(text: str | bytes) -> str:
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
    return f"{COMMAND_ROW_PREFIX}{index:05d}"


def header_entity(header: OperationHeader) -> dict[str, Any]:
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
        "caller": _clip(header.sender, 256) or "",
        "createdAt": header.created_at.isoformat(),
        "updatedAt": header.updated_at.isoformat(),
        "finishedAt": header.finished_at.isoformat() if header.finished_at else "",
    }


def header_from(entity: Any) -> OperationHeader:
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
        sender=entity.get("caller") or None,
        created_at=datetime.fromisoformat(entity["createdAt"]),
        updated_at=datetime.fromisoformat(entity["updatedAt"]),
        finished_at=moment("finishedAt"),
        etag=entity.metadata.get("etag"),
    )


def row_entity(row: CommandRow) -> dict[str, Any]:
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
    model = ApiResponseOfboolean if command.action == "unlink_ticket" else D3CommandResponse
    return model.model_validate_json(text)


def row_from(entity: Any) -> CommandRow:
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
    if _fits(row_entity(row)):
        return row
    row = row.model_copy(update={"reply": None, "items": _clip_items(row.items, 120)})
    if _fits(row_entity(row)):
        return row
    raise ValueError(f"command {row.index} of {row.operation_id} cannot fit an entity")


def check_fits(operation_id: str, commands: Sequence[Command], *, prefix: str) -> None:
    """Refuse, before anything runs, a request whose record could not be stored."""
    for index, command in enumerate(commands):
        row = CommandRow(operation_id=operation_id, index=index, command=command)
        pending = entity_size(row_entity(row))
        items = len(command.linked_incidents) if command.action == "remove_linked_incidents" else 1
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
