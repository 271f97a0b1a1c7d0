"""The local host over real sockets: a body that never arrives, a body too large, a path that
would forge a log line (issue 12). The host's own refusals keep empty bodies, as Azure's do."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator

import azure.functions as func
import pytest

from local.host import LocalHost
from local.server import RunningServer, serve_in_thread

FUNCTION_KEY = "function-key-for-tests"


def echo_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="echo", methods=["POST"])
    async def echo(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(
            json.dumps({"length": len(req.get_body())}), mimetype="application/json"
        )

    return app


@pytest.fixture
def server() -> Iterator[RunningServer]:
    host = LocalHost(
        echo_app(),
        host_json={},
        function_key=FUNCTION_KEY,
        max_body_bytes=1000,
        body_timeout_seconds=0.5,
    )
    with serve_in_thread(host.asgi) as running:
        yield running


class Lines(logging.Handler):
    """The host's request lines, which it writes after the answer has left (so: wait)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.arrived = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.arrived.set()

    def first(self) -> str:
        assert self.arrived.wait(5), "the host logged no request line"
        return self.lines[0]


@pytest.fixture
def host_log() -> Iterator[Lines]:
    handler = Lines()
    host_logger = logging.getLogger("local.host")
    level = host_logger.level
    host_logger.addHandler(handler)
    host_logger.setLevel(logging.INFO)
    yield handler
    host_logger.removeHandler(handler)
    host_logger.setLevel(level)


def exchange(server: RunningServer, raw: bytes, *, wait: float = 5.0) -> bytes:
    """Send raw bytes, then read until the server closes or `wait` passes without data."""
    with socket.create_connection((server.host, server.port), timeout=wait) as sock:
        sock.sendall(raw)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
                if b"\r\n\r\n" in received and _complete(received):
                    break
        except TimeoutError:
            pass
        return received


def _complete(received: bytes) -> bool:
    head, _, body = received.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def status_of(received: bytes) -> int:
    assert received, "no answer: the host is still waiting for the body"
    return int(received.split(b" ", 2)[1])


def test_a_body_shorter_than_its_content_length_is_408_not_a_hang(server: RunningServer) -> None:
    request = b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nhello"
    received = exchange(server, request)
    assert status_of(received) == 408
    assert received.endswith(b"\r\n\r\n")  # an empty body, as the host's own answers have


def test_a_declared_body_over_the_limit_is_413_before_it_is_read(server: RunningServer) -> None:
    request = b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n"
    assert status_of(exchange(server, request)) == 413


def test_a_chunked_body_over_the_limit_is_413(server: RunningServer) -> None:
    chunk = b"x" * 600
    request = (
        b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n" % (len(chunk), chunk) * 2
        + b"0\r\n\r\n"
    )
    assert status_of(exchange(server, request)) == 413


def test_a_complete_body_within_the_limit_reaches_the_function(server: RunningServer) -> None:
    request = b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    received = exchange(server, request)
    assert status_of(received) == 200
    assert received.endswith(b'{"length": 5}')


def test_an_encoded_newline_in_the_path_cannot_forge_a_log_line(
    server: RunningServer, host_log: Lines
) -> None:
    forged = b"/api/x%0A2026-11-23 INFO local.host: GET /api/admin 200 0.1ms"
    request = b"GET " + forged.replace(b" ", b"%20") + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert status_of(exchange(server, request)) == 404
    line = host_log.first()
    assert "\n" not in line
    assert line.startswith("GET /api/x%0A2026-11-23%20INFO%20local.host:%20GET%20/api/admin")


def test_control_bytes_in_the_path_are_logged_percent_encoded(
    server: RunningServer, host_log: Lines
) -> None:
    path = b"/api/caf%C3%A9%0D%1B%5B31m%E2%80%AE"
    exchange(server, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert host_log.first().startswith(f"GET {path.decode()} 404 ")
