"""Raw request → Commands. Nothing past this module sees raw JSON.

Order of checks: content type (415) → size (413) → JSON syntax (400, says where) → item count
(413) → schema (400, `errors` keyed by JSON path) → D3 identity (403) → Commands.
The query is read from the request URL as sent (`query_of`), because the Functions host drops
parameters with empty values from `req.params` (so `?dryRun` would vanish there).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, urlsplit
from uuid import UUID

from pydantic import BaseModel, ValidationError

from incident_link_api.commands import (
    Command,
    IncidentInput,
    RemoveLinkedIncidents,
    RemoveLinkedIncidentsBulkInput,
    RemoveLinkedIncidentsInput,
    UnlinkTicket,
    UnlinkTicketBulkInput,
    UnlinkTicketInput,
)
from incident_link_api.contraforce import IncidentReference, UnlinkServiceTicketRequest
from incident_link_api.d3 import RemoveLinkedIncidentsEnvelope
from shared.config import Settings
from shared.errors import (
    Forbidden,
    InvalidPayload,
    PayloadTooLarge,
    RequestRejected,
    UnsupportedMediaType,
)
from shared.logsafe import clip

M = TypeVar("M", bound=BaseModel)
_ECHO_LIMIT = 64
_SUMMARY_LIMIT = 1000  # characters of a validation failure's one-line summary
DRY_RUN: Final = "dryRun"
# The function key (`?code=`) is the host's business; every other parameter must be known.
_HOST_PARAMETERS: Final = frozenset({"code"})
_KNOWN_PARAMETERS: Final = frozenset({DRY_RUN.casefold(), *_HOST_PARAMETERS})
_TRUE: Final = frozenset({"", "true", "1"})
_FALSE: Final = frozenset({"false", "0"})
# What a Sentinel incident trigger gives besides the number ContraForce identifies it by: the
# incident's Azure resource id and its name, a GUID (issue 26 item 3).
_ARM_INCIDENT = re.compile(
    r"^/subscriptions/[^/]+/.*/providers/Microsoft\.SecurityInsights/Incidents/[^/]+/?$",
    re.IGNORECASE,
)
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_SEND_NUMBER = (
    "ContraForce identifies a Sentinel incident by its incident number: send the trigger's "
    "properties.incidentNumber (e.g. 1001) as incident.number"
)


@dataclass(frozen=True)
class Incoming:
    """The parts of an HTTP request the parsers may read. `query` is every parameter as sent,
    in order, repeats and empty values included (see `query_of`)."""

    body: bytes
    content_type: str | None
    route_params: Mapping[str, str]
    query: Sequence[tuple[str, str]]


def query_of(url: str) -> tuple[tuple[str, str], ...]:
    """The query parameters of a request URL, decoded, empty values kept (`?dryRun` is
    `("dryRun", "")`).

    Read from the URL, not from `req.params`: the Functions host builds those for the Python
    worker without the parameters whose value is empty (azure-functions-host,
    `RpcMessageConversionExtensions.ToRpcHttp`: `if (!string.IsNullOrEmpty(value))`, unless the
    worker declares `UseNullableValueDictionaryForHttp`, which the Python worker does not), while
    the URL it passes keeps the query string as sent.
    """
    return tuple(parse_qsl(urlsplit(url).query, keep_blank_values=True))


# One per route family: the request's parts and the settings in, Commands (or a refusal) out.
Parser = Callable[[Incoming, Settings], list[Command]]


def read_json(incoming: Incoming, *, max_bytes: int) -> Any:
    """The body as JSON, or the reason it is not acceptable."""
    media_type = (incoming.content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        shown = clip(media_type, _ECHO_LIMIT) if media_type else "none"
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {shown}",
            errors={"Content-Type": [f"must be application/json, got {shown}"]},
        )
    if len(incoming.body) > max_bytes:
        raise PayloadTooLarge(
            f"body is {len(incoming.body)} bytes; the limit is {max_bytes} (MAX_BODY_BYTES)",
            errors={"": [f"body exceeds {max_bytes} bytes"]},
        )
    return decode_json(incoming.body)


def decode_json(body: bytes) -> Any:
    """Bytes as JSON, or a 400 that says where they stop being JSON."""
    if not body.strip():
        raise RequestRejected("request body is required", errors={"": ["body is empty"]})
    try:
        return json.loads(body)
    except UnicodeDecodeError as exc:  # before ValueError, of which it is one
        raise RequestRejected(
            f"body is not UTF-8 text: invalid byte at position {exc.start}",
            errors={"": ["body is not UTF-8"]},
            code="MALFORMED_JSON",
        ) from exc
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno} (char {exc.pos})"
        raise RequestRejected(
            f"body is not valid JSON: {exc.msg} at {where}",
            errors={"": [f"{exc.msg} at {where}"]},
            code="MALFORMED_JSON",
        ) from exc
    except ValueError as exc:  # an integer literal over Python's 4,300-digit conversion limit
        raise RequestRejected(
            "body is not usable JSON: a number in it has more than 4,300 digits",
            errors={"": ["a number has more than 4,300 digits"]},
            code="MALFORMED_JSON",
        ) from exc
    except RecursionError as exc:
        raise RequestRejected(
            "body is nested too deeply to be read",
            errors={"": ["nesting too deep"]},
            code="MALFORMED_JSON",
        ) from exc


def json_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def parse(model: type[M], data: Any, *, prefix: str = "") -> M:
    """Validate `data` as `model`; errors are keyed by JSON path and say what was wrong.

    A path is made of the caller's own member names, so it is clipped and escaped
    (`shared.logsafe.clip`) before it goes into the answer or the message that is logged."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors: dict[str, list[str]] = {}
        for err in exc.errors(include_url=False):
            message = err["msg"]
            value = err.get("input")
            if err["type"] != "missing" and isinstance(value, str | int | float | bool):
                shown = repr(value)
                if len(shown) <= _ECHO_LIMIT:
                    message += f", got {shown}"
            path = clip(json_path(tuple(err["loc"]), prefix))
            errors.setdefault(path, []).append(clip(message))
        summary = "; ".join(f"{path or 'body'}: {'; '.join(msgs)}" for path, msgs in errors.items())
        raise InvalidPayload(
            f"invalid request: {clip(summary, _SUMMARY_LIMIT)}", errors=errors
        ) from exc


