"""A stand-in for App Service Authentication (Easy Auth) in front of the local host.

In Azure, Easy Auth validates the caller's Entra token, removes any `X-MS-CLIENT-PRINCIPAL*`
headers the client sent, forwards the caller as `X-MS-CLIENT-PRINCIPAL` (base64 JSON claims)
and sets `WEBSITE_AUTH_ENABLED=True` in the app's environment. Locally there is no token to
validate: with `LOCAL_EASY_AUTH_PRINCIPAL` set to a principal document (the JSON Easy Auth
encodes: `{"auth_typ": "aad", "claims": [{"typ": "appid", "val": "..."}, ...]}`), every request
arrives as that caller, and a client's own `X-MS-CLIENT-PRINCIPAL*` headers are dropped.

Without the variable nothing changes: no enablement flag, client headers pass through (and the
app ignores them, as it must when authentication is off).
"""

from __future__ import annotations

import base64
import json
from collections.abc import MutableMapping
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

PRINCIPAL_SETTING = "LOCAL_EASY_AUTH_PRINCIPAL"
_PREFIX = b"x-ms-client-principal"


def principal_headers(document: str) -> list[tuple[bytes, bytes]]:
    """The headers Easy Auth sends for `document` (a principal as JSON); raises if it is
    not one."""
    try:
        principal: Any = json.loads(document)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{PRINCIPAL_SETTING} is not JSON: {exc.msg}") from exc
    if not isinstance(principal, dict) or not isinstance(principal.get("claims"), list):
        raise TypeError(f"{PRINCIPAL_SETTING} must be a JSON object with a claims list")
    claims = {c.get("typ"): c.get("val") for c in principal["claims"] if isinstance(c, dict)}
    object_id = claims.get("http://schemas.microsoft.com/identity/claims/objectidentifier")
    encoded = base64.b64encode(json.dumps(principal, separators=(",", ":")).encode())
    headers = [
        (_PREFIX, encoded),
        (_PREFIX + b"-idp", str(principal.get("auth_typ", "aad")).encode()),
    ]
    if isinstance(object_id, str):
        headers.append((_PREFIX + b"-id", object_id.encode()))
    return headers


class EasyAuthStandIn:
    """ASGI middleware: every HTTP request arrives as the configured principal."""

    def __init__(self, app: ASGIApp, document: str) -> None:
        self._app = app
        self._headers = principal_headers(document)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            kept = [
                (k, v) for k, v in scope.get("headers", []) if not k.lower().startswith(_PREFIX)
            ]
            scope = {**scope, "headers": [*kept, *self._headers]}
        await self._app(scope, receive, send)


def wrap(app: ASGIApp, env: MutableMapping[str, str]) -> tuple[ASGIApp, str | None]:
    """`app` behind the stand-in when `LOCAL_EASY_AUTH_PRINCIPAL` is set, with the platform's
    `WEBSITE_AUTH_ENABLED=True` set in `env`; a line for the start-up summary, or None."""
    document = env.get(PRINCIPAL_SETTING)
    if not document:
        return app, None
    wrapped = EasyAuthStandIn(app, document)
    env["WEBSITE_AUTH_ENABLED"] = "True"
    return wrapped, (
        "App Service Authentication stand-in: every request arrives as the principal in "
        f"{PRINCIPAL_SETTING} (WEBSITE_AUTH_ENABLED=True)"
    )
