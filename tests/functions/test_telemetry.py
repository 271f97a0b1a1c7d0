"""What an operator sees in Application Insights, exported to memory instead: the spans and
metrics of real calls through the registered handlers, against the simulators over loopback."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from local.sandbox.contraforce_state import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_WORKSPACE_ID
from local.sandbox.d3 import DEFAULT_API_KEY
from local.sandbox.faults import Fault, FaultKind, FaultPlan
from shared import telemetry
from tests.conftest import Exported, Sandboxes
from tests.functions.conftest import Reply, call

WS = str(DEMO_WORKSPACE_ID)
TICKETED = "6d1f0c2a-4e4b-4b8f-9d55-0a3c1b2e7f10"  # incident #1001, linked to ServiceNow
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"
FUNCTION_KEY = "function-key-that-must-not-leak"
WEBHOOK_SECRET = "webhook-secret-that-must-not-leak"


def two_retries(sim: Any) -> None:
    """A 429 (Retry-After: 1), then a 503, then the simulator answers normally."""
    sim.faults = FaultPlan(
        script=[Fault.of(FaultKind.RATE_LIMITED), Fault(FaultKind.UNAVAILABLE, retry_after=2)]
    )


async def unlink_through_the_mirror(headers: dict[str, str] | None = None) -> Reply:
    return await call(
        "contraforce_unlink_ticket",
        f"contraforce/workspaces/{WS}/tickets/unlink",
        {"incident": {"id": TICKETED, "source": "Sentinel"}},
        route_params={"workspaceId": WS},
        params={"code": FUNCTION_KEY},
        headers=headers,
    )


def of_kind(exported: Exported, kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in exported.spans.get_finished_spans() if span.kind is kind]


async def test_one_action_with_two_retries_is_one_server_span_over_three_dependency_spans(
    sandbox: Sandboxes, exported: Exported
) -> None:
    two_retries(sandbox.contraforce)
    reply = await unlink_through_the_mirror({"traceparent": TRACEPARENT})
    assert reply.status == 200

    [server] = of_kind(exported, SpanKind.SERVER)
    attempts = sorted(
        of_kind(exported, SpanKind.CLIENT),
        key=lambda span: str((span.attributes or {})[telemetry.ATTEMPT]),
    )
    assert len(attempts) == 3
    assert server.name == "POST /api/contraforce/workspaces/{workspaceId}/tickets/unlink"
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes[telemetry.OPERATION_ID] == reply.headers["x-operation-id"]
    assert server.context is not None
    for span in attempts:
        assert span.name == "contraforce"
        assert span.parent is not None
        assert span.parent.span_id == server.context.span_id
        assert span.context is not None
        assert span.context.trace_id == server.context.trace_id
    shown = [
        {
            key: (span.attributes or {}).get(key)
            for key in (
                telemetry.ATTEMPT,
                "http.response.status_code",
                telemetry.RETRY_AFTER,
                "peer.service",
            )
        }
        for span in attempts
    ]
    assert shown == [
        {telemetry.ATTEMPT: 1, "http.response.status_code": 429, telemetry.RETRY_AFTER: "1"}
        | {"peer.service": "contraforce"},
        {telemetry.ATTEMPT: 2, "http.response.status_code": 503, telemetry.RETRY_AFTER: "2"}
        | {"peer.service": "contraforce"},
        {telemetry.ATTEMPT: 3, "http.response.status_code": 200, telemetry.RETRY_AFTER: None}
        | {"peer.service": "contraforce"},
    ]
    request_ids = [(span.attributes or {}).get(telemetry.REQUEST_ID) for span in attempts]
    assert all(request_ids)  # the simulator answers X-Request-Id, faults included
    assert len(set(request_ids)) == 3
    assert request_ids[-1] == reply.body["meta"]["requestId"]
    assert [span.status.status_code for span in attempts] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]


async def test_the_callers_traceparent_is_the_parent_of_the_server_span(
    sandbox: Sandboxes, exported: Exported
) -> None:
    await unlink_through_the_mirror({"traceparent": TRACEPARENT})
    [server] = of_kind(exported, SpanKind.SERVER)
    assert server.parent is not None
    assert server.context is not None
    assert (format(server.context.trace_id, "032x"), format(server.parent.span_id, "016x")) == (
        TRACE_ID,
        CALLER_SPAN_ID,
    )
    assert server.parent.is_remote


@pytest.mark.parametrize(
    "traceparent",
    ["", "garbage", f"00-{'0' * 32}-{CALLER_SPAN_ID}-01", f"00-{TRACE_ID}-{'0' * 16}-01"],
)
async def test_without_a_usable_traceparent_the_server_span_starts_a_trace(
    sandbox: Sandboxes, exported: Exported, traceparent: str
) -> None:
    await unlink_through_the_mirror({"traceparent": traceparent})
    [server] = of_kind(exported, SpanKind.SERVER)
    assert server.parent is None


async def test_attempts_retries_429s_actions_and_pacing_waits_are_counted(
    sandbox: Sandboxes, exported: Exported
) -> None:
    two_retries(sandbox.contraforce)
    await unlink_through_the_mirror()
    assert exported.total("ila.upstream.attempts", upstream="contraforce") == 3
    assert [
        exported.total("ila.upstream.attempts", upstream="contraforce", outcome=outcome)
        for outcome in ("429", "503", "200")
    ] == [1, 1, 1]
    assert exported.total("ila.upstream.retries", upstream="contraforce") == 2
    assert exported.total("ila.upstream.throttled", upstream="contraforce") == 1
    assert exported.total("ila.actions", action="unlink_ticket", status="succeeded") == 1
    assert exported.total("ila.upstream.rate_wait", upstream="contraforce") == 3


async def test_a_failed_action_counts_as_failed_and_its_server_span_is_an_error(
    sandbox: Sandboxes, exported: Exported
) -> None:
    sandbox.contraforce.faults = FaultPlan(script=[Fault.of(FaultKind.UNAVAILABLE)] * 10)
    reply = await call(
        "unlink_ticket",
        "actions/unlink-ticket",
        {"workspaceId": WS, "incident": {"id": TICKETED}},
    )
    assert reply.status == 503
    [server] = of_kind(exported, SpanKind.SERVER)
    assert server.status.status_code is StatusCode.ERROR
    assert exported.total("ila.actions", action="unlink_ticket", status="failed") == 1


def exported_text(exported: Exported, caplog: pytest.LogCaptureFixture) -> str:
    """Every span (name, attributes, events, links, resource), every metric point and every
    log record (its message and its attributes), as one text to search."""
    spans = [span.to_json() for span in exported.spans.get_finished_spans()]
    data = exported.metrics.get_metrics_data()
    metrics = data.to_json() if data else ""
    logs = [
        json.dumps({"message": record.getMessage(), **vars(record)}, default=str)
        for record in caplog.records
    ]
    return "\n".join([*spans, metrics, *logs])


async def test_no_secret_appears_in_any_exported_span_metric_or_log(
    sandbox: Sandboxes,
    exported: Exported,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONTRAFORCE_WEBHOOK_SECRETS", WEBHOOK_SECRET)
    caplog.set_level(logging.DEBUG)
    two_retries(sandbox.contraforce)
    two_retries(sandbox.d3)
    await unlink_through_the_mirror({"traceparent": TRACEPARENT})
    await call(
        "remove_linked_incidents",
        "actions/remove-linked-incidents",
        {"sourceIncident": "20231025-130", "linkedIncidents": ["20231025-131"]},
        params={"code": FUNCTION_KEY},
    )
    await call("contraforce_webhook", "webhooks/contraforce", {"eventType": "x"})
    text = exported_text(exported, caplog)
    assert len(of_kind(exported, SpanKind.CLIENT)) == 6  # both upstreams were called
    basic = base64.b64encode(f"{DEMO_CLIENT_ID}:{DEMO_CLIENT_SECRET}".encode()).decode()
    for secret in (
        DEMO_CLIENT_SECRET,
        basic,  # the Authorization header sent to ContraForce
        DEFAULT_API_KEY,  # the API key header sent to D3
        FUNCTION_KEY,  # the caller's ?code=
        WEBHOOK_SECRET,
    ):
        assert secret not in text
    assert "?" not in "".join(
        str((span.attributes or {}).get("url.full")) for span in of_kind(exported, SpanKind.CLIENT)
    )
