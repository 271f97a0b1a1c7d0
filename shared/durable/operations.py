"""An operation as stored, reading it, and accepting one: recorded once per set of
idempotency keys, with a row per command; a repeat gets the recorded one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from incident_link_api.commands import Command
from incident_link_api.outcome import ItemResult, ItemStatus, Outcome, OutcomeStatus, UpstreamInfo
from shared import actions, lifecycle
from shared.config import Settings
from shared.durable.entities import command_hash
from shared.durable.store import RecordStore
from shared.errors import StoreUnavailable
from shared.lifecycle import CommandMark, CommandRow, OperationHeader
from shared.routes import RouteKind
from shared.storage import Storage


@dataclass(frozen=True)
class Operation:
    """An operation as stored: its header and one row per command."""

    header: OperationHeader
    commands: tuple[CommandRow, ...]

    @property
    def operation_id(self) -> str:
        return self.header.operation_id

    @property
    def final(self) -> bool:
        return self.header.final

    @property
    def skipped(self) -> bool:
        """A webhook event the policy did not act on (its phase is SKIPPED, at any time)."""
        return self.header.final and self.header.status is OutcomeStatus.SKIPPED

    def outcome(self) -> Outcome:
        """What is known: answered commands' items, the rest pending (or failed, if final)."""
        header = self.header
        if not self.commands:
            return Outcome(
                operation_id=header.operation_id,
                action=header.action,
                status=header.status,
                items=(),
                started_at=header.created_at,
                finished_at=header.finished_at,
                reason=header.reason,
            )
        upstream = actions.upstream_of(self.commands[0].command)
        groups = [(row.index, items_of(row)) for row in self.commands]
        outcome = actions.outcome_of(
            groups,
            operation_id=header.operation_id,
            action=header.action,
            upstream=upstream,
            # Upstream attempts so far; while the first run is under way, the runs started.
            attempts=max(
                sum(item.attempts for _, group in groups for item in group), header.attempts
            ),
            started_at=header.created_at,
            finished_at=header.finished_at,
            replies=tuple(row.reply for row in self.commands if row.reply is not None),
            reason=header.reason,
        )
        status = header.status if header.final else OutcomeStatus.PENDING
        return outcome.model_copy(update={"status": status})


def items_of(row: CommandRow) -> tuple[ItemResult, ...]:
    """A command's items: its answer's; else its last failure's, or pending. A command not
    answered after an ambiguous send (one that may have acted) reads `unknown`, never plain
    failed: the effect may have happened (`actions.outcome_unknown`)."""
    if row.mark is CommandMark.ANSWERED:
        return row.items
    items = row.items
    if not items:
        upstream = UpstreamInfo(name=actions.upstream_of(row.command))
        items = tuple(
            ItemResult(target=target, status=ItemStatus.PENDING, upstream=upstream)
            for target in actions.targets(row.command)
        )
    if row.ambiguous and row.mark is CommandMark.PENDING:
        return actions.outcome_unknown(items)
    return items


@dataclass(frozen=True)
class Claim:
    """The operation a request maps to, and whether it existed already."""

    operation: Operation
    existing: bool


def record_store(storage: Storage, settings: Settings) -> RecordStore:
    """The operations table of `storage`, keeping idempotency keys as long as settings say."""
    return RecordStore(storage, retention=timedelta(hours=settings.idempotency_retention_hours))


async def read(store: RecordStore, operation_id: str) -> Operation | None:
    stored = await store.read(operation_id)
    return None if stored is None else Operation(stored[0], tuple(stored[1]))


def _fresh(
    operation_id: str,
    route: RouteKind,
    commands: Sequence[Command],
    *,
    now: datetime,
    sender: str | None,
) -> tuple[OperationHeader, list[CommandRow]]:
    header = OperationHeader(
        operation_id=operation_id,
        route=route,
        action=commands[0].action if commands else None,
        command_count=len(commands),
        command_hash=command_hash(route, commands),
        sender=sender,
        created_at=now,
        updated_at=now,
    )
    rows = [
        CommandRow(operation_id=operation_id, index=index, command=command)
        for index, command in enumerate(commands)
    ]
    return header, rows


async def accept(
    store: RecordStore,
    *,
    operation_id: str,
    route: RouteKind,
    commands: Sequence[Command],
    keys: Sequence[tuple[str, str]] = (),
    sender: str | None = None,
    now: datetime,
    skipped: str | None = None,
) -> Claim:
    """Record an operation, once per set of keys: a repeat gets the recorded one. `skipped`
    records a webhook event the policy does not act on (no commands, final at once)."""
    header, rows = _fresh(operation_id, route, commands, now=now, sender=sender)
    if skipped is not None:
        header = lifecycle.skip(header, now=now, reason=skipped)
    if keys:
        claim = await store.claim_keys(
            keys, operation_id=operation_id, digest=header.command_hash, now=now
        )
        if claim.existing:
            found = await read(store, claim.operation_id)
            if found is not None:
                return Claim(found, existing=True)
            # The first writer died between its key and its record: finish its work.
            header = header.model_copy(update={"operation_id": claim.operation_id})
            rows = [row.model_copy(update={"operation_id": claim.operation_id}) for row in rows]
    created = await store.create(header, rows)
    if created is None:  # a concurrent writer of the same key created it first
        found = await read(store, header.operation_id)
        if found is None:
            raise StoreUnavailable("the operation could not be read after a concurrent write")
        return Claim(found, existing=True)
    return Claim(Operation(created[0], tuple(created[1])), existing=False)
