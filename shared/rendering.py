"""Outcome → what each route family renders: status, body, headers. Status alone is enough
to branch on.

Canonical routes (`/api/actions/...`) answer with the Outcome:
200 every item succeeded (or a dry run) · 207 some did · when none did, the deciding failure
answers as problem+json with the Outcome inside: 503 + Retry-After upstream unavailable, 502 our
credentials refused, the upstream's own 4xx passed through, 409 the upstream did not apply it.

Mirror routes answer in the upstream's own shapes: ContraForce `{data, meta}` and
problem+json; D3 `{error, returnData}` (including *Partially Successful*) and, for failures,
problem+json that also carries D3's `Error` member so D3-style scripts read it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from incident_link_api.outcome import ItemError, ItemResult, Outcome, OutcomeStatus
from shared.problems import PROBLEM_JSON, Problem, from_upstream

JSON = "application/json"
ProblemStyle = Literal["problem", "d3"]

# When no item succeeded, the failure that decides the answer: the one a caller must act on.
_PRECEDENCE = {"unavailable": 0, "auth_rejected": 1, "rejected": 2, "not_applied": 3}


@dataclass(frozen=True)
class Rendered:
    status: int
    body: Any
    media_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    operation_id: str | None = None  # a recorded operation's id, when the answer is about one


def render_problem(problem: Problem, style: ProblemStyle, **extra: Any) -> Rendered:
    if style == "d3":
        problem = problem.model_copy(update={"error": problem.detail})
    return Rendered(problem.status, problem.body(**extra), PROBLEM_JSON, problem.headers())


def _deciding(items: tuple[ItemResult, ...]) -> tuple[ItemResult, ItemError]:
    failed = [(item, item.error) for item in items if item.error is not None]
    return min(failed, key=lambda pair: _PRECEDENCE[pair[1].kind])


def _failure(outcome: Outcome, style: ProblemStyle, *, embed: bool) -> Rendered:
    item, error = _deciding(outcome.items)
    upstream = item.upstream.name if item.upstream else "contraforce"
    extra = {"outcome": outcome.model_dump(mode="json", by_alias=True)} if embed else {}
    return render_problem(from_upstream(upstream, error), style, **extra)


def canonical(outcome: Outcome) -> Rendered:
    body = outcome.model_dump(mode="json", by_alias=True)
    if outcome.status in {OutcomeStatus.SUCCEEDED, OutcomeStatus.PLANNED}:
        return Rendered(200, body)
    if outcome.status is OutcomeStatus.PARTIALLY_SUCCEEDED:
        return Rendered(207, body)
    return _failure(outcome, "problem", embed=True)


def _mirror(outcome: Outcome, style: ProblemStyle) -> Rendered:
    if outcome.dry_run:
        return Rendered(200, outcome.model_dump(mode="json", by_alias=True))
    if outcome.replies:
        reply = outcome.replies[0]
        return Rendered(200, reply.model_dump(mode="json", by_alias=True, exclude_none=True))
    return _failure(outcome, style, embed=False)


def contraforce_mirror(outcome: Outcome) -> Rendered:
    return _mirror(outcome, "problem")


def d3_mirror(outcome: Outcome) -> Rendered:
    return _mirror(outcome, "d3")


# ---- answers about a recorded operation, and webhook deliveries -------------------------------

POLL_AFTER_SECONDS = 5


def accepted(outcome: Outcome, *, location: str) -> Rendered:
    """202 + Location + Retry-After: the Logic Apps asynchronous polling pattern."""
    headers = {"Location": location, "Retry-After": str(POLL_AFTER_SECONDS)}
    return Rendered(
        202,
        outcome.model_dump(mode="json", by_alias=True),
        headers=headers,
        operation_id=outcome.operation_id,
    )


def recorded(outcome: Outcome, render: Callable[[Outcome], Rendered]) -> Rendered:
    """A stored operation's final answer, in its route family's shape, naming the operation."""
    return replace(render(outcome), operation_id=outcome.operation_id)


def skipped(outcome: Outcome) -> Rendered:
    """A poll of a webhook event the policy did not act on: 200 with its Outcome."""
    return Rendered(
        200, outcome.model_dump(mode="json", by_alias=True), operation_id=outcome.operation_id
    )


def delivery_acknowledged(event_id: str) -> Rendered:
    """A verified test delivery: nothing recorded, nothing done."""
    return Rendered(200, {"status": "acknowledged", "test": True, "eventId": event_id})


def delivery_skipped(*, event_id: str, operation_id: str, reason: str | None) -> Rendered:
    """A delivery the policy does not act on, recorded once per event."""
    return Rendered(
        200,
        {"status": "skipped", "reason": reason, "eventId": event_id, "operationId": operation_id},
        operation_id=operation_id,
    )
