"""Entra callers: the principal App Service Authentication (Easy Auth) vouches for.

When App Service Authentication is on, the platform validates the caller's Entra token before
the request reaches the app and forwards who the caller is in `X-MS-CLIENT-PRINCIPAL`: base64
of a JSON document `{auth_typ, claims: [{typ, val}, ...], name_typ, role_typ}`. The platform
strips that header from incoming requests, so it can be trusted, but only then: without App
Service Authentication any client can send it. The platform tells the app by setting
`WEBSITE_AUTH_ENABLED` (`True`) in the environment; we read the header only when it says so.

    https://learn.microsoft.com/azure/app-service/configure-authentication-user-identities
    https://learn.microsoft.com/azure/app-service/reference-app-settings (WEBSITE_AUTH_ENABLED)

`authorize(headers)` returns:
- `None`: no principal to check (authentication is off, or the request carries no token:
  a function-key caller, a ContraForce webhook);
- a `Principal` whose client (`appid` / `azp`) or object id (`oid`) is in `ALLOWED_PRINCIPALS`;
- or raises `Forbidden` (403, problem+json) for any other principal, for one another identity
  provider vouches for (`auth_typ` is not Entra's `aad`: App Service Authentication also
  signs in GitHub, Google, Apple... callers), and for a header it cannot read.

Reading the header is bounded before any JSON is parsed: at most 16 KB of base64, nested at
most `_MAX_DEPTH` levels (the document is three deep; 5,000 levels would exhaust Python's
recursion limit), at most `_MAX_CLAIMS` claims; the ids it keeps (`appid`/`azp`, `oid`) must be
printable ASCII (Entra's are GUIDs), since the caller's name goes into records and log lines.
Whatever goes wrong is a 403, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shared.config import get_settings
from shared.errors import Forbidden
from shared.logsafe import clip

logger = logging.getLogger(__name__)

PRINCIPAL_HEADER = "x-ms-client-principal"
AUTH_ENABLED_SETTING = "WEBSITE_AUTH_ENABLED"
OBJECT_ID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
# v1 tokens name the calling client `appid`, v2 tokens `azp`; Easy Auth passes both through
# as they are, and maps `oid` to the long URI above (short `oid` accepted as well).
_CLIENT_CLAIMS = ("appid", "azp")
_OBJECT_CLAIMS = (OBJECT_ID_CLAIM, "oid")
_MAX_HEADER_CHARS = 16_384
_MAX_DEPTH = 8  # {claims: [{typ, val}]} is 3 deep
_MAX_CLAIMS = 512
_MAX_ID_CHARS = 128
ENTRA_ID_PROVIDER = "aad"  # `auth_typ` (and X-MS-CLIENT-PRINCIPAL-IDP) for Microsoft Entra ID


@dataclass(frozen=True)
class Principal:
    """An Entra caller as Easy Auth describes it."""

    identity_provider: str
    client_id: str | None
    object_id: str | None

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(i.lower() for i in (self.client_id, self.object_id) if i)

    @property
    def caller(self) -> str:
        """How the operation record names this caller: `aad:client=<appid>;object=<oid>`."""
        client, obj = self.client_id or "-", self.object_id or "-"
        return f"{self.identity_provider}:client={client};object={obj}"


def authentication_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether App Service Authentication is on (the platform sets `WEBSITE_AUTH_ENABLED`)."""
    return environ.get(AUTH_ENABLED_SETTING, "").strip().lower() == "true"