def dry_run_requested(incoming: Incoming) -> bool:
    """Whether the query asks for a dry run.

    `dryRun` in any case (`dryrun`, `DRYRUN`) with no value, an empty one, `true` or `1` is a
    dry run; `false` or `0` is not; anything else is a 400. So that a misspelt flag never runs
    the action for real, every parameter other than `dryRun` and `code` is a 400 naming it.
    """
    unknown = sorted(
        {name for name, _ in incoming.query if name.casefold() not in _KNOWN_PARAMETERS}
    )
    if unknown:
        shown = ", ".join(repr(name[:_ECHO_LIMIT]) for name in unknown)
        raise InvalidPayload(
            f"unknown query parameter(s) {shown}: only {DRY_RUN} (and code, the function key) "
            "are understood",
            errors={name[:_ECHO_LIMIT]: ["unknown query parameter"] for name in unknown},
        )
    flags = {
        _flag(value) for name, value in incoming.query if name.casefold() == DRY_RUN.casefold()
    }
    if len(flags) > 1:
        raise InvalidPayload(
            f"{DRY_RUN} is given more than once with different values",
            errors={DRY_RUN: ["given more than once with different values"]},
        )
    return flags == {True}


def _flag(value: str) -> bool:
    flag = value.strip().casefold()
    if flag in _TRUE:
        return True
    if flag in _FALSE:
        return False
    shown = repr(value[:_ECHO_LIMIT])
    raise InvalidPayload(
        f"{DRY_RUN} must be true or false (or empty), got {shown}",
        errors={DRY_RUN: [f"must be true or false (or empty), got {shown}"]},
    )


def _check_items(data: Any, limit: int) -> None:
    field = "items"
    if isinstance(data, dict) and isinstance(data.get(field), list) and len(data[field]) > limit:
        raise PayloadTooLarge(
            f"{field} has {len(data[field])} entries; the limit is {limit} (MAX_BULK_ITEMS)",
            errors={field: [f"at most {limit} entries"]},
            code="TOO_MANY_ITEMS",
        )


