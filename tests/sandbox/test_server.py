"""`serve_in_thread`: a real uvicorn server on a free loopback port, stopped cleanly."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from local.server import ServerStartError, serve_in_thread


async def hello(_: Request) -> Response:
    return PlainTextResponse("hello")


def make_app() -> Starlette:
    return Starlette(routes=[Route("/", hello)])


def test_server_answers_on_a_free_port_given_as_base_url() -> None:
    with serve_in_thread(make_app()) as server:
        assert server.port > 0
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        response = httpx.get(server.base_url + "/")
    assert response.text == "hello"


def test_stop_ends_the_thread_and_closes_the_port() -> None:
    server = serve_in_thread(make_app())
    server.stop()
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.base_url + "/")


def test_lifespan_on_runs_startup_before_returning_and_shutdown_on_stop() -> None:
    events: list[str] = []
    started = threading.Event()

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        started.set()
        yield
        events.append("shutdown")

    app = Starlette(routes=[Route("/", hello)], lifespan=lifespan)
    with serve_in_thread(app, lifespan="on"):
        assert started.is_set()
        assert events == ["startup"]
    assert events == ["startup", "shutdown"]


def test_failing_lifespan_startup_raises_server_start_error() -> None:
    async def fail() -> None:
        raise RuntimeError("boom")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await fail()
        yield

    app = Starlette(routes=[Route("/", hello)], lifespan=lifespan)
    with pytest.raises(ServerStartError):
        serve_in_thread(app, lifespan="on")
