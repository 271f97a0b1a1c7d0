"""The app served for fuzzing: the local host over real HTTP, the simulators and Azurite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from function_app import app
from local.azurite import Azurite
from local.host import LocalHost
from local.server import serve_in_thread
from shared import storage
from shared.clients import registry
from tests.conftest import Sandboxes

KEY = "fuzz-function-key"


@pytest.fixture
def base_url(
    sandboxes: Sandboxes, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The served app's `/api` URL; its function key is `KEY`."""
    for name, value in {
        **sandboxes.settings,
        "AzureWebJobsStorage": azurite.connection_string,
        "CONTRAFORCE_WEBHOOK_SECRETS": "fuzz-webhook-secret",
        "RETRY_ATTEMPTS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    host = LocalHost(
        app, host_json={}, function_key=KEY, on_shutdown=[registry.aclose, storage.aclose]
    )
    with serve_in_thread(host.asgi, lifespan="on") as server:
        yield f"{server.base_url}/api"
