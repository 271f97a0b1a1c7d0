"""Outcome → what each route family renders: status, body, headers. Status alone is enough
to branch on.

Canonical routes (`/api/actions/...`) answer with the Outcome:
200 every item succeeded (or a dry run) · 207 some did · when none did, the deciding failure
answers as problem+json with the Outcome inside: 503 + Retry-After upstream unavailable, 502 our
credentials refused, the upstream's own 4xx passed through, 409 the upstream did not apply it.

Mirror routes answer in the upstream's own shapes: ContraForce `{data, meta}` and
problem+json; D3 `{error, returnData}` (including *Partially Successful*) and, for failures,
problem+json that also carries D3's `Error` member so D3-style scripts read it unchanged.

Every route family tells what the operation did, not what the last upstream reply said:
- an *inferred* success (an earlier send lost its answer, the upstream now says "nothing to do":
  `ItemResult.inferred`) is a success in the vendor's shape too: ContraForce `data: true`, D3
  counts the incident as removed (out of `ErrorData`, `Status` recounted); the answer carries
  `X-ILA-Outcome-Inferred: true` (`INFERRED_HEADER`) on every family;
- an *unknown* outcome (no answer after a send that may have acted) is 503 + Retry-After with
  code `OUTCOME_UNKNOWN`, not `UPSTREAM_UNAVAILABLE`: it may have happened, and a keyed repeat
  (or a replay) finds out without acting twice;
- a mirror never answers our 202 to a concurrent duplicate: `in_progress` is a 409 +
  Retry-After in the vendor's problem shape, which a caller retries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from typing import Any, Literal

from incident_link_api.contraforce import ApiResponseOfboolean
from incident_link_api.d3 import D3CommandResponse
from incident_link_api.outcome import (
    OUTCOME_UNKNOWN,
    ItemError,
    ItemResult,
    ItemStatus,
    Outcome,
    OutcomeStatus,
)
from shared.problems import PROBLEM_JSON, Problem, from_upstream

JSON = "application/json"
ProblemStyle = Literal["problem", "d3"]
# On an answer some of whose successes are inferred, not confirmed (ItemResult.inferred).
INFERRED_HEADER = "X-ILA-Outcome-Inferred"
OPERATION_IN_PROGRESS = "OPERATION_IN_PROGRESS"  # a mirror's answer to a concurrent duplicate

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
    """The failure a caller must act on; among equals, an unknown outcome before a failure."""
    failed = [(item, item.error) for item in items if item.error is not None]
    return min(
        failed,
        key=lambda pair: (_PRECEDENCE[pair[1].kind], pair[0].status is not ItemStatus.UNKNOWN),
    )


def _failure(outcome: Outcome, style: ProblemStyle, *, embed: bool) -> Rendered:
    item, error = _deciding(outcome.items)
    upstream = item.upstream.name if item.upstream else "contraforce"
    extra = {"outcome": outcome.model_dump(mode="json", by_alias=True)} if embed else {}
    problem = from_upstream(upstream, error)
    if item.status is ItemStatus.UNKNOWN:
        problem = problem.model_copy(
            update={
                "code": OUTCOME_UNKNOWN,
                "detail": f"{error.message}. A repeat with the same Idempotency-Key (or a "
                "replay of the operation) runs it again and counts the upstream's 'nothing to "
                "do' as done, so it never acts twice",
            }
        )
    return render_problem(problem, style, **extra)


def _inferred(outcome: Outcome) -> bool:
    return any(item.inferred for item in outcome.items)


def _marked(rendered: Rendered, outcome: Outcome) -> Rendered:
    """`X-ILA-Outcome-Inferred: true` on the answer of an outcome with an inferred success."""
    if not _inferred(outcome):
        return rendered
    return replace(rendered, headers={**rendered.headers, INFERRED_HEADER: "true"})


def canonical(outcome: Outcome) -> Rendered:
    body = outcome.model_dump(mode="json", by_alias=True)
    if outcome.status in {OutcomeStatus.SUCCEEDED, OutcomeStatus.PLANNED}:
        return _marked(Rendered(200, body), outcome)
    if outcome.status is OutcomeStatus.PARTIALLY_SUCCEEDED:
        return _marked(Rendered(207, body), outcome)
    return _failure(outcome, "problem", embed=True)


def _mirror(outcome: Outcome, style: ProblemStyle) -> Rendered:
    if outcome.dry_run:
        return Rendered(200, outcome.model_dump(mode="json", by_alias=True))
    if outcome.replies:
        reply = _as_done(outcome.replies[0], outcome)
        body = reply.model_dump(mode="json", by_alias=True, exclude_none=True)
        return _marked(Rendered(200, body), outcome)
    return _failure(outcome, style, embed=False)


def _as_done(
    reply: ApiResponseOfboolean | D3CommandResponse, outcome: Outcome
) -> ApiResponseOfboolean | D3CommandResponse:
    """The vendor's reply, saying what the operation did: an inferred success counts as done.
    A mirror's operation is one command, so its items are that reply's."""
    if not _inferred(outcome):
        return reply
    if isinstance(reply, ApiResponseOfboolean):
        return reply.model_copy(update={"data": True})
    data = reply.return_data
    if data is None:
        return reply
    inferred = [item.target for item in outcome.items if item.inferred]
    remaining = [
        entry
        for entry in data.error_data or []
        if not any(target.endswith(f"/{entry.incident_number.strip()}") for target in inferred)
    ]
    succeeded = sum(item.status is ItemStatus.SUCCEEDED for item in outcome.items)
    status = (
        "Successful"
        if succeeded == len(outcome.items)
        else "Partially Successful"
        if succeeded
        else data.status
    )
    return reply.model_copy(
        update={"return_data": data.model_copy(update={"status": status, "error_data": remaining})}
    )


def contraforce_mirror(outcome: Outcome) -> Rendered:
    return _mirror(outcome, "problem")


def d3_mirror(outcome: Outcome) -> Rendered:
    return _mirror(outcome, "d3")


def in_progress(operation_id: str, style: ProblemStyle, *, retry_after: int) -> Rendered:
    """A mirror's answer to a repeat whose first request is still running past the wait:
    409 + Retry-After in the vendor's problem shape (never our 202); the retry gets the first
    request's answer."""
    problem = Problem(
        title=HTTPStatus.CONFLICT.phrase,
        status=409,
        detail=f"an earlier request with this Idempotency-Key (operation {operation_id}) is "
        f"still running; retry in {retry_after} s for its answer",
        code=OPERATION_IN_PROGRESS,
        retry_after=retry_after,
    )
    return replace(render_problem(problem, style), operation_id=operation_id)


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
