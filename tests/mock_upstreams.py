"""Upstream clients on `httpx.MockTransport`, for unit tests of the core: a handler in,
`Upstreams` out.

    seen, handler = replying(httpx.Response(200, json={"data": True}))
    upstreams = mock_upstreams(contraforce=handler)
    outcome = await actions.run([command], upstreams=upstreams, settings=..., operation_id=...)

The clients are the app's own (`ContraForceClient`, `D3Client`: the same requests, retries,
answer parsing and errors), only the transport is a function: no socket, no simulator, no
Azurite. Retries wait nothing (`NO_WAIT`) and nothing is paced.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
from pydantic import SecretStr

from shared.clients.auth import BasicCredential, D3ApiKeyCredential
from shared.clients.contraforce import ContraForceClient
from shared.clients.d3 import D3Client
from shared.clients.http import RetryPolicy
from shared.clients.registry import Upstreams

Handler = Callable[[httpx.Request], httpx.Response]

CONTRAFORCE_BASE_URL = "https://contraforce.test/api/v2"
D3_BASE_URL = "https://d3.test/VSOC/api"
D3_KEY_HEADER = "X-D3-Key"
NO_WAIT = RetryPolicy(
    attempts=3,
    budget_seconds=30,
    initial_wait_seconds=0,
    max_wait_seconds=0,
    retry_after_cap_seconds=0,
)


def contraforce_client(handler: Handler, *, policy: RetryPolicy = NO_WAIT) -> ContraForceClient:
    """The ContraForce client, every request answered by `handler`."""
    return ContraForceClient(
        CONTRAFORCE_BASE_URL,
        BasicCredential("client-id", SecretStr("client-secret")),
        policy=policy,
        timeout=httpx.Timeout(5),
        transport=httpx.MockTransport(handler),
    )


def d3_client(handler: Handler, *, policy: RetryPolicy = NO_WAIT) -> D3Client:
    """The D3 client, every request answered by `handler`."""
    return D3Client(
        D3_BASE_URL,
        D3ApiKeyCredential(D3_KEY_HEADER, SecretStr("d3-key")),
        policy=policy,
        timeout=httpx.Timeout(5),
        transport=httpx.MockTransport(handler),
    )


def mock_upstreams(
    *,
    contraforce: Handler | None = None,
    d3: Handler | None = None,
    policy: RetryPolicy = NO_WAIT,
) -> Upstreams:
    """`Upstreams` whose clients send to these handlers; asking for an upstream without one is
    a `LookupError` (the test did not expect that upstream to be called)."""
    return Upstreams.given(
        contraforce=None if contraforce is None else contraforce_client(contraforce, policy=policy),
        d3=None if d3 is None else d3_client(d3, policy=policy),
    )


def replying(*responses: httpx.Response) -> tuple[list[httpx.Request], Handler]:
    """A handler answering each request with the next of `responses` (the last one again once
    they run out), and the requests it was sent, in order."""
    if not responses:
        raise ValueError("replying() needs at least one response")
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return seen, handle
