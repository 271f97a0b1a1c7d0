"""Fixtures every test gets: a clean environment, fresh settings and fresh upstream clients."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from local.azurite import Azurite, start_azurite
from local.sandbox import contraforce as cf_sandbox
from local.sandbox import d3 as d3_sandbox
from local.sandbox.settings import contraforce_settings, d3_settings
from local.server import serve_in_thread
from shared import storage, telemetry
from shared.clients import registry
from shared.config import Settings, reset_settings

DATA = Path(__file__).parent / "data"
# Settings shared.telemetry reads (not app Settings): a machine's values must not leak in.
TELEMETRY_SETTINGS = (
    telemetry.CONNECTION_STRING_SETTING,
    telemetry.OTLP_SETTING,
    telemetry.CONSOLE_SETTING,
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No setting leaks in from the machine or from another test."""
    for name, field in Settings.model_fields.items():
        monkeypatch.delenv(field.alias or name.upper(), raising=False)
    for name in TELEMETRY_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    reset_settings()
    registry.reset()
    storage.reset()
    telemetry.reset_telemetry()
    yield
    reset_settings()
    registry.reset()
    storage.reset()
    telemetry.reset_telemetry()


@dataclass(frozen=True)
class Exported:
    """What the app's telemetry exported during a test: finished spans and metrics."""

    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def points(self, name: str) -> list[tuple[dict[str, Any], float]]:
        """(attributes, value) of every data point of metric `name`; a histogram's value is
        its count."""
        data = self.metrics.get_metrics_data()
        found: list[tuple[dict[str, Any], float]] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        value = point.value if isinstance(point, NumberDataPoint) else point.count
                        found.append((dict(point.attributes or {}), value))
        return found

    def total(self, name: str, **attributes: Any) -> float:
        return sum(
            value
            for found, value in self.points(name)
            if all(found.get(key) == wanted for key, wanted in attributes.items())
        )


@pytest.fixture
def exported() -> Iterator[Exported]:
    """The app's spans and metrics go to memory (OpenTelemetry SDK) for this test."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry.use_providers(tracer_provider, meter_provider)
    yield Exported(spans, reader)
    telemetry.reset_telemetry()
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    """Clients built during a test are closed on the test's own event loop."""
    yield
    await registry.aclose()
    await storage.aclose()


@dataclass(frozen=True)
class Sandboxes:
    """The simulators, served on loopback, and the app settings that point at them."""

    contraforce: cf_sandbox.ContraForceSimulator
    d3: d3_sandbox.D3Simulator
    settings: dict[str, str]

    @property
    def contraforce_url(self) -> str:
        return self.settings["CONTRAFORCE_BASE_URL"]


@pytest.fixture(scope="session")
def sandboxes() -> Iterator[Sandboxes]:
    cf_app = cf_sandbox.create_app()
    d3_sim = d3_sandbox.D3Simulator()
    with serve_in_thread(cf_app) as cf_server, serve_in_thread(d3_sim.app) as d3_server:
        yield Sandboxes(
            contraforce=cf_sandbox.simulator_of(cf_app),
            d3=d3_sim,
            settings={
                **contraforce_settings(cf_server.base_url),
                **d3_settings(d3_server.base_url, d3_sim),
            },
        )


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """Azurite, the Azure Storage emulator, on free loopback ports for the whole session."""
    with start_azurite() as running:
        yield running


def load_json(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


@pytest.fixture
def d3_samples() -> dict[str, Any]:
    samples: dict[str, Any] = load_json("d3-remove-linked-incidents.samples.json")
    return samples
