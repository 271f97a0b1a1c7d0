"""What an operator sees in Application Insights, exported to memory instead: the spans and
metrics of real calls through the registered handlers, against the simulators over loopback."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from azure.monitor.opentelemetry.exporter.export.logs._exporter import _convert_log_to_envelope
from azure.monitor.opentelemetry.exporter.export.metrics._exporter import (
    _convert_point_to_envelope,
)
from azure.monitor.opentelemetry.exporter.export.trace._exporter import _convert_span_to_envelope
from opentelemetry import trace
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags

from local.sandbox.contraforce_state import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_WORKSPACE_ID
from local.sandbox.d3 import DEFAULT_API_KEY
from local.sandbox.faults import Fault, FaultKind, FaultPlan
from shared import telemetry
from tests.conftest import Exported, Sandboxes
from tests.functions.conftest import Reply, call
from tests.functions.test_durable import UNLINK, Queues, queues
from tests.infra.kql import Described, Read, describe, shipped_queries

__all__ = ["queues"]  # a fixture of test_durable's, used here

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


# ---- what the exporter really sends feeds the workbook and the alerts --------------------------
#
# The spans, metrics and log records of one call of each kind go through the installed Azure
# Monitor exporter's own conversion (azure-monitor-opentelemetry-exporter, the version
# requirements.txt pins: `_convert_span_to_envelope`, `_convert_point_to_envelope`,
# `_convert_log_to_envelope`, the functions its `export` sends with), nothing sent anywhere.
# Each envelope becomes the row Log Analytics stores, as Microsoft documents the mapping (the
# classic field of each envelope field, and its workspace column:
# https://learn.microsoft.com/azure/azure-monitor/app/convert-classic-resource#table-schemas,
# https://learn.microsoft.com/azure/azure-monitor/app/data-model-complete). Then every shipped
# query's `==`/`in` filters must match a row and every Properties key it reads must be there.

TABLE_OF_BASE_TYPE = {
    "RequestData": "AppRequests",
    "RemoteDependencyData": "AppDependencies",
    "MetricData": "AppMetrics",
    "MessageData": "AppTraces",
    "ExceptionData": "AppExceptions",
}
Row = dict[str, Any]


def _tags(envelope: Any) -> dict[str, str]:
    return {str(getattr(key, "value", key)): value for key, value in (envelope.tags or {}).items()}


def rows_of(envelope: Any) -> tuple[str, list[Row]]:
    """The table and the row(s) Log Analytics keeps for one exporter envelope."""
    base_type = envelope.data.base_type
    data = envelope.data.base_data
    table = TABLE_OF_BASE_TYPE[base_type]
    tags = _tags(envelope)
    common: Row = {
        "Type": table,  # every workspace table's Type column holds the table's name
        "TimeGenerated": envelope.time,
        "OperationId": tags.get("ai.operation.id"),
        "ParentId": tags.get("ai.operation.parentId"),
        "OperationName": tags.get("ai.operation.name"),
        "AppRoleName": tags.get("ai.cloud.role"),
        "AppRoleInstance": tags.get("ai.cloud.roleInstance"),
        "SDKVersion": tags.get("ai.internal.sdkVersion"),
        "Properties": dict(data.properties or {}),
    }
    if base_type == "MetricData":
        return table, [
            {
                **common,
                "Name": point.name,
                "Sum": point.value,
                "ItemCount": point.count,
                "Min": point.min,
                "Max": point.max,
            }
            for point in data.metrics
        ]
    common |= {"ItemCount": 1, "Measurements": dict(getattr(data, "measurements", None) or {})}
    if base_type == "RequestData":
        row = {"Name": data.name, "Id": data.id, "ResultCode": data.response_code}
        row |= {"Success": data.success, "Url": data.url, "Source": data.source}
    elif base_type == "RemoteDependencyData":
        row = {"Name": data.name, "Id": data.id, "ResultCode": data.result_code}
        row |= {"Success": data.success, "DependencyType": data.type, "Target": data.target}
        row |= {"Data": data.data}
    elif base_type == "MessageData":
        row = {"Message": data.message, "SeverityLevel": data.severity_level}
    else:
        [details] = data.exceptions
        row = {"ExceptionType": details.type_name, "OuterMessage": details.message}
    return table, [{**common, **row}]


@dataclass
class Field:
    """Every row the exporter's records make, by table."""

    rows: dict[str, list[Row]]

    @classmethod
    def of(cls, exported: Exported, logs: InMemoryLogRecordExporter) -> Field:
        envelopes = [_convert_span_to_envelope(s) for s in exported.spans.get_finished_spans()]
        data = exported.metrics.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    envelopes += [
                        _convert_point_to_envelope(point, metric.name, resource.resource)
                        for point in metric.data.data_points
                    ]
        envelopes += [_convert_log_to_envelope(record) for record in logs.get_finished_logs()]
        rows: dict[str, list[Row]] = {}
        for envelope in envelopes:
            table, found = rows_of(envelope)
            rows.setdefault(table, []).extend(found)
        return cls(rows)

    def unfed(self, where: str, described: Described) -> list[str]:
        """What `where` reads or filters on that no row holds."""
        fed = [table for table in described.tables if table in self.rows]
        if not fed:
            return []  # not the exporter's table (StorageQueueLogs, the classic names)

        def candidates(read: Read) -> list[Row]:
            tables = [read.table] if read.table is not None else fed
            return [row for table in tables for row in self.rows.get(table, [])]

        def value(row: Row, read: Read) -> Any:
            found = row.get(read.column)
            return (
                found.get(read.key) if read.key is not None and isinstance(found, dict) else found
            )

        problems = sorted(
            {
                f"{where} reads {read.column}[{read.key!r}], which no record has"
                for read in described.reads
                if read.key is not None
                and not any(value(r, read) is not None for r in candidates(read))
            }
        )
        for found in described.filters:
            if not any(str(value(r, found.read)) in found.values for r in candidates(found.read)):
                column = found.read.column + (f"[{found.read.key!r}]" if found.read.key else "")
                shown = sorted({str(value(r, found.read)) for r in candidates(found.read)})[:8]
                problems.append(
                    f"{where} keeps {column} in {found.values}; the records have {shown}"
                )
        return problems


