"""The app served for fuzzing: the local host over real HTTP, the simulators and Azurite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings

from function_app import app
from local.azurite import Azurite
from local.host import LocalHost
from local.server import serve_in_thread
from shared import storage
from shared.clients import registry
from tests.conftest import Sandboxes

KEY = "fuzz-function-key"

T = TypeVar("T", bound=Callable[..., Any])


def fuzz_settings(max_examples: int) -> Callable[[T], T]:
    """Hypothesis settings of every schemathesis test here: reproducible, no deadline, and the
    health checks a served app with a function-scoped fixture would trip."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
        ],
    )


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
