"""Every route, through the registered handlers, against the sandbox simulators."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from local.sandbox.contraforce_state import DEMO_OTHER_WORKSPACE_ID, DEMO_WORKSPACE_ID
from local.sandbox.d3 import DEFAULT_JWT_SECRET
from local.sandbox.d3_state import DEMO_SITE
from local.sandbox.faults import Fault, FaultKind, FaultPlan
from tests.conftest import Sandboxes, load_json
from tests.functions.conftest import call, registered

WS = str(DEMO_WORKSPACE_ID)
TICKETED = "6d1f0c2a-4e4b-4b8f-9d55-0a3c1b2e7f10"  # incident #1001, linked to ServiceNow
TICKETED_2 = "da7e3b91-21c4-4f0e-8a3b-5e6f7a8b9c02"  # incident #1002, linked to Jira
UNTICKETED = "splunk-notable-7731"  # incident #1003, no ticket
SEED = load_json("d3-remove-linked-incidents.samples.json")

CF_MIRROR = "contraforce_unlink_ticket"
D3_MIRROR = "d3_remove_linked_incidents"


async def cf_mirror(body: Any, workspace: str = WS, **kw: Any) -> Any:
    return await call(
        CF_MIRROR,
        f"contraforce/workspaces/{workspace}/tickets/unlink",
        body,
        route_params={"workspaceId": workspace},
        **kw,
    )


async def unlink(body: Any, **kw: Any) -> Any:
    return await call("unlink_ticket", "actions/unlink-ticket", body, **kw)


async def remove(body: Any, **kw: Any) -> Any:
    return await call("remove_linked_incidents", "actions/remove-linked-incidents", body, **kw)


def fail_next(sim: Any, *faults: Fault) -> None:
    sim.faults = FaultPlan(script=faults)


# ---- registration ----------------------------------------------------------------------------


def test_every_route_is_registered_with_its_methods_and_auth_level() -> None:
    routes = {}
    for function in registered().values():
        bindings = json.loads(function.get_function_json())["bindings"]
        for trigger in (b for b in bindings if b["type"] == "httpTrigger"):
            routes[trigger["route"]] = (tuple(trigger["methods"]), trigger["authLevel"])
    assert routes == {
        "contraforce/workspaces/{workspaceId}/tickets/unlink": (("POST",), "FUNCTION"),
        "d3/Command/RemoveLinkedIncidents": (("POST",), "FUNCTION"),
        "actions/unlink-ticket": (("POST",), "FUNCTION"),
        "actions/remove-linked-incidents": (("POST",), "FUNCTION"),
        "actions/{action}": (("POST",), "FUNCTION"),
        "webhooks/contraforce": (("POST",), "FUNCTION"),
        "operations/{operationId}": (("GET",), "FUNCTION"),
        "operations/{operationId}/status": (("GET",), "ANONYMOUS"),
        "health": (("GET",), "ANONYMOUS"),
        "openapi.json": (("GET",), "ANONYMOUS"),
        "swagger.json": (("GET",), "ANONYMOUS"),
    }


def test_the_queue_worker_listens_on_the_work_queue_with_the_host_storage() -> None:
    bindings = json.loads(registered()["run_queued_action"].get_function_json())["bindings"]
    [trigger] = [b for b in bindings if b["type"] == "queueTrigger"]
    assert (trigger["queueName"], trigger["connection"]) == ("link-actions", "AzureWebJobsStorage")


def test_function_app_imports_with_no_settings_at_all() -> None:
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "SYSTEMROOT"}}
    result = subprocess.run(
        [sys.executable, "-c", "import function_app; print(len(function_app.app.get_functions()))"],
        cwd=Path(__file__).parents[2],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout.strip()) == (0, "12"), result.stderr


# ---- ContraForce mirror: the vendor's shapes -----------------------------------------------


async def test_contraforce_mirror_unlinks_and_answers_the_vendor_envelope(
    sandbox: Sandboxes,
) -> None:
    reply = await cf_mirror({"incident": {"id": TICKETED, "source": "Sentinel"}})
    assert (reply.status, reply.media_type, reply.body["data"]) == (200, "application/json", True)
    assert reply.body["meta"]["requestId"]
    assert reply.headers["x-operation-id"]
    assert sandbox.contraforce.state.incident(DEMO_WORKSPACE_ID, TICKETED).ticket is None
    assert len(sandbox.contraforce.state.effects) == 1


async def test_contraforce_mirror_second_unlink_answers_data_false_as_the_upstream_does(
    sandbox: Sandboxes,
) -> None:
    await cf_mirror({"incident": {"id": TICKETED}})
    reply = await cf_mirror({"incident": {"id": TICKETED}})
    assert (reply.status, reply.body["data"]) == (200, False)
    assert len(sandbox.contraforce.state.effects) == 1


async def test_contraforce_mirror_passes_an_upstream_404_through_with_its_code(
    sandbox: Sandboxes,
) -> None:
    reply = await cf_mirror({"incident": {"id": "no-such-incident"}})
    assert (reply.status, reply.media_type) == (404, "application/problem+json")
    assert (reply.body["code"], reply.body["upstream"]) == ("NOT_FOUND", "contraforce")
    assert reply.body["requestId"]


async def test_contraforce_mirror_passes_a_workspace_role_403_through(sandbox: Sandboxes) -> None:
    reply = await cf_mirror(
        {"incident": {"number": "2001"}}, workspace=str(DEMO_OTHER_WORKSPACE_ID)
    )
    assert (reply.status, reply.body["code"]) == (403, "INSUFFICIENT_WORKSPACE_ROLE")


# ---- canonical unlink: the Outcome -----------------------------------------------------------


async def test_unlink_success_answers_200_with_the_outcome(sandbox: Sandboxes) -> None:
    reply = await unlink({"workspaceId": WS, "incident": {"id": TICKETED}})
    assert reply.status == 200
    body = reply.body
    assert (body["status"], body["action"], body["dryRun"], body["attempts"]) == (
        "succeeded",
        "unlink_ticket",
        False,
        1,
    )
    assert body["operationId"] == reply.headers["x-operation-id"]
    assert body["upstream"]["name"] == "contraforce"
    assert body["upstream"]["requestId"]
    assert [i["status"] for i in body["items"]] == ["succeeded"]


async def test_unlink_of_an_incident_without_ticket_is_409_not_applied_never_a_success(
    sandbox: Sandboxes,
) -> None:
    reply = await unlink({"workspaceId": WS, "incident": {"id": UNTICKETED}})
    assert (reply.status, reply.media_type, reply.body["code"]) == (
        409,
        "application/problem+json",
        "NOT_APPLIED",
    )
    assert reply.body["outcome"]["items"][0]["status"] == "not_applied"


async def test_bulk_unlink_with_mixed_results_is_207_with_one_item_each(sandbox: Sandboxes) -> None:
    items = [{"workspaceId": WS, "incident": {"id": i}} for i in (TICKETED, UNTICKETED, TICKETED_2)]
    reply = await unlink({"items": items})
    assert reply.status == 207
    assert reply.body["status"] == "partially_succeeded"
    assert [i["status"] for i in reply.body["items"]] == ["succeeded", "not_applied", "succeeded"]
    assert len(sandbox.contraforce.state.effects) == 2


async def test_transient_429_and_503_are_retried_and_applied_once(sandbox: Sandboxes) -> None:
    fail_next(
        sandbox.contraforce, Fault.of(FaultKind.RATE_LIMITED), Fault.of(FaultKind.UNAVAILABLE)
    )
    reply = await unlink({"workspaceId": WS, "incident": {"id": TICKETED}})
    assert (reply.status, reply.body["attempts"]) == (200, 3)
    assert len(sandbox.contraforce.state.effects) == 1


async def test_connection_reset_and_html_502_are_retried(sandbox: Sandboxes) -> None:
    fail_next(sandbox.contraforce, Fault.of(FaultKind.RESET), Fault.of(FaultKind.BAD_GATEWAY_HTML))
    reply = await unlink({"workspaceId": WS, "incident": {"id": TICKETED}})
    assert (reply.status, reply.body["attempts"]) == (200, 3)


async def test_upstream_outage_is_503_with_retry_after_naming_the_upstream(
    sandbox: Sandboxes,
) -> None:
    fail_next(sandbox.contraforce, *[Fault(FaultKind.UNAVAILABLE, retry_after=7)] * 10)
    reply = await unlink({"workspaceId": WS, "incident": {"id": TICKETED}})
    assert (reply.status, reply.body["code"], reply.body["upstream"]) == (
        503,
        "UPSTREAM_UNAVAILABLE",
        "contraforce",
    )
    assert reply.headers["retry-after"] == "7"
    assert sandbox.contraforce.gate.counters.action_requests == 4
    assert sandbox.contraforce.state.effects == []


async def test_upstream_4xx_passes_through_as_problem_with_its_code_and_request_id(
    sandbox: Sandboxes,
) -> None:
    reply = await unlink({"workspaceId": WS, "incident": {"id": "missing"}})
    assert (reply.status, reply.body["code"]) == (404, "NOT_FOUND")
    assert reply.body["requestId"]
    assert sandbox.contraforce.gate.counters.action_requests == 1


async def test_our_credentials_refused_upstream_is_502_with_a_clear_code(
    sandbox: Sandboxes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTRAFORCE_CLIENT_SECRET", "wrong-secret-value")
    reply = await unlink({"workspaceId": WS, "incident": {"id": TICKETED}})
    assert (reply.status, reply.body["code"], reply.body["upstreamStatus"]) == (
        502,
        "UPSTREAM_AUTH_REJECTED",
        401,
    )
    assert "wrong-secret-value" not in json.dumps(reply.body)


# ---- D3: mirror and canonical ----------------------------------------------------------------


async def test_d3_mirror_seed_request_answers_the_seed_partially_successful_body(
    sandbox: Sandboxes,
) -> None:
    reply = await call(D3_MIRROR, "d3/Command/RemoveLinkedIncidents", SEED["request"])
    assert (reply.status, reply.body) == (200, SEED["response_200"])
    assert sandbox.d3.state.links(DEMO_SITE, "20231025-130") == ["20231025-131"]


async def test_d3_mirror_fills_username_and_site_from_the_configured_defaults(
    sandbox: Sandboxes,
) -> None:
    body = {"CommandParams": SEED["request"]["CommandParams"]}
    reply = await call(D3_MIRROR, "d3/Command/RemoveLinkedIncidents", body)
    assert reply.body["returnData"]["Status"] == "Partially Successful"


async def test_d3_mirror_refused_credentials_are_502_with_d3s_error_member(
    sandbox: Sandboxes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("D3_API_KEY", "not-the-key")
    reply = await call(D3_MIRROR, "d3/Command/RemoveLinkedIncidents", SEED["request"])
    assert (reply.status, reply.body["code"]) == (502, "UPSTREAM_AUTH_REJECTED")
    assert "Invalid authentication key." in reply.body["Error"]


async def test_d3_partial_success_reports_each_incident_with_d3s_message(
    sandbox: Sandboxes,
) -> None:
    body = {"sourceIncident": "20231025-130", "linkedIncidents": ["20210127-198", "20210127-197"]}
    reply = await remove(body)
    assert (reply.status, reply.body["status"]) == (207, "partially_succeeded")
    assert [(i["target"], i["status"], i["message"]) for i in reply.body["items"]] == [
        (
            "20231025-130/20210127-198",
            "not_applied",
            "The source incident is not linked to this incident.",
        ),
        ("20231025-130/20210127-197", "succeeded", "link removed"),
    ]


async def test_d3_200_that_reports_an_error_is_409_with_d3s_message_never_a_success(
    sandbox: Sandboxes,
) -> None:
    reply = await remove({"sourceIncident": "19990101-001", "linkedIncidents": ["20231025-131"]})
    assert (reply.status, reply.body["code"]) == (409, "NOT_APPLIED")
    [item] = reply.body["outcome"]["items"]
    assert item["status"] == "not_applied"
    assert "19990101-001" in item["message"]


async def test_d3_all_removed_is_200(sandbox: Sandboxes) -> None:
    reply = await remove({"sourceIncident": "20231025-130", "linkedIncidents": ["20231025-131"]})
    assert (reply.status, reply.body["status"]) == (200, "succeeded")


async def test_d3_with_jwt_credentials_mints_a_token_the_simulator_accepts(
    sandbox: Sandboxes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("D3_API_KEY_HEADER")
    monkeypatch.delenv("D3_API_KEY")
    monkeypatch.setenv("D3_JWT_SECRET", DEFAULT_JWT_SECRET)
    reply = await remove({"sourceIncident": "20231025-130", "linkedIncidents": ["20231025-131"]})
    assert reply.status == 200


async def test_d3_refusing_a_caller_chosen_user_is_the_callers_403_not_our_502(
    sandbox: Sandboxes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("D3_ALLOWED_IDENTITIES", f"intruder@{DEMO_SITE}")  # we allow, D3 refuses
    body = {
        "username": "intruder",
        "sourceIncident": "20231025-130",
        "linkedIncidents": ["20231025-131"],
    }
    reply = await remove(body)
    assert (reply.status, reply.body["code"]) == (403, "UPSTREAM_USER_REFUSED")
    assert "'intruder'" in reply.body["detail"]


async def test_d3_429_is_retried(sandbox: Sandboxes) -> None:
    fail_next(sandbox.d3, Fault.of(FaultKind.RATE_LIMITED), Fault.of(FaultKind.SERVER_ERROR))
    reply = await remove({"sourceIncident": "20231025-130", "linkedIncidents": ["20231025-131"]})
    assert (reply.status, reply.body["attempts"]) == (200, 3)


# ---- dry run -----------------------------------------------------------------------------------


async def test_dry_run_returns_the_exact_upstream_request_masked_and_sends_nothing(
    sandbox: Sandboxes,
) -> None:
    reply = await unlink(
        {"workspaceId": WS, "incident": {"id": TICKETED}}, params={"dryRun": "true"}
    )
    assert (reply.status, reply.body["status"], reply.body["dryRun"]) == (200, "planned", True)
    request = reply.body["items"][0]["request"]
    assert request["method"] == "POST"
    assert request["url"] == f"{sandbox.contraforce_url}/workspaces/{WS}/tickets/unlink"
    assert request["headers"]["Authorization"] == "Basic ***"
    assert request["body"] == {"incident": {"id": TICKETED, "workspaceId": WS}}
    assert "sandbox-secret" not in json.dumps(reply.body)
    assert sandbox.contraforce.gate.counters.action_requests == 0


async def test_d3_mirror_dry_run_masks_the_api_key(sandbox: Sandboxes) -> None:
    reply = await call(
        D3_MIRROR, "d3/Command/RemoveLinkedIncidents", SEED["request"], params={"dryRun": "1"}
    )
    request = reply.body["items"][0]["request"]
    assert request["body"] == SEED["request"]
    assert set(request["headers"].values()) >= {"***"}
    assert "sandbox-d3-key" not in json.dumps(reply.body)
    assert sandbox.d3.gate.counters.action_requests == 0


# ---- bad input and configuration -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "status", "field"),
    [
        ({"raw": b"{oops", "body": None}, 400, ""),
        ({"body": {"workspaceId": "abc", "incident": {"id": "1"}}}, 400, "workspaceId"),
        ({"body": {"workspaceId": WS}}, 400, "incident"),
        (
            {
                "body": {"workspaceId": WS, "incident": {"id": "1"}},
                "headers": {"Content-Type": "text/plain"},
            },
            415,
            "Content-Type",
        ),
        ({"body": {"items": [{"workspaceId": WS, "incident": {"id": "1"}}] * 101}}, 413, "items"),
    ],
)
async def test_bad_input_is_problem_json_naming_the_field(
    sandbox: Sandboxes, kwargs: dict[str, Any], status: int, field: str
) -> None:
    reply = await unlink(**kwargs)
    assert (reply.status, reply.media_type) == (status, "application/problem+json")
    assert field in reply.body["errors"]
    assert reply.body["status"] == status
    assert sandbox.contraforce.gate.counters.action_requests == 0


async def test_unknown_action_is_404_problem_listing_the_known_ones(sandbox: Sandboxes) -> None:
    reply = await call("unknown_action", "actions/relink", {}, route_params={"action": "relink"})
    assert (reply.status, reply.media_type, reply.body["code"]) == (
        404,
        "application/problem+json",
        "NOT_FOUND",
    )
    assert "unlink-ticket" in reply.body["detail"]


async def test_unconfigured_upstream_is_503_naming_the_setting(
    sandbox: Sandboxes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("D3_BASE_URL")
    reply = await remove({"sourceIncident": "1", "linkedIncidents": ["2"]})
    assert (reply.status, reply.body["code"], reply.body["settings"]) == (
        503,
        "NOT_CONFIGURED",
        ["D3_BASE_URL"],
    )


async def test_unresolved_key_vault_reference_is_named_never_shown(
    sandbox: Sandboxes, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/cf/)"
    monkeypatch.setenv("CONTRAFORCE_CLIENT_SECRET", reference)
    reply = await unlink({"workspaceId": WS, "incident": {"id": TICKETED}})
    assert (reply.status, reply.body["settings"]) == (503, ["CONTRAFORCE_CLIENT_SECRET"])
    assert "kv.vault" not in json.dumps(reply.body)
    health = await call("health", "health", method="GET")
    assert (health.status, health.body["settings"]) == (503, ["CONTRAFORCE_CLIENT_SECRET"])


async def test_health_reports_each_upstream(sandbox: Sandboxes) -> None:
    reply = await call("health", "health", method="GET")
    assert reply.status == 200
    assert reply.body["upstreams"]["contraforce"] == {"configured": True, "credential": "Basic"}
    assert reply.body["upstreams"]["d3"] == {"configured": True, "credential": "D3ApiKey"}


async def test_correlation_id_from_the_caller_is_returned_and_sent_upstream(
    sandbox: Sandboxes,
) -> None:
    reply = await unlink(
        {"workspaceId": WS, "incident": {"id": TICKETED}}, headers={"X-Correlation-Id": "case-123"}
    )
    assert reply.headers["x-correlation-id"] == "case-123"


async def test_correlation_id_falls_back_to_the_traceparent_trace_id(sandbox: Sandboxes) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    reply = await unlink(
        {"workspaceId": WS, "incident": {"id": TICKETED}}, headers={"traceparent": traceparent}
    )
    assert reply.headers["x-correlation-id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_every_action_logs_one_structured_line_and_never_a_secret(
    sandbox: Sandboxes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        reply = await unlink(
            {"workspaceId": WS, "incident": {"id": TICKETED}},
            headers={"X-Correlation-Id": "case-7"},
        )
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("action ")]
    operation, request_id = reply.body["operationId"], reply.body["upstream"]["requestId"]
    for part in (
        f"operation={operation}",
        "correlation=case-7",
        "caller=canonical",
        "action=unlink_ticket",
        "upstream=contraforce",
        "status=succeeded",
        "attempts=1",
        f"upstream_request_ids={request_id}",
        "duration_ms=",
    ):
        assert part in line
    assert "sandbox-secret" not in caplog.text
    assert "Basic " not in caplog.text


async def test_a_bulk_dry_run_shows_each_upstream_request_once_and_grows_with_its_request(
    sandbox: Sandboxes,
) -> None:
    """Issue 25 item 4: 100 items x 100 linked incidents answered 73 MB from a 685 KB request."""
    items = [
        {
            "sourceIncident": f"20231025-{source:03d}",
            "linkedIncidents": [f"20240101-{n:03d}" for n in range(40)],
        }
        for source in range(20)
    ]
    body = {"items": items}
    reply = await remove(body, params={"dryRun": "true"})
    assert (reply.status, reply.body["status"]) == (200, "planned")
    planned = reply.body["items"]
    assert len(planned) == 20 * 40  # one item per incident, as a real run answers
    shown = [item["request"] for item in planned if item.get("request")]
    assert len(shown) == 20  # one upstream request per command, shown once
    assert all(
        item["message"].startswith("planned: in the same upstream request as")
        for item in planned
        if not item.get("request")
    )
    assert len(json.dumps(reply.body)) < 20 * len(json.dumps(body))
    assert sandbox.d3.gate.counters.action_requests == 0
