"""The Outcome: one answer shape for every action and every caller."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import Field

from incident_link_api.base import CamelModel, Upstream
from incident_link_api.commands import Action
from incident_link_api.contraforce import ApiResponseOfboolean
from incident_link_api.d3 import D3CommandResponse


class ItemStatus(StrEnum):
    SUCCEEDED = "succeeded"
    NOT_APPLIED = "not_applied"  # the upstream answered, and did not do it (nothing linked)
    FAILED = "failed"  # the upstream failed or refused
    # No answer after a send that may have acted (its answer was lost): it may have happened.
    UNKNOWN = "unknown"
    PLANNED = "planned"  # dry run: validated, nothing sent
    PENDING = "pending"  # accepted, queued, not run yet


class OutcomeStatus(StrEnum):
    SUCCEEDED = "succeeded"
    PARTIALLY_SUCCEEDED = "partially_succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"  # nothing succeeded, and some item's outcome is unknown: it may have acted
    PENDING = "pending"
    PLANNED = "planned"
    SKIPPED = "skipped"  # a webhook event the policy does not act on

    @property
    def final(self) -> bool:
        return self not in {OutcomeStatus.PENDING, OutcomeStatus.PLANNED}


ErrorKind = Literal["not_applied", "rejected", "auth_rejected", "unavailable"]
# The code (ItemError.code, and the problem's) of an item with no answer after a send that
# may have acted: its status is `unknown`.
OUTCOME_UNKNOWN: Final = "OUTCOME_UNKNOWN"


class UpstreamInfo(CamelModel):
    name: Upstream
    status: int | None = None
    request_id: str | None = None


class ItemError(CamelModel):
    kind: ErrorKind
    message: str
    code: str | None = None
    upstream_status: int | None = None
    request_id: str | None = None
    retry_after: float | None = None
    errors: dict[str, list[str]] | None = None


class PreparedRequest(CamelModel):
    """The exact upstream request of a dry run, secrets masked."""

    method: str
    url: str
    headers: dict[str, str]
    body: Any


class ItemResult(CamelModel):
    index: int = 0  # which command of the request (which `items[]` entry) this is about
    target: str
    status: ItemStatus
    message: str | None = None
    inferred: bool = Field(
        default=False,
        description="true: a success inferred, not confirmed. An earlier send of this command "
        "lost its answer, and the upstream now answers that there is nothing to do, so that "
        "send did it.",
    )
    upstream: UpstreamInfo | None = None
    attempts: int = 0
    error: ItemError | None = None
    request: PreparedRequest | None = None


VendorReply = ApiResponseOfboolean | D3CommandResponse


class Outcome(CamelModel):
    operation_id: str
    action: Action | None  # None only for a skipped webhook event
    status: OutcomeStatus
    items: tuple[ItemResult, ...]
    upstream: UpstreamInfo | None = None
    attempts: int = 0
    dry_run: bool = False
    started_at: datetime
    finished_at: datetime | None = None
    reason: str | None = None  # queued work: why it is still pending, or why it failed
    # The upstream's own answers, for the drop-in mirror routes. Never serialized.
    replies: tuple[VendorReply, ...] = Field(default=(), exclude=True)

    @staticmethod
    def status_of(items: tuple[ItemResult, ...]) -> OutcomeStatus:
        """succeeded if every item did, partially_succeeded if some did; if none did, unknown
        when some item's outcome is unknown (it may have acted), else failed."""
        if items and all(item.status is ItemStatus.PLANNED for item in items):
            return OutcomeStatus.PLANNED
        done = sum(item.status is ItemStatus.SUCCEEDED for item in items)
        if items and done == len(items):
            return OutcomeStatus.SUCCEEDED
        if done:
            return OutcomeStatus.PARTIALLY_SUCCEEDED
        if any(item.status is ItemStatus.UNKNOWN for item in items):
            return OutcomeStatus.UNKNOWN
        return OutcomeStatus.FAILED
