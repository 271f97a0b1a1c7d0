"""End to end: the local host (`python -m local`, as `make run` starts it) in its own process,
serving the real function_app over real HTTP, against the simulators on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from local.azurite import Azurite
from local.sandbox import contraforce as cf_sandbox
from local.sandbox import d3 as d3_sandbox
from local.sandbox.settings import FAST_RETRIES
from tests.conftest import Sandboxes

ROOT = Path(__file__).parents[2]
FUNCTION_KEY = "e2e-function-key"
STARTUP_SECONDS = 30.0


@dataclass(frozen=True)
class Stack:
    base_url: str
    contraforce: cf_sandbox.ContraForceSimulator
    d3: d3_sandbox.D3Simulator
    settings: dict[str, str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"local host exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == httpx.codes.OK:
                return
        except httpx.TransportError:
            time.sleep(0.05)  # readiness poll of a child process, not a test wait
    raise RuntimeError(f"local host not healthy at {url} after {STARTUP_SECONDS}s")


@dataclass
class HostProcess:
    process: subprocess.Popen[bytes]
    base_url: str

    def stop(self, *, kill: bool = False) -> None:
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(timeout=15)


def start_host(env: dict[str, str]) -> HostProcess:
    """`python -m local` in its own process, as `make run` starts it; returns once healthy."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "local"],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "TMPDIR"}},
            "PORT": str(port),
            # The tests reach the host at 127.0.0.1: its status links must say so too (the
            # client follows a Location only on its own origin).
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "LOCAL_FUNCTION_KEY": FUNCTION_KEY,
            **env,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    host = HostProcess(process, f"http://127.0.0.1:{port}/api")
    try:
        _wait_until_healthy(f"{host.base_url}/health", process)
    except RuntimeError:
        host.stop(kill=True)
        raise
    return host


@pytest.fixture(scope="session")
def stack(azurite: Azurite, sandboxes: Sandboxes) -> Iterator[Stack]:
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
def sandbox(stack: Stack) -> Iterator[Stack]:
    stack.contraforce.reset()
    stack.d3.reset()
    yield stack
    stack.contraforce.reset()
    stack.d3.reset()


@pytest.fixture
async def client(sandbox: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=sandbox.base_url, headers={"x-functions-key": FUNCTION_KEY}, timeout=30
    ) as http:
        yield http
