"""ContraForce API v2 simulator: `POST /api/v2/workspaces/{workspaceId}/tickets/unlink`.

Checks run in this order: fault plan, credentials (401), `workspaceId` is a UUID (400), workspace
exists (404), role on it (403), body (400), incident exists (404). Then the ticket is unlinked
(`data: true`) or there was none (`data: false`, our assumption: the vendor does not say).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from local.sandbox.admin import Simulator, admin_routes
from local.sandbox.contraforce_problems import (
    VALIDATION_TITLE,
    Now,
    ProblemError,
    RequestIdMiddleware,
    data_response,
    iso_timestamp,
    problem_response,
    request_id_of,
    utc_now,
)
from local.sandbox.contraforce_state import (
    ContraForceState,
    IncidentSource,
    UnlinkEffect,
    demo_state,
    render_summary,
)
from local.sandbox.faults import Fault, FaultKind, FaultPlan, fault_response

__all__ = [
    "UNLINK_PATH",
    "ContraForceSimulator",
    "create_app",
    "demo_state",
    "render_summary",
    "simulator_of",
]

logger = logging.getLogger(__name__)

UNLINK_PATH = "/api/v2/workspaces/{workspace_id}/tickets/unlink"

Sleep = Callable[[float], Awaitable[None]]

_FAULT_CODES = {
    429: ("TOO_MANY_REQUESTS", "Too many requests; retry after the delay in Retry-After."),
    500: ("INTERNAL_SERVER_ERROR", "An unexpected error occurred."),
    503: ("SERVICE_UNAVAILABLE", "The service is temporarily unavailable."),
}
_SOURCES = ", ".join(s.value for s in IncidentSource)


@dataclass(frozen=True)
class Principal:
    """Who called: a service account's client id, or a bearer token, and its workspaces."""

    name: str
    workspaces: frozenset[UUID]


@dataclass(frozen=True)
class IncidentQuery:
    """The validated `incident` of an unlink request."""

    incident_id: str | None
    number: str | None
    source: IncidentSource | None