def _nesting(text: str, *, limit: int) -> None:
    """Raise when JSON `text` nests arrays or objects deeper than `limit` (strings skipped)."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                raise ValueError(f"nested deeper than {limit} levels")
        elif char in "]}":
            depth -= 1


def _claims(value: str) -> tuple[str, dict[str, str]]:
    """The identity provider and the first value of each claim type; raises on anything else."""
    if len(value) > _MAX_HEADER_CHARS:
        raise ValueError("too long")
    text = value.strip()
    decoded = base64.b64decode(text + "=" * (-len(text) % 4), validate=True).decode()
    _nesting(decoded, limit=_MAX_DEPTH)
    document = json.loads(decoded)
    claims = document["claims"]
    if not isinstance(claims, list):
        raise TypeError("claims is not a list")
    if len(claims) > _MAX_CLAIMS:
        raise ValueError(f"more than {_MAX_CLAIMS} claims")
    values: dict[str, str] = {}
    for claim in claims:
        typ, val = claim["typ"], claim["val"]
        if isinstance(typ, str) and isinstance(val, str):
            values.setdefault(typ, val)
    provider = document.get("auth_typ")
    return (provider if isinstance(provider, str) and provider else "unknown"), values


def read_principal(value: str) -> Principal:
    """Decode an `X-MS-CLIENT-PRINCIPAL` value; `Forbidden` when it is not one."""
    try:
        provider, values = _claims(value)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError, binascii.Error) as exc:
        raise Forbidden(
            "the caller's identity (X-MS-CLIENT-PRINCIPAL) could not be read",
            errors={"X-MS-CLIENT-PRINCIPAL": ["is not a base64 JSON principal with claims"]},
            code="PRINCIPAL_UNREADABLE",
        ) from exc
    if provider != ENTRA_ID_PROVIDER:
        raise Forbidden(
            f"the caller signed in with {clip(provider, 32)!r}, not Microsoft Entra ID "
            f"({ENTRA_ID_PROVIDER!r}): only Entra callers may use this app",
            errors={"X-MS-CLIENT-PRINCIPAL": [f"auth_typ must be {ENTRA_ID_PROVIDER!r}"]},
            code="PRINCIPAL_NOT_ENTRA",
        )
    principal = Principal(
        identity_provider=provider,
        client_id=next((values[c] for c in _CLIENT_CLAIMS if values.get(c)), None),
        object_id=next((values[c] for c in _OBJECT_CLAIMS if values.get(c)), None),
    )
    if any(not _plain_id(i) for i in (principal.client_id, principal.object_id) if i):
        # Entra's ids are GUIDs; the caller's name goes into records and log lines as is.
        raise Forbidden(
            "the caller's identity (X-MS-CLIENT-PRINCIPAL) names an id that is not printable "
            f"ASCII of at most {_MAX_ID_CHARS} characters",
            errors={"X-MS-CLIENT-PRINCIPAL": ["appid, azp and oid must be plain ids"]},
            code="PRINCIPAL_UNREADABLE",
        )
    return principal


def _plain_id(value: str) -> bool:
    return len(value) <= _MAX_ID_CHARS and value.isascii() and value.isprintable()


def authorize(
    headers: Mapping[str, str],
    *,
    environ: Mapping[str, str] = os.environ,
    allowed: Callable[[], frozenset[str]] | None = None,
) -> Principal | None:
    """The request's Entra principal if it may act; `None` when there is none to check."""
    value = headers.get(PRINCIPAL_HEADER)
    if value is None:
        return None
    if not authentication_enabled(environ):
        logger.warning(
            "ignored an X-MS-CLIENT-PRINCIPAL header: App Service Authentication is off, "
            "so the header did not come from the platform"
        )
        return None
    principal = read_principal(value)
    permitted = allowed() if allowed is not None else get_settings().allowed_principal_ids()
    if not principal.ids & permitted:
        logger.info("refused Entra caller %s: not in ALLOWED_PRINCIPALS", clip(principal.caller))
        raise Forbidden(
            f"the Entra caller (client {clip(principal.client_id or 'unknown', 64)}, object "
            f"{clip(principal.object_id or 'unknown', 64)}) is not in ALLOWED_PRINCIPALS",
            errors={"principal": ["is not allowed to call this app (ALLOWED_PRINCIPALS)"]},
        )
    return principal
