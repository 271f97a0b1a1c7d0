"""Commands: one validated, frozen model per action. Every caller's payload becomes one.

Also the canonical (camelCase) request bodies of `/api/actions/...`, single or bulk.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from incident_link_api.base import (
    BoundedId,
    D3Name,
    D3SourceIncident,
    InboundModel,
    IncidentNumber,
)
from incident_link_api.contraforce import IncidentReference, Source


class _Command(BaseModel):
    """`action` names what a command does, the name an Outcome and an operation record give it
    too. Stored and fingerprinted as `kind`, its first name, so records written before stay
    readable and their fingerprints stay equal."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", defer_build=True, validate_by_name=True, validate_by_alias=True
    )


class UnlinkTicket(_Command):
    """Unlink the service ticket of one ContraForce incident."""

    action: Literal["unlink_ticket"] = Field("unlink_ticket", alias="kind")
    workspace_id: UUID
    incident: IncidentReference

    @property
    def target(self) -> str:
        ref = self.incident.id or self.incident.number or "?"
        source = f"{self.incident.source.value}/" if self.incident.source else ""
        return f"{self.workspace_id}/{source}{ref}"


class RemoveLinkedIncidents(_Command):
    """Remove links from one D3 source incident to each of `linked_incidents`."""

    action: Literal["remove_linked_incidents"] = Field("remove_linked_incidents", alias="kind")
    site: D3Name
    username: D3Name
    source_incident: D3SourceIncident  # blank only from the D3 drop-in route: D3 decides
    linked_incidents: tuple[IncidentNumber, ...] = Field(min_length=1)


Command = Annotated[UnlinkTicket | RemoveLinkedIncidents, Field(discriminator="action")]
Action = Literal["unlink_ticket", "remove_linked_incidents"]


# ---- canonical request bodies (camelCase) ---------------------------------------------------


class IncidentInput(InboundModel):
    """The incident to unlink. ContraForce's own `IncidentReference`, `workspaceId` included,
    is taken as is: its `workspaceId` must then equal the top-level one, or stand alone."""

    id: BoundedId | None = None
    number: IncidentNumber | None = None
    source: Source | None = None
    workspace_id: UUID | None = Field(default=None, alias="workspaceId")


class UnlinkTicketInput(InboundModel):
    """`workspaceId` may be left out when `incident.workspaceId` gives it."""

    workspace_id: UUID | None = Field(default=None, alias="workspaceId")
    incident: IncidentInput


class UnlinkTicketBulkInput(InboundModel):
    items: list[UnlinkTicketInput] = Field(min_length=1)


class RemoveLinkedIncidentsInput(InboundModel):
    site: D3Name | None = None
    username: D3Name | None = None
    source_incident: IncidentNumber = Field(alias="sourceIncident")
    linked_incidents: list[IncidentNumber] = Field(alias="linkedIncidents", min_length=1)


class RemoveLinkedIncidentsBulkInput(InboundModel):
    items: list[RemoveLinkedIncidentsInput] = Field(min_length=1)
