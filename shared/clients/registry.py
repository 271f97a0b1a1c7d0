"""The process's upstream clients: built from settings on first use, reused, closable.

An `httpx.AsyncClient` must not cross event loops (httpx#2473): clients remember the loop
they were built on, and a call from another loop builds fresh ones. `reset()` is for tests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, TypedDict, TypeVar

from incident_link_api.base import Upstream
from shared.config import (
    ApiKeySettings,
    BasicSettings,
    D3ApiKeySettings,
    D3JwtSettings,
    EntraSettings,
    Settings,
)

# The clients (httpx, aiohttp, PyJWT) load with the first client, not at import, and stamina with
# the first retry (shared.retrying): a cold start that serves /api/health or a queue message
# first does not pay for them (bench P2).
if TYPE_CHECKING:
    import httpx

    from shared.clients.contraforce import ContraForceClient, ContraForceCredential
    from shared.clients.d3 import D3Client, D3Credential
    from shared.clients.http import RetryPolicy
    from shared.clients.pacing import Pacer
    from shared.rate_budget import SharedBudget

logger = logging.getLogger(__name__)
_Client = TypeVar("_Client")


class _Registry:
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.contraforce: ContraForceClient | None = None
        self.d3: D3Client | None = None
        self.budgets: list[SharedBudget] = []  # shared rate budgets, closed with the clients

    def for_this_loop(self) -> _Registry:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            if self.loop is not None:
                logger.info("event loop changed: building new upstream clients")
            self.loop, self.contraforce, self.d3, self.budgets = loop, None, None, []
        return self


_registry = _Registry()


def policy_from(settings: Settings) -> RetryPolicy:
    from shared.clients.http import RetryPolicy  # noqa: PLC0415 - with the first client

    return RetryPolicy(
        attempts=settings.retry_attempts,
        budget_seconds=settings.retry_budget_seconds,
        initial_wait_seconds=settings.retry_initial_wait_seconds,
        max_wait_seconds=settings.retry_max_wait_seconds,
        retry_after_cap_seconds=settings.retry_after_cap_seconds,
    )


def timeout_from(settings: Settings) -> httpx.Timeout:
    import httpx  # noqa: PLC0415 - with the first client

    return httpx.Timeout(
        settings.http_timeout_seconds, connect=settings.http_connect_timeout_seconds
    )


def contraforce_credential(settings: Settings) -> ContraForceCredential:
    from shared.clients.auth import (  # noqa: PLC0415 - with the first client
        BasicCredential,
        BearerCredential,
        EntraTokenCredential,
    )

    match settings.contraforce_credential():
        case BasicSettings(client_id, secret):
            return BasicCredential(client_id, secret)
        case ApiKeySettings(key):
            return BearerCredential(key)
        case EntraSettings(scope):
            from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415 - Entra mode only

            return EntraTokenCredential(DefaultAzureCredential(), scope)


def d3_credential(settings: Settings) -> D3Credential:
    from shared.clients.auth import (  # noqa: PLC0415 - with the first client
        D3ApiKeyCredential,
        D3JwtCredential,
    )

    match settings.d3_credential():
        case D3ApiKeySettings(header, key):
            return D3ApiKeyCredential(header, key)
        case D3JwtSettings(secret):
            return D3JwtCredential(secret)


class ClientOptions(TypedDict):
    """What both upstream clients are built with besides their base URL and credential."""

    policy: RetryPolicy
    timeout: httpx.Timeout
    transport: httpx.AsyncBaseTransport
    pacer: Pacer
    max_body_bytes: int


def client_options(settings: Settings, upstream: Upstream) -> ClientOptions:
    """The options of `upstream`'s client, from settings: the same for both upstreams but for
    the pace, which is decided here alone (`pacer_from`)."""
    from shared.clients.transport import build_transport  # noqa: PLC0415 - first client

    return ClientOptions(
        policy=policy_from(settings),
        timeout=timeout_from(settings),
        transport=build_transport(settings.http_transport),
        pacer=pacer_from(settings, upstream),
        max_body_bytes=settings.max_upstream_body_bytes,
    )


def contraforce(settings: Settings) -> ContraForceClient:
    """The ContraForce client of this process (raises `NotConfigured` if it cannot be built)."""
    registry = _registry.for_this_loop()
    if registry.contraforce is None:
        from shared.clients.contraforce import ContraForceClient  # noqa: PLC0415 - first client

        registry.contraforce = ContraForceClient(
            str(settings.contraforce_base_url),
            contraforce_credential(settings),
            **client_options(settings, "contraforce"),
        )
    return registry.contraforce


def d3(settings: Settings) -> D3Client:
    """The D3 client of this process (raises `NotConfigured` if it cannot be built)."""
    registry = _registry.for_this_loop()
    if registry.d3 is None:
        from shared.clients.d3 import D3Client  # noqa: PLC0415 - first client

        registry.d3 = D3Client(
            settings.d3_base(), d3_credential(settings), **client_options(settings, "d3")
        )
    return registry.d3


@dataclass(frozen=True)
class Upstreams:
    """Where the core gets its upstream clients, passed in from the edge: `from_settings` for
    this process's clients (built on first use, `NotConfigured` if they cannot be), `given` for
    clients a test built (on `httpx.MockTransport`)."""

    contraforce: Callable[[], ContraForceClient]
    d3: Callable[[], D3Client]

    @classmethod
    def from_settings(cls, settings: Settings) -> Upstreams:
        return cls(partial(contraforce, settings), partial(d3, settings))

    @classmethod
    def given(
        cls, *, contraforce: ContraForceClient | None = None, d3: D3Client | None = None
    ) -> Upstreams:
        return cls(partial(_given, contraforce, "ContraForce"), partial(_given, d3, "D3"))


def _given(client: _Client | None, name: str) -> _Client:
    if client is None:
        raise LookupError(f"no {name} client was given")
    return client


def pacer_from(settings: Settings, upstream: Upstream) -> Pacer:
    """How `upstream`'s client is paced: at the upstream's rate from settings, and with
    SHARED_RATE_BUDGET at this instance's share of it (kept by a `SharedBudget` through the
    storage account); else this process paces alone."""
    rate = (
        settings.contraforce_rate_limit_per_second
        if upstream == "contraforce"
        else settings.d3_rate_limit_per_second
    )
    if not settings.shared_rate_budget:
        from shared.clients.pacing import Pacer  # noqa: PLC0415 - with the first client

        return Pacer(rate)
    from shared.rate_budget import (  # noqa: PLC0415 - only with a shared budget
        BudgetStore,
        SharedBudget,
        table_client,
    )

    budget = SharedBudget(upstream, BudgetStore(table_client(settings)))
    _registry.for_this_loop().budgets.append(budget)
    return budget.pacer(rate)


async def aclose() -> None:
    """Close this process's clients (on shutdown, and between tests)."""
    clients = [c for c in (_registry.contraforce, _registry.d3) if c is not None]
    budgets = list(_registry.budgets)
    reset()
    for client in clients:
        await client.aclose()
    for budget in budgets:
        await budget.aclose()


def reset() -> None:
    """Forget the clients without closing them (the loop they belong to may be gone)."""
    _registry.loop, _registry.contraforce, _registry.d3 = None, None, None
    _registry.budgets = []
