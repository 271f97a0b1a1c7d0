"""ContraForce sandbox admin routes, demo data and summary."""

from __future__ import annotations

import httpx

from local.sandbox.contraforce import ContraForceSimulator, create_app, simulator_of
from local.sandbox.contraforce_state import (
    DEMO_CLIENT_SECRET,
    DEMO_OTHER_WORKSPACE_ID,
    DEMO_WORKSPACE_ID,
    ContraForceState,
    demo_state,
    render_summary,
)
from local.sandbox.faults import FaultPlan
from tests.sandbox.conftest import CF_UNLINK

LINKED = {"incident": {"number": "1001"}}


def test_state_lists_workspaces_incidents_and_effects_without_secrets(
    cf_http: httpx.Client, cf_auth: dict[str, str]
) -> None:
    cf_http.post(CF_UNLINK, json=LINKED, headers=cf_auth)
    response = cf_http.get("/_sandbox/state")
    state = response.json()
    assert [w["id"] for w in state["workspaces"]] == [
        str(DEMO_WORKSPACE_ID),
        str(DEMO_OTHER_WORKSPACE_ID),
    ]
    assert state["workspaces"][0]["incidents"][0]["ticket"] is None
    assert [e["incidentNumber"] for e in state["effects"]] == ["1001"]
    assert DEMO_CLIENT_SECRET not in response.text


def test_post_faults_replaces_the_plan_for_action_requests(
    cf_http: httpx.Client, cf_auth: dict[str, str]
) -> None:
    plan = {"script": [{"kind": "unavailable", "retryAfter": 2}]}
    assert cf_http.post("/_sandbox/faults", json=plan).status_code == 200
    response = cf_http.post(CF_UNLINK, json=LINKED, headers=cf_auth)
    assert (response.status_code, response.headers["retry-after"]) == (503, "2")


def test_invalid_fault_plan_is_400_and_keeps_the_old_plan(
    cf_http: httpx.Client, cf_auth: dict[str, str]
) -> None:
    response = cf_http.post("/_sandbox/faults", json={"script": [{"kind": "meteor"}]})
    assert response.status_code == 400
    assert response.json()["errors"]["script[0].kind"]
    assert cf_http.post(CF_UNLINK, json=LINKED, headers=cf_auth).status_code == 200


def test_delete_faults_clears_the_plan(cf_http: httpx.Client, cf_auth: dict[str, str]) -> None:
    cf_http.post("/_sandbox/faults", json={"probabilities": {"server_error": 1.0}})
    cf_http.delete("/_sandbox/faults")
    assert cf_http.post(CF_UNLINK, json=LINKED, headers=cf_auth).status_code == 200


def test_reset_restores_the_state_and_clears_faults_and_counters(
    cf_http: httpx.Client, cf_auth: dict[str, str], cf_state: ContraForceState
) -> None:
    cf_http.post(CF_UNLINK, json=LINKED, headers=cf_auth)
    cf_http.post("/_sandbox/faults", json={"probabilities": {"server_error": 1.0}})
    assert cf_http.post("/_sandbox/reset").status_code == 200
    assert cf_state.workspaces[DEMO_WORKSPACE_ID].incidents[0].ticket is not None
    assert cf_state.effects == []
    assert cf_http.get("/_sandbox/counters").json()["actionRequests"] == 0
    assert cf_http.post(CF_UNLINK, json=LINKED, headers=cf_auth).json()["data"] is True


def test_counters_count_action_requests_and_faulted_answers(
    cf_http: httpx.Client, cf_auth: dict[str, str]
) -> None:
    cf_http.post("/_sandbox/faults", json={"script": [{"kind": "server_error"}]})
    for _ in range(3):
        cf_http.post(CF_UNLINK, json=LINKED, headers=cf_auth)
    cf_http.get("/_sandbox/state")
    assert cf_http.get("/_sandbox/counters").json() == {
        "actionRequests": 3,
        "faulted": 1,
        "faultsByKind": {"server_error": 1},
    }


def test_create_app_exposes_its_simulator_state_and_plan() -> None:
    state, plan = demo_state(), FaultPlan()
    sim = simulator_of(create_app(state, plan))
    assert isinstance(sim, ContraForceSimulator)
    assert (sim.state, sim.faults) == (state, plan)


def test_demo_account_has_a_role_on_the_first_workspace_only() -> None:
    [account] = demo_state().accounts.values()
    assert account.workspaces == frozenset({DEMO_WORKSPACE_ID})


def test_summary_names_workspaces_incidents_and_the_service_account() -> None:
    summary = render_summary(demo_state(), "http://127.0.0.1:7001")
    assert "http://127.0.0.1:7001" in summary
    assert "sandbox-client" in summary
    assert str(DEMO_OTHER_WORKSPACE_ID) in summary
    assert "ServiceNow INC0012345" in summary