@pytest.fixture
def logs() -> Iterator[InMemoryLogRecordExporter]:
    """The app's log records (INFO and up) go to memory through the logging handler the
    distro installs for AppTraces (opentelemetry-instrumentation-logging's)."""
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = LoggingHandler(level=logging.INFO, logger_provider=provider)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield exporter
    root.removeHandler(handler)
    root.setLevel(level)
    provider.shutdown()


@contextmanager
def under_the_functions_host() -> Iterator[None]:
    """As in Azure: the host's request span is current when the handler runs."""
    host = SpanContext(
        int(TRACE_ID, 16),
        int(CALLER_SPAN_ID, 16),
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    with trace.use_span(NonRecordingSpan(host)):
        yield


async def one_call_of_each_kind(sandbox: Sandboxes, queues: Queues) -> None:
    """Sync success (locally and under the host), upstream 5xx, 429 retry, a queued run,
    poison, and an upstream refusing our credential (D3 with a wrong key)."""
    assert (await unlink_through_the_mirror()).status == 200
    with under_the_functions_host():
        sandbox.contraforce.faults = FaultPlan(script=[Fault.of(FaultKind.RATE_LIMITED)])
        assert (await unlink_through_the_mirror()).status == 200
        sandbox.contraforce.faults = FaultPlan(script=[Fault.of(FaultKind.UNAVAILABLE)] * 10)
        failed = await call(
            "unlink_ticket", UNLINK, {"workspaceId": WS, "incident": {"id": TICKETED}}
        )
        assert failed.status == 503
        refused = await call(
            "remove_linked_incidents",
            "actions/remove-linked-incidents",
            {"sourceIncident": "20231025-130", "linkedIncidents": ["20231025-131"]},
        )
        assert refused.status == 502  # D3 refused our key: our 502
    sandbox.contraforce.faults = FaultPlan()
    body = {"workspaceId": WS, "incident": {"id": TICKETED}}
    queued = await call("unlink_ticket", UNLINK, body, headers={"Prefer": "respond-async"})
    assert queued.status == 202
    await queues.drain()
    sandbox.contraforce.faults = FaultPlan(script=[Fault.of(FaultKind.UNAVAILABLE)] * 100)
    await call(
        "unlink_ticket",
        UNLINK,
        body,
        headers={"Prefer": "respond-async", "Idempotency-Key": "poisoned"},
    )
    await queues.drain()
    assert await queues.visible(queues.poison) != []


async def test_every_shipped_query_reads_and_filters_on_what_the_exporter_really_sends(
    sandbox: Sandboxes,
    queues: Queues,
    exported: Exported,
    logs: InMemoryLogRecordExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("D3_API_KEY", "not-the-key-d3-expects")
    await one_call_of_each_kind(sandbox, queues)
    field = Field.of(exported, logs)
    assert {"AppRequests", "AppDependencies", "AppMetrics", "AppTraces"} <= set(field.rows)
    compiled = describe(shipped_queries())
    problems = [problem for where, d in compiled.items() for problem in field.unfed(where, d)]
    assert not problems, "\n".join(problems)


async def test_a_query_on_a_dropped_attribute_or_the_table_name_is_reported_unfed(
    sandbox: Sandboxes, exported: Exported, logs: InMemoryLogRecordExporter
) -> None:
    with under_the_functions_host():
        await unlink_through_the_mirror()
    field = Field.of(exported, logs)
    compiled = describe(
        {
            "type is the table's name": 'AppDependencies | where Type == "HTTP"',
            "http.* never reaches Properties": (
                'AppDependencies | where isnotempty(Properties["http.route"])'
            ),
            "what the exporter sends": (
                'AppDependencies | where DependencyType == "HTTP" and Target == "contraforce"'
                ' | where isnotempty(Properties["ila.upstream.attempt"])'
            ),
        }
    )
    unfed = {where: field.unfed(where, described) for where, described in compiled.items()}
    assert unfed["what the exporter sends"] == []
    assert len(unfed["type is the table's name"]) == 1
    assert unfed["http.* never reaches Properties"] == [
        "http.* never reaches Properties reads Properties['http.route'], which no record has"
    ]
