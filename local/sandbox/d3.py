"""D3 SOAR command API simulator: `POST /{namespace}/api/Command/RemoveLinkedIncidents`.

Checks run in this order: fault plan, credentials (API key header or `d3jwt`, 401), body (400),
JWT claims match the body (401), site exists (400), user belongs to the site (401), source
incident exists (200 with `error` set and Status Failed). Then each requested link is removed.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from local.sandbox.admin import Simulator, admin_routes
from local.sandbox.d3_state import D3State, RemoveLinkEffect, demo_state, render_summary
from local.sandbox.faults import Fault, FaultKind, FaultPlan, fault_response

__all__ = [
    "COMMAND_PATH",
    "DEFAULT_API_KEY",
    "DEFAULT_API_KEY_HEADER",
    "DEFAULT_JWT_SECRET",
    "DEFAULT_NAMESPACE",
    "D3Auth",
    "D3Simulator",
    "create_app",
    "demo_state",
    "render_summary",
    "simulator_of",
]

logger = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "MainApp/VSOC"
COMMAND_PATH = "api/Command/RemoveLinkedIncidents"
DEFAULT_API_KEY_HEADER = "X-D3-API-Key"
DEFAULT_API_KEY = "sandbox-d3-key"
# HS256 keys shorter than 32 bytes make PyJWT warn (InsecureKeyLengthWarning).
DEFAULT_JWT_SECRET = "sandbox-d3-jwt-secret-for-local-use-only"  # noqa: S105 - sandbox default
JWT_HEADER = "d3jwt"
_MIN_HS256_KEY_BYTES = 32

LINKED_FIELD = "Linked Incident Numbers to be Removed"
SOURCE_FIELD = "Source Incident Number"
NOT_LINKED = "The source incident is not linked to this incident."
INVALID_KEY = "Invalid authentication key."
ERROR_MESSAGES: Mapping[int, str] = {
    429: "The request exceeds rate limits or is otherwise blocked by rate limiting policies.",
    500: "Unexpected Error.",
    503: "The service is temporarily unavailable.",
}

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


@dataclass(frozen=True)
class D3Auth:
    """Accepted credentials: API keys in `api_key_header`, or a `d3jwt` HS256 token.

    `clock` (Unix seconds) checks `exp`/`nbf`; `jwt_secret=None` turns JWT auth off.
    """

    api_key_header: str = DEFAULT_API_KEY_HEADER
    api_keys: frozenset[str] = frozenset({DEFAULT_API_KEY})
    jwt_secret: str | None = DEFAULT_JWT_SECRET
    clock: Clock = field(default=time.time, compare=False)

    def __post_init__(self) -> None:
        if self.jwt_secret is not None and len(self.jwt_secret.encode()) < _MIN_HS256_KEY_BYTES:
            raise ValueError(f"jwt_secret must be at least {_MIN_HS256_KEY_BYTES} bytes for HS256")


class D3Error(Exception):
    """An error answered as D3's `{"Error": "..."}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str) -> JSONResponse:
    """D3's error body."""
    return JSONResponse({"Error": message}, status_code=status)


@dataclass(frozen=True)
class RemoveRequest:
    """A parsed RemoveLinkedIncidents body."""

    username: str
    site: str
    linked: list[str]
    source: str


