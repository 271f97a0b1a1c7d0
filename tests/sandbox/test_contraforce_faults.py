"""ContraForce sandbox faults: problem bodies, broken connections, script, rate limit."""

from __future__ import annotations

import httpx
import pytest

from local.sandbox.contraforce import ContraForceSimulator
from local.sandbox.contraforce_state import ContraForceState
from local.sandbox.faults import Fault, FaultKind, FaultPlan
from local.server import serve_in_thread
from tests.sandbox.conftest import CF_UNLINK
from tests.sandbox.fakes import FakeClock, RecordingSleep

BODY = {"incident": {"number": "1003"}}


@pytest.mark.parametrize(
    ("fault", "status", "code", "retry_after"),
    [
        (Fault.of(FaultKind.RATE_LIMITED), 429, "TOO_MANY_REQUESTS", "1"),
        (Fault(FaultKind.RATE_LIMITED, retry_after=7), 429, "TOO_MANY_REQUESTS", "7"),
        (Fault.of(FaultKind.SERVER_ERROR), 500, "INTERNAL_SERVER_ERROR", None),
        (Fault.of(FaultKind.UNAVAILABLE), 503, "SERVICE_UNAVAILABLE", None),
        (Fault(FaultKind.UNAVAILABLE, retry_after=3), 503, "SERVICE_UNAVAILABLE", "3"),
    ],
)
async def test_error_fault_answers_a_problem_with_its_status_and_retry_after(
    cf_client: httpx.AsyncClient,
    cf_sim: ContraForceSimulator,
    cf_auth: dict[str, str],
    fault: Fault,
    status: int,
    code: str,
    retry_after: str | None,
) -> None:
    cf_sim.faults = FaultPlan(script=[fault])
    response = await cf_client.post(CF_UNLINK, json=BODY, headers=cf_auth)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert response.json()["status"] == status
    assert response.headers.get("retry-after") == retry_after


def test_bad_gateway_fault_answers_an_html_502(
    cf_http: httpx.Client, cf_sim: ContraForceSimulator, cf_auth: dict[str, str]
) -> None:
    cf_sim.faults = FaultPlan(script=[Fault.of(FaultKind.BAD_GATEWAY_HTML)])
    response = cf_http.post(CF_UNLINK, json=BODY, headers=cf_auth)
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.lstrip().startswith("<html>")


def test_reset_fault_gives_the_client_a_transport_error(
    cf_http: httpx.Client, cf_sim: ContraForceSimulator, cf_auth: dict[str, str]
) -> None:
    cf_sim.faults = FaultPlan(script=[Fault.of(FaultKind.RESET)])
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        cf_http.post(CF_UNLINK, json=BODY, headers=cf_auth)


def test_server_keeps_serving_after_a_reset(
    cf_http: httpx.Client, cf_sim: ContraForceSimulator, cf_auth: dict[str, str]
) -> None:
    cf_sim.faults = FaultPlan(script=[Fault.of(FaultKind.RESET)])
    with pytest.raises(httpx.TransportError):
        cf_http.post(CF_UNLINK, json=BODY, headers=cf_auth)
    assert cf_http.post(CF_UNLINK, json=BODY, headers=cf_auth).status_code == 200


async def test_slow_fault_waits_then_answers_normally(
    cf_client: httpx.AsyncClient,
    cf_sim: ContraForceSimulator,
    cf_auth: dict[str, str],
    cf_state: ContraForceState,
    sleep: RecordingSleep,
) -> None:
    cf_sim.faults = FaultPlan(script=[Fault(FaultKind.SLOW, delay=2.5)])
    response = await cf_client.post(
        CF_UNLINK, json={"incident": {"number": "1001"}}, headers=cf_auth
    )
    assert sleep.calls == [2.5]
    assert response.json()["data"] is True
    assert len(cf_state.effects) == 1


@pytest.mark.slow
def test_slow_fault_makes_a_client_with_a_shorter_timeout_time_out(
    cf_state: ContraForceState, cf_auth: dict[str, str]
) -> None:
    sim = ContraForceSimulator(cf_state, FaultPlan(script=[Fault(FaultKind.SLOW, delay=0.3)]))
    with (
        serve_in_thread(sim.app) as server,
        httpx.Client(base_url=server.base_url) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        client.post(CF_UNLINK, json=BODY, headers=cf_auth, timeout=0.05)


async def test_scripted_failures_then_recovery(
    cf_client: httpx.AsyncClient, cf_sim: ContraForceSimulator, cf_auth: dict[str, str]
) -> None:
    cf_sim.faults = FaultPlan(script=[Fault.of(FaultKind.UNAVAILABLE)] * 3)
    statuses = [
        (await cf_client.post(CF_UNLINK, json=BODY, headers=cf_auth)).status_code for _ in range(5)
    ]
    assert statuses == [503, 503, 503, 200, 200]


async def test_rate_limit_answers_429_beyond_r_per_second(
    cf_client: httpx.AsyncClient, cf_sim: ContraForceSimulator, cf_auth: dict[str, str]
) -> None:
    clock = FakeClock()
    cf_sim.faults = FaultPlan(rate_limit_per_second=2, clock=clock)
    burst = [await cf_client.post(CF_UNLINK, json=BODY, headers=cf_auth) for _ in range(3)]
    clock.advance(1.0)
    after = await cf_client.post(CF_UNLINK, json=BODY, headers=cf_auth)
    assert [r.status_code for r in burst] == [200, 200, 429]
    assert burst[2].headers["retry-after"] == "1"
    assert after.status_code == 200


async def test_faults_do_not_apply_to_admin_routes(
    cf_client: httpx.AsyncClient, cf_sim: ContraForceSimulator
) -> None:
    cf_sim.faults = FaultPlan(probabilities={FaultKind.SERVER_ERROR: 1.0})
    assert (await cf_client.get("/_sandbox/state")).status_code == 200
    assert cf_sim.gate.counters.action_requests == 0


async def test_faults_come_before_auth(
    cf_client: httpx.AsyncClient, cf_sim: ContraForceSimulator
) -> None:
    cf_sim.faults = FaultPlan(script=[Fault.of(FaultKind.UNAVAILABLE)])
    response = await cf_client.post(CF_UNLINK, json=BODY)
    assert response.status_code == 503
