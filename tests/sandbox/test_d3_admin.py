"""D3 sandbox admin routes, demo data and summary."""

from __future__ import annotations

import httpx

from local.sandbox.d3 import D3Simulator, create_app, simulator_of
from local.sandbox.d3_state import D3State, demo_state
from local.sandbox.faults import FaultPlan
from tests.sandbox.conftest import D3_KEY_HEADERS, D3_REMOVE

SITE = "Security Operations"
BODY = {
    "Username": "Admin",
    "Site": SITE,
    "CommandParams": {
        "Linked Incident Numbers to be Removed": ["20210127-197"],
        "Source Incident Number": "20231025-130",
    },
}


def test_state_lists_sites_links_and_effects(d3_http: httpx.Client) -> None:
    d3_http.post(D3_REMOVE, json=BODY, headers=D3_KEY_HEADERS)
    state = d3_http.get("/_sandbox/state").json()
    soc = state["sites"][0]
    assert soc["name"] == SITE
    assert soc["incidents"][0] == {
        "number": "20231025-130",
        "title": "Phishing campaign against finance",
        "links": ["20231025-131"],
    }
    assert [(e["sourceIncident"], e["linkedIncident"]) for e in state["effects"]] == [
        ("20231025-130", "20210127-197")
    ]


def test_post_faults_replaces_the_plan(d3_http: httpx.Client) -> None:
    d3_http.post("/_sandbox/faults", json={"script": [{"kind": "server_error"}]})
    assert d3_http.post(D3_REMOVE, json=BODY, headers=D3_KEY_HEADERS).status_code == 500


def test_reset_restores_links_and_clears_faults_and_counters(
    d3_http: httpx.Client, d3_state: D3State
) -> None:
    d3_http.post(D3_REMOVE, json=BODY, headers=D3_KEY_HEADERS)
    d3_http.post("/_sandbox/faults", json={"probabilities": {"unavailable": 1.0}})
    d3_http.post("/_sandbox/reset")
    assert d3_state.links(SITE, "20231025-130") == ["20210127-197", "20231025-131"]
    assert d3_state.effects == []
    assert d3_http.get("/_sandbox/counters").json()["actionRequests"] == 0
    assert d3_http.post(D3_REMOVE, json=BODY, headers=D3_KEY_HEADERS).status_code == 200


def test_counters_count_action_requests_and_faulted_answers(d3_http: httpx.Client) -> None:
    d3_http.post("/_sandbox/faults", json={"script": [{"kind": "rate_limited"}]})
    d3_http.post(D3_REMOVE, json=BODY, headers=D3_KEY_HEADERS)
    d3_http.post(D3_REMOVE, json=BODY, headers=D3_KEY_HEADERS)
    counters = d3_http.get("/_sandbox/counters").json()
    assert (counters["actionRequests"], counters["faulted"]) == (2, 1)


def test_demo_links_are_symmetric() -> None:
    state = demo_state()
    for site in state.sites.values():
        for incident in site.incidents.values():
            for other in incident.links:
                assert incident.number in site.incidents[other].links


def test_create_app_exposes_its_simulator_state_and_plan() -> None:
    state, plan = demo_state(), FaultPlan()
    sim = simulator_of(create_app(state, plan))
    assert isinstance(sim, D3Simulator)
    assert (sim.state, sim.faults) == (state, plan)


def test_summary_shows_the_api_base_url_sites_and_credentials() -> None:
    summary = D3Simulator(demo_state()).summary("http://127.0.0.1:7002")
    assert "http://127.0.0.1:7002/MainApp/VSOC/api" in summary
    assert "Security Operations" in summary
    assert "20231025-130: 20210127-197, 20231025-131" in summary
    assert "X-D3-API-Key" in summary
