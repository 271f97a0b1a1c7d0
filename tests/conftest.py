"""Fixtures every test gets: a clean environment, fresh settings and fresh upstream clients."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from local.azurite import Azurite, start_azurite
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
