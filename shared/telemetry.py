"""Traces and metrics (OpenTelemetry), set up on first use and never at import.

Where they go is decided once, on first use, from the environment:
- a tracer provider is already set (in Azure the Functions Python worker configures the Azure
  Monitor distro itself when PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true): use it;
- APPLICATIONINSIGHTS_CONNECTION_STRING: `configure_azure_monitor()`, httpx left alone;
- OTEL_EXPORTER_OTLP_ENDPOINT (the standard variable): OTLP over HTTP to a collector;
- OTEL_TRACES_CONSOLE=true: spans printed to the console (`make run`);
- otherwise OpenTelemetry's no-op API: nothing is recorded.

What is recorded (one place, so the names stay one each):
- `http_server_span`: a server span per HTTP call, the caller's W3C `traceparent` its parent
  (INTERNAL instead when the Functions host already reports the request and its context is
  current, so Application Insights does not count each request twice);
- `upstream_attempt`: a dependency (CLIENT) span per upstream attempt, named after the upstream,
  with its status, attempt number, the upstream's request id and `Retry-After`; it writes the
  attempt's `traceparent` into the outgoing headers. Transport-independent: it takes the method,
  the URL and a mutable header mapping;
- metrics: actions by action and status; upstream attempts, retries and 429s by upstream;
  queue age and poisoned operations; rate-budget (pacing) waits;
- `queue_span`: a span per queued run, linked to the span of the call that queued the work,
  whose `traceparent` the queue message carries (`creation_context`).

Never a body, a query string, userinfo or any header other than those named here.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager, nullcontext
from functools import cache, lru_cache
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:  # imported lazily at run time: they cost ~50 ms of a cold start
    from opentelemetry.metrics import Counter, Histogram, MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

logger = logging.getLogger(__name__)

NAME = "incident-link-actions"
CONSOLE_SETTING = "OTEL_TRACES_CONSOLE"
OTLP_SETTING = "OTEL_EXPORTER_OTLP_ENDPOINT"
CONNECTION_STRING_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
# The distro instruments these by default; our own spans cover the upstream calls (one per
# attempt), and an httpx span under each would be a second dependency for the same call.
NOT_INSTRUMENTED = ("httpx", "httpx2", "requests", "urllib", "urllib3")

# Span attributes: OpenTelemetry's HTTP semantic conventions where one exists, ours otherwise.
# The Azure Monitor exporter keeps no `http.*`, `url.*`, `peer.*` (and other standard) attribute
# in a record's Properties (`_is_standard_attribute` in azure-monitor-opentelemetry-exporter's
# trace exporter): it maps some to columns of a request or an HTTP dependency and drops the rest.
# In Azure the app's span of a call is an in-process child of the host's request, where none of
# them reach a column, so the route and the status are also recorded in our own namespace.
ROUTE = "ila.route"
STATUS_CODE = "ila.status_code"
ATTEMPT = "ila.upstream.attempt"
REQUEST_ID = "ila.upstream.request_id"
RETRY_AFTER = "ila.upstream.retry_after"
OPERATION_ID = "ila.operation_id"
CORRELATION_ID = "ila.correlation_id"
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-ms-request-id")
MAX_HEADER_VALUE = 128
UNANSWERED = "unanswered"

QUEUE_AGE_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
RATE_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10)


class _Instruments(NamedTuple):
    tracer: Tracer
    tracing: bool  # False: OpenTelemetry's no-op API; spans are skipped, not built and dropped
    actions: Counter
    upstream_attempts: Counter
    upstream_retries: Counter
    upstream_throttled: Counter
    queue_age: Histogram
    poisoned: Counter
    rate_wait: Histogram


_lock = threading.Lock()
_instruments: _Instruments | None = None


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _configure_exporters() -> None:
    """Give OpenTelemetry somewhere to send data, unless something already did."""
    from opentelemetry import trace  # noqa: PLC0415 - lazy: keeps cold start cheap

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return  # the Functions worker (or a host, or a test) set it up already
    if os.environ.get(CONNECTION_STRING_SETTING):
        from azure.monitor.opentelemetry import configure_azure_monitor  # noqa: PLC0415

        configure_azure_monitor(
            instrumentation_options={name: {"enabled": False} for name in NOT_INSTRUMENTED}
        )
        logger.info("telemetry: Azure Monitor (Application Insights)")
        return
    if os.environ.get(OTLP_SETTING) or _truthy(CONSOLE_SETTING):
        _configure_sdk(otlp=bool(os.environ.get(OTLP_SETTING)))


def _configure_sdk(*, otlp: bool) -> None:
    """Locally: OTLP over HTTP to a collector, or spans printed to the console."""
    from opentelemetry import metrics, trace  # noqa: PLC0415
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider  # noqa: PLC0415
    from opentelemetry.sdk.metrics.export import (  # noqa: PLC0415
        MetricReader,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", NAME)})
    tracer_provider = SdkTracerProvider(resource=resource)
    readers: list[MetricReader] = []
    if otlp:
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # noqa: PLC0415
                OTLPMetricExporter,
            )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter,
            )
        except ImportError:
            logger.warning(
                "telemetry: %s is set but opentelemetry-exporter-otlp-proto-http is not "
                "installed (requirements-dev.txt has it); nothing is exported",
                OTLP_SETTING,
            )
            return
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        logger.info("telemetry: OTLP to %s", redacted_url(os.environ[OTLP_SETTING]))
    else:
        tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        logger.info("telemetry: spans printed to the console (%s)", CONSOLE_SETTING)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(SdkMeterProvider(resource=resource, metric_readers=readers))


def _build(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> _Instruments:
    from opentelemetry import trace  # noqa: PLC0415

    meter = meter_provider.get_meter(NAME)
    return _Instruments(
        tracer=tracer_provider.get_tracer(NAME),
        # Nothing set a provider (no exporter configured): every span would be a no-op.
        tracing=not isinstance(tracer_provider, trace.ProxyTracerProvider),
        actions=meter.create_counter(
            "ila.actions", unit="{action}", description="Actions finished, by action and status"
        ),
        upstream_attempts=meter.create_counter(
            "ila.upstream.attempts",
            unit="{attempt}",
            description="Requests sent to an upstream (every attempt), by upstream and outcome",
        ),
        upstream_retries=meter.create_counter(
            "ila.upstream.retries",
            unit="{attempt}",
            description="Attempts that repeat an earlier failed one, by upstream",
        ),
        upstream_throttled=meter.create_counter(
            "ila.upstream.throttled",
            unit="{response}",
            description="HTTP 429 answers, by upstream",
        ),
        queue_age=meter.create_histogram(
            "ila.queue.age",
            unit="s",
            description="Time from an operation's acceptance to a queue worker running it",
            explicit_bucket_boundaries_advisory=QUEUE_AGE_BUCKETS,
        ),
        poisoned=meter.create_counter(
            "ila.operations.poisoned",
            unit="{operation}",
            description="Operations moved to the poison queue",
        ),
        rate_wait=meter.create_histogram(
            "ila.upstream.rate_wait",
            unit="s",
            description="Time a request waited for the upstream's rate budget (pacing)",
            explicit_bucket_boundaries_advisory=RATE_WAIT_BUCKETS,
        ),
    )


def _get() -> _Instruments:
    global _instruments  # built once per process, on first use
    found = _instruments
    if found is not None:
        return found
    with _lock:
        if _instruments is None:
            from opentelemetry import metrics, trace  # noqa: PLC0415

            _configure_exporters()
            _instruments = _build(trace.get_tracer_provider(), metrics.get_meter_provider())
        return _instruments


def use_providers(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
    """Record to these providers instead of the global ones (tests)."""
    global _instruments
    with _lock:
        _instruments = _build(tracer_provider, meter_provider)


def reset_telemetry() -> None:
    """Forget the instruments; the next use sets them up again (tests)."""
    global _instruments
    with _lock:
        _instruments = None


# ---- spans ------------------------------------------------------------------------------------


def _clip(value: str | None) -> str | None:
    if value is None:
        return None
    text = "".join(ch for ch in value.strip() if ch.isprintable())
    return text[:MAX_HEADER_VALUE] or None


@lru_cache(maxsize=256)  # a client sends to few URLs (one per route and workspace)
def redacted_url(url: str) -> str:
    """`url` without userinfo, query or fragment: what a span or a log line may carry."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class ServerSpan:
    """The span of one HTTP call; the edge says how it was answered. (Plain classes here, not
    dataclasses: this module is imported at cold start.)"""

    __slots__ = ("span",)

    def __init__(self, span: Span) -> None:
        self.span = span

    def answered(self, status: int, *, operation_id: str, correlation_id: str) -> None:
        self.span.set_attribute("http.response.status_code", status)
        self.span.set_attribute(STATUS_CODE, status)
        self.span.set_attribute(OPERATION_ID, operation_id)
        self.span.set_attribute(CORRELATION_ID, correlation_id)
        if status >= 500:  # a server's 4xx is not its error (semconv)
            _failed(self.span, str(status))


