"""Function tests: the real handlers from `app.get_functions()`, called with real
`func.HttpRequest` objects, against the sandbox simulators over loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlencode

import azure.functions as func
import pytest
from azure.functions.decorators.function_app import Function

from function_app import app
from local.sandbox.settings import FAST_RETRIES
from tests.conftest import Sandboxes


@pytest.fixture
def sandbox(sandboxes: Sandboxes, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandboxes]:
    """Fresh demo state, no faults, and app settings pointing at the simulators."""
    sandboxes.contraforce.reset()
    sandboxes.d3.reset()
    for name, value in {**sandboxes.settings, **FAST_RETRIES, "RETRY_BUDGET_SECONDS": "10"}.items():
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
        url=f"http://localhost:7071/api/{path}" + (f"?{urlencode(params)}" if params else ""),
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
