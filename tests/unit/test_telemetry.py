"""shared.telemetry on its own: one attempt's span and headers (httpx.MockTransport), where
telemetry goes, and what a cold start does not pay for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import context, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags

from shared import telemetry
from shared.clients.http import ResilientHttp, RetryPolicy
from shared.errors import UpstreamUnavailable
from shared.web import route_of
from tests.conftest import Exported

ROOT = Path(__file__).resolve().parents[2]
FAST = RetryPolicy(attempts=3, initial_wait_seconds=0.0, max_wait_seconds=0.0)


def sender(handler: Any, *, base_url: str = "https://upstream.test/api") -> ResilientHttp:
    return ResilientHttp(
        upstream="d3",
        base_url=base_url,
        auth=httpx.BasicAuth("user", "hunter2"),
        policy=FAST,
        timeout=httpx.Timeout(5.0),
        rate_limit_per_second=1000,
        transport=httpx.MockTransport(handler),
    )


def answers(*responses: httpx.Response) -> tuple[Any, list[dict[str, str]]]:
    """A transport answering `responses` in turn, and the headers of each request as sent
    (the retried request is one object: its headers change from attempt to attempt)."""
    seen: list[dict[str, str]] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.headers))
        return queue.pop(0)

    return handler, seen


async def test_each_attempt_sends_its_own_spans_traceparent_upstream(exported: Exported) -> None:
    handler, seen = answers(httpx.Response(503), httpx.Response(502), httpx.Response(200))
    http = sender(handler)
    try:
        await http.send(http.build("POST", "Command/X", json={}))
    finally:
        await http.aclose()
    spans = exported.spans.get_finished_spans()
    sent = [headers["traceparent"].split("-")[1:3] for headers in seen]
    expected = [
        [f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"]
        for span in spans
        if span.context is not None
    ]
    assert sent == expected
    assert len(expected) == 3


async def test_an_attempt_without_an_answer_names_the_error_type_only(exported: Exported) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url} (Authorization: Basic secret)")

    http = sender(refuse)
    try:
        with pytest.raises(UpstreamUnavailable):
            await http.send(http.build("POST", "Command/X", json={}))
    finally:
        await http.aclose()
    spans = exported.spans.get_finished_spans()
    assert [(span.attributes or {}).get("error.type") for span in spans] == ["ConnectError"] * 3
    assert all(span.status.status_code is StatusCode.ERROR for span in spans)
    assert all(not span.status.description and not span.events for span in spans)
    assert exported.total("ila.upstream.attempts", outcome="ConnectError") == 3


async def test_the_dependency_url_has_no_query_and_no_userinfo(exported: Exported) -> None:
    handler, _ = answers(httpx.Response(200))
    http = sender(handler, base_url="https://someone:pa55@upstream.test:8443/api/")
    try:
        await http.send(http.build("POST", "Command/X?token=abc", json={}))
    finally:
        await http.aclose()
    [span] = exported.spans.get_finished_spans()
    assert (span.attributes or {})["url.full"] == "https://upstream.test:8443/api/Command/X"


async def test_an_upstream_401_is_a_failed_dependency_with_its_status(exported: Exported) -> None:
    handler, _ = answers(httpx.Response(401, headers={"X-Request-Id": "r-1\x00\n" + "x" * 500}))
    http = sender(handler)
    try:
        delivered = await http.send(http.build("POST", "Command/X", json={}))
    finally:
        await http.aclose()
    assert delivered.response.status_code == 401
    [span] = exported.spans.get_finished_spans()
    attributes = span.attributes or {}
    assert (attributes["http.response.status_code"], span.status.status_code) == (
        401,
        StatusCode.ERROR,
    )
    assert attributes[telemetry.REQUEST_ID] == ("r-1" + "x" * 500)[: telemetry.MAX_HEADER_VALUE]


def test_when_the_functions_host_reports_the_request_the_edges_span_is_internal_under_it(
    exported: Exported,
) -> None:
    host = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1))
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(host)))
    try:
        with telemetry.http_server_span("GET", "/api/health", {}, path="/api/health") as span:
            span.answered(200, operation_id="o", correlation_id="c")
    finally:
        context.detach(token)
    [finished] = exported.spans.get_finished_spans()
    assert finished.kind is SpanKind.INTERNAL
    assert finished.parent is not None
    assert finished.parent.span_id == 0xDEF


@pytest.mark.parametrize(
    ("path", "params", "expected"),
    [
        (
            "/api/contraforce/workspaces/abc/tickets/unlink",
            {"workspaceId": "abc"},
            "/api/contraforce/workspaces/{workspaceId}/tickets/unlink",
        ),
        ("/api/operations/op-1", {"operationId": "op-1"}, "/api/operations/{operationId}"),
        ("/api/actions/api", {"action": "api"}, "/api/actions/{action}"),
        ("/api/health", {}, "/api/health"),
        ("/api/operations/", {"operationId": ""}, "/api/operations/"),
    ],
)
def test_route_of_names_parameter_segments(
    path: str, params: dict[str, str], expected: str
) -> None:
    assert route_of(path, params) == expected


@pytest.fixture
def no_provider_yet(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The global tracer provider is unset, and configure_azure_monitor only records calls."""
    import azure.monitor.opentelemetry as distro  # noqa: PLC0415 - heavy; only this test

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(trace, "get_tracer_provider", trace.ProxyTracerProvider)
    monkeypatch.setattr(distro, "configure_azure_monitor", lambda **kw: calls.append(kw))
    return calls