@cache
def _w3c() -> TraceContextTextMapPropagator:
    """W3C Trace Context (`traceparent`, `tracestate`): how a trace crosses a call or a queue."""
    from opentelemetry.trace.propagation.tracecontext import (  # noqa: PLC0415
        TraceContextTextMapPropagator,
    )

    return TraceContextTextMapPropagator()


@contextmanager
def http_server_span(
    method: str, route: str, headers: Mapping[str, str], *, path: str
) -> Iterator[ServerSpan]:
    """A server span for one HTTP call. `route` is the path with its parameters as
    `{name}` (low cardinality); `headers` are searched for `traceparent`/`tracestate` only."""
    from opentelemetry import trace  # noqa: PLC0415

    tools = _get()
    if not tools.tracing:
        yield ServerSpan(trace.INVALID_SPAN)
        return
    hosted = trace.get_current_span().get_span_context().is_valid
    if hosted:  # the Functions worker attached the host's context: the host has the request
        context = None
        kind = trace.SpanKind.INTERNAL
    else:
        carrier = {
            name: value
            for name in ("traceparent", "tracestate")
            if (value := headers.get(name)) is not None
        }
        context = _w3c().extract(carrier)
        kind = trace.SpanKind.SERVER
    with tools.tracer.start_as_current_span(
        f"{method} {route}",
        context=context,
        kind=kind,
        attributes={
            "http.request.method": method,
            "http.route": route,
            "url.path": path,
            ROUTE: route,
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield ServerSpan(span)


def creation_context() -> str | None:
    """The current span's W3C `traceparent`, for a queue message to carry to the run it
    starts; None when nothing is traced."""
    tools = _get()
    if not tools.tracing:
        return None
    carrier: dict[str, str] = {}
    _w3c().inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def queue_span(
    operation_id: str, *, dequeue_count: int, traceparent: str | None = None
) -> Iterator[None]:
    """A consumer span for one queued run, so its upstream attempts have a parent (INTERNAL
    under the Functions host's own span when that is current). It links to the span that
    queued the work (`traceparent`, the message's creation context) when that is usable."""
    from opentelemetry import trace  # noqa: PLC0415

    tools = _get()
    hosted = trace.get_current_span().get_span_context().is_valid
    links = []
    if traceparent is not None:
        created = trace.get_current_span(
            _w3c().extract({"traceparent": traceparent})
        ).get_span_context()
        if created.is_valid:
            links.append(trace.Link(created))
    with tools.tracer.start_as_current_span(
        "process operation",
        kind=trace.SpanKind.INTERNAL if hosted else trace.SpanKind.CONSUMER,
        links=links,
        attributes={
            "messaging.system": "azure_storage_queue",
            "messaging.operation.type": "process",
            OPERATION_ID: operation_id,
            "ila.dequeue_count": dequeue_count,
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield
        except BaseException as exc:
            _failed(span, type(exc).__name__)
            raise


class AttemptSpan:
    """The span of one upstream attempt; the sender says what came back."""

    __slots__ = ("outcome", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.outcome = UNANSWERED  # the status answered, or the error's type

    def answered(self, status: int, headers: Mapping[str, str]) -> None:
        self.outcome = str(status)
        if not self.span.is_recording():  # tracing off: nothing would keep the attributes
            return
        self.span.set_attribute("http.response.status_code", status)
        request_id = _clip(next((headers[h] for h in REQUEST_ID_HEADERS if h in headers), None))
        if request_id:
            self.span.set_attribute(REQUEST_ID, request_id)
        retry_after = _clip(headers.get("retry-after"))
        if retry_after:
            self.span.set_attribute(RETRY_AFTER, retry_after)
        if status >= 400:  # a client's 4xx is an error (semconv)
            _failed(self.span, str(status))

    def failed(self, error_type: str) -> None:
        """No answer: a timeout or a transport error (its type name, never its message)."""
        self.outcome = error_type
        _failed(self.span, error_type)


def _failed(span: Span, error_type: str) -> None:
    """Mark `span` failed with an exception's type name: never its message, which may quote
    a URL or a header."""
    from opentelemetry.trace import Status, StatusCode  # noqa: PLC0415

    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR))


@contextmanager
def upstream_attempt(
    upstream: str, *, method: str, url: str, headers: MutableMapping[str, str], number: int
) -> Iterator[AttemptSpan]:
    """A dependency span around one attempt; writes its `traceparent` into `headers`."""
    from opentelemetry import trace  # noqa: PLC0415

    tools = _get()
    with (
        _attempt_span(tools, upstream, method=method, url=url, headers=headers, number=number)
        if tools.tracing
        else nullcontext(trace.INVALID_SPAN)
    ) as span:
        attempt = AttemptSpan(span)
        try:
            yield attempt
        except BaseException as exc:
            if attempt.outcome == UNANSWERED:  # not a status or transport error told above
                attempt.failed(type(exc).__name__)
            raise
        finally:
            tools.upstream_attempts.add(1, {"upstream": upstream, "outcome": attempt.outcome})
            if number > 1:
                tools.upstream_retries.add(1, {"upstream": upstream})
            if attempt.outcome == "429":
                tools.upstream_throttled.add(1, {"upstream": upstream})


@contextmanager
def _attempt_span(
    tools: _Instruments,
    upstream: str,
    *,
    method: str,
    url: str,
    headers: MutableMapping[str, str],
    number: int,
) -> Iterator[Span]:
    """The attempt's CLIENT span, current, its `traceparent` written into `headers`."""
    from opentelemetry import trace  # noqa: PLC0415

    attributes: dict[str, str | int] = {
        "peer.service": upstream,
        "http.request.method": method,
        "url.full": redacted_url(url),
        ATTEMPT: number,
    }
    if number > 1:
        attributes["http.request.resend_count"] = number - 1
    with tools.tracer.start_as_current_span(
        upstream,
        kind=trace.SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        _w3c().inject(headers)
        yield span


# ---- metrics ----------------------------------------------------------------------------------


def record_action(action: str, status: str, *, caller: str) -> None:
    """One finished action (an operation, or a direct call) and how it ended."""
    _get().actions.add(1, {"action": action, "status": status, "caller": caller})


def record_queue_age(seconds: float) -> None:
    """How long an operation waited between acceptance and a queue worker running it."""
    _get().queue_age.record(max(0.0, seconds))


def record_poisoned(reason: str) -> None:
    _get().poisoned.add(1, {"reason": reason})


def record_rate_wait(upstream: str, seconds: float) -> None:
    """How long one request waited for the upstream's rate budget."""
    _get().rate_wait.record(max(0.0, seconds), {"upstream": upstream})
