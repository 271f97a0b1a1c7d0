"""Function tests: the real handlers from `app.get_functions()`, called with real
`func.HttpRequest` objects, against the sandbox simulators over loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import azure.functions as func
import pytest
from azure.functions.decorators.function_app import Function

from function_app import app
from local.sandbox import contraforce as cf_sandbox
from local.sandbox import d3 as d3_sandbox
from local.sandbox.contraforce_state import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from local.sandbox.d3_state import DEMO_SITE, DEMO_USERNAME
from local.server import RunningServer, serve_in_thread


@dataclass(frozen=True)
class Sandboxes:
    contraforce: cf_sandbox.ContraForceSimulator
    d3: d3_sandbox.D3Simulator
    contraforce_url: str
    d3_url: str


@pytest.fixture(scope="session")
def sandboxes() -> Iterator[Sandboxes]:
    cf_app = cf_sandbox.create_app()
    d3_sim = d3_sandbox.D3Simulator()
    with serve_in_thread(cf_app) as cf_server, serve_in_thread(d3_sim.app) as d3_server:
        yield Sandboxes(
            contraforce=cf_sandbox.simulator_of(cf_app),
            d3=d3_sim,
            contraforce_url=f"{_url(cf_server)}/api/v2",
            d3_url=f"{_url(d3_server)}{d3_sim.api_path}",
        )


def _url(server: RunningServer) -> str:
    return server.base_url.rstrip("/")


@pytest.fixture
def sandbox(sandboxes: Sandboxes, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandboxes]:
    """Fresh demo state, no faults, and app settings pointing at the simulators."""
    sandboxes.contraforce.reset()
    sandboxes.d3.reset()
    settings = {
        "CONTRAFORCE_BASE_URL": sandboxes.contraforce_url,
        "CONTRAFORCE_CLIENT_ID": DEMO_CLIENT_ID,
        "CONTRAFORCE_CLIENT_SECRET": DEMO_CLIENT_SECRET,
        "D3_BASE_URL": sandboxes.d3_url,
        "D3_API_KEY_HEADER": d3_sandbox.DEFAULT_API_KEY_HEADER,
        "D3_API_KEY": d3_sandbox.DEFAULT_API_KEY,
        "D3_DEFAULT_USERNAME": DEMO_USERNAME,
        "D3_DEFAULT_SITE": DEMO_SITE,
        # Real retries, short waits: Retry-After is honored up to this cap.
        "RETRY_ATTEMPTS": "4",
        "RETRY_INITIAL_WAIT_SECONDS": "0.01",
        "RETRY_MAX_WAIT_SECONDS": "0.05",
        "RETRY_AFTER_CAP_SECONDS": "0.05",
        "RETRY_BUDGET_SECONDS": "10",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    yield sandboxes
    sandboxes.contraforce.reset()
    sandboxes.d3.reset()


@dataclass(frozen=True)
class Reply:
    status: int
    media_type: str
    headers: dict[str, str]
    body: Any


@cache
def registered() -> dict[str, Function]:
    """The app's functions, indexed once: `FunctionApp.get_functions()` refuses a second call
    on the same app (it re-validates names against those it has already seen)."""
    app.functions_bindings = None  # the local host may have indexed this app already
    return {str(function.get_function_name()): function for function in app.get_functions()}


def handler(name: str) -> Any:
    return registered()[name].get_user_function()


async def call(
    name: str,
    path: str,
    body: Any = None,
    *,
    method: str = "POST",
    route_params: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> Reply:
    """Call a registered function the way the Functions host does."""
    content = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    request = func.HttpRequest(
        method=method,
        url=f"http://localhost:7071/api/{path}",
        headers={"Content-Type": "application/json", **(headers or {})},
        params=params or {},
        route_params=route_params or {},
        body=content,
    )
    response: func.HttpResponse = await handler(name)(request)
    payload = response.get_body()
    return Reply(
        response.status_code,
        response.mimetype,
        {k.lower(): v for k, v in response.headers.items()},
        json.loads(payload) if payload else None,
    )
