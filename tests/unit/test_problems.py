"""Typed errors → problem documents, in one place (shared.problems), without I/O: each error
gets the status, code and members the module's table promises."""

from __future__ import annotations

import pytest

from incident_link_api.outcome import ItemError
from shared import problems
from shared.errors import (
    IdempotencyConflict,
    InvalidPayload,
    NotConfigured,
    StoreUnavailable,
    UpstreamAuthRejected,
    UpstreamRejected,
    UpstreamUnavailable,
)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidPayload("bad", errors={"incident.id": ["required"]}), 400, "VALIDATION_ERROR"),
        (IdempotencyConflict("again"), 422, "IDEMPOTENCY_KEY_REUSED"),
        (NotConfigured("no base URL", settings=["CONTRAFORCE_BASE_URL"]), 503, "NOT_CONFIGURED"),
        (StoreUnavailable("table down"), 503, "STORE_UNAVAILABLE"),
        (
            UpstreamUnavailable("answered HTTP 503", upstream="d3", attempts=3, status=503),
            503,
            "UPSTREAM_UNAVAILABLE",
        ),
        (
            UpstreamAuthRejected("401", upstream="contraforce", attempts=1, status=401),
            502,
            "UPSTREAM_AUTH_REJECTED",
        ),
        (
            UpstreamRejected("no", upstream="contraforce", attempts=1, status=404, code="NF"),
            404,
            "NF",
        ),
        (
            UpstreamRejected("no", upstream="contraforce", attempts=1, status=403),
            403,
            "UPSTREAM_REJECTED",
        ),
        (RuntimeError("boom"), 500, "INTERNAL_ERROR"),
    ],
)
def test_each_error_maps_to_its_status_and_code(error: Exception, status: int, code: str) -> None:
    problem = problems.from_error(error)
    assert (problem.status, problem.code) == (status, code)


def test_a_refusal_names_the_field_it_is_about() -> None:
    problem = problems.from_error(InvalidPayload("bad", errors={"incident.id": ["required"]}))
    assert problem.body()["errors"] == {"incident.id": ["required"]}
    assert problem.body()["title"] == "Bad Request"


def test_an_unexpected_error_says_nothing_of_its_message() -> None:
    assert "secret" not in problems.from_error(RuntimeError("secret=hunter2")).detail


def test_an_unavailable_upstream_says_when_to_retry_rounded_up_and_at_least_a_second() -> None:
    def wait(retry_after: float | None) -> str:
        error = ItemError(kind="unavailable", message="down", retry_after=retry_after)
        return problems.from_upstream("d3", error).headers()["Retry-After"]

    assert [wait(2.1), wait(0.0), wait(None)] == [
        "3",
        "1",
        str(problems.DEFAULT_RETRY_AFTER_SECONDS),
    ]


def test_the_store_being_down_asks_the_caller_to_retry_later() -> None:
    problem = problems.from_error(StoreUnavailable("table down"))
    assert problem.headers() == {"Retry-After": str(problems.DEFAULT_RETRY_AFTER_SECONDS)}


def test_an_upstream_problem_names_the_upstream_and_its_request_id() -> None:
    error = UpstreamRejected(
        "no", upstream="contraforce", attempts=1, status=409, code="C", request_id="r-1"
    )
    body = problems.from_error(error).body()
    assert (body["upstream"], body["upstreamStatus"], body["requestId"]) == (
        "contraforce",
        409,
        "r-1",
    )


def test_not_applied_is_409() -> None:
    problem = problems.from_upstream("d3", ItemError(kind="not_applied", message="not linked"))
    assert (problem.status, problem.code) == (409, "NOT_APPLIED")
