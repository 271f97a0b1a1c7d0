"""Real-shaped `X-MS-CLIENT-PRINCIPAL` values, as App Service Authentication sends them.

The document is what Easy Auth forwards for an app-only Entra token (a Logic App's managed
identity): `auth_typ` "aad", the token's claims as `{typ, val}` pairs with `oid` and `tid`
mapped to their long claim-type URIs, `appid` (v1 tokens) or `azp` (v2 tokens) kept as is.
https://learn.microsoft.com/azure/app-service/configure-authentication-user-identities
"""

from __future__ import annotations

import base64
import json
from typing import Any

TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
LOGIC_APP_CLIENT_ID = "3f2a9c1e-5b7d-4e8a-9c61-2d4b8f0e7a13"
LOGIC_APP_OBJECT_ID = "a1c4e7f0-2b5d-4c8e-9f1a-3d6b9e2c5f80"
UNKNOWN_CLIENT_ID = "0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a"
UNKNOWN_OBJECT_ID = "f6e5d4c3-b2a1-4098-8e7f-6a5b4c3d2e1f"
API_AUDIENCE = "api://incident-link-actions"


def principal_document(
    client_id: str, object_id: str, *, version: str = "1.0", auth_typ: str = "aad"
) -> dict[str, Any]:
    client_claim = "appid" if version == "1.0" else "azp"
    claims = [
        {"typ": "aud", "val": API_AUDIENCE},
        {"typ": "iss", "val": f"https://sts.windows.net/{TENANT_ID}/"},
        {"typ": "iat", "val": "1764523800"},
        {"typ": "nbf", "val": "1764523800"},
        {"typ": "exp", "val": "1764610500"},
        {"typ": "aio", "val": "k2BgYJi0cDR3rL+0fz1Wq3XW8Ka9AgA="},
        {"typ": client_claim, "val": client_id},
        {"typ": f"{client_claim}acr", "val": "2"},
        {"typ": "http://schemas.microsoft.com/identity/claims/identityprovider", "val": ""},
        {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": object_id},
        {"typ": "rh", "val": "1.AXEAv4j5cvGGr0GRqy180BHbR0ZJwIWqMzBOqTdN5Z0BxsVxAAA."},
        {
            "typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",
            "val": object_id,
        },
        {"typ": "http://schemas.microsoft.com/identity/claims/tenantid", "val": TENANT_ID},
        {"typ": "uti", "val": "Zr3bQmVn1Ue0lE4aT0kXAA"},
        {"typ": "ver", "val": version},
    ]
    return {
        "auth_typ": auth_typ,
        "claims": claims,
        "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
    }


def encode(document: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


def header_for(client_id: str, object_id: str, *, version: str = "1.0") -> str:
    return encode(principal_document(client_id, object_id, version=version))