def _required_str(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise D3Error(400, f"'{name}' is required and must be a non-empty string.")
    return value


def parse_body(raw: bytes) -> RemoveRequest:
    """Parse and check the request body; raise D3Error 400 saying what is wrong."""
    try:
        body: Any = json.loads(raw)
    except ValueError as exc:
        raise D3Error(400, f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise D3Error(400, "The request body must be a JSON object.")
    username = _required_str(body, "Username")
    site = _required_str(body, "Site")
    params = body.get("CommandParams")
    if not isinstance(params, dict):
        raise D3Error(400, "'CommandParams' is required and must be a JSON object.")
    linked = params.get(LINKED_FIELD)
    if (
        not isinstance(linked, list)
        or not linked
        or not all(isinstance(n, str) and n.strip() for n in linked)
    ):
        raise D3Error(400, f"'{LINKED_FIELD}' is required and must be a non-empty string array.")
    source = _required_str(params, SOURCE_FIELD)
    return RemoveRequest(username, site, list(dict.fromkeys(linked)), source)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _jwt_claims(auth: D3Auth, token: str) -> dict[str, Any] | None:
    """The verified claims of a `d3jwt` token, or None if it is not acceptable."""
    if auth.jwt_secret is None:
        return None
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            auth.jwt_secret,
            algorithms=["HS256"],
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    except jwt.PyJWTError:
        return None
    now = auth.clock()
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if exp is not None and (not isinstance(exp, int | float) or now >= exp):
        return None
    if nbf is not None and (not isinstance(nbf, int | float) or now < nbf):
        return None
    return claims


def authenticate(auth: D3Auth, headers: Headers) -> dict[str, Any] | None:
    """Check the credentials: None for a valid API key, the claims for a valid JWT.

    Raises D3Error 401 when neither is present and valid.
    """
    key = headers.get(auth.api_key_header)
    if key is not None and any(
        hmac.compare_digest(key.encode(), k.encode()) for k in auth.api_keys
    ):
        return None
    token = headers.get(JWT_HEADER)
    if token is not None:
        claims = _jwt_claims(auth, token)
        if claims is not None:
            return claims
    raise D3Error(401, INVALID_KEY)


def _data_key(source: str) -> str:
    # The seed's key ends with a space; kept verbatim.
    return f"Current linked Incident(s) of Incident {source} "


def _timestamp() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class D3Simulator(Simulator[D3State]):
    """The sandbox: its state, fault gate and Starlette app (`.app`).

    `namespace=None` accepts any prefix before `/api/Command/...`; paths match case-insensitively.
    """

    def __init__(
        self,
        state: D3State | None = None,
        faults: FaultPlan | None = None,
        *,
        auth: D3Auth | None = None,
        namespace: str | None = DEFAULT_NAMESPACE,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(state if state is not None else demo_state(), faults)
        self.auth = auth if auth is not None else D3Auth()
        self.namespace = namespace.strip("/") if namespace is not None else None
        self._sleep = sleep
        self.app = Starlette(
            routes=[*admin_routes(self), Route("/{path:path}", self._command, methods=["POST"])],
            exception_handlers={HTTPException: self._http_error, Exception: self._http_error},
        )
        self.app.state.simulator = self

    @property
    def api_path(self) -> str:
        """The path of the base URL the app's client uses, e.g. `/MainApp/VSOC/api`."""
        return f"/{self.namespace or DEFAULT_NAMESPACE}/api"

    def summary(self, base_url: str | None = None) -> str:
        """A short human summary of the data and the sandbox credentials."""
        api = f"{base_url}{self.api_path}" if base_url else None
        lines = [render_summary(self.state, api)]
        keys = ", ".join(sorted(self.auth.api_keys)) or "none"
        lines.append(f"  API key header {self.auth.api_key_header}: {keys} (sandbox only)")
        if self.auth.jwt_secret is not None:
            lines.append(f"  or header {JWT_HEADER}: HS256 JWT signed with {self.auth.jwt_secret}")
        return "\n".join(lines)

    def _is_command_path(self, path: str) -> bool:
        path = path.strip("/").lower()
        if self.namespace is None:
            return path.endswith(f"/{COMMAND_PATH.lower()}")
        return path == f"{self.namespace}/{COMMAND_PATH}".lower()

    async def _command(self, request: Request) -> Response:
        if not self._is_command_path(request.path_params["path"]):
            return error_response(404, "The requested resource was not found.")
        fault = self._gate.admit()
        if fault is not None and fault.kind not in {FaultKind.SLOW, FaultKind.APPLIED_THEN_RESET}:
            return fault_response(fault, _render_fault)
        if fault is not None and fault.kind is FaultKind.SLOW:
            await self._sleep(fault.delay)
        try:
            response = self._remove_linked(request.headers, await request.body())
        except D3Error as exc:
            logger.info("d3 sandbox answered %d", exc.status)
            response = error_response(exc.status, exc.message)
        if fault is not None and fault.kind is FaultKind.APPLIED_THEN_RESET:
            return fault_response(fault, _render_fault)  # the answer is lost
        return response

    def _remove_linked(self, headers: Headers, raw: bytes) -> Response:
        claims = authenticate(self.auth, headers)
        command = parse_body(raw)
        if claims is not None and (
            claims.get("Username") != command.username
            or ("Site" in claims and claims["Site"] != command.site)
        ):
            raise D3Error(401, INVALID_KEY)
        with self.state.lock:
            site = self.state.sites.get(command.site)
            if site is None:
                raise D3Error(400, f"Site '{command.site}' does not exist.")
            if command.username not in site.users:
                raise D3Error(401, INVALID_KEY)
            if command.source not in site.incidents:
                return JSONResponse(
                    {
                        "error": f"Source incident {command.source} does not exist.",
                        "returnData": {"Status": "Failed", "Data": {}, "ErrorData": []},
                    }
                )
            removed: list[str] = []
            errors: list[dict[str, str]] = []
            for number in command.linked:
                if site.unlink(command.source, number):
                    removed.append(number)
                    self.state.effects.append(
                        RemoveLinkEffect(
                            site.name, command.source, number, command.username, _timestamp()
                        )
                    )
                else:
                    errors.append({"Incident Number": number, "Error message": NOT_LINKED})
            remaining = list(site.incidents[command.source].links)
        status = "Successful" if not errors else "Partially Successful" if removed else "Failed"
        logger.info("d3 sandbox RemoveLinkedIncidents: %s, %d removed", status, len(removed))
        return JSONResponse(
            {
                "error": "",
                "returnData": {
                    "Status": status,
                    "Data": {_data_key(command.source): remaining},
                    "ErrorData": errors,
                },
            }
        )

    async def _http_error(self, _request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else ERROR_MESSAGES[500]
        return error_response(status, detail)


def _render_fault(status: int, _fault: Fault) -> Response:
    return error_response(status, ERROR_MESSAGES[status])


def create_app(
    state: D3State | None = None,
    faults: FaultPlan | None = None,
    *,
    auth: D3Auth | None = None,
    namespace: str | None = DEFAULT_NAMESPACE,
) -> Starlette:
    """The D3 sandbox app; `simulator_of(app)` gives its state and fault gate."""
    return D3Simulator(state, faults, auth=auth, namespace=namespace).app


def simulator_of(app: Starlette) -> D3Simulator:
    """The simulator behind an app made by `create_app`."""
    simulator = app.state.simulator
    if not isinstance(simulator, D3Simulator):
        raise TypeError("not a D3 sandbox app")
    return simulator