def _authenticate(state: ContraForceState, authorization: str | None) -> Principal | None:
    """`Basic base64(id:secret)` of a service account, or `Bearer <token>` if tokens are set."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, sep, secret = decoded.partition(":")
        account = state.accounts.get(client_id)
        if not sep or account is None:
            return None
        if not hmac.compare_digest(account.client_secret.encode(), secret.encode()):
            return None
        return Principal(account.client_id, account.workspaces)
    if scheme.lower() == "bearer" and credentials:
        for token, workspaces in state.bearer_tokens.items():
            if hmac.compare_digest(token.encode(), credentials.encode()):
                return Principal("bearer-token", workspaces)
    return None


def _optional_str(incident: dict[str, Any], name: str, errors: dict[str, list[str]]) -> str | None:
    value = incident.get(name)
    if value is None or isinstance(value, str):
        return value or None
    errors[f"incident.{name}"] = [f"The incident.{name} field must be a string or null."]
    return None


def _validation_error(errors: dict[str, list[str]]) -> ProblemError:
    fields = ", ".join(key or "(body)" for key in errors)
    detail = f"Validation failed for: {fields}. See errors for details."
    return ProblemError(400, "VALIDATION_ERROR", detail, title=VALIDATION_TITLE, errors=errors)


def _parse_unlink_body(raw: bytes, workspace_id: UUID) -> IncidentQuery:
    """Parse the `UnlinkServiceTicketRequest`; raise ProblemError 400 saying what is wrong."""
    try:
        body: Any = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        detail = f"The request body is not valid JSON: {exc}"
        raise ProblemError(400, "BAD_REQUEST", detail) from exc
    errors: dict[str, list[str]] = {}
    if not isinstance(body, dict):
        errors[""] = ["The request body must be a JSON object."]
        raise _validation_error(errors)
    incident = body.get("incident")
    if not isinstance(incident, dict):
        message = "required" if incident is None else "must be a JSON object"
        errors["incident"] = [f"The incident field is {message}."]
        raise _validation_error(errors)
    incident_id = _optional_str(incident, "id", errors)
    number = _optional_str(incident, "number", errors)
    body_workspace = _optional_str(incident, "workspaceId", errors)
    if body_workspace is not None:
        try:
            matches = UUID(body_workspace) == workspace_id
        except ValueError:
            errors["incident.workspaceId"] = [f"'{body_workspace}' is not a valid UUID."]
        else:
            if not matches:
                errors["incident.workspaceId"] = ["Must match the workspaceId in the path."]
    source: IncidentSource | None = None
    raw_source = incident.get("source")
    if raw_source is not None:
        try:
            source = IncidentSource(raw_source)
        except ValueError:
            shown = json.dumps(raw_source)
            errors["incident.source"] = [f"{shown} is not a valid source; expected {_SOURCES}."]
    typed = "incident.id" not in errors and "incident.number" not in errors
    if typed and not incident_id and not number:
        errors["incident"] = ["Either incident.id or incident.number is required."]
    if errors:
        raise _validation_error(errors)
    return IncidentQuery(incident_id, number, source)


class ContraForceSimulator(Simulator[ContraForceState]):
    """The sandbox: its state, fault gate and Starlette app (`.app`)."""

    def __init__(
        self,
        state: ContraForceState | None = None,
        faults: FaultPlan | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
        now: Now = utc_now,
    ) -> None:
        super().__init__(state if state is not None else demo_state(), faults)
        self._sleep = sleep
        self._now = now
        self.app = Starlette(
            routes=[
                Route(UNLINK_PATH, self._unlink, methods=["POST"]),
                *admin_routes(self),
            ],
            middleware=[Middleware(RequestIdMiddleware)],
            exception_handlers={HTTPException: self._http_error, Exception: self._crash},
        )
        self.app.state.simulator = self

    def summary(self, base_url: str | None = None) -> str:
        """A short human summary of the data."""
        return render_summary(self.state, base_url)

    def _render_fault(self, request: Request) -> Callable[[int, Fault], Response]:
        def render(status: int, _fault: Fault) -> Response:
            code, detail = _FAULT_CODES[status]
            return problem_response(request, ProblemError(status, code, detail), self._now)

        return render

    async def _unlink(self, request: Request) -> Response:
        fault = self._gate.admit()
        if fault is not None and fault.kind not in {FaultKind.SLOW, FaultKind.APPLIED_THEN_RESET}:
            return fault_response(fault, self._render_fault(request))
        if fault is not None and fault.kind is FaultKind.SLOW:
            await self._sleep(fault.delay)
        try:
            response = self._handle_unlink(request, await request.body())
        except ProblemError as problem:
            logger.info("contraforce sandbox answered %d %s", problem.status, problem.code)
            response = problem_response(request, problem, self._now)
        if fault is not None and fault.kind is FaultKind.APPLIED_THEN_RESET:
            return fault_response(fault, self._render_fault(request))  # the answer is lost
        return response

    def _handle_unlink(self, request: Request, raw: bytes) -> Response:
        principal = _authenticate(self.state, request.headers.get("authorization"))
        if principal is None:
            raise ProblemError(
                401,
                "UNAUTHORIZED",
                "Missing or invalid credentials.",
                headers={"WWW-Authenticate": 'Basic realm="ContraForce API"'},
            )
        raw_workspace = request.path_params["workspace_id"]
        try:
            workspace_id = UUID(raw_workspace)
        except ValueError as exc:
            message = f"workspaceId must be a UUID, got '{raw_workspace}'."
            raise _validation_error({"workspaceId": [message]}) from exc
        workspace = self.state.workspaces.get(workspace_id)
        if workspace is None:
            raise ProblemError(
                404, "NOT_FOUND", f"Workspace {workspace_id} was not found.", target="workspaceId"
            )
        if workspace_id not in principal.workspaces:
            raise ProblemError(
                403,
                "INSUFFICIENT_WORKSPACE_ROLE",
                f"The caller has no role on workspace {workspace_id}.",
                target="workspaceId",
            )
        query = _parse_unlink_body(raw, workspace_id)
        request_id = request_id_of(request)
        with self.state.lock:
            incident = workspace.find(
                incident_id=query.incident_id, number=query.number, source=query.source
            )
            if incident is None:
                raise ProblemError(
                    404,
                    "NOT_FOUND",
                    f"The incident was not found in workspace {workspace_id}.",
                    target="incident",
                )
            ticket, incident.ticket = incident.ticket, None
            if ticket is not None:
                self.state.effects.append(
                    UnlinkEffect(
                        workspace_id=workspace_id,
                        incident_id=incident.id,
                        incident_number=incident.number,
                        ticket=ticket,
                        principal=principal.name,
                        request_id=request_id,
                        timestamp=iso_timestamp(self._now()),
                    )
                )
        logger.info(
            "contraforce sandbox unlink: incident %s, ticket unlinked: %s",
            incident.number,
            ticket is not None,
        )
        return data_response(request, ticket is not None, self._now)

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(status, "BAD_REQUEST")
        detail = exc.detail if isinstance(exc, HTTPException) else "Error."
        return problem_response(request, ProblemError(status, code, detail), self._now)

    async def _crash(self, request: Request, exc: Exception) -> Response:
        del exc
        problem = ProblemError(500, "INTERNAL_SERVER_ERROR", "An unexpected error occurred.")
        return problem_response(request, problem, self._now)


def create_app(state: ContraForceState | None = None, faults: FaultPlan | None = None) -> Starlette:
    """The ContraForce sandbox app; `simulator_of(app)` gives its state and fault gate."""
    return ContraForceSimulator(state, faults).app


def simulator_of(app: Starlette) -> ContraForceSimulator:
    """The simulator behind an app made by `create_app`."""
    simulator = app.state.simulator
    if not isinstance(simulator, ContraForceSimulator):
        raise TypeError("not a ContraForce sandbox app")
    return simulator
