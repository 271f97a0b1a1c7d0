"""D3 SOAR client: `POST {base}/Command/RemoveLinkedIncidents` (base ends in `/api`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import httpx
from pydantic import ValidationError

from incident_link_api.base import Upstream
from incident_link_api.commands import RemoveLinkedIncidents
from incident_link_api.d3 import (
    LINKED_FIELD,
    SOURCE_FIELD,
    D3CommandResponse,
    D3ErrorBody,
    RemoveLinkedIncidentsEnvelope,
)
from shared.clients.auth import D3ApiKeyCredential, D3JwtCredential
from shared.clients.http import Delivered, error_for, unreadable
from shared.clients.upstream import UpstreamClient
from shared.context import correlation_headers

D3Credential = D3ApiKeyCredential | D3JwtCredential
REMOVE_LINKED_INCIDENTS = "Command/RemoveLinkedIncidents"


@dataclass(frozen=True)
class CommandAnswer:
    reply: D3CommandResponse
    status: int
    attempts: int
    may_have_acted: bool = False  # an earlier attempt went out and lost its answer


def envelope_for(command: RemoveLinkedIncidents) -> RemoveLinkedIncidentsEnvelope:
    """The D3 envelope of `command`, with D3's own field names."""
    return RemoveLinkedIncidentsEnvelope.model_validate(
        {
            "Username": command.username,
            "Site": command.site,
            "CommandParams": {
                LINKED_FIELD: list(command.linked_incidents),
                SOURCE_FIELD: command.source_incident,
            },
        }
    )


class D3Client(UpstreamClient[D3Credential]):
    """One per process; owns one pooled connection pool to the D3 site."""

    upstream: ClassVar[Upstream] = "d3"

    def prepare_remove(self, command: RemoveLinkedIncidents) -> httpx.Request:
        body = envelope_for(command).model_dump(mode="json", by_alias=True)
        return self._http.build(
            "POST", REMOVE_LINKED_INCIDENTS, json=body, headers=correlation_headers()
        )

    async def remove_linked_incidents(self, command: RemoveLinkedIncidents) -> CommandAnswer:
        """Run the command; a 200 is returned as is (it may still report failures)."""
        delivered = await self._http.send(self.prepare_remove(command))
        if not delivered.accepted:
            raise _error(delivered)
        try:
            reply = D3CommandResponse.model_validate_json(delivered.response.content)
        except ValidationError as exc:
            raise unreadable(delivered, upstream="d3") from exc
        return CommandAnswer(
            reply, delivered.response.status_code, delivered.attempts, delivered.may_have_acted
        )


def _error(delivered: Delivered) -> Exception:
    try:
        message = D3ErrorBody.model_validate_json(delivered.response.content).error
    except ValidationError:
        message = delivered.response.reason_phrase
    return error_for(delivered, upstream="d3", message=message)
