"""Outcome → what each route family answers (shared.rendering), without I/O."""

from __future__ import annotations

from datetime import UTC, datetime

from incident_link_api.contraforce import ApiResponseOfboolean
from incident_link_api.d3 import D3CommandResponse
from incident_link_api.outcome import (
    OUTCOME_UNKNOWN,
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


# ---- what the operation did: inferred successes, unknown outcomes, a duplicate in progress ----


def inferred_item(target: str = "t") -> ItemResult:
    return ItemResult(target=target, status=ItemStatus.SUCCEEDED, upstream=CF, inferred=True)


def test_an_inferred_contraforce_success_answers_data_true_with_the_inferred_header() -> None:
    reply = ApiResponseOfboolean.model_validate({"data": False, "meta": {"requestId": "r-2"}})
    answer = rendering.contraforce_mirror(outcome(inferred_item(), replies=(reply,)))
    assert (answer.status, answer.body) == (200, {"data": True, "meta": {"requestId": "r-2"}})
    assert answer.headers[rendering.INFERRED_HEADER] == "true"


def test_the_d3_mirror_counts_inferred_incidents_as_removed_and_recounts_its_status() -> None:
    reply = D3CommandResponse.model_validate(
        {
            "error": "",
            "returnData": {
                "Status": "Failed",
                "Data": {},
                "ErrorData": [
                    {"Incident Number": "a", "Error message": "not linked"},
                    {"Incident Number": "b", "Error message": "not linked"},
                ],
            },
        }
    )
    not_linked = ItemResult(
        target="s/b", status=ItemStatus.NOT_APPLIED, upstream=CF, error=NOT_APPLIED
    )
    answer = rendering.d3_mirror(outcome(inferred_item("s/a"), not_linked, replies=(reply,)))
    data = answer.body["returnData"]
    assert (data["Status"], [e["Incident Number"] for e in data["ErrorData"]]) == (
        "Partially Successful",
        ["b"],
    )
    assert answer.headers[rendering.INFERRED_HEADER] == "true"


def test_a_confirmed_success_replays_the_vendors_reply_unchanged_and_unmarked() -> None:
    reply = ApiResponseOfboolean.model_validate({"data": True})
    answer = rendering.contraforce_mirror(outcome(item(ItemStatus.SUCCEEDED), replies=(reply,)))
    assert rendering.INFERRED_HEADER not in answer.headers
    assert (
        rendering.INFERRED_HEADER
        not in rendering.canonical(outcome(item(ItemStatus.SUCCEEDED))).headers
    )


UNKNOWN = ItemError(kind="unavailable", message="may have acted", code=OUTCOME_UNKNOWN)


def test_an_unknown_outcome_is_503_outcome_unknown_deciding_over_a_plain_failure() -> None:
    plain = item(ItemStatus.FAILED, UNAVAILABLE)
    unknown = item(ItemStatus.UNKNOWN, UNKNOWN)
    answer = rendering.canonical(outcome(plain, unknown))
    assert (answer.status, answer.body["code"], answer.body["outcome"]["status"]) == (
        503,
        OUTCOME_UNKNOWN,
        "unknown",
    )
    assert "Retry-After" in answer.headers
    d3 = rendering.d3_mirror(outcome(unknown))
    assert (d3.status, d3.body["code"]) == (503, OUTCOME_UNKNOWN)
    assert "never acts twice" in d3.body["Error"]


def test_nothing_succeeded_and_one_unknown_is_an_unknown_outcome_some_succeeded_is_partial() -> (
    None
):
    unknown = item(ItemStatus.UNKNOWN, UNKNOWN)
    refused = item(ItemStatus.FAILED, NOT_APPLIED)
    assert Outcome.status_of((unknown, refused)) is OutcomeStatus.UNKNOWN
    assert Outcome.status_of((refused,)) is OutcomeStatus.FAILED
    assert Outcome.status_of((unknown, item(ItemStatus.SUCCEEDED))) is (
        OutcomeStatus.PARTIALLY_SUCCEEDED
    )


def test_a_duplicate_in_progress_is_a_409_in_each_vendors_problem_shape() -> None:
    contraforce = rendering.in_progress("op-1", "problem", retry_after=5)
    d3 = rendering.in_progress("op-1", "d3", retry_after=5)
    for answer in (contraforce, d3):
        assert (answer.status, answer.media_type, answer.body["code"]) == (
            409,
            PROBLEM_JSON,
            rendering.OPERATION_IN_PROGRESS,
        )
        assert (answer.headers, answer.operation_id) == ({"Retry-After": "5"}, "op-1")
    assert "Error" not in contraforce.body
    assert "op-1" in d3.body["Error"]
