"""The durable state machine's table, without I/O: every move from every phase is either in
`TRANSITIONS` and ends in one of its phases, or is refused, and the stored state, lease and
attempt counter change only as the table says."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from incident_link_api.outcome import OutcomeStatus
from shared import lifecycle
from shared.lifecycle import (
    TRANSITIONS,
    IllegalMove,
    LeaseHeld,
    Move,
    OperationHeader,
    OperationState,
    Phase,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
HOLD = timedelta(seconds=65)
OWNER = "runner-a"


def _fresh() -> OperationHeader:
    return OperationHeader(
        operation_id="op-1",
        route="canonical",
        action="unlink_ticket",
        command_count=1,
        command_hash="0" * 64,
        created_at=NOW - timedelta(minutes=5),
        updated_at=NOW - timedelta(minutes=5),
    )


def in_phase(phase: Phase) -> OperationHeader:
    """A header that is in `phase` at NOW."""
    fresh = _fresh()
    leased = fresh.model_copy(
        update={"state": OperationState.LEASED, "attempts": 1, "lease_owner": OWNER}
    )
    recorded = fresh.model_copy(update={"state": OperationState.RECORDED, "attempts": 1})
    match phase:
        case Phase.QUEUED:
            return fresh
        case Phase.RUNNING:
            return leased.model_copy(update={"lease_until": NOW + HOLD})
        case Phase.LEASE_EXPIRED:
            return leased.model_copy(update={"lease_until": NOW - timedelta(seconds=1)})
        case Phase.DONE:
            return recorded.model_copy(update={"status": OutcomeStatus.SUCCEEDED})
        case Phase.POISONED:
            return recorded.model_copy(update={"status": OutcomeStatus.FAILED, "retryable": True})
        case Phase.SKIPPED:
            return recorded.model_copy(update={"status": OutcomeStatus.SKIPPED})


MOVES: dict[Move, Callable[[OperationHeader], OperationHeader]] = {
    Move.LEASE: lambda h: lifecycle.lease(h, owner="runner-b", now=NOW, hold=HOLD),
    Move.RENEW: lambda h: lifecycle.renew(h, owner=OWNER, now=NOW, hold=HOLD),
    Move.REQUEUE: lambda h: lifecycle.requeue(h, now=NOW, reason="retry"),
    Move.RECORD: lambda h: lifecycle.record(h, status=OutcomeStatus.SUCCEEDED, now=NOW),
    Move.SKIP: lambda h: lifecycle.skip(h, now=NOW, reason="not ours"),
    Move.REOPEN: lambda h: lifecycle.reopen(h, now=NOW, reason="replayed"),
}
EVERY = [(phase, move) for phase in Phase for move in Move]


def test_each_phase_is_what_phase_reads_from_its_header() -> None:
    assert {phase: lifecycle.phase(in_phase(phase), NOW) for phase in Phase} == {
        phase: phase for phase in Phase
    }


def test_a_live_lease_expires_into_lease_expired_at_its_end() -> None:
    running = in_phase(Phase.RUNNING)
    assert running.lease_until is not None
    assert lifecycle.phase(running, running.lease_until) is Phase.LEASE_EXPIRED
    assert lifecycle.phase(running, running.lease_until - timedelta(microseconds=1)) is (
        Phase.RUNNING
    )


@pytest.mark.parametrize(("phase", "move"), [pair for pair in EVERY if pair in TRANSITIONS])
def test_an_allowed_move_ends_in_a_phase_the_table_names(phase: Phase, move: Move) -> None:
    after = MOVES[move](in_phase(phase))
    assert lifecycle.phase(after, NOW) in TRANSITIONS[phase, move]
    assert lifecycle.allowed(move, in_phase(phase), NOW)


@pytest.mark.parametrize(("phase", "move"), [pair for pair in EVERY if pair not in TRANSITIONS])
def test_a_move_the_table_lacks_is_refused(phase: Phase, move: Move) -> None:
    expected = LeaseHeld if move is Move.RENEW or phase is Phase.RUNNING else IllegalMove
    with pytest.raises(expected):
        MOVES[move](in_phase(phase))
    assert not lifecycle.allowed(move, in_phase(phase), NOW)


def test_the_table_allows_exactly_the_moves_of_the_design() -> None:
    assert set(TRANSITIONS) == {
        (Phase.QUEUED, Move.LEASE),
        (Phase.LEASE_EXPIRED, Move.LEASE),
        (Phase.POISONED, Move.LEASE),
        (Phase.RUNNING, Move.RENEW),
        (Phase.LEASE_EXPIRED, Move.RENEW),
        (Phase.RUNNING, Move.REQUEUE),
        (Phase.LEASE_EXPIRED, Move.REQUEUE),
        (Phase.RUNNING, Move.RECORD),
        (Phase.LEASE_EXPIRED, Move.RECORD),
        (Phase.QUEUED, Move.SKIP),
        (Phase.POISONED, Move.REOPEN),
    }


def test_a_lease_counts_an_attempt_and_a_reopen_gives_a_fresh_budget() -> None:
    leased = lifecycle.lease(in_phase(Phase.QUEUED), owner="r", now=NOW, hold=HOLD)
    assert (leased.attempts, leased.lease_owner, leased.lease_until) == (1, "r", NOW + HOLD)
    reopened = lifecycle.reopen(in_phase(Phase.POISONED), now=NOW, reason="replayed")
    assert (reopened.attempts, reopened.retryable, reopened.finished_at) == (0, False, None)


def test_only_the_lease_owner_renews_even_an_expired_lease() -> None:
    with pytest.raises(LeaseHeld):
        lifecycle.renew(in_phase(Phase.LEASE_EXPIRED), owner="someone-else", now=NOW, hold=HOLD)
    renewed = lifecycle.renew(in_phase(Phase.LEASE_EXPIRED), owner=OWNER, now=NOW, hold=HOLD)
    assert renewed.lease_until == NOW + HOLD


def test_a_retryable_record_is_poisoned_and_a_plain_one_done() -> None:
    running = in_phase(Phase.RUNNING)
    failed = lifecycle.record(running, status=OutcomeStatus.FAILED, now=NOW, retryable=True)
    assert lifecycle.phase(failed, NOW) is Phase.POISONED
    assert lifecycle.phase(
        lifecycle.record(running, status=OutcomeStatus.FAILED, now=NOW), NOW
    ) is (Phase.DONE)


def test_final_phases_are_done_poisoned_and_skipped() -> None:
    assert {phase for phase in Phase if phase.final} == {
        Phase.DONE,
        Phase.POISONED,
        Phase.SKIPPED,
    }