def sentinel_identifier_hint(data: Any, path: str) -> None:
    """Refuse (400), before the schema, a Sentinel identifier where ContraForce wants the
    incident number, saying which field to send and why.

    An Azure resource id (`/subscriptions/.../Microsoft.SecurityInsights/Incidents/<guid>`) in
    `id` or `number`, and a GUID in `number` (an incident number is never one), are refused so.
    A GUID in `id` passes, whatever the source: a ContraForce incident id is a plain string
    (its webhooks' `incidentId`) and is a GUID for Sentinel incidents too, so a GUID there is
    a valid ContraForce id that only ContraForce can tell from a Sentinel incident's name.
    """
    if not isinstance(data, dict):
        return
    incident = data.get("incident")
    if not isinstance(incident, dict):
        return
    given_id, number = incident.get("id"), incident.get("number")
    errors: dict[str, list[str]] = {}
    for field, value in (("id", given_id), ("number", number)):
        if isinstance(value, str) and _ARM_INCIDENT.match(value.strip()):
            errors[f"{path}incident.{field}"] = [
                "is a Sentinel incident's Azure resource id; " + _SEND_NUMBER
            ]
    if isinstance(number, str) and _GUID.match(number.strip()):
        errors[f"{path}incident.number"] = [
            "is a GUID (a Sentinel incident's name), not an incident number; " + _SEND_NUMBER
        ]
    if errors:
        summary = "; ".join(f"{field}: {msgs[0]}" for field, msgs in errors.items())
        raise InvalidPayload(
            f"invalid request: {summary}", errors=errors, code="SENTINEL_IDENTIFIER"
        )


def _require_reference(incident: IncidentReference | IncidentInput, path: str) -> None:
    if not (incident.id or incident.number):
        raise InvalidPayload(
            f"{path} needs an id or a number",
            errors={path: ["needs an id or a number to identify the incident"]},
        )


def _workspace_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError as exc:
        shown = repr(text[:_ECHO_LIMIT])
        raise InvalidPayload(
            f"workspaceId must be a UUID, got {shown}",
            errors={"workspaceId": [f"must be a UUID, got {shown}"]},
        ) from exc


def _linked(values: list[str], field: str, settings: Settings) -> tuple[str, ...]:
    """Linked incident numbers, in order, without repeats, at most MAX_BULK_ITEMS."""
    unique = tuple(dict.fromkeys(values))
    if len(unique) > settings.max_bulk_items:
        raise PayloadTooLarge(
            f"{field} has {len(unique)} entries; the limit is {settings.max_bulk_items} "
            "(MAX_BULK_ITEMS)",
            errors={field: [f"at most {settings.max_bulk_items} entries"]},
            code="TOO_MANY_ITEMS",
        )
    return unique


def _user_and_site(
    username: str | None, site: str | None, settings: Settings, *, fields: tuple[str, str]
) -> tuple[str, str]:
    """The D3 user and site: the caller's, else the configured defaults."""
    username = username or settings.d3_default_username
    site = site or settings.d3_default_site
    if username and site:
        _check_identity(username, site, settings, fields=fields)
        return username, site
    errors = {
        field: [f"is required (no {setting} is configured)"]
        for field, value, setting in (
            (fields[0], username, "D3_DEFAULT_USERNAME"),
            (fields[1], site, "D3_DEFAULT_SITE"),
        )
        if not value
    }
    raise InvalidPayload(f"{' and '.join(errors)} required", errors=errors)


def _check_identity(
    username: str, site: str, settings: Settings, *, fields: tuple[str, str]
) -> None:
    """Refuse (403) a D3 identity the deployment does not allow, before anything is sent:
    the caller names who D3 records as acting, and in d3jwt mode we sign that name."""
    if (username, site) in settings.d3_identities():
        return
    identity = f"{username[:_ECHO_LIMIT]}@{site[:_ECHO_LIMIT]}"
    message = "is not an allowed D3 identity (D3_ALLOWED_IDENTITIES)"
    raise Forbidden(
        f"D3 identity {identity!r} ({fields[0]}, {fields[1]}) may not be used: an operator "
        "can allow it in D3_ALLOWED_IDENTITIES",
        errors={fields[0]: [message], fields[1]: [message]},
        code="D3_IDENTITY_NOT_ALLOWED",
    )


# ---- one parser per route family --------------------------------------------------------------


def contraforce_mirror(incoming: Incoming, settings: Settings) -> list[Command]:
    """`POST contraforce/workspaces/{workspaceId}/tickets/unlink` with the vendor's body."""
    workspace_id = _workspace_id(incoming.route_params.get("workspaceId", ""))
    data = read_json(incoming, max_bytes=settings.max_body_bytes)
    sentinel_identifier_hint(data, "")
    body = parse(UnlinkServiceTicketRequest, data)
    if body.incident is None:
        raise InvalidPayload("incident is required", errors={"incident": ["is required"]})
    _require_reference(body.incident, "incident")
    given = body.incident.workspace_id
    if given is not None and given.strip().lower() != str(workspace_id):
        raise InvalidPayload(
            "incident.workspaceId differs from the workspaceId in the path",
            errors={"incident.workspaceId": ["must equal the workspaceId in the path"]},
        )
    incident = body.incident.model_copy(update={"workspace_id": str(workspace_id)})
    return [UnlinkTicket(workspace_id=workspace_id, incident=incident)]


