"""Outcome → what each route family answers (shared.rendering), without I/O."""

from __future__ import annotations

from datetime import UTC, datetime

from incident_link_api.contraforce import ApiResponseOfboolean
from incident_link_api.outcome import (
    ItemError,
    ItemResult,
    ItemStatus,
    Outcome,
    OutcomeStatus,
    UpstreamInfo,
)
from shared import rendering
from shared.problems import PROBLEM_JSON

START = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CF = UpstreamInfo(name="contraforce")


def item(status: ItemStatus, error: ItemError | None = None) -> ItemResult:
    return ItemResult(target="t", status=status, upstream=CF, error=error)


def outcome(*items: ItemResult, **extra: object) -> Outcome:
    return Outcome.model_validate(
        {
            "operation_id": "op-1",
            "action": "unlink_ticket",
            "status": Outcome.status_of(items),
            "items": items,
            "started_at": START,
            **extra,
        }
    )


UNAVAILABLE = ItemError(kind="unavailable", message="down", retry_after=4)
NOT_APPLIED = ItemError(kind="not_applied", message="not linked")


def test_canonical_answers_200_207_or_the_deciding_failure() -> None:
    ok = item(ItemStatus.SUCCEEDED)
    failed = item(ItemStatus.FAILED, NOT_APPLIED)
    assert rendering.canonical(outcome(ok)).status == 200
    assert rendering.canonical(outcome(ok, failed)).status == 207
    answer = rendering.canonical(outcome(failed))
    assert (answer.status, answer.media_type) == (409, PROBLEM_JSON)
    assert answer.body["outcome"]["operationId"] == "op-1"


def test_an_unavailable_upstream_decides_over_not_applied() -> None:
    answer = rendering.canonical(
        outcome(item(ItemStatus.FAILED, NOT_APPLIED), item(ItemStatus.FAILED, UNAVAILABLE))
    )
    assert (answer.status, answer.headers) == (503, {"Retry-After": "4"})


def test_a_mirror_answers_with_the_vendors_own_reply() -> None:
    reply = ApiResponseOfboolean.model_validate({"data": True})
    answer = rendering.contraforce_mirror(outcome(item(ItemStatus.SUCCEEDED), replies=(reply,)))
    assert (answer.status, answer.body) == (200, {"data": True})


def test_the_d3_mirror_problem_carries_d3s_error_member() -> None:
    answer = rendering.d3_mirror(outcome(item(ItemStatus.FAILED, NOT_APPLIED)))
    assert (answer.status, answer.body["Error"]) == (409, "not linked")
    plain = rendering.contraforce_mirror(outcome(item(ItemStatus.FAILED, NOT_APPLIED)))
    assert "Error" not in plain.body


def test_accepted_is_202_with_where_and_when_to_poll() -> None:
    pending = outcome(item(ItemStatus.PENDING)).model_copy(update={"status": OutcomeStatus.PENDING})
    answer = rendering.accepted(pending, location="/api/operations/op-1")
    assert (answer.status, answer.operation_id) == (202, "op-1")
    assert answer.headers == {
        "Location": "/api/operations/op-1",
        "Retry-After": str(rendering.POLL_AFTER_SECONDS),
    }


def test_a_recorded_answer_names_its_operation() -> None:
    answer = rendering.recorded(outcome(item(ItemStatus.SUCCEEDED)), rendering.canonical)
    assert (answer.status, answer.operation_id) == (200, "op-1")


def test_webhook_answers() -> None:
    assert rendering.delivery_acknowledged("e-1").body == {
        "status": "acknowledged",
        "test": True,
        "eventId": "e-1",
    }
    skipped = rendering.delivery_skipped(event_id="e-2", operation_id="op-2", reason="not ours")
    assert (skipped.status, skipped.operation_id, skipped.body["reason"]) == (
        200,
        "op-2",
        "not ours",
    )
