"""ContraForce API v2 client: `POST {base}/workspaces/{workspaceId}/tickets/unlink`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from incident_link_api.base import Upstream
from incident_link_api.commands import UnlinkTicket
from incident_link_api.contraforce import (
    ApiProblemDetails,
    ApiResponseOfboolean,
    UnlinkServiceTicketRequest,
)
from shared.clients.auth import BasicCredential, BearerCredential, EntraTokenCredential
from shared.clients.http import Delivered, error_for, unreadable
from shared.clients.upstream import UpstreamClient
from shared.context import correlation_headers

ContraForceCredential = BasicCredential | BearerCredential | EntraTokenCredential


@dataclass(frozen=True)
class UnlinkAnswer:
    reply: ApiResponseOfboolean
    status: int
    attempts: int
    request_id: str | None
    may_have_acted: bool = False  # an earlier attempt went out and lost its answer


class ContraForceClient(UpstreamClient[ContraForceCredential]):
    """One per process; owns one pooled connection pool to ContraForce."""

    upstream: ClassVar[Upstream] = "contraforce"

    def prepare_unlink(self, command: UnlinkTicket) -> httpx.Request:
        """The request for `command`. The only payload-derived path segment is the UUID."""
        body = UnlinkServiceTicketRequest(incident=command.incident)
        return self._http.build(
            "POST",
            f"workspaces/{quote(str(command.workspace_id), safe='')}/tickets/unlink",
            json=body.model_dump(mode="json", by_alias=True, exclude_none=True),
            headers=correlation_headers(),
        )

    async def unlink_ticket(self, command: UnlinkTicket) -> UnlinkAnswer:
        """Unlink; returns the `{data, meta}` answer or raises a typed `UpstreamError`."""
        delivered = await self._http.send(self.prepare_unlink(command))
        response = delivered.response
        header_request_id = response.headers.get("x-request-id")
        if not delivered.accepted:
            raise _error(delivered, header_request_id)
        try:
            reply = ApiResponseOfboolean.model_validate_json(response.content)
        except ValidationError as exc:
            raise unreadable(delivered, upstream="contraforce") from exc
        request_id = (reply.meta.request_id if reply.meta else None) or header_request_id
        return UnlinkAnswer(
            reply, response.status_code, delivered.attempts, request_id, delivered.may_have_acted
        )


def _error(delivered: Delivered, header_request_id: str | None) -> Exception:
    try:
        problem = ApiProblemDetails.model_validate_json(delivered.response.content)
    except ValidationError:
        problem = ApiProblemDetails()
    message = problem.detail or problem.title or delivered.response.reason_phrase
    return error_for(
        delivered,
        upstream="contraforce",
        message=message,
        code=problem.code,
        request_id=problem.request_id or header_request_id,
        errors=problem.errors,
    )
