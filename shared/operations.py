"""Operation records and idempotency on Azure Tables, and the queue payloads that carry them.

- An **operation** is one accepted request: its Commands, status, Outcome (and the vendor
  replies a mirror route answers with), attempts, and why it failed if it did. Row
  `PartitionKey=<operationId>, RowKey="operation"`.
- An **idempotency key** (`Idempotency-Key` header, or `contraforce:<X-CF-Event-Id>`) is stored
  by conditional insert with a hash of the request's Commands: the first writer wins, a repeat
  gets the same operation, the same key with a different request is 422. Keys older than
  `IDEMPOTENCY_RETENTION_HOURS` are replaced. Row `PartitionKey="key:<sha256>", RowKey="key"`.
- Records are updated with ETag conditions, so two workers can never both record a result; a
  worker **leases** an operation before sending anything, and a lease that outlives its worker
  (the process died) expires, so the redelivered message finishes the work.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any, Literal

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from shared.errors import IdempotencyConflict, StoreUnavailable
from shared.models.commands import Action, Command
from shared.models.contraforce import ApiResponseOfboolean
from shared.models.d3 import D3CommandResponse
from shared.models.outcome import Outcome, OutcomeStatus, VendorReply
from shared.storage import Storage

RouteKind = Literal["canonical", "contraforce_mirror", "d3_mirror", "webhook"]
_CHUNK = 30_000  # characters per table property (64 KiB of UTF-16)
_COMMANDS = TypeAdapter(tuple[Command, ...])


class OperationRecord(BaseModel):
    """Everything we know about one accepted request."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    operation_id: str
    route: RouteKind
    action: Action | None  # None for a skipped webhook event, which has no commands
    commands: tuple[Command, ...]
    command_hash: str
    status: OutcomeStatus = OutcomeStatus.PENDING
    outcome: Outcome | None = None
    attempts: int = 0
    pending: tuple[int, ...] = ()  # command indexes still to run
    inflight: tuple[int, ...] = ()  # sent by an attempt whose result was not recorded
    lease_until: datetime | None = None
    retryable: bool = False  # a final failure that a repeat of the request may retry
    reason: str | None = None
    created_at: datetime
    updated_at: datetime
    etag: str | None = Field(default=None, exclude=True)

    @property
    def final(self) -> bool:
        return self.status.final


