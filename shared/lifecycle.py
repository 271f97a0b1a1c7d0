"""The durable core's state machine: what an accepted operation and each of its commands can be,
and the only transitions between them. Pure: no I/O, no clock of its own.

```
operation   ACCEPTED ──lease(owner, until)──▶ LEASED(attempt n) ──record──▶ RECORDED(final status)
               ▲                                 │ │                              │
               │            lease expires ───────┘ │ (a taker may lease again)    │ retryable
               └──── transient, attempts left ─────┘                              │ (poisoned)
               └──── a repeat or a replay gives it a fresh budget ◀───────────────┘

command     PENDING ──mark_sent──▶ SENT ──settle(answer)──▶ ANSWERED (final for the command)
               ▲                     │
               └─ settle(transient) ─┘  no usable answer: run again later
            SENT found by a new lease = its sender died after the mark: the send is *ambiguous*
```

The one rule for "nothing to do" (ContraForce `data:false`, a D3 incident that is not linked):
it is a success only for a command with an *ambiguous* earlier send, one that may have left and
whose answer was lost (a lease found it SENT, or a send timed out or lost its connection after
the body went out). Otherwise it is `not_applied`. `shared.actions.settle` applies it, on every
path alike.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from incident_link_api.commands import Action, Command
from incident_link_api.outcome import ItemError, ItemResult, OutcomeStatus, VendorReply

RouteKind = Literal["canonical", "contraforce_mirror", "d3_mirror", "webhook"]


class OperationState(StrEnum):
    ACCEPTED = "accepted"  # recorded, waiting for a runner (queued, or about to run in-process)
    LEASED = "leased"  # one runner holds it until `lease_until`
    RECORDED = "recorded"  # final: `status` says how it ended


class CommandMark(StrEnum):
    PENDING = "pending"  # not sent by any runner that is still alive, or to be sent again
    SENT = "sent"  # a request may have left; no answer recorded yet
    ANSWERED = "answered"  # the answer is recorded: final for this command


class Held(Exception):
    """Another runner holds a live lease on the operation."""


class OperationHeader(BaseModel):
    """One accepted request: its state, lease, attempts and how it ended."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    operation_id: str
    route: RouteKind
    action: Action | None  # None for a skipped webhook event, which has no commands
    command_count: int
    command_hash: str
    state: OperationState = OperationState.ACCEPTED
    status: OutcomeStatus = OutcomeStatus.PENDING
    attempts: int = 0  # attempts started (leases taken)
    lease_owner: str | None = None
    lease_until: datetime | None = None
    retryable: bool = False  # RECORDED after a transient failure: a repeat may run it again
    reason: str | None = None
    caller: str | None = None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    etag: str | None = None

    @property
    def final(self) -> bool:
        return self.state is OperationState.RECORDED

    def lease_live(self, now: datetime) -> bool:
        return (
            self.state is OperationState.LEASED
            and self.lease_until is not None
            and self.lease_until > now
        )


class CommandRow(BaseModel):
    """One command of an operation and what is known of its fate."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    operation_id: str
    index: int
    command: Command
    mark: CommandMark = CommandMark.PENDING
    sends: int = 0  # requests that may have left (in-process retries count once)
    ambiguous: bool = False  # an earlier send may have acted; its answer was lost
    items: tuple[ItemResult, ...] = ()  # the answer's items (ANSWERED), or the last failure's
    reply: VendorReply | None = None
    last_error: ItemError | None = None
    etag: str | None = None


# ---- operation transitions --------------------------------------------------------------------


def lease(
    header: OperationHeader, *, owner: str, now: datetime, hold: timedelta
) -> OperationHeader:
    """ACCEPTED (or LEASED with an expired lease, or RECORDED and retryable) → LEASED."""
    if header.lease_live(now) and header.lease_owner != owner:
        raise Held(header.operation_id)
    if header.final and not header.retryable:
        raise ValueError(f"operation {header.operation_id} is recorded {header.status.value}")
    return header.model_copy(
        update={
            "state": OperationState.LEASED,
            "status": OutcomeStatus.PENDING,
            "attempts": header.attempts + 1,
            "lease_owner": owner,
            "lease_until": now + hold,
            "retryable": False,
            "updated_at": now,
        }
    )


def renew(
    header: OperationHeader, *, owner: str, now: datetime, hold: timedelta
) -> OperationHeader:
    """LEASED by `owner` → LEASED by `owner` for longer. Anyone else's record raises `Held`."""
    if header.state is not OperationState.LEASED or header.lease_owner != owner:
        raise Held(header.operation_id)
    return header.model_copy(update={"lease_until": now + hold, "updated_at": now})


