"""The API description, generated from the same pydantic models the app parses and answers with.

One concern: the OpenAPI 3.1 document (`openapi()`, JSON Schema 2020-12, as pydantic emits it)
and its routes. `shared.swagger` turns it into Swagger 2.0 for the Logic Apps *HTTP + Swagger*
action and Power Platform custom connectors, which take 2.0 only: every operation has an
`operationId` and a `summary`, parameters an
`x-ms-summary`, the optional headers and flags `x-ms-visibility: advanced`, nullable unions
become `x-nullable`, `host` is the app's public host name, and the async 202 + `Location`
pattern is declared where it applies. Both are built once per process, on first request.

The request schemas describe what the app accepts, not only what the models type: an incident
needs an `id` or a `number`, identifiers are not blank (the models strip whitespace), and the
ContraForce drop-in route needs an `incident` (schemathesis's positive-data check holds the
documents to that: tests/fuzz/test_positive_data.py).

Both documents are public and fetched by designers running in a browser (Logic Apps: "HTTP +
Swagger" needs CORS on the Swagger file), so their answers carry `Access-Control-Allow-Origin:
*`; the template leaves the platform's CORS off, which would otherwise replace that header.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from incident_link_api.base import PRINTABLE_PATTERN, REFUSED_CHARACTERS
from incident_link_api.commands import (
    RemoveLinkedIncidentsBulkInput,
    RemoveLinkedIncidentsInput,
    UnlinkTicketBulkInput,
    UnlinkTicketInput,
)
from incident_link_api.contraforce import ApiResponseOfboolean, UnlinkServiceTicketRequest
from incident_link_api.d3 import D3CommandResponse, RemoveLinkedIncidentsEnvelope
from incident_link_api.outcome import Outcome
from shared.problems import PROBLEM_JSON, Problem
from shared.rendering import INFERRED_HEADER, JSON, Rendered

TITLE = "Incident Link Actions"
VERSION = "1.0.0"
REF = "#/components/schemas/{model}"

Auth = Literal["function", "anonymous"]

_MODELS: list[type[BaseModel]] = [
    UnlinkServiceTicketRequest,
    RemoveLinkedIncidentsEnvelope,
    UnlinkTicketInput,
    UnlinkTicketBulkInput,
    RemoveLinkedIncidentsInput,
    RemoveLinkedIncidentsBulkInput,
    ApiResponseOfboolean,
    D3CommandResponse,
    Outcome,
    Problem,
]


@dataclass(frozen=True)
class Route:
    """One documented route; `path` is relative to `/api`, as registered."""

    method: Literal["get", "post"]
    path: str
    operation_id: str
    summary: str
    description: str
    auth: Auth = "function"
    body: tuple[str, ...] = ()  # schema names; more than one means "one of"
    ok: dict[int, str] = field(default_factory=dict)  # status -> schema name
    errors: tuple[int, ...] = ()
    action: bool = False  # dryRun, Prefer: respond-async, Idempotency-Key, 202 + Location
    vendor_content: bool = False  # the success answer is the vendor's own shape
    query: tuple[dict[str, Any], ...] = ()  # parameters of this route alone


# Ours, plus the upstream 4xx passed through (400, 403, 404, 409, 422).
_ACTION_ERRORS = (400, 401, 403, 404, 409, 413, 415, 422, 500, 502, 503)
_ERROR_DESCRIPTIONS = {
    400: "The request is invalid: `errors` names each field. A query parameter other than "
    "`dryRun` and `code` is refused so, naming it; SENTINEL_IDENTIFIER: a Sentinel incident's "
    "Azure resource id, or a GUID, where ContraForce wants the incident number "
    "(`properties.incidentNumber`)",
    401: "No valid function key, or (webhook) the signature did not verify",
    403: "The Entra caller is not in ALLOWED_PRINCIPALS, or the upstream refused the action",
    404: "Not found (here, or upstream)",
    409: "Nothing to do upstream (NOT_APPLIED), or a conflict upstream; on the drop-in routes "
    "also an earlier request with this Idempotency-Key still running (OPERATION_IN_PROGRESS): "
    "retry after Retry-After for its answer",
    413: "The body or its number of items is over the limit",
    415: "The body is not JSON",
    422: "Idempotency-Key reused with a different request (IDEMPOTENCY_KEY_REUSED), or the "
    "upstream refused the request as unprocessable",
    500: "A bug, or the upstream failed with 500",
    502: "The upstream refused this app's credentials",
    503: "The upstream or the app's storage is unavailable, or a setting is missing: retry "
    "after Retry-After. OUTCOME_UNKNOWN: no answer came after a request that may have acted "
    "upstream (status `unknown`): it may have happened; a repeat with the same "
    "Idempotency-Key (or a replay) finds out and never acts twice",
}
ROUTES: tuple[Route, ...] = (
    Route(
        "post",
        "contraforce/workspaces/{workspaceId}/tickets/unlink",
        "ContraForceUnlinkTicket",
        "Unlink ticket (ContraForce drop-in)",
        "ContraForce's own request and answer shapes: swap the base URL and a caller written for "
        "ContraForce works unchanged. Adds retries, pacing and X-Operation-Id/X-Correlation-Id. "
        "The answer says what was done: an unlink inferred from a lost answer is `data: true` "
        "with X-ILA-Outcome-Inferred; a keyed repeat of a request still running waits for it "
        "(or gets 409 + Retry-After), never 202.",
        body=("UnlinkServiceTicketRequest",),
        ok={200: "ApiResponseOfboolean"},
        errors=_ACTION_ERRORS,
        action=True,
        vendor_content=True,
    ),
    Route(
        "post",
        "d3/Command/RemoveLinkedIncidents",
        "D3RemoveLinkedIncidents",
        "Remove linked incidents (D3 drop-in)",
        "D3 SOAR's own envelope and answer (including Partially Successful, and D3's failure "
        "in a 200: a non-empty `error`). A blank Source Incident Number is forwarded as D3 "
        "takes it (the playbook's current incident). Username and Site fall back to the "
        "configured defaults. Our own refusals are problem+json with D3's Error member. "
        "Incidents whose removal is inferred from a lost answer count as removed (not in "
        "ErrorData), with X-ILA-Outcome-Inferred; a keyed repeat of a request still running "
        "waits for it (or gets 409 + Retry-After), never 202.",
        body=("RemoveLinkedIncidentsEnvelope",),
        ok={200: "D3CommandResponse"},
        errors=_ACTION_ERRORS,
        action=True,
        vendor_content=True,
    ),
    Route(
        "post",
        "actions/unlink-ticket",
        "UnlinkTicket",
        "Unlink the service ticket of ContraForce incidents",
        "One incident or `items`. 200 all succeeded, 207 some did; otherwise the deciding "
        "failure as problem+json with the Outcome inside.",
        body=("UnlinkTicketInput", "UnlinkTicketBulkInput"),
        ok={200: "Outcome", 207: "Outcome"},
        errors=_ACTION_ERRORS,
        action=True,
    ),
    Route(
        "post",
        "actions/remove-linked-incidents",
        "RemoveLinkedIncidents",
        "Remove links between D3 incidents",
        "One source incident or `items`. 200 all succeeded, 207 some did (one item per linked "
        "incident, with D3's message); otherwise the deciding failure as problem+json.",
        body=("RemoveLinkedIncidentsInput", "RemoveLinkedIncidentsBulkInput"),
        ok={200: "Outcome", 207: "Outcome"},
        errors=_ACTION_ERRORS,
        action=True,
    ),
    Route(
        "post",
        "actions/{action}",
        "UnknownAction",
        "Unknown action",
        "Any other action name: always 404 problem+json listing the known actions.",
        errors=(401, 403, 404),
    ),
    Route(
        "post",
        "webhooks/contraforce",
        "ContraForceWebhook",
        "ContraForce webhook receiver",
        "Signed ContraForce webhook deliveries (X-CF-Signature over the raw body). Verified, then "
        "queued (202 + Location of the operation), skipped by policy (200) or acknowledged as a "
        "test (200). A repeated delivery answers as the first did. `dryRun` is refused (400) "
        "before anything is verified or queued, as is any query parameter but `code`.",
        body=("ContraForceEvent",),
        ok={200: "WebhookAcknowledgement", 202: "Outcome"},
        errors=(400, 401, 403, 413, 415, 422, 503),
    ),
    Route(
        "get",
        "operations/{operationId}",
        "GetOperation",
        "Operation status",
        "202 while the operation is pending (poll again after Retry-After), then its final "
        "answer: 200 or 207 with the Outcome, or the deciding failure as problem+json.",
        ok={200: "Outcome", 207: "Outcome", 202: "Outcome"},
        errors=(400, 401, 403, 404, 409, 422, 500, 502, 503),
    ),
    Route(
        "get",
        "operations/{operationId}/status",
        "GetOperationStatus",
        "Operation status (status link)",
        "The `Location` of a 202, followed exactly as given with no key or header (Logic Apps "
        "polls it so): a link signed for this operation that expires with its record. Answers "
        "as GetOperation does; an unknown id, a wrong and an expired link all get the same 404.",
        auth="anonymous",
        ok={200: "Outcome", 207: "Outcome", 202: "Outcome"},
        errors=(404, 409, 422, 500, 502, 503),
        query=(
            {
                "name": "exp",
                "in": "query",
                "required": True,
                "description": "When the link expires (Unix seconds), as the 202 gave it.",
                "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
            },
            {
                "name": "sig",
                "in": "query",
                "required": True,
                "description": "The link's signature (HMAC-SHA256), as the 202 gave it.",
                "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            },
        ),
    ),
    Route(
        "get",
        "health",
        "Health",
        "Health",
        "Whether settings are valid and each upstream is configured. Names, never values.",
        auth="anonymous",
        ok={200: "Health"},
        errors=(503,),
    ),
    Route(
        "get",
        "openapi.json",
        "OpenApi",
        "This API as OpenAPI 3.1",
        "Generated from the models the app uses.",
        auth="anonymous",
        ok={200: "Document"},
    ),
    Route(
        "get",
        "swagger.json",
        "Swagger",
        "This API as Swagger 2.0",
        "For the Logic Apps HTTP + Swagger action and Power Platform custom connectors.",
        auth="anonymous",
        ok={200: "Document"},
    ),
)

_EXTRA_SCHEMAS: dict[str, dict[str, Any]] = {
    "ContraForceEvent": {
        "type": "object",
        "description": "A ContraForce webhook event: {type, timestamp, data{...}}.",
        "properties": {"type": {"type": "string"}, "data": {"type": "object"}},
    },
    "WebhookAcknowledgement": {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["acknowledged", "skipped"]},
            "eventId": {"type": "string"},
            "operationId": {"type": "string"},
            "reason": {"type": "string"},
            "test": {"type": "boolean"},
        },
    },
    "Health": {"type": "object", "properties": {"status": {"type": "string"}}},
    "Document": {"type": "object"},
}


def _schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [(model, "validation") for model in _MODELS[:6]]
        + [(model, "serialization") for model in _MODELS[6:]],
        ref_template=REF,
    )
    defs: dict[str, Any] = top.get("$defs", {})
    return _as_accepted({**defs, **copy.deepcopy(_EXTRA_SCHEMAS)})


# The identifier types of incident_link_api/base.py: printable, stripped of surrounding whitespace,
# then at least one character. After stripping, a blank value is empty and refused, so the
# document asks for one character that is neither a control nor whitespace.
_PRINTABLE = PRINTABLE_PATTERN
_NOT_BLANK = f"^[^{REFUSED_CHARACTERS}]*[^{REFUSED_CHARACTERS}\\s][^{REFUSED_CHARACTERS}]*$"
_ONE_OF_ID_OR_NUMBER = "Give `id` or `number` (one of them is required; both are allowed)."


def _not_blank(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_not_blank(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    found = {key: _not_blank(value) for key, value in schema.items()}
    if found.get("type") == "string" and found.get("pattern") == _PRINTABLE:
        found["pattern"] = _NOT_BLANK
    return found


def _as_accepted(schemas: dict[str, Any]) -> dict[str, Any]:
    """The request schemas narrowed to what the parsers in shared/intake.py accept."""
    schemas = _not_blank(schemas)
    for name in ("IncidentInput", "IncidentReference"):
        incident = schemas[name]
        incident["description"] = " ".join(
            part for part in (incident.get("description", ""), _ONE_OF_ID_OR_NUMBER) if part
        )
        incident["anyOf"] = [
            {"required": [key], "properties": {key: {"type": "string"}}} for key in ("id", "number")
        ]
    # The drop-in route takes the workspace from its path; an `incident.workspaceId` is accepted
    # only when it repeats it, so the document leaves it out.
    reference = schemas["IncidentReference"]
    del reference["properties"]["workspaceId"]
    reference["description"] += (
        " `workspaceId` comes from the path (a body value must equal it; leave it out)."
    )
    # A canonical unlink names its workspace at the top or inside `incident`: the app also takes
    # both when they are equal, which a schema cannot say, so the document asks for one of them.
    given: dict[str, Any] = {
        "required": ["workspaceId"],
        "properties": {"workspaceId": {"type": "string"}},
    }
    absent: dict[str, Any] = {"not": {"required": ["workspaceId"]}}
    schemas["UnlinkTicketInput"]["anyOf"] = [
        {**given, "properties": {**given["properties"], "incident": absent}},
        {**absent, "required": ["incident"], "properties": {"incident": given}},
    ]
    request = schemas["UnlinkServiceTicketRequest"]
    request["properties"]["incident"] = _ref("IncidentReference")
    request["required"] = ["incident"]
    return schemas


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": REF.format(model=name)}


def _path_parameters(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    formats = {"workspaceId": "uuid"}
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", **({"format": formats[name]} if name in formats else {})},
        }
        for name in names
    ]


# Optional knobs a Logic Apps designer shows only under "advanced parameters".
_ADVANCED = {"x-ms-visibility": "advanced"}
_ACTION_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "dryRun",
        "in": "query",
        "required": False,
        "description": "Validate; return the exact upstream request, secrets masked; send nothing.",
        "schema": {"type": "boolean"},
        **_ADVANCED,
    },
    {
        "name": "Prefer",
        "in": "header",
        "required": False,
        "description": "`respond-async`: queue the work and answer 202 + Location.",
        "schema": {"type": "string"},
        **_ADVANCED,
    },
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "A repeat with the same key returns the first answer without acting again; "
        "the same key with a different request is refused with 422 (IDEMPOTENCY_KEY_REUSED).",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[!-~]+$"},
        **_ADVANCED,
    },
]

_INFERRED_HEADERS = {
    INFERRED_HEADER: {
        "description": "`true` when a success in this answer is inferred, not confirmed: an "
        "earlier send lost its answer and the upstream now answers that there is nothing to do "
        "(the Outcome's items say which: `inferred`). Absent otherwise.",
        "schema": {"type": "string", "enum": ["true"]},
    },
}
_ASYNC_HEADERS = {
    "Location": {
        "description": "Poll this absolute URL (GET) exactly as given, with no key or other "
        "header, for the result: a status link signed for this operation (GetOperationStatus).",
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds to wait before polling.",
        "schema": {"type": "integer"},
    },
}


# The Functions host answers a missing or wrong function key itself, before the app runs, in
# Azure as locally: a 401 with an empty body (no problem details, no correlation headers).
_HOST_401 = (
    "No valid function key (x-functions-key header or ?code=): the Functions host answers an "
    "empty 401 (no body, no X-Correlation-Id) before this app runs. Check the key is this "
    "app's (a function or host key), sent as given, and not expired or rotated"
)


def _unauthorized(route: Route) -> dict[str, Any]:
    """The 401 of a keyed route: the host's, empty; the webhook's failed signature is ours."""
    if route.operation_id != "ContraForceWebhook":
        return {"description": _HOST_401}
    return {
        "description": f"{_HOST_401}. A delivery whose signature does not verify is answered by "
        "this app with problem details (RFC 9457)",
        "content": {PROBLEM_JSON: {"schema": _ref("Problem")}},
    }


def _operation(route: Route) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    descriptions = {200: "OK", 202: "Accepted: pending", 207: "Partially succeeded"}
    for status, name in route.ok.items():
        response: dict[str, Any] = {
            "description": descriptions[status],
            "content": {JSON: {"schema": _ref(name)}},
        }
        if status == 202:
            response["headers"] = _ASYNC_HEADERS
        elif name in {"Outcome", "ApiResponseOfboolean", "D3CommandResponse"}:
            response["headers"] = _INFERRED_HEADERS
        responses[str(status)] = response
    if route.action:
        responses["202"] = {
            "description": "Accepted (Prefer: respond-async)"
            if route.vendor_content
            else "Accepted (Prefer: respond-async, or a repeat still running)",
            "headers": _ASYNC_HEADERS,
            "content": {JSON: {"schema": _ref("Outcome")}},
        }
    for status in route.errors:
        responses[str(status)] = (
            _unauthorized(route)
            if status == 401
            else {
                "description": f"{_ERROR_DESCRIPTIONS[status]} (problem details, RFC 9457)",
                "content": {PROBLEM_JSON: {"schema": _ref("Problem")}},
            }
        )
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "description": route.description,
        "parameters": _path_parameters(route.path)
        + (_ACTION_PARAMETERS if route.action else [])
        + list(route.query),
        "responses": responses,
    }
    if route.body:
        body = (
            _ref(route.body[0])
            if len(route.body) == 1
            else {"oneOf": [_ref(b) for b in route.body]}
        )
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
    operation["security"] = (
        [] if route.auth == "anonymous" else [{"functionKey": []}, {"functionKeyQuery": []}]
    )
    return operation


@cache
def openapi() -> dict[str, Any]:
    """OpenAPI 3.1 for every registered route."""
    paths: dict[str, Any] = {}
    for route in ROUTES:
        paths.setdefault(f"/{route.path}", {})[route.method] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION},
        "servers": [{"url": "/api"}],
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
            },
        },
    }


# Public documents, read by designers in a browser: any origin may read them (no credentials).
CORS_HEADERS = {"Access-Control-Allow-Origin": "*"}


def openapi_answer() -> Rendered:
    return Rendered(200, openapi(), headers=dict(CORS_HEADERS))


def swagger_answer() -> Rendered:
    from shared.swagger import swagger  # noqa: PLC0415 - built on first request

    return Rendered(200, swagger(), headers=dict(CORS_HEADERS))
