"""What the action log line and `ila` make of strings and statuses the upstream chose."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from ila import render
from incident_link_api.outcome import (
    ItemResult,
    ItemStatus,
    Outcome,
    OutcomeStatus,
    UpstreamInfo,
)
from shared import actions

FORGED = "req-1\n2026-12-07 16:40:00,000 ERROR shared.actions: FORGED \x1b[31m" + "x" * 5000


def _outcome(status: OutcomeStatus, request_id: str = "req-1") -> Outcome:
    item = ItemResult(
        target="1001",
        status=ItemStatus.SUCCEEDED,
        upstream=UpstreamInfo(name="contraforce", status=200, request_id=request_id),
    )
    return Outcome(
        operation_id="op-1",
        action="unlink_ticket",
        status=status,
        items=(item,),
        started_at=datetime.now(UTC),
        finished_at=datetime.now(UTC),
    )


def test_an_upstream_request_id_cannot_forge_or_flood_the_action_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="shared.actions"):
        actions.log_outcome(
            _outcome(OutcomeStatus.SUCCEEDED, FORGED), route="canonical", upstream="contraforce"
        )
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("action ")]
    assert "\n" not in line
    assert "\x1b" not in line
    assert len(line) < 1000
    assert "req-1\\n2026" in line  # escaped, still readable


@pytest.mark.parametrize("status", list(OutcomeStatus))
def test_ila_has_an_exit_status_for_every_outcome_status(status: OutcomeStatus) -> None:
    expected = {
        OutcomeStatus.PARTIALLY_SUCCEEDED: render.PARTIAL,
        OutcomeStatus.FAILED: render.FAILURE,
        OutcomeStatus.UNKNOWN: render.FAILURE,  # may have acted: never a plain success
    }.get(status, render.SUCCESS)
    assert render.exit_status(_outcome(status)) == expected
