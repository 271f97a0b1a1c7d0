"""D3 SOAR remote command `POST /Command/RemoveLinkedIncidents`: envelope and answers.

D3's field names (with spaces) exist only here, as aliases.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import Field

from incident_link_api.base import (
    D3Name,
    D3SourceIncident,
    InboundModel,
    IncidentNumber,
    VendorModel,
)

LINKED_FIELD: Final = "Linked Incident Numbers to be Removed"
SOURCE_FIELD: Final = "Source Incident Number"


class RemoveLinkedIncidentsParams(InboundModel):
    """`CommandParams` of RemoveLinkedIncidents."""

    linked_incidents: list[IncidentNumber] = Field(
        alias="Linked Incident Numbers to be Removed", min_length=1
    )
    source_incident: D3SourceIncident = Field(alias="Source Incident Number")


class RemoveLinkedIncidentsEnvelope(InboundModel):
    """D3's command envelope. Username and Site may be left out by our callers: the
    configured defaults fill them before anything is sent."""

    username: D3Name | None = Field(default=None, alias="Username")
    site: D3Name | None = Field(default=None, alias="Site")
    command_params: RemoveLinkedIncidentsParams = Field(alias="CommandParams")


class D3ErrorItem(VendorModel):
    incident_number: str = Field(alias="Incident Number")
    error_message: str = Field(alias="Error message")


class D3ReturnData(VendorModel):
    status: str | None = Field(default=None, alias="Status")
    data: dict[str, Any] | None = Field(default=None, alias="Data")
    error_data: list[D3ErrorItem] | None = Field(default=None, alias="ErrorData")


class D3CommandResponse(VendorModel):
    """A 200 answer. It may still be a failure: check `error` and `returnData.Status`."""

    error: str | None = None
    return_data: D3ReturnData | None = Field(default=None, alias="returnData")


class D3ErrorBody(VendorModel):
    """The body of D3's 400/401/429/500 answers."""

    error: str = Field(alias="Error")