class QueuedWork(BaseModel):
    """The queue message: which operation, which attempt. Commands stay in the table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    operation_id: str = Field(alias="operationId")
    attempt: int = Field(default=1, ge=1)

    def to_message(self) -> str:
        return self.model_dump_json(by_alias=True)


def command_hash(route: RouteKind, commands: Sequence[Command]) -> str:
    """A stable fingerprint of what a request asks for (route and Commands)."""
    canonical = json.dumps(
        [route, [command.model_dump(mode="json") for command in commands]],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _pack(name: str, text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    parts = [text[i : i + _CHUNK] for i in range(0, len(text), _CHUNK)] or [""]
    return {f"{name}{i}": part for i, part in enumerate(parts)} | {f"{name}Parts": len(parts)}


def _unpack(entity: dict[str, Any], name: str) -> str | None:
    count = entity.get(f"{name}Parts")
    if count is None:
        return None
    return "".join(entity[f"{name}{i}"] for i in range(int(count)))


def _replies(action: Action | None, raw: list[dict[str, Any]]) -> tuple[VendorReply, ...]:
    model = ApiResponseOfboolean if action == "unlink_ticket" else D3CommandResponse
    return tuple(model.model_validate(reply) for reply in raw)


def _to_entity(record: OperationRecord) -> dict[str, Any]:
    outcome = record.outcome
    replies = (
        json.dumps([r.model_dump(mode="json", by_alias=True) for r in outcome.replies])
        if outcome is not None
        else None
    )
    return {
        "PartitionKey": record.operation_id,
        "RowKey": "operation",
        "route": record.route,
        "action": record.action or "",
        "status": record.status.value,
        "commandHash": record.command_hash,
        "attempts": record.attempts,
        "pending": json.dumps(record.pending),
        "inflight": json.dumps(record.inflight),
        "leaseUntil": record.lease_until.isoformat() if record.lease_until else "",
        "retryable": record.retryable,
        "reason": record.reason or "",
        "createdAt": record.created_at.isoformat(),
        "updatedAt": record.updated_at.isoformat(),
        **_pack("commands", _COMMANDS.dump_json(record.commands, by_alias=True).decode()),
        **_pack("outcome", outcome.model_dump_json(by_alias=True) if outcome else None),
        **_pack("replies", replies),
    }


def _from_entity(entity: Any) -> OperationRecord:
    action = entity.get("action") or None
    outcome_json = _unpack(entity, "outcome")
    outcome = Outcome.model_validate_json(outcome_json) if outcome_json else None
    replies_json = _unpack(entity, "replies")
    if outcome is not None and replies_json:
        outcome = outcome.model_copy(update={"replies": _replies(action, json.loads(replies_json))})
    lease = entity.get("leaseUntil") or None
    return OperationRecord(
        operation_id=entity["PartitionKey"],
        route=entity["route"],
        action=action,
        commands=_COMMANDS.validate_json(_unpack(entity, "commands") or "[]"),
        command_hash=entity["commandHash"],
        status=OutcomeStatus(entity["status"]),
        outcome=outcome,
        attempts=int(entity.get("attempts", 0)),
        pending=tuple(json.loads(entity.get("pending") or "[]")),
        inflight=tuple(json.loads(entity.get("inflight") or "[]")),
        lease_until=datetime.fromisoformat(lease) if lease else None,
        retryable=bool(entity.get("retryable", False)),
        reason=entity.get("reason") or None,
        created_at=datetime.fromisoformat(entity["createdAt"]),
        updated_at=datetime.fromisoformat(entity["updatedAt"]),
        etag=entity.metadata.get("etag"),
    )


@dataclass(frozen=True)
class Claim:
    """The operation a request maps to, and whether it existed already."""

    record: OperationRecord
    existing: bool


class Conflict(Exception):
    """Someone else updated the record first."""


class OperationStore:
    """Operation records and idempotency keys in one Azure Table."""

    def __init__(self, storage: Storage, *, retention: timedelta) -> None:
        self._table = storage.table
        self._retention = retention

    async def get(self, operation_id: str) -> OperationRecord | None:
        try:
            entity = await self._table.get_entity(operation_id, "operation")
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise StoreUnavailable(f"the operations table failed ({type(exc).__name__})") from exc
        return _from_entity(entity)

    async def create(self, record: OperationRecord) -> OperationRecord:
        try:
            meta = await self._table.create_entity(_to_entity(record))
        except ResourceExistsError:
            raise
        except AzureError as exc:
            raise StoreUnavailable(f"the operations table failed ({type(exc).__name__})") from exc
        return record.model_copy(update={"etag": meta.get("etag")})

    async def save(self, record: OperationRecord) -> OperationRecord:
        """Replace the record if nobody changed it since it was read; else raise Conflict."""
        from azure.data.tables import UpdateMode  # noqa: PLC0415 - the SDK loads on first use

        try:
            meta = await self._table.update_entity(
                _to_entity(record),
                mode=UpdateMode.REPLACE,
                etag=record.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceNotFoundError, ResourceExistsError) as exc:
            raise Conflict(record.operation_id) from exc
        except AzureError as exc:
            if getattr(exc, "status_code", None) == HTTPStatus.PRECONDITION_FAILED:
                raise Conflict(record.operation_id) from exc
            raise StoreUnavailable(f"the operations table failed ({type(exc).__name__})") from exc
        return record.model_copy(update={"etag": meta.get("etag")})

    async def claim(self, key: str | None, record: OperationRecord, *, now: datetime) -> Claim:
        """Record a new operation, or return the one `key` already maps to."""
        from azure.data.tables import UpdateMode  # noqa: PLC0415 - the SDK loads on first use

        if key is None:
            return Claim(await self.create(record), existing=False)
        row = "key:" + hashlib.sha256(key.encode()).hexdigest()
        entry = {
            "PartitionKey": row,
            "RowKey": "key",
            "operationId": record.operation_id,
            "commandHash": record.command_hash,
            "createdAt": now.isoformat(),
        }
        try:
            await self._table.create_entity(entry)
            return Claim(await self.create(record), existing=False)
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise StoreUnavailable(f"the operations table failed ({type(exc).__name__})") from exc
        try:
            held = await self._table.get_entity(row, "key")
            if now - datetime.fromisoformat(held["createdAt"]) > self._retention:
                await self._table.update_entity(
                    entry,
                    mode=UpdateMode.REPLACE,
                    etag=held.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
                return Claim(await self.create(record), existing=False)
        except AzureError as exc:
            raise StoreUnavailable(
                f"the idempotency key could not be read ({type(exc).__name__})"
            ) from exc
        if held["commandHash"] != record.command_hash:
            raise IdempotencyConflict(
                "this Idempotency-Key was already used with a different request; "
                "use a new key for a new request",
                errors={"Idempotency-Key": ["was used with a different request"]},
            )
        existing = await self.get(held["operationId"])
        if existing is None:  # the first writer died between the two inserts
            try:
                return Claim(
                    await self.create(
                        record.model_copy(update={"operation_id": held["operationId"]})
                    ),
                    existing=False,
                )
            except ResourceExistsError:
                existing = await self.get(held["operationId"])
        if existing is None:
            raise StoreUnavailable("the operation of this Idempotency-Key could not be read")
        return Claim(existing, existing=True)
