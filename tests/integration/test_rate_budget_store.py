"""The shared rate budget on Azurite: ETag-conditional claims, racing instances, and the
fallback to local pacing when the store is down (never a stall)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from azure.data.tables.aio import TableClient

from local.azurite import Azurite
from shared.config import Settings
from shared.rate_budget import (
    LINGER_SECONDS,
    STORE_TIMEOUT_SECONDS,
    BudgetStore,
    SharedBudget,
    table_client,
)

LIMIT = 50


@pytest.fixture
async def table(azurite: Azurite, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh table name per test (Azure Table names: letters and digits)."""
    name = "budget" + "".join(c for c in request.node.name if c.isalnum())[-40:]
    yield name
    async with TableClient.from_connection_string(azurite.connection_string, name) as client:
        await client.delete_table()


def store(azurite: Azurite, table: str) -> BudgetStore:
    settings = Settings.model_validate({"AzureWebJobsStorage": azurite.connection_string})
    return BudgetStore(table_client(settings, table))


async def test_racing_instances_never_claim_more_than_the_limit(
    azurite: Azurite, table: str
) -> None:
    stores = [store(azurite, table) for _ in range(4)]
    try:
        await stores[0].claim("d3", "warm-up", limit=LIMIT, now=0.0)  # creates the table
        shares = await asyncio.gather(
            *(s.claim("d3", f"i{n}", limit=LIMIT, now=10.0) for n, s in enumerate(stores))
        )
    finally:
        for s in stores:
            await s.aclose()
    assert sum(shares) <= LIMIT
    assert sum(shares) >= LIMIT - 5  # every race was retried, nobody was left out by a conflict


async def test_a_newcomer_gets_a_fair_part_after_the_holder_renews(
    azurite: Azurite, table: str
) -> None:
    a, b = store(azurite, table), store(azurite, table)
    try:
        assert await a.claim("contraforce", "a", limit=LIMIT, now=100.0) == LIMIT
        assert await b.claim("contraforce", "b", limit=LIMIT, now=100.5) == 0
        assert await a.claim("contraforce", "a", limit=LIMIT, now=101.0) == LIMIT // 2
        later = 101.0 + LINGER_SECONDS + 0.1
        assert await b.claim("contraforce", "b", limit=LIMIT, now=later) == LIMIT // 2
    finally:
        await a.aclose()
        await b.aclose()


async def test_budgets_are_kept_per_upstream(azurite: Azurite, table: str) -> None:
    s = store(azurite, table)
    try:
        assert await s.claim("contraforce", "a", limit=LIMIT, now=0.0) == LIMIT
        assert await s.claim("d3", "b", limit=LIMIT, now=0.0) == LIMIT
    finally:
        await s.aclose()


async def test_a_shared_budget_paces_at_its_share(azurite: Azurite, table: str) -> None:
    budget = SharedBudget("contraforce", store(azurite, table))
    pacer = budget.pacer(20)
    try:
        async with asyncio.timeout(5), pacer.slot():
            pass
        assert (pacer.limit, budget.claims, budget.failures) == (20, 1, 0)
    finally:
        await budget.aclose()


async def test_with_the_store_down_requests_fall_back_to_local_pacing_without_stalling() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nobody listens there once closed
    down = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        f"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    settings = Settings.model_validate({"AzureWebJobsStorage": down})
    budget = SharedBudget("d3", BudgetStore(table_client(settings)))
    pacer = budget.pacer(50)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(5), pacer.slot():
            waited = loop.time() - started
    finally:
        await budget.aclose()
    assert waited <= STORE_TIMEOUT_SECONDS + 0.5
    assert (pacer.limit, budget.claims, budget.failures) == (50, 0, 1)
