"""Serve an ASGI app with uvicorn on a background thread (sandboxes, local host, tests).

The socket is bound here, before uvicorn starts, so `port=0` yields a free port that is known
as soon as `serve_in_thread` returns; the call returns only once uvicorn is accepting requests.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from types import TracebackType
from typing import Literal, Self

import uvicorn
from starlette.types import ASGIApp

logger = logging.getLogger(__name__)

Lifespan = Literal["on", "off", "auto"]

_STARTUP_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


class ServerStartError(RuntimeError):
    """uvicorn did not start (bind failure, lifespan startup failure, timeout)."""


class _NotifyingServer(uvicorn.Server):
    """A uvicorn server that sets an event once startup has finished, successfully or not."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()


class RunningServer:
    """A uvicorn server running on its own event loop in a daemon thread."""

    def __init__(
        self, server: _NotifyingServer, thread: threading.Thread, sock: socket.socket
    ) -> None:
        self._server = server
        self._thread = thread
        self._sock = sock
        self.host: str = sock.getsockname()[0]
        self.port: int = sock.getsockname()[1]
        self.error: BaseException | None = None

    @property
    def base_url(self) -> str:
        """Scheme, host and port, without a trailing slash, e.g. `http://127.0.0.1:54321`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server thread is still alive."""
        return self._thread.is_alive()

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """Ask uvicorn to shut down gracefully and wait for its thread to end."""
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("server on port %d still running after %.1f s", self.port, timeout)
            self._server.force_exit = True
            self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and without
    # it every small response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def serve_in_thread(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    lifespan: Lifespan = "off",
    startup_timeout: float = _STARTUP_TIMEOUT,
) -> RunningServer:
    """Start `app` on `host:port` (0 = a free port) and return once it accepts requests.

    Use as a context manager, or call `.stop()`. uvicorn logs at `warning` and leaves the
    process's logging configuration alone (`log_config=None`).
    """
    sock = _bind(host, port)
    config = uvicorn.Config(
        app,
        log_level="warning",
        log_config=None,
        lifespan=lifespan,
        http="h11",
        ws="none",
        timeout_graceful_shutdown=5,
    )
    ready = threading.Event()
    server = _NotifyingServer(config, ready)
    running: RunningServer

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # SystemExit on lifespan failure included
            running.error = exc
            logger.exception("server on port %d stopped with an error", running.port)
        finally:
            ready.set()

    thread = threading.Thread(target=run, name=f"uvicorn-{sock.getsockname()[1]}", daemon=True)
    running = RunningServer(server, thread, sock)
    thread.start()
    if not ready.wait(startup_timeout) or not server.started:
        running.stop()
        raise ServerStartError(f"server on {running.base_url} did not start: {running.error!r}")
    logger.info("serving on %s", running.base_url)
    return running
