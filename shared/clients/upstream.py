"""What each upstream's client is built from, once for both: `UpstreamClient`.

A client (`ContraForceClient`, `D3Client`) is one class per upstream that adds only its own
requests and how it reads the answers; how it is constructed, describes a request for a dry run
and closes is here. The registry (`shared.clients.registry`) builds both from settings the one
way (`client_options`).
"""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

import httpx

from incident_link_api.base import Upstream
from incident_link_api.outcome import PreparedRequest
from shared.clients.auth import (
    BasicCredential,
    BearerCredential,
    D3ApiKeyCredential,
    D3JwtCredential,
    EntraTokenCredential,
)
from shared.clients.bounds import DEFAULT_MAX_UPSTREAM_BODY_BYTES
from shared.clients.http import ResilientHttp, RetryPolicy
from shared.clients.pacing import Pacer

Credential = (
    BasicCredential | BearerCredential | EntraTokenCredential | D3ApiKeyCredential | D3JwtCredential
)
C = TypeVar("C", bound=Credential)


class UpstreamClient(Generic[C]):
    """One per process and upstream; owns one pooled connection pool to it (`ResilientHttp`).

    `pacer` paces every attempt (None: unpaced); `rate_limit_per_second` is the older spelling
    of `pacer=Pacer(rate)` (see `ResilientHttp`); `max_body_bytes` caps each answer's body on
    the wire and decoded (MAX_UPSTREAM_BODY_BYTES)."""

    upstream: ClassVar[Upstream]

    def __init__(
        self,
        base_url: str,
        credential: C,
        *,
        policy: RetryPolicy,
        timeout: httpx.Timeout,
        pacer: Pacer | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rate_limit_per_second: float | None = None,
        max_body_bytes: int = DEFAULT_MAX_UPSTREAM_BODY_BYTES,
    ) -> None:
        self._credential = credential
        self._http = ResilientHttp(
            upstream=self.upstream,
            base_url=base_url,
            auth=credential,
            policy=policy,
            timeout=timeout,
            pacer=pacer,
            transport=transport,
            rate_limit_per_second=rate_limit_per_second,
            max_body_bytes=max_body_bytes,
        )

    def describe(self, request: httpx.Request) -> PreparedRequest:
        """`request` as it would leave, credentials masked, for a dry run. Sends nothing."""
        return self._http.describe(request, self._credential)

    async def aclose(self) -> None:
        await self._http.aclose()
        if isinstance(self._credential, EntraTokenCredential):
            await self._credential.aclose()
