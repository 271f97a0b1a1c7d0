"""Fixtures every test gets: a clean environment, fresh settings and fresh upstream clients."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local.azurite import Azurite, start_azurite
from local.sandbox import contraforce as cf_sandbox
from local.sandbox import d3 as d3_sandbox
from local.sandbox.settings import contraforce_settings, d3_settings
from local.server import serve_in_thread
from shared import storage
from shared.clients import registry
from shared.config import Settings, reset_settings

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No setting leaks in from the machine or from another test."""
    for name, field in Settings.model_fields.items():
        monkeypatch.delenv(field.alias or name.upper(), raising=False)
    reset_settings()
    registry.reset()
    storage.reset()
    yield
    reset_settings()
    registry.reset()
    storage.reset()


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
