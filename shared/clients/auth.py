"""Upstream credentials as `httpx.Auth` flows. Each can list its headers with values masked.

ContraForce: HTTP Basic with a service account's client id + secret (the vendor's scheme),
or a bearer API key, or an Entra token for a scope (azure-identity, cached, refreshed early).
D3: an API key in the header D3 shows beside it, or a `d3jwt` HS256 token minted per request
with `Username` (and `Site`) taken from the request body, as D3 requires.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import TYPE_CHECKING

import httpx
from pydantic import SecretStr

from shared.clients.http import MASK

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken
    from azure.core.credentials_async import AsyncTokenCredential


class BasicCredential(httpx.BasicAuth):
    def __init__(self, client_id: str, client_secret: SecretStr) -> None:
        super().__init__(client_id, client_secret.get_secret_value())

    def masked_headers(self) -> dict[str, str]:
        return {"Authorization": f"Basic {MASK}"}


class BearerCredential(httpx.Auth):
    def __init__(self, token: SecretStr) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        yield request

    def masked_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {MASK}"}


class EntraTokenCredential(httpx.Auth):
    """A bearer token from an azure-identity credential, cached until shortly before expiry."""

    REFRESH_MARGIN_SECONDS = 300

    def __init__(
        self,
        credential: AsyncTokenCredential,
        scope: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credential = credential
        self._scope = scope
        self._clock = clock
        self._token: AccessToken | None = None
        self._lock = asyncio.Lock()

    async def _current(self) -> str:
        async with self._lock:
            if (
                self._token is None
                or self._token.expires_on - self.REFRESH_MARGIN_SECONDS <= self._clock()
            ):
                self._token = await self._credential.get_token(self._scope)
            return self._token.token

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = f"Bearer {await self._current()}"
        yield request

    def masked_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {MASK}"}

    async def aclose(self) -> None:
        await self._credential.close()


class D3ApiKeyCredential(httpx.Auth):
    def __init__(self, header: str, key: SecretStr) -> None:
        self._header = header
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self._header] = self._key.get_secret_value()
        yield request

    def masked_headers(self) -> dict[str, str]:
        return {self._header: MASK}


class D3JwtCredential(httpx.Auth):
    """Mints an HS256 `d3jwt` per request; its `Username`/`Site` are the body's own."""

    requires_request_body = True
    HEADER = "d3jwt"

    def __init__(
        self,
        secret: SecretStr,
        *,
        lifetime_seconds: int = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._lifetime = lifetime_seconds
        self._clock = clock

    def token_for(self, username: str, site: str) -> str:
        import jwt  # noqa: PLC0415 - PyJWT loads cryptography: only D3's JWT mode pays for it

        now = int(self._clock())
        claims = {"Username": username, "Site": site, "iat": now, "exp": now + self._lifetime}
        return jwt.encode(claims, self._secret.get_secret_value(), algorithm="HS256")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        body = json.loads(request.content)
        request.headers[self.HEADER] = self.token_for(body["Username"], body["Site"])
        yield request

    def masked_headers(self) -> dict[str, str]:
        return {self.HEADER: MASK}
