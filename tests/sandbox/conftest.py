"""Fixtures for the sandbox simulators: in-process (ASGITransport) and over loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from local.sandbox.contraforce import ContraForceSimulator
from local.sandbox.contraforce_state import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_WORKSPACE_ID,
    ContraForceState,
    demo_state,
)
from local.sandbox.d3 import D3Simulator
from local.sandbox.d3 import demo_state as d3_demo_state
from local.sandbox.d3_state import D3State
from local.server import RunningServer, serve_in_thread
from tests.sandbox.fakes import RecordingSleep, basic

CF_UNLINK = f"/api/v2/workspaces/{DEMO_WORKSPACE_ID}/tickets/unlink"
D3_REMOVE = "/MainApp/VSOC/api/Command/RemoveLinkedIncidents"
D3_KEY_HEADERS = {"X-D3-API-Key": "sandbox-d3-key"}


@pytest.fixture
def cf_auth() -> dict[str, str]:
    """Headers with the demo service account's Basic credentials."""
    return {"Authorization": basic(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)}


@pytest.fixture
def cf_state() -> ContraForceState:
    return demo_state()


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def cf_sim(cf_state: ContraForceState, sleep: RecordingSleep) -> ContraForceSimulator:
    return ContraForceSimulator(cf_state, sleep=sleep)


@pytest.fixture
async def cf_client(cf_sim: ContraForceSimulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=cf_sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://contraforce.test") as c:
        yield c


@pytest.fixture
def cf_server(cf_sim: ContraForceSimulator) -> Iterator[RunningServer]:
    with serve_in_thread(cf_sim.app) as server:
        yield server


@pytest.fixture
def cf_http(cf_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cf_server.base_url, timeout=5.0) as client:
        yield client


@pytest.fixture
def d3_state() -> D3State:
    return d3_demo_state()


@pytest.fixture
def d3_sim(d3_state: D3State, sleep: RecordingSleep) -> D3Simulator:
    return D3Simulator(d3_state, sleep=sleep)


@pytest.fixture
async def d3_client(d3_sim: D3Simulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=d3_sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://d3.test") as c:
        yield c


@pytest.fixture
def d3_server(d3_sim: D3Simulator) -> Iterator[RunningServer]:
    with serve_in_thread(d3_sim.app) as server:
        yield server


@pytest.fixture
def d3_http(d3_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=d3_server.base_url, timeout=5.0) as client:
        yield client
