"""D3 sandbox faults: D3's `{"Error": ...}` bodies, broken connections, script, rate limit."""

from __future__ import annotations

import httpx
import pytest

from local.sandbox.d3 import D3Simulator
from local.sandbox.d3_state import D3State
from local.sandbox.faults import Fault, FaultKind, FaultPlan
from tests.sandbox.conftest import D3_KEY_HEADERS, D3_REMOVE
from tests.sandbox.fakes import FakeClock, RecordingSleep

BODY = {
    "Username": "Admin",
    "Site": "Security Operations",
    "CommandParams": {
        "Linked Incident Numbers to be Removed": ["20240301-002"],
        "Source Incident Number": "20240301-001",
    },
}
RATE_LIMITED = {
    "Error": "The request exceeds rate limits or is otherwise blocked by rate limiting policies."
}


@pytest.mark.parametrize(
    ("fault", "status", "body", "retry_after"),
    [
        (Fault.of(FaultKind.RATE_LIMITED), 429, RATE_LIMITED, "1"),
        (Fault.of(FaultKind.SERVER_ERROR), 500, {"Error": "Unexpected Error."}, None),
        (
            Fault(FaultKind.UNAVAILABLE, retry_after=4),
            503,
            {"Error": "The service is temporarily unavailable."},
            "4",
        ),
    ],
)
async def test_error_fault_answers_d3_error_body_and_retry_after(
    d3_client: httpx.AsyncClient,
    d3_sim: D3Simulator,
    fault: Fault,
    status: int,
    body: dict[str, str],
    retry_after: str | None,
) -> None:
    d3_sim.faults = FaultPlan(script=[fault])
    response = await d3_client.post(D3_REMOVE, json=BODY, headers=D3_KEY_HEADERS)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == body
    assert response.headers.get("retry-after") == retry_after


def test_bad_gateway_fault_answers_an_html_502(d3_http: httpx.Client, d3_sim: D3Simulator) -> None:
    d3_sim.faults = FaultPlan(script=[Fault.of(FaultKind.BAD_GATEWAY_HTML)])
    response = d3_http.post(D3_REMOVE, json=BODY, headers=D3_KEY_HEADERS)
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError, match="Expecting value"):
        response.json()


def test_reset_fault_gives_the_client_a_transport_error(
    d3_http: httpx.Client, d3_sim: D3Simulator, d3_state: D3State
) -> None:
    d3_sim.faults = FaultPlan(script=[Fault.of(FaultKind.RESET)])
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        d3_http.post(D3_REMOVE, json=BODY, headers=D3_KEY_HEADERS)
    assert d3_state.effects == []


async def test_slow_fault_waits_then_answers_normally(
    d3_client: httpx.AsyncClient, d3_sim: D3Simulator, sleep: RecordingSleep
) -> None:
    d3_sim.faults = FaultPlan(script=[Fault(FaultKind.SLOW, delay=1.5)])
    response = await d3_client.post(D3_REMOVE, json=BODY, headers=D3_KEY_HEADERS)
    assert sleep.calls == [1.5]
    assert response.json()["returnData"]["Status"] == "Successful"


async def test_scripted_failures_then_recovery(
    d3_client: httpx.AsyncClient, d3_sim: D3Simulator
) -> None:
    d3_sim.faults = FaultPlan.from_json(
        {"script": [{"kind": "rate_limited"}, {"kind": "server_error"}]}
    )
    statuses = [
        (await d3_client.post(D3_REMOVE, json=BODY, headers=D3_KEY_HEADERS)).status_code
        for _ in range(3)
    ]
    assert statuses == [429, 500, 200]


async def test_rate_limit_answers_429_beyond_r_per_second(
    d3_client: httpx.AsyncClient, d3_sim: D3Simulator
) -> None:
    clock = FakeClock()
    d3_sim.faults = FaultPlan(rate_limit_per_second=1, clock=clock)
    first = await d3_client.post(D3_REMOVE, json=BODY, headers=D3_KEY_HEADERS)
    second = await d3_client.post(D3_REMOVE, json=BODY, headers=D3_KEY_HEADERS)
    clock.advance(1.0)
    third = await d3_client.post(D3_REMOVE, json=BODY, headers=D3_KEY_HEADERS)
    assert [r.status_code for r in (first, second, third)] == [200, 429, 200]
    assert second.json() == RATE_LIMITED
    assert second.headers["retry-after"] == "1"


async def test_faults_do_not_apply_to_admin_routes(
    d3_client: httpx.AsyncClient, d3_sim: D3Simulator
) -> None:
    d3_sim.faults = FaultPlan(probabilities={FaultKind.SERVER_ERROR: 1.0})
    assert (await d3_client.get("/_sandbox/state")).status_code == 200
    assert (await d3_client.post("/_sandbox/reset")).status_code == 200
