"""Upstream credentials: D3's per-request JWT and the cached Entra token."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import httpx
import jwt
import pytest
from azure.core.credentials import AccessToken
from pydantic import SecretStr

from shared.clients.auth import (
    BasicCredential,
    BearerCredential,
    D3JwtCredential,
    EntraTokenCredential,
)

JWT_SECRET = "jwt-secret-for-tests-only-32-bytes!"


def _authorized(auth: httpx.Auth, request: httpx.Request) -> httpx.Request:
    flow = auth.sync_auth_flow(request)
    return next(flow)


def test_d3_jwt_is_hs256_with_the_body_username_and_site() -> None:
    credential = D3JwtCredential(SecretStr(JWT_SECRET), lifetime_seconds=60, clock=lambda: 1_000)
    body = {"Username": "Admin", "Site": "Security Operations", "CommandParams": {}}
    request = httpx.Request("POST", "https://d3.example/api/Command/X", content=json.dumps(body))
    token = _authorized(credential, request).headers["d3jwt"]
    claims = jwt.decode(
        token, JWT_SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False}
    )
    assert claims == {
        "Username": "Admin",
        "Site": "Security Operations",
        "iat": 1_000,
        "exp": 1_060,
    }


def test_d3_jwt_masked_headers_hide_the_token() -> None:
    assert D3JwtCredential(SecretStr(JWT_SECRET)).masked_headers() == {"d3jwt": "***"}


@dataclass
class FakeTokenSource:
    """An AsyncTokenCredential that counts how often it was asked."""

    expires_in: int
    now: float = 0.0
    calls: int = 0
    scopes: list[str] = field(default_factory=list)

    async def get_token(self, *scopes: str, **_: object) -> AccessToken:
        self.calls += 1
        self.scopes.extend(scopes)
        return AccessToken(f"token-{self.calls}", int(self.now) + self.expires_in)

    async def close(self) -> None:
        return None


async def _bearer(auth: EntraTokenCredential) -> str:
    request = httpx.Request("POST", "https://cf.example/")
    flow = auth.async_auth_flow(request)
    sent = await flow.__anext__()
    await flow.aclose()
    return sent.headers["Authorization"]


async def test_entra_token_is_cached_until_shortly_before_expiry() -> None:
    source = FakeTokenSource(expires_in=3600)
    auth = EntraTokenCredential(source, "api://contraforce/.default", clock=lambda: source.now)  # type: ignore[arg-type]
    assert await _bearer(auth) == "Bearer token-1"
    source.now = 3600 - EntraTokenCredential.REFRESH_MARGIN_SECONDS - 1
    assert await _bearer(auth) == "Bearer token-1"
    source.now = 3600 - EntraTokenCredential.REFRESH_MARGIN_SECONDS
    assert await _bearer(auth) == "Bearer token-2"
    assert source.scopes == ["api://contraforce/.default"] * 2


@pytest.mark.parametrize("credential", ["basic", "bearer"])
def test_static_credentials_mask_their_header(credential: str) -> None:
    auth = (
        BasicCredential("id", SecretStr("secret"))
        if credential == "basic"
        else BearerCredential(SecretStr("key"))
    )
    assert auth.masked_headers()["Authorization"].endswith("***")
