"""The ContraForce client behaves the same on httpcore and on aiohttp's pool (httpx-aiohttp):
retries, timeouts, transport errors, pacing and the connection cap, over real loopback HTTP
against the sandbox simulator (and a tiny counting server for the connection cap)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_aiohttp import AiohttpTransport
from pydantic import SecretStr

from incident_link_api.commands import UnlinkTicket
from incident_link_api.contraforce import IncidentReference
from local.sandbox.contraforce import ContraForceSimulator
from local.sandbox.contraforce_state import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_WORKSPACE_ID
from local.sandbox.faults import Fault, FaultKind, FaultPlan
from local.server import RunningServer, serve_in_thread
from shared.clients.auth import BasicCredential
from shared.clients.contraforce import ContraForceClient
from shared.clients.http import RetryPolicy
from shared.clients.transport import TransportKind, build_transport, tls_context
from shared.errors import UpstreamUnavailable

KINDS: list[TransportKind] = ["httpcore", "aiohttp"]
NO_WAIT = RetryPolicy(
    attempts=3,
    budget_seconds=20,
    initial_wait_seconds=0,
    max_wait_seconds=0,
    retry_after_cap_seconds=0,
)


@pytest.fixture(scope="module")
def simulator() -> Iterator[tuple[ContraForceSimulator, RunningServer]]:
    sim = ContraForceSimulator()
    with serve_in_thread(sim.app) as server:
        yield sim, server


@pytest.fixture
def sim(
    simulator: tuple[ContraForceSimulator, RunningServer],
) -> Iterator[tuple[ContraForceSimulator, str]]:
    found, server = simulator
    found.reset()
    yield found, f"{server.base_url}/api/v2"
    found.reset()


def client(
    base_url: str,
    kind: TransportKind,
    *,
    timeout: float = 5.0,
    rate: float | None = None,
    limits: httpx.Limits | None = None,
) -> ContraForceClient:
    transport = build_transport(kind) if limits is None else build_transport(kind, limits=limits)
    return ContraForceClient(
        base_url,
        BasicCredential(DEMO_CLIENT_ID, SecretStr(DEMO_CLIENT_SECRET)),
        policy=NO_WAIT,
        timeout=httpx.Timeout(timeout),
        rate_limit_per_second=rate,
        transport=transport,
    )


def steady_unlink() -> UnlinkTicket:
    """Incident 1003 has no ticket: every unlink answers 200 `{"data": false}`."""
    incident = {"workspaceId": str(DEMO_WORKSPACE_ID), "number": "1003", "source": "Splunk"}
    return UnlinkTicket(
        workspace_id=DEMO_WORKSPACE_ID, incident=IncidentReference.model_validate(incident)
    )


@pytest.mark.parametrize("kind", KINDS)
async def test_transient_answers_and_a_dropped_connection_are_retried(
    kind: TransportKind, sim: tuple[ContraForceSimulator, str]
) -> None:
    simulator, base = sim
    simulator.faults = FaultPlan(
        script=[Fault.of(FaultKind.UNAVAILABLE), Fault.of(FaultKind.RESET)]
    )
    cf = client(base, kind)
    try:
        answer = await cf.unlink_ticket(steady_unlink())
    finally:
        await cf.aclose()
    assert (answer.status, answer.attempts, answer.reply.data) == (200, 3, False)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_slow_answer_is_a_read_timeout_and_retries_run_out(
    kind: TransportKind, sim: tuple[ContraForceSimulator, str]
) -> None:
    simulator, base = sim
    simulator.faults = FaultPlan(script=[Fault(FaultKind.SLOW, delay=1.0)] * 3)
    cf = client(base, kind, timeout=0.2)
    try:
        with pytest.raises(UpstreamUnavailable, match=r"after 3 attempt\(s\): timed out") as err:
            await cf.unlink_ticket(steady_unlink())
    finally:
        await cf.aclose()
    assert "ReadTimeout" in str(err.value)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_refused_connection_is_a_connect_error_not_a_timeout(kind: TransportKind) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nobody listens once the socket is closed
    cf = client(f"http://127.0.0.1:{port}/api/v2", kind)
    try:
        with pytest.raises(UpstreamUnavailable, match=r"connection failed \(ConnectError\)"):
            await cf.unlink_ticket(steady_unlink())
    finally:
        await cf.aclose()


@pytest.mark.parametrize("kind", KINDS)
async def test_pacing_keeps_a_burst_inside_the_upstreams_rolling_second(
    kind: TransportKind, sim: tuple[ContraForceSimulator, str]
) -> None:
    simulator, base = sim
    simulator.faults = FaultPlan(rate_limit_per_second=4)
    cf = client(base, kind, rate=4)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        answers = await asyncio.gather(*(cf.unlink_ticket(steady_unlink()) for _ in range(6)))
        elapsed = loop.time() - started
    finally:
        await cf.aclose()
    assert [a.attempts for a in answers] == [1] * 6  # no 429 retried
    assert simulator.gate.counters.by_kind == {}
    assert elapsed >= 1.0  # the 5th and 6th waited for the first second to roll


class InFlight:
    """An ASGI app answering the ContraForce shape after 50 ms, counting requests in flight."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            while (await receive()).get("more_body"):
                pass
            await asyncio.sleep(0.05)
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b'{"data": false}'})
        finally:
            self.now -= 1


@pytest.mark.parametrize("kind", KINDS)
async def test_the_pool_never_opens_more_than_max_connections(kind: TransportKind) -> None:
    app = InFlight()
    with serve_in_thread(app) as server:  # type: ignore[arg-type]
        cf = client(f"{server.base_url}/api/v2", kind, limits=httpx.Limits(max_connections=2))
        try:
            await asyncio.gather(*(cf.unlink_ticket(steady_unlink()) for _ in range(6)))
        finally:
            await cf.aclose()
    assert app.most == 2


def test_every_pool_verifies_tls_with_one_context_loaded_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Loading a CA bundle takes some 50 ms; each transport loaded its own, so every client a
    cold instance built paid it again. One context serves every pool, and still checks
    certificates and host names."""
    loaded: list[ssl.SSLContext] = []
    create_default_context = ssl.create_default_context

    def counted(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        loaded.append(create_default_context(*args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(ssl, "create_default_context", counted)
    tls_context.cache_clear()
    transports = [build_transport(kind) for kind in KINDS for _ in range(2)]
    assert len(loaded) == 1
    assert loaded == [tls_context()]
    assert {id(t.ssl_context) for t in transports if isinstance(t, AiohttpTransport)} == {
        id(tls_context())
    }
    assert tls_context().verify_mode is ssl.CERT_REQUIRED
    assert tls_context().check_hostname