def test_a_connection_string_configures_azure_monitor_without_instrumenting_httpx(
    no_provider_yet: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(telemetry.CONNECTION_STRING_SETTING, "InstrumentationKey=x")
    telemetry.record_poisoned("test")
    [options] = no_provider_yet
    assert options["instrumentation_options"]["httpx"] == {"enabled": False}


def test_without_a_destination_nothing_is_configured(
    no_provider_yet: list[dict[str, Any]],
) -> None:
    telemetry.record_poisoned("test")
    assert no_provider_yet == []


async def test_without_a_destination_an_attempt_builds_no_span_and_sends_no_traceparent(
    no_provider_yet: list[dict[str, Any]],
) -> None:
    """Tracing off (OpenTelemetry's no-op API): the attempt is still sent and told its
    answer, but no span is started and no `traceparent` goes upstream."""
    handler, seen = answers(httpx.Response(503), httpx.Response(200))
    http = sender(handler)
    try:
        delivered = await http.send(http.build("POST", "Command/X", json={}))
    finally:
        await http.aclose()
    assert (delivered.response.status_code, delivered.attempts) == (200, 2)
    assert all("traceparent" not in headers for headers in seen)
    assert not telemetry._get().tracing


def test_a_provider_set_by_the_functions_worker_is_used_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import azure.monitor.opentelemetry as distro  # noqa: PLC0415

    calls: list[object] = []
    monkeypatch.setattr(distro, "configure_azure_monitor", lambda **kw: calls.append(kw))
    monkeypatch.setattr(trace, "get_tracer_provider", trace.NoOpTracerProvider)
    monkeypatch.setenv(telemetry.CONNECTION_STRING_SETTING, "InstrumentationKey=x")
    telemetry.record_poisoned("test")
    assert calls == []


@pytest.mark.parametrize(
    "traceparent",
    [None, "", "garbage", "00-00000000000000000000000000000000-0000000000000000-01", "x" * 10_000],
)
def test_a_queued_run_without_a_usable_creation_context_has_no_link_and_still_runs(
    exported: Exported, traceparent: str | None
) -> None:
    with telemetry.queue_span("op-1", dequeue_count=1, traceparent=traceparent):
        pass
    [run] = exported.spans.get_finished_spans()
    assert (run.name, run.kind, run.links) == ("process operation", SpanKind.CONSUMER, ())


def test_with_nothing_traced_a_queue_message_is_what_it_was_before_it_carried_a_traceparent() -> (
    None
):
    """Workers of the previous version read the messages of this one during a rollout."""
    from shared.durable.work import QueuedWork  # noqa: PLC0415 - the storage path, loaded on use

    assert telemetry.creation_context() is None
    assert (
        QueuedWork("op-1", telemetry.creation_context()).to_message() == '{"operationId": "op-1"}'
    )
    assert QueuedWork.from_message('{"operationId": "op-1"}') == QueuedWork("op-1")
    assert QueuedWork.from_message('{"operationId": "op-1", "traceparent": 7}') == QueuedWork(
        "op-1"
    )