def d3_mirror(incoming: Incoming, settings: Settings) -> list[Command]:
    """`POST d3/Command/RemoveLinkedIncidents` with D3's own envelope."""
    envelope = parse(
        RemoveLinkedIncidentsEnvelope, read_json(incoming, max_bytes=settings.max_body_bytes)
    )
    username, site = _user_and_site(
        envelope.username, envelope.site, settings, fields=("Username", "Site")
    )
    params = envelope.command_params
    linked = _linked(
        params.linked_incidents, "CommandParams.Linked Incident Numbers to be Removed", settings
    )
    return [
        RemoveLinkedIncidents(
            site=site,
            username=username,
            source_incident=params.source_incident,
            linked_incidents=linked,
        )
    ]


def canonical_unlink(incoming: Incoming, settings: Settings) -> list[Command]:
    """`POST actions/unlink-ticket`: one `{workspaceId, incident}` or `{items: [...]}`."""
    data = read_json(incoming, max_bytes=settings.max_body_bytes)
    _check_items(data, settings.max_bulk_items)
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        for index, raw in enumerate(data["items"]):
            sentinel_identifier_hint(raw, f"items[{index}].")
    else:
        sentinel_identifier_hint(data, "")
    if isinstance(data, dict) and "items" in data:
        items = parse(UnlinkTicketBulkInput, data).items
        prefixes = [f"items[{i}]." for i in range(len(items))]
    else:
        items, prefixes = [parse(UnlinkTicketInput, data)], [""]
    commands: list[Command] = []
    for item, prefix in zip(items, prefixes, strict=True):
        _require_reference(item.incident, f"{prefix}incident")
        workspace_id = _one_workspace(item, prefix)
        reference = IncidentReference.model_validate(
            {
                "id": item.incident.id,
                "number": item.incident.number,
                "source": item.incident.source,
                "workspaceId": str(workspace_id),
            }
        )
        commands.append(UnlinkTicket(workspace_id=workspace_id, incident=reference))
    return commands


def _one_workspace(item: UnlinkTicketInput, prefix: str) -> UUID:
    """The workspace of a canonical item: `workspaceId`, `incident.workspaceId` (ContraForce's
    own `IncidentReference` shape), or both when they agree."""
    top, nested = item.workspace_id, item.incident.workspace_id
    if top is not None and nested is not None and top != nested:
        message = f"{prefix}workspaceId and {prefix}incident.workspaceId differ"
        raise InvalidPayload(
            f"{message}: give one, or the same in both",
            errors={
                f"{prefix}workspaceId": [f"differs from {prefix}incident.workspaceId"],
                f"{prefix}incident.workspaceId": [f"differs from {prefix}workspaceId"],
            },
        )
    workspace_id = top or nested
    if workspace_id is None:
        raise InvalidPayload(
            f"{prefix}workspaceId is required",
            errors={f"{prefix}workspaceId": ["is required (or incident.workspaceId)"]},
        )
    return workspace_id


def canonical_remove(incoming: Incoming, settings: Settings) -> list[Command]:
    """`POST actions/remove-linked-incidents`: one command or `{items: [...]}`."""
    data = read_json(incoming, max_bytes=settings.max_body_bytes)
    _check_items(data, settings.max_bulk_items)
    if isinstance(data, dict) and "items" in data:
        items = parse(RemoveLinkedIncidentsBulkInput, data).items
        prefixes = [f"items[{i}]." for i in range(len(items))]
    else:
        items, prefixes = [parse(RemoveLinkedIncidentsInput, data)], [""]
    commands: list[Command] = []
    for item, prefix in zip(items, prefixes, strict=True):
        username, site = _user_and_site(
            item.username, item.site, settings, fields=(f"{prefix}username", f"{prefix}site")
        )
        commands.append(
            RemoveLinkedIncidents(
                site=site,
                username=username,
                source_incident=item.source_incident,
                linked_incidents=_linked(
                    item.linked_incidents, f"{prefix}linkedIncidents", settings
                ),
            )
        )
    return commands
