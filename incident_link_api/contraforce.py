"""ContraForce API v2 schemas for `POST /api/v2/workspaces/{workspaceId}/tickets/unlink`.

Field names and types are the vendor's OpenAPI excerpt's, exactly (camelCase on the wire).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BeforeValidator, Field, StrictBool, field_validator

from incident_link_api.base import BoundedId, InboundModel, IncidentNumber, VendorModel


class IncidentSource(StrEnum):
    """The six incident sources ContraForce knows."""

    SENTINEL = "Sentinel"
    DEFENDER_XDR = "DefenderXDR"
    QRADAR = "QRadar"
    SPLUNK = "Splunk"
    CROWDSTRIKE = "CrowdStrike"
    SENTINEL_ONE = "SentinelOne"


_SOURCE_BY_LOWER = {source.value.lower(): source.value for source in IncidentSource}


def _canonical_source(value: object) -> object:
    """Webhooks send `sentinel`; the API wants `Sentinel`. Accept either, send the API's."""
    if isinstance(value, str):
        return _SOURCE_BY_LOWER.get(value.strip().lower(), value)
    return value


Source = Annotated[IncidentSource, BeforeValidator(_canonical_source)]


class IncidentReference(InboundModel):
    """`IncidentReference`: every field nullable in the vendor schema."""

    id: BoundedId | None = None
    source: Source | None = None
    workspace_id: BoundedId | None = Field(default=None, alias="workspaceId")
    number: IncidentNumber | None = None


class UnlinkServiceTicketRequest(InboundModel):
    """`UnlinkServiceTicketRequest`: the request body of the unlink route."""

    incident: IncidentReference | None = None


class ResponseMeta(VendorModel):
    request_id: str | None = Field(default=None, alias="requestId")
    timestamp: str | None = None


class ApiResponseOfboolean(VendorModel):
    """The success envelope `{data, meta}`."""

    data: StrictBool | None = None
    meta: ResponseMeta | None = None


class ApiProblemDetails(VendorModel):
    """RFC 7807 problem plus ContraForce's `code`, `requestId`, `timestamp`, `target`, `errors`.

    `status` may arrive as an integer or as a numeric string; it is kept as an integer.
    """

    type: str | None = None
    title: str | None = None
    status: int | None = None
    detail: str | None = None
    instance: str | None = None
    code: str | None = None
    request_id: str | None = Field(default=None, alias="requestId")
    timestamp: str | None = None
    target: str | None = None
    errors: dict[str, list[str]] | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _numeric_string_status(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if not text.lstrip("-").isdigit():
                raise ValueError(f"status must be an integer or a numeric string, got {value!r}")
            return int(text)
        return value
