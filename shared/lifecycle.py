"""The durable core's state machine: the phases an accepted operation goes through, the one
table of moves between them, and what each command can be. Pure: no I/O, no clock of its own.

```
                 lease                      record (all answered)
  QUEUED ──────────────────▶ RUNNING ───────────────────────────▶ DONE
    ▲  ▲                      │  ▲ │ record (transient, attempts spent)
    │  │        requeue       │  │ └──────────────────────────────▶ POISONED
    │  └──────────────────────┘  │ lease                             │   │
    │   (transient, attempts     │ (a new runner)                    │   │ lease (a sync
    │    left: queued retry)     │                                   │   │ repeat runs it)
    │                      LEASE_EXPIRED ◀── the lease runs out ──   │   ▼
    │                      (its runner may be dead; renew, requeue   │ RUNNING
    │                       and record still work for the owner)     │
    └──────────────────────────── reopen (a repeat or a replay) ◀────┘
  QUEUED ──skip──▶ SKIPPED   (a webhook event the policy does not act on: final at once)

command   PENDING ──mark_sent──▶ SENT ──answered(answer)──▶ ANSWERED (final for the command)
             ▲                     │
             └─ answered(transient)┘  no usable answer: run again later
          SENT found by a new lease (`takeover`) = its sender died after the mark: that send
          is *ambiguous*
```

A phase is worked out from the stored header and the time (`phase(header, now)`), never kept:
the stored `state` has three values (ACCEPTED, LEASED, RECORDED) and the phase adds whether a
lease is still live and how a record ended. Every move checks `TRANSITIONS` before it changes
anything; every place that needs to know "may this run now?" asks `phase`.

The one rule for "nothing to do" (ContraForce `data:false`, a D3 incident that is not linked):
it is a success only for a command with an *ambiguous* earlier send, one that may have left and
whose answer was lost (a lease found it SENT, or a send timed out or lost its connection after
the body went out). Otherwise it is `not_applied`. `shared.actions.settle` applies it, on every
path alike.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict

from incident_link_api.commands import Action, Command
from incident_link_api.outcome import ItemError, ItemResult, OutcomeStatus, VendorReply
from shared.routes import RouteKind


class OperationState(StrEnum):
    ACCEPTED = "accepted"  # recorded, waiting for a runner (queued, or about to run in-process)
    LEASED = "leased"  # one runner holds it until `lease_until`
    RECORDED = "recorded"  # final: `status` says how it ended


class CommandMark(StrEnum):
    PENDING = "pending"  # not sent by any runner that is still alive, or to be sent again
    SENT = "sent"  # a request may have left; no answer recorded yet
    ANSWERED = "answered"  # the answer is recorded: final for this command


class Phase(StrEnum):
    QUEUED = "queued"  # accepted, waiting for a runner (a queued message, or the sync path)
    RUNNING = "running"  # a runner holds a live lease
    LEASE_EXPIRED = "lease_expired"  # leased, but the lease ran out: its runner may be dead
    DONE = "done"  # recorded with its final status
    POISONED = "poisoned"  # recorded after transient failures with no attempt left: retryable
    SKIPPED = "skipped"  # a webhook event the policy does not act on: final at once

    @property
    def final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({Phase.DONE, Phase.POISONED, Phase.SKIPPED})


class Move(StrEnum):
    LEASE = "lease"  # a runner takes the operation for one attempt
    RENEW = "renew"  # its runner extends the lease while work runs
    REQUEUE = "requeue"  # a transient failure with attempts left: a queued retry follows
    RECORD = "record"  # the attempt's result is final (or poisoned)
    SKIP = "skip"  # a webhook event recorded as skipped, at once
    REOPEN = "reopen"  # a poisoned operation gets a fresh attempt budget (a repeat, a replay)


# Every allowed move: (from, move) → the phases it may end in. Anything else is refused.
TRANSITIONS: Final[dict[tuple[Phase, Move], frozenset[Phase]]] = {
    (Phase.QUEUED, Move.LEASE): frozenset({Phase.RUNNING}),
    (Phase.LEASE_EXPIRED, Move.LEASE): frozenset({Phase.RUNNING}),
    (Phase.POISONED, Move.LEASE): frozenset({Phase.RUNNING}),
    (Phase.RUNNING, Move.RENEW): frozenset({Phase.RUNNING}),
    (Phase.LEASE_EXPIRED, Move.RENEW): frozenset({Phase.RUNNING}),
    (Phase.RUNNING, Move.REQUEUE): frozenset({Phase.QUEUED}),
    (Phase.LEASE_EXPIRED, Move.REQUEUE): frozenset({Phase.QUEUED}),
    (Phase.RUNNING, Move.RECORD): frozenset({Phase.DONE, Phase.POISONED}),
    (Phase.LEASE_EXPIRED, Move.RECORD): frozenset({Phase.DONE, Phase.POISONED}),
    (Phase.QUEUED, Move.SKIP): frozenset({Phase.SKIPPED}),
    (Phase.POISONED, Move.REOPEN): frozenset({Phase.QUEUED}),
}


class LeaseHeld(Exception):
    """Another runner holds a live lease on the operation (or, on renewal, the lease is no
    longer ours)."""


class IllegalMove(ValueError):
    """A move the transition table does not allow from the operation's phase."""


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
    sender: str | None = (
        None  # who asked: an Entra principal, "contraforce-webhook"; stored as "caller"
    )
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    etag: str | None = None

    @property
    def final(self) -> bool:
        """Recorded (done, poisoned or skipped): the phase, without needing the time."""
        return self.state is OperationState.RECORDED