def requeue(header: OperationHeader, *, now: datetime, reason: str) -> OperationHeader:
    """LEASED → ACCEPTED: a transient failure with attempts left (a queued retry follows)."""
    return header.model_copy(
        update={
            "state": OperationState.ACCEPTED,
            "status": OutcomeStatus.PENDING,
            "lease_owner": None,
            "lease_until": None,
            "reason": reason,
            "updated_at": now,
        }
    )


def record(
    header: OperationHeader,
    *,
    status: OutcomeStatus,
    now: datetime,
    retryable: bool = False,
    reason: str | None = None,
) -> OperationHeader:
    """LEASED → RECORDED with its final status (retryable after a transient failure)."""
    return header.model_copy(
        update={
            "state": OperationState.RECORDED,
            "status": status,
            "lease_owner": None,
            "lease_until": None,
            "retryable": retryable,
            "reason": reason,
            "updated_at": now,
            "finished_at": now,
        }
    )


def reopen(header: OperationHeader, *, now: datetime, reason: str) -> OperationHeader:
    """RECORDED and retryable → ACCEPTED with a fresh attempt budget (a repeat or a replay)."""
    if not (header.final and header.retryable):
        raise ValueError(f"operation {header.operation_id} cannot be reopened")
    return header.model_copy(
        update={
            "state": OperationState.ACCEPTED,
            "status": OutcomeStatus.PENDING,
            "attempts": 0,
            "retryable": False,
            "reason": reason,
            "updated_at": now,
            "finished_at": None,
        }
    )


# ---- command transitions ----------------------------------------------------------------------


def takeover(row: CommandRow) -> CommandRow:
    """What a new lease makes of a command: SENT means its sender died after the mark, so
    that send is ambiguous and the command runs again."""
    if row.mark is CommandMark.SENT:
        return row.model_copy(update={"mark": CommandMark.PENDING, "ambiguous": True})
    return row


def mark_sent(row: CommandRow) -> CommandRow:
    """PENDING → SENT, written *before* the request leaves."""
    if row.mark is CommandMark.ANSWERED:
        raise ValueError(f"command {row.index} of {row.operation_id} is answered already")
    return row.model_copy(update={"mark": CommandMark.SENT, "sends": row.sends + 1})


def answered(
    row: CommandRow,
    *,
    items: tuple[ItemResult, ...],
    reply: VendorReply | None,
    transient: bool,
    may_have_acted: bool,
) -> CommandRow:
    """SENT → ANSWERED with the settled items; or → PENDING when there was no usable answer
    (`transient`), remembering whether this send may have acted all the same."""
    ambiguous = row.ambiguous or may_have_acted
    if transient:
        error = next((item.error for item in items if item.error is not None), None)
        return row.model_copy(
            update={
                "mark": CommandMark.PENDING,
                "ambiguous": ambiguous,
                "items": items,
                "last_error": error,
            }
        )
    return row.model_copy(
        update={
            "mark": CommandMark.ANSWERED,
            "ambiguous": ambiguous,
            "items": items,
            "reply": reply,
            "last_error": None,
        }
    )
