"""The connection pool under each upstream's `httpx.AsyncClient`: aiohttp's, or httpcore's.

httpx's API stays (the clients, auth flows, timeouts as `httpx.Timeout`, errors as httpx's);
only the transport changes. `aiohttp` (the default) is httpx on aiohttp's pool through
`httpx-aiohttp`: measured in-process against the same loopback simulator it costs less CPU per
request than httpcore and does not degrade with many requests in flight (bench/results.md, P1);
`httpcore` is httpx's own transport, kept as the fallback (`HTTP_TRANSPORT=httpcore`).

What the aiohttp transport does with httpx's settings:
- `Limits.max_connections` caps the pool (aiohttp's `limit`); `keepalive_expiry` is aiohttp's
  keep-alive timeout; aiohttp has no cap on idle connections (`max_keepalive_connections`).
- `Timeout`: connect -> socket connect, read -> each socket read, pool -> waiting for a
  connection *and* connecting (aiohttp's `connect`); aiohttp has no write timeout.
- Errors: httpx-aiohttp 0.2.0 maps every `aiohttp.ClientConnectionError` to `ConnectTimeout`;
  here a refused connection is `ConnectError`, a dropped one `RemoteProtocolError` or
  `ReadError`, as from httpcore, and only a real timeout is a `TimeoutException`.

Every pool in the process verifies TLS with one context (`tls_context`): httpx's default,
built once. Loading its CA bundle takes some 50 ms, and each transport used to load its own.
"""

from __future__ import annotations

import asyncio
import ssl
from functools import cache
from typing import Literal

import httpx

TransportKind = Literal["aiohttp", "httpcore"]
POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


def build_transport(
    kind: TransportKind, *, limits: httpx.Limits = POOL_LIMITS
) -> httpx.AsyncBaseTransport:
    """A new, unconnected transport; the aiohttp session is opened on first use, on the loop
    that sends (a pool must not cross event loops)."""
    if kind == "httpcore":
        return httpx.AsyncHTTPTransport(limits=limits, verify=tls_context())
    from httpx_aiohttp import AiohttpTransport  # noqa: PLC0415 - loaded with the first client

    class _AiohttpTransport(AiohttpTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            try:
                return await super().handle_async_request(request)
            except httpx.ConnectTimeout as exc:
                raise _reclassified(exc) from exc.__cause__

    return _AiohttpTransport(limits=limits, verify=tls_context())


@cache
def tls_context() -> ssl.SSLContext:
    """The TLS context of every upstream pool: what httpx builds for `verify=True` (certifi's
    CA bundle, or SSL_CERT_FILE / SSL_CERT_DIR), certificates and host names checked. Built on
    first use; a context may serve many connections, pools and event loops at once."""
    return httpx.create_ssl_context()


def _reclassified(exc: httpx.ConnectTimeout) -> httpx.TransportError:
    import aiohttp  # noqa: PLC0415 - only reached on the aiohttp transport

    cause = exc.__cause__
    if cause is None or isinstance(cause, asyncio.TimeoutError):
        return exc
    if isinstance(cause, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(cause))
    if isinstance(cause, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(str(cause))
    return httpx.ReadError(str(cause))
