"""ContraForce API v2 client: `POST {base}/workspaces/{workspaceId}/tickets/unlink`.

A 2xx is read for what the decision needs, `data` (a boolean, or absent: nothing was
unlinked), and leniently for the rest (`shared.clients.reading`): a mistyped `meta` member is
dropped, not a reason to retry. A 2xx whose `data` cannot be read is an ambiguous send.
"""

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
    ResponseMeta,
    UnlinkServiceTicketRequest,
)
from shared.clients.auth import BasicCredential, BearerCredential, EntraTokenCredential
from shared.clients.http import Delivered, error_for
from shared.clients.reading import Unreadable, json_object, salvaged
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
        delivered = await self._http.send(self.prepare_unlink(command), read_unlink_reply)
        response = delivered.response
        header_request_id = response.headers.get("x-request-id")
        if delivered.reply is None:
            raise _error(delivered, header_request_id)
        reply = delivered.reply
        request_id = (reply.meta.request_id if reply.meta else None) or header_request_id
        return UnlinkAnswer(
            reply, response.status_code, delivered.attempts, request_id, delivered.may_have_acted
        )


def read_unlink_reply(response: httpx.Response) -> ApiResponseOfboolean:
    """A 2xx's `{data, meta}`: `data` must be a boolean (or absent); any other member that is
    not the documented type is dropped (`meta` member by member)."""
    try:
        return ApiResponseOfboolean.model_validate_json(response.content)
    except ValidationError:
        pass
    document = json_object(response.content)
    meta = document.get("meta")
    if isinstance(meta, dict):
        document = {**document, "meta": salvaged(ResponseMeta, meta).model_dump(by_alias=True)}
    return salvaged(ApiResponseOfboolean, document, needed={"data"})


def _error(delivered: Delivered[ApiResponseOfboolean], header_request_id: str | None) -> Exception:
    problem = _problem(delivered.response.content)
    message = problem.detail or problem.title or delivered.response.reason_phrase
    return error_for(
        delivered,
        upstream="contraforce",
        message=message,
        code=problem.code,
        request_id=problem.request_id or header_request_id,
        errors=problem.errors,
    )


def _problem(content: bytes) -> ApiProblemDetails:
    """A refusal's problem details, each member kept if it is the documented type (none if
    the body is not a JSON object: an HTML error page)."""
    try:
        return ApiProblemDetails.model_validate_json(content)
    except ValidationError:
        pass
    try:
        return salvaged(ApiProblemDetails, json_object(content))
    except Unreadable:
        return ApiProblemDetails()
