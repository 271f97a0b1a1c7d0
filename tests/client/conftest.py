"""The app as `make run` serves it (`python -m local` in its own process) against the
simulators and Azurite, for the client and `ila` tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.azurite import Azurite
from local.sandbox.settings import FAST_RETRIES
from tests.conftest import Sandboxes
from tests.e2e.conftest import Stack, start_host


@pytest.fixture(scope="session")
def app_host(azurite: Azurite, sandboxes: Sandboxes) -> Iterator[Stack]:
    settings = {
        **sandboxes.settings,
        **FAST_RETRIES,
        "AzureWebJobsStorage": azurite.connection_string,
    }
    host = start_host(settings)
    try:
        yield Stack(host.base_url, sandboxes.contraforce, sandboxes.d3, settings)
    finally:
        host.stop()


@pytest.fixture
def app(app_host: Stack) -> Iterator[Stack]:
    """The served app, its simulators reset before and after the test."""
    app_host.contraforce.reset()
    app_host.d3.reset()
    yield app_host
    app_host.contraforce.reset()
    app_host.d3.reset()
