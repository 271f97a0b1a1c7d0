"""D3 SOAR client: `POST {base}/Command/RemoveLinkedIncidents` (base ends in `/api`)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from pydantic import ValidationError

from incident_link_api.commands import RemoveLinkedIncidents
from incident_link_api.d3 import (
    LINKED_FIELD,
    SOURCE_FIELD,
    D3CommandResponse,
    D3ErrorBody,
    RemoveLinkedIncidentsEnvelope,
)
from incident_link_api.outcome import PreparedRequest
from shared.clients.auth import D3ApiKeyCredential, D3JwtCredential
from shared.clients.http import Delivered, ResilientHttp, RetryPolicy, error_for, unreadable
from shared.clients.pacing import Pacer
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


class D3Client:
    """One per process; owns one pooled connection pool to the D3 site."""

    def __init__(
        self,
        base_url: str,
        credential: D3Credential,
        *,
        policy: RetryPolicy,
        timeout: httpx.Timeout,
        rate_limit_per_second: float | None = 50.0,
        transport: httpx.AsyncBaseTransport | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self._credential = credential
        self._http = ResilientHttp(
            upstream="d3",
            base_url=base_url,
            auth=credential,
            policy=policy,
            timeout=timeout,
            rate_limit_per_second=rate_limit_per_second,
            transport=transport,
            pacer=pacer,
        )

    def prepare_remove(self, command: RemoveLinkedIncidents) -> httpx.Request:
        body = envelope_for(command).model_dump(mode="json", by_alias=True)
        return self._http.build(
            "POST", REMOVE_LINKED_INCIDENTS, json=body, headers=correlation_headers()
        )

    def describe(self, request: httpx.Request) -> PreparedRequest:
        return self._http.describe(request, self._credential)

    async def remove_linked_incidents(self, command: RemoveLinkedIncidents) -> CommandAnswer:
        """Run the command; a 200 is returned as is (it may still report failures)."""
        delivered = await self._http.send(self.prepare_remove(command))
        if not delivered.response.is_success:
            raise _error(delivered)
        try:
            reply = D3CommandResponse.model_validate_json(delivered.response.content)
        except ValidationError as exc:
            raise unreadable(delivered, upstream="d3") from exc
        return CommandAnswer(
            reply, delivered.response.status_code, delivered.attempts, delivered.may_have_acted
        )

    async def aclose(self) -> None:
        await self._http.aclose()


def _error(delivered: Delivered) -> Exception:
    try:
        message = D3ErrorBody.model_validate_json(delivered.response.content).error
    except ValidationError:
        message = delivered.response.reason_phrase
    return error_for(delivered, upstream="d3", message=message)
