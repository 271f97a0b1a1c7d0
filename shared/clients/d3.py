"""D3 SOAR client: `POST {base}/Command/RemoveLinkedIncidents` (base ends in `/api`).

D3's rule for a 200, kept here alone: a non-empty `error` is a failure, whatever `returnData`
holds. Such an answer is read as `{error}` only (its `returnData`, often `""`, is dropped), so
the action makes every incident of the command a permanent failure carrying D3's message,
never a retry and never a per-incident "nothing to do". With an empty `error`, `returnData`'s
`Status` and `ErrorData` are what the decision needs and must be the documented types; any
other member that is not (`Data`, extra members) is dropped (`shared.clients.reading`). A 200
that cannot be read so is an ambiguous send (`shared.clients.http`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from pydantic import ValidationError

from incident_link_api.base import Upstream
from incident_link_api.commands import RemoveLinkedIncidents
from incident_link_api.d3 import (
    LINKED_FIELD,
    SOURCE_FIELD,
    D3CommandResponse,
    D3ErrorBody,
    D3ReturnData,
    RemoveLinkedIncidentsEnvelope,
)
from shared.clients.auth import D3ApiKeyCredential, D3JwtCredential
from shared.clients.http import Delivered, error_for
from shared.clients.reading import Unreadable, json_object, salvaged
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
        """Run the command; a 200 is returned as read by `read_command_reply` (it may still
        report failures: a non-empty `error`, `Status`, `ErrorData`)."""
        delivered = await self._http.send(self.prepare_remove(command), read_command_reply)
        if delivered.reply is None:
            raise _error(delivered)
        return CommandAnswer(
            delivered.reply,
            delivered.response.status_code,
            delivered.attempts,
            delivered.may_have_acted,
        )


def d3_failure(error: object) -> str | None:
    """D3's own failure message in a 200's `error`, or None when it reports none (`""` or
    absent, as D3 answers a success)."""
    if error is None or error == "":
        return None
    if not isinstance(error, str):
        raise Unreadable("member 'error' is not the documented type")
    return error


def read_command_reply(response: httpx.Response) -> D3CommandResponse:
    """A 200's `{error, returnData}` by D3's rule (see the module docstring)."""
    document = json_object(response.content)
    failure = d3_failure(document.get("error"))
    if failure is not None:
        kept = {k: v for k, v in document.items() if k not in {"error", "returnData"}}
        return salvaged(D3CommandResponse, {**kept, "error": failure})
    try:
        return D3CommandResponse.model_validate(document)
    except ValidationError:
        pass
    data = document.get("returnData")
    if isinstance(data, dict):
        document = {**document, "returnData": _return_data(data)}
    return salvaged(D3CommandResponse, document, needed={"error", "returnData"})


def _return_data(data: dict[str, Any]) -> dict[str, Any]:
    needed = {"Status", "ErrorData"}
    return salvaged(D3ReturnData, data, needed=needed).model_dump(by_alias=True)


def _error(delivered: Delivered[D3CommandResponse]) -> Exception:
    try:
        message = D3ErrorBody.model_validate_json(delivered.response.content).error
    except ValidationError:
        message = delivered.response.reason_phrase
    return error_for(delivered, upstream="d3", message=message)
