"""A typed Python client of the Incident Link Actions app, sync (`Client`) and async
(`AsyncClient`), on httpx.

It takes and returns the app's own pydantic models (`incident_link_api`: one source of truth)::

    from incident_link_actions_client import Client, IncidentInput, UnlinkTicketInput

    with Client("https://<app>.azurewebsites.net/api", key="<function key>") as ila:
        outcome = ila.unlink_ticket(
            UnlinkTicketInput(workspaceId=ws, incident=IncidentInput(number="1001"))
        )
        outcome.status  # OutcomeStatus.SUCCEEDED (or PARTIALLY_SUCCEEDED for a 207)

Failures raise the typed errors of `incident_link_actions_client.errors`, built from the app's
problem+json (status, code, field errors, the Outcome inside).
"""

from incident_link_actions_client._async import AsyncClient
from incident_link_actions_client._core import RetryOptions
from incident_link_actions_client._sync import Client
from incident_link_actions_client.errors import (
    AccessDeniedError,
    ApiError,
    BadRequestError,
    ConnectionFailed,
    ContentTooLargeError,
    KeyReusedError,
    LinkActionsError,
    NotAppliedError,
    NotFoundError,
    ServerError,
    SettingsError,
    StillPending,
    UnavailableError,
    UnexpectedAnswer,
    UpstreamCredentialsError,
    UpstreamRefusedError,
)
from incident_link_api.commands import (
    IncidentInput,
    RemoveLinkedIncidentsInput,
    UnlinkTicketInput,
)
from incident_link_api.outcome import ItemResult, ItemStatus, Outcome, OutcomeStatus

__all__ = [
    "AccessDeniedError",
    "ApiError",
    "AsyncClient",
    "BadRequestError",
    "Client",
    "ConnectionFailed",
    "ContentTooLargeError",
    "IncidentInput",
    "ItemResult",
    "ItemStatus",
    "KeyReusedError",
    "LinkActionsError",
    "NotAppliedError",
    "NotFoundError",
    "Outcome",
    "OutcomeStatus",
    "RemoveLinkedIncidentsInput",
    "RetryOptions",
    "ServerError",
    "SettingsError",
    "StillPending",
    "UnavailableError",
    "UnexpectedAnswer",
    "UnlinkTicketInput",
    "UpstreamCredentialsError",
    "UpstreamRefusedError",
]