def phase(header: OperationHeader, now: datetime) -> Phase:
    """The phase of a stored operation at `now`."""
    match header.state:
        case OperationState.ACCEPTED:
            return Phase.QUEUED
        case OperationState.LEASED:
            live = header.lease_until is not None and header.lease_until > now
            return Phase.RUNNING if live else Phase.LEASE_EXPIRED
        case OperationState.RECORDED if header.status is OutcomeStatus.SKIPPED:
            return Phase.SKIPPED
        case OperationState.RECORDED:
            return Phase.POISONED if header.retryable else Phase.DONE


def recoverable(header: OperationHeader, now: datetime) -> bool:
    """Is this operation's run lost, so a recovery message must run it? Its lease ran out
    (its runner died), or it never ran (its host died between accepting it and leasing or
    queueing it). A queued retry (QUEUED after an attempt) has its own message; a live lease
    is looked at again when it ends; a final operation needs nothing."""
    match phase(header, now):
        case Phase.LEASE_EXPIRED:
            return True
        case Phase.QUEUED:
            return header.attempts == 0
        case Phase.RUNNING | Phase.DONE | Phase.POISONED | Phase.SKIPPED:
            return False


def allowed(move: Move, header: OperationHeader, now: datetime) -> bool:
    """Does the table allow `move` from this operation's phase at `now`?"""
    return (phase(header, now), move) in TRANSITIONS


def _checked(
    move: Move, before: OperationHeader, now: datetime, after: OperationHeader
) -> OperationHeader:
    current = phase(before, now)
    targets = TRANSITIONS.get((current, move))
    if targets is None:
        if move is Move.RENEW or current is Phase.RUNNING:
            raise LeaseHeld(before.operation_id)
        raise IllegalMove(f"operation {before.operation_id}: no {move} from {current}")
    reached = phase(after, now)
    if reached not in targets:  # a bug in a move below, not the caller's
        raise IllegalMove(f"operation {before.operation_id}: {move} reached {reached}")
    return after


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
    """QUEUED, LEASE_EXPIRED or POISONED → RUNNING, one attempt more; RUNNING (someone
    else's live lease) raises `LeaseHeld`."""
    leased = header.model_copy(
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
    return _checked(Move.LEASE, header, now, leased)


def renew(
    header: OperationHeader, *, owner: str, now: datetime, hold: timedelta
) -> OperationHeader:
    """RUNNING or LEASE_EXPIRED, leased by `owner` → RUNNING for longer. Anyone else's lease,
    or any other phase, raises `LeaseHeld`."""
    if header.lease_owner != owner:
        raise LeaseHeld(header.operation_id)
    renewed = header.model_copy(update={"lease_until": now + hold, "updated_at": now})
    return _checked(Move.RENEW, header, now, renewed)


def requeue(header: OperationHeader, *, now: datetime, reason: str) -> OperationHeader:
    """RUNNING or LEASE_EXPIRED → QUEUED: a transient failure with attempts left (a queued
    retry follows)."""
    queued = header.model_copy(
        update={
            "state": OperationState.ACCEPTED,
            "status": OutcomeStatus.PENDING,
            "lease_owner": None,
            "lease_until": None,
            "reason": reason,
            "updated_at": now,
        }
    )
    return _checked(Move.REQUEUE, header, now, queued)


def record(
    header: OperationHeader,
    *,
    status: OutcomeStatus,
    now: datetime,
    retryable: bool = False,
    reason: str | None = None,
) -> OperationHeader:
    """RUNNING or LEASE_EXPIRED → DONE with its final status, or POISONED (`retryable`,
    after transient failures with no attempt left)."""
    return _checked(
        Move.RECORD, header, now, _recorded(header, status, now, retryable=retryable, reason=reason)
    )


def skip(header: OperationHeader, *, now: datetime, reason: str) -> OperationHeader:
    """QUEUED → SKIPPED: a webhook event the policy does not act on, final as it is accepted."""
    return _checked(
        Move.SKIP,
        header,
        now,
        _recorded(header, OutcomeStatus.SKIPPED, now, retryable=False, reason=reason),
    )


def _recorded(
    header: OperationHeader,
    status: OutcomeStatus,
    now: datetime,
    *,
    retryable: bool,
    reason: str | None,
) -> OperationHeader:
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
    """POISONED → QUEUED with a fresh attempt budget (a repeat or a replay)."""
    reopened = header.model_copy(
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
    return _checked(Move.REOPEN, header, now, reopened)


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
