"""The local host serves any v2-model FunctionApp as the Azure Functions host would."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import AsyncIterator, Mapping, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import azure.functions as func
import httpx
import pytest
import uvicorn

from local.host import HttpRoute, LocalHost, UnsupportedBindingError, load_host_json
from local.routing import RouteTemplateError

FUNCTION_KEY = "function-key-for-tests"
MASTER_KEY = "master-key-for-tests"
KEY = {"x-functions-key": FUNCTION_KEY}


def make_app(*blueprints: func.Blueprint) -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    for blueprint in blueprints:
        app.register_functions(blueprint)
    return app


@asynccontextmanager
async def serve(
    app: func.FunctionApp,
    *,
    host_json: Mapping[str, Any] | None = None,
    master_key: str | None = MASTER_KEY,
) -> AsyncIterator[httpx.AsyncClient]:
    host = LocalHost(
        app, host_json=host_json or {}, function_key=FUNCTION_KEY, master_key=master_key
    )
    transport = httpx.ASGITransport(app=host.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def named(text: str) -> func.HttpResponse:
    return func.HttpResponse(text, status_code=200)


def echo_blueprint(route: str, *, methods: list[str] | None = None) -> func.Blueprint:
    bp = func.Blueprint()

    @bp.route(route=route, methods=methods, auth_level=func.AuthLevel.ANONYMOUS)
    async def echo(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(json.dumps(dict(req.route_params)), mimetype="application/json")

    return bp


# --------------------------------------------------------------------------- discovery


async def test_function_added_to_blueprint_is_served_without_host_changes() -> None:
    bp = func.Blueprint()

    @bp.route(route="first", auth_level=func.AuthLevel.ANONYMOUS)
    async def first(req: func.HttpRequest) -> func.HttpResponse:
        return named("first")

    @bp.route(route="second", methods=["POST"])
    async def second(req: func.HttpRequest) -> func.HttpResponse:
        return named("second")

    app = make_app(bp)
    host = LocalHost(app, host_json={}, function_key=FUNCTION_KEY)
    assert host.http_routes == (
        HttpRoute("first", "first", "/api/first", None, func.AuthLevel.ANONYMOUS),
        HttpRoute("second", "second", "/api/second", ("POST",), func.AuthLevel.FUNCTION),
    )
    async with serve(app) as client:
        assert (await client.get("/api/first")).text == "first"
        assert (await client.post("/api/second", headers=KEY)).text == "second"


async def test_route_defaults_to_the_function_name() -> None:
    bp = func.Blueprint()

    @bp.function_name("Renamed")
    @bp.route(auth_level=func.AuthLevel.ANONYMOUS)
    async def handler(req: func.HttpRequest) -> func.HttpResponse:
        return named("renamed")

    async with serve(make_app(bp)) as client:
        assert (await client.get("/api/Renamed")).text == "renamed"


def test_queue_trigger_functions_are_collected_for_later_and_not_served() -> None:
    bp = func.Blueprint()

    @bp.queue_trigger(arg_name="msg", queue_name="work-items", connection="Storage")
    def consume(msg: func.QueueMessage) -> None:
        del msg

    host = LocalHost(make_app(bp), host_json={}, function_key=FUNCTION_KEY)
    assert host.http_routes == ()
    [queued] = host.queue_functions
    assert (queued.function_name, queued.queue_name, queued.connection, queued.arg_name) == (
        "consume",
        "work-items",
        "Storage",
        "msg",
    )
    assert queued.handler.__name__ == "consume"


def test_http_function_with_a_binding_the_host_cannot_provide_is_refused_at_start() -> None:
    bp = func.Blueprint()

    @bp.route(route="enqueue")
    @bp.queue_output(arg_name="out", queue_name="q", connection="Storage")
    async def enqueue(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
        return named("never")

    with pytest.raises(UnsupportedBindingError, match="queue"):
        LocalHost(make_app(bp), host_json={}, function_key=FUNCTION_KEY)


def test_empty_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="function_key must not be empty"):
        LocalHost(make_app(), host_json={}, function_key="")
    with pytest.raises(ValueError, match="master_key must not be empty"):
        LocalHost(make_app(), host_json={}, function_key="k", master_key="")


def test_load_host_json_reads_the_object(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    path.write_text('{"version": "2.0", "extensions": {"http": {"routePrefix": "x"}}}')
    assert load_host_json(path)["extensions"]["http"]["routePrefix"] == "x"
    path.write_text("[]")
    with pytest.raises(TypeError, match="JSON object"):
        load_host_json(path)


# --------------------------------------------------------------------------- request conversion


async def test_route_params_query_raw_body_and_headers_reach_the_handler() -> None:
    seen: list[func.HttpRequest] = []
    bp = func.Blueprint()

    @bp.route(route="items/{item_id}/notes/{note}", methods=["POST"])
    async def note(req: func.HttpRequest) -> func.HttpResponse:
        seen.append(req)
        return named("ok")

    body = b"\x00\xffnot json \xe2\x9c\x93"
    async with serve(make_app(bp)) as client:
        response = await client.post(
            "/api/items/A%20b/notes/42",
            params=[("q", "1"), ("q", "2"), ("blank", ""), ("code", FUNCTION_KEY)],
            headers=[("X-Custom", "one"), ("x-custom", "two"), ("Content-Type", "text/x")],
            content=body,
        )
    assert response.status_code == 200
    [req] = seen
    assert req.method == "POST"
    assert (
        req.url == f"http://testserver/api/items/A%20b/notes/42?q=1&q=2&blank=&code={FUNCTION_KEY}"
    )
    assert dict(req.route_params) == {"item_id": "A b", "note": "42"}
    # Repeated values joined by ",", blank values dropped, "code" kept: as the Functions host.
    assert dict(req.params) == {"q": "1,2", "code": FUNCTION_KEY}
    assert req.get_body() == body
    assert req.headers["x-custom"] == "one,two"
    assert req.headers["Content-Type"] == "text/x"
    assert isinstance(req, func.HttpRequest)


async def test_json_body_is_readable_with_get_json() -> None:
    bp = func.Blueprint()

    @bp.route(route="json", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    async def echo(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(json.dumps(req.get_json()), mimetype="application/json")

    async with serve(make_app(bp)) as client:
        response = await client.post("/api/json", json={"ticket": 7})
    assert response.json() == {"ticket": 7}


def test_a_handler_asking_for_context_is_refused_at_start() -> None:
    bp = func.Blueprint()

    @bp.route(route="ctx", auth_level=func.AuthLevel.ANONYMOUS)
    async def ctx(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        return named(context.function_name)

    with pytest.raises(UnsupportedBindingError, match="context"):
        LocalHost(make_app(bp), host_json={}, function_key=FUNCTION_KEY)


def test_a_named_http_output_binding_is_refused_at_start() -> None:
    bp = func.Blueprint()

    @bp.route(route="out", binding_arg_name="res", auth_level=func.AuthLevel.ANONYMOUS)
    def out(req: func.HttpRequest, res: func.Out[func.HttpResponse]) -> None:
        res.set(func.HttpResponse("via out", status_code=202))

    with pytest.raises(UnsupportedBindingError, match="res"):
        LocalHost(make_app(bp), host_json={}, function_key=FUNCTION_KEY)


def test_a_queue_function_with_an_output_binding_is_refused_at_start() -> None:
    bp = func.Blueprint()

    @bp.queue_trigger(arg_name="msg", queue_name="in", connection="Storage")
    @bp.queue_output(arg_name="out", queue_name="next", connection="Storage")
    def forward(msg: func.QueueMessage, out: func.Out[str]) -> None:
        out.set(msg.get_body().decode())

    with pytest.raises(UnsupportedBindingError, match="forward"):
        LocalHost(make_app(bp), host_json={}, function_key=FUNCTION_KEY)


# --------------------------------------------------------------------------- route prefix


async def test_routes_are_served_under_the_default_api_prefix() -> None:
    async with serve(make_app(echo_blueprint("ping"))) as client:
        assert (await client.get("/api/ping")).status_code == 200
        assert (await client.get("/ping")).status_code == 404


async def test_custom_route_prefix_from_host_json_is_used() -> None:
    host_json = {"extensions": {"http": {"routePrefix": "/v1/fn/"}}}
    async with serve(make_app(echo_blueprint("ping")), host_json=host_json) as client:
        assert (await client.get("/v1/fn/ping")).status_code == 200
        assert (await client.get("/api/ping")).status_code == 404


async def test_empty_route_prefix_serves_routes_at_the_root() -> None:
    host_json = {"extensions": {"http": {"routePrefix": ""}}}
    async with serve(make_app(echo_blueprint("ping")), host_json=host_json) as client:
        assert (await client.get("/ping")).status_code == 200
        assert (await client.get("/api/ping")).status_code == 404


# --------------------------------------------------------------------------- matching


@pytest.mark.parametrize("literal_first", [True, False])
async def test_literal_route_beats_parameter_route_whatever_the_registration_order(
    literal_first: bool,
) -> None:
    literal, parameter = func.Blueprint(), func.Blueprint()

    @literal.route(route="actions/unlink-ticket", methods=["POST"])
    async def unlink(req: func.HttpRequest) -> func.HttpResponse:
        return named("literal")

    @parameter.route(route="actions/{action}", methods=["POST"])
    async def generic(req: func.HttpRequest) -> func.HttpResponse:
        return named(f"parameter {req.route_params['action']}")

    order = (literal, parameter) if literal_first else (parameter, literal)
    async with serve(make_app(*order)) as client:
        assert (await client.post("/api/actions/unlink-ticket", headers=KEY)).text == "literal"
        assert (await client.post("/api/actions/other", headers=KEY)).text == "parameter other"


async def test_route_matching_ignores_case_but_values_keep_theirs() -> None:
    async with serve(make_app(echo_blueprint("Items/{name}"))) as client:
        response = await client.get("/API/items/MiXeD/")
    assert response.json() == {"name": "MiXeD"}


async def test_an_encoded_slash_stays_inside_its_parameter() -> None:
    async with serve(make_app(echo_blueprint("items/{name}"))) as client:
        response = await client.get("/api/items/a%2Fb%20c")
    assert response.json() == {"name": "a/b c"}


@pytest.mark.parametrize("route", ["things/{id:int}", "files/{*path}", "reports/{year?}"])
def test_a_route_outside_the_served_grammar_is_refused_at_start(route: str) -> None:
    with pytest.raises(RouteTemplateError, match="neither a literal nor"):
        LocalHost(make_app(echo_blueprint(route)), host_json={}, function_key=FUNCTION_KEY)


async def test_unknown_route_is_404_with_empty_body() -> None:
    async with serve(make_app(echo_blueprint("known"))) as client:
        response = await client.get("/api/unknown")
    assert (response.status_code, response.content) == (404, b"")


async def test_wrong_method_on_a_known_route_is_405_with_allow() -> None:
    async with serve(make_app(echo_blueprint("known", methods=["GET", "POST"]))) as client:
        response = await client.delete("/api/known")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


async def test_same_route_with_different_methods_reaches_each_function() -> None:
    bp = func.Blueprint()

    @bp.route(route="things", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    async def list_things(req: func.HttpRequest) -> func.HttpResponse:
        return named("list")

    @bp.route(route="things", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    async def add_thing(req: func.HttpRequest) -> func.HttpResponse:
        return named("add")

    async with serve(make_app(bp)) as client:
        assert (await client.get("/api/things")).text == "list"
        assert (await client.post("/api/things")).text == "add"
        refused = await client.delete("/api/things")
    assert (refused.status_code, refused.headers["allow"]) == (405, "GET, POST")


# --------------------------------------------------------------------------- keys


def keyed_app(level: func.AuthLevel, calls: list[str]) -> func.FunctionApp:
    bp = func.Blueprint()

    @bp.route(route="guarded", methods=["POST"], auth_level=level)
    async def guarded(req: func.HttpRequest) -> func.HttpResponse:
        calls.append("called")
        return named("in")

    return make_app(bp)


@pytest.mark.parametrize(
    ("headers", "params", "status"),
    [
        pytest.param({}, {}, 401, id="no-key"),
        pytest.param({"x-functions-key": "wrong"}, {}, 401, id="wrong-header-key"),
        pytest.param({}, {"code": "wrong"}, 401, id="wrong-code-key"),
        pytest.param({"x-functions-key": ""}, {}, 401, id="empty-header-key"),
        pytest.param({"X-Functions-Key": FUNCTION_KEY}, {}, 200, id="header-key"),
        pytest.param({}, {"code": FUNCTION_KEY}, 200, id="code-query-key"),
        pytest.param({"x-functions-key": MASTER_KEY}, {}, 200, id="master-key"),
        pytest.param(
            {"x-functions-key": "wrong"}, {"code": FUNCTION_KEY}, 401, id="header-wins-over-code"
        ),
    ],
)
async def test_function_route_requires_the_function_or_master_key(
    headers: dict[str, str], params: dict[str, str], status: int
) -> None:
    calls: list[str] = []
    async with serve(keyed_app(func.AuthLevel.FUNCTION, calls)) as client:
        response = await client.post("/api/guarded", headers=headers, params=params)
    assert response.status_code == status
    assert calls == (["called"] if status == 200 else [])
    if status == 401:
        assert response.content == b""


async def test_anonymous_route_is_open() -> None:
    calls: list[str] = []
    async with serve(keyed_app(func.AuthLevel.ANONYMOUS, calls)) as client:
        assert (await client.post("/api/guarded")).status_code == 200


@pytest.mark.parametrize(
    ("master_key", "sent", "status"),
    [
        pytest.param(MASTER_KEY, MASTER_KEY, 200, id="master-key"),
        pytest.param(MASTER_KEY, FUNCTION_KEY, 401, id="function-key-not-enough"),
        pytest.param(MASTER_KEY, None, 401, id="no-key"),
        pytest.param(None, FUNCTION_KEY, 401, id="no-master-key-configured"),
    ],
)
async def test_admin_route_requires_the_master_key(
    master_key: str | None, sent: str | None, status: int
) -> None:
    calls: list[str] = []
    headers = {} if sent is None else {"x-functions-key": sent}
    async with serve(keyed_app(func.AuthLevel.ADMIN, calls), master_key=master_key) as client:
        assert (await client.post("/api/guarded", headers=headers)).status_code == status


# --------------------------------------------------------------------------- invocation


async def test_sync_handler_runs_off_the_event_loop_thread() -> None:
    threads: list[threading.Thread] = []
    bp = func.Blueprint()

    @bp.route(route="sync", auth_level=func.AuthLevel.ANONYMOUS)
    def sync(req: func.HttpRequest) -> func.HttpResponse:
        threads.append(threading.current_thread())
        return named(f"sync {req.params['x']}")

    async with serve(make_app(bp)) as client:
        response = await client.get("/api/sync", params={"x": "1"})
    assert response.text == "sync 1"
    assert threads
    assert threads != [threading.current_thread()]


async def test_handler_exception_is_an_empty_500_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bp = func.Blueprint()

    @bp.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
    async def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("kaboom")

    with caplog.at_level(logging.ERROR, logger="local.host"):
        async with serve(make_app(bp)) as client:
            response = await client.get("/api/boom")
    assert (response.status_code, response.content) == (500, b"")
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert "boom" in record.getMessage()


async def test_handler_returning_something_else_is_a_500() -> None:
    bp = func.Blueprint()

    @bp.route(route="wrong", auth_level=func.AuthLevel.ANONYMOUS)
    async def wrong(req: func.HttpRequest) -> object:
        return {"not": "a response"}

    async with serve(make_app(bp)) as client:
        assert (await client.get("/api/wrong")).status_code == 500


async def test_response_status_headers_and_content_type_are_preserved() -> None:
    bp = func.Blueprint()

    @bp.route(route="made", auth_level=func.AuthLevel.ANONYMOUS)
    async def made(req: func.HttpRequest) -> func.HttpResponse:
        response = func.HttpResponse(
            b'{"created": true}',
            status_code=201,
            headers={"Location": "/api/made/1", "X-Trace": "abc"},
            mimetype="application/problem+json",
        )
        response.headers.add_header("Set-Cookie", "a=1")
        response.headers.add_header("Set-Cookie", "b=2")
        return response

    @bp.route(route="text", auth_level=func.AuthLevel.ANONYMOUS)
    async def text(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("é", mimetype="text/html", charset="latin-1")

    @bp.route(route="explicit", auth_level=func.AuthLevel.ANONYMOUS)
    async def explicit(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("x", headers={"Content-Type": "application/custom"})

    @bp.route(route="plain", auth_level=func.AuthLevel.ANONYMOUS)
    async def plain(req: func.HttpRequest) -> str:
        return "just text"

    async with serve(make_app(bp)) as client:
        response = await client.get("/api/made")
        assert response.status_code == 201
        assert response.content == b'{"created": true}'
        assert response.headers["location"] == "/api/made/1"
        assert response.headers["x-trace"] == "abc"
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
        assert response.headers["content-length"] == str(len(response.content))

        response = await client.get("/api/text")
        assert response.headers["content-type"] == "text/html; charset=latin-1"
        assert response.content == "é".encode("latin-1")

        response = await client.get("/api/explicit")
        assert response.headers.get_list("content-type") == ["application/custom"]

        response = await client.get("/api/plain")
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert response.text == "just text"


async def test_each_request_logs_one_line_without_query_string_or_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []
    with caplog.at_level(logging.INFO, logger="local.host"):
        async with serve(keyed_app(func.AuthLevel.FUNCTION, calls)) as client:
            await client.post("/api/guarded", params={"code": FUNCTION_KEY, "x": "secret-ish"})
    [record] = [r for r in caplog.records if r.name == "local.host"]
    assert record.levelno == logging.INFO
    assert isinstance(record.args, tuple)
    assert record.args[:3] == ("POST", "/api/guarded", 200)
    message = record.getMessage()
    assert FUNCTION_KEY not in message
    assert "?" not in message
    assert message.endswith("ms")


async def test_lifespan_runs_the_startup_then_the_shutdown_hooks_and_completes() -> None:
    closed: list[str] = []

    async def start_queues() -> None:
        closed.append("started")

    async def close_clients() -> None:
        closed.append("clients")

    host = LocalHost(
        make_app(echo_blueprint("ping")),
        host_json={},
        function_key=FUNCTION_KEY,
        on_startup=[start_queues],
        on_shutdown=[close_clients],
    )
    incoming: list[dict[str, Any]] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message["type"])

    await host.asgi({"type": "lifespan"}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert closed == ["started", "clients"]


async def test_a_client_gone_before_its_body_arrives_gets_no_answer_and_logs_499(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []
    host = LocalHost(keyed_app(func.AuthLevel.ANONYMOUS, calls), host_json={}, function_key="k")
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/guarded",
        "raw_path": b"/api/guarded",
        "query_string": b"",
        "headers": [],
    }
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message["type"])

    with caplog.at_level(logging.INFO, logger="local.host"):
        await host.asgi(scope, receive, send)
    assert (sent, calls) == ([], [])
    [record] = [r for r in caplog.records if r.name == "local.host"]
    assert isinstance(record.args, tuple)
    assert record.args[:3] == ("POST", "/api/guarded", 499)


def test_uvicorn_detects_the_host_as_an_asgi3_app() -> None:
    host = LocalHost(make_app(echo_blueprint("ping")), host_json={}, function_key=FUNCTION_KEY)
    config = uvicorn.Config(host.asgi, lifespan="off", proxy_headers=False)
    config.load()
    assert config.loaded_app is host


async def test_no_content_response_has_no_body_or_length() -> None:
    bp = func.Blueprint()

    @bp.route(route="empty", auth_level=func.AuthLevel.ANONYMOUS)
    async def empty(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(status_code=204, headers={"X-Done": "yes"})

    async with serve(make_app(bp)) as client:
        response = await client.get("/api/empty")
    assert (response.status_code, response.content) == (204, b"")
    assert "content-length" not in response.headers
    assert response.headers["x-done"] == "yes"
