"""Servers in their own processes: the ContraForce simulator and the local host.

Child side (`python -m bench.servers sim|host`): binds a free loopback port, serves with uvicorn
in the main thread (h11, as `make run` does here: httptools and uvloop are not installed), prints
`READY <base url>` on stdout and stops on SIGTERM/SIGINT. The host child is the real
`function_app.app` behind `local.host.LocalHost` with the environment's settings; it logs at
WARNING (the app's INFO lines are not emitted). With `BENCH_PROFILE=<path>`, SIGUSR1 starts
cProfile and SIGUSR2 stops it and writes the stats to <path>.

Parent side: `start_simulator()`, `start_host(settings)` return a `Child` with `.base_url`.
"""

from __future__ import annotations

import cProfile
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Self

from bench.common import FUNCTION_KEY, ROOT, child_env

READY = "READY "
STARTUP_SECONDS = 60.0


class Child:
    """A server child process; stop it with `.stop()` or as a context manager."""

    def __init__(self, argv: list[str], env: dict[str, str], name: str) -> None:
        self.name = name
        self._log: IO[bytes] = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix=f"bench-{name}-", suffix=".log", delete=False
        )
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, *argv],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        self.base_url = self._wait_ready()

    def _wait_ready(self) -> str:
        stdout = self.process.stdout
        assert stdout is not None  # noqa: S101 - Popen(stdout=PIPE)
        deadline = time.monotonic() + STARTUP_SECONDS
        buffer = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([stdout], [], [], 0.2)
            if ready:
                chunk = os.read(stdout.fileno(), 4096)
                if not chunk:
                    break
                buffer += chunk
                line, newline, _ = buffer.partition(b"\n")
                if newline and line.decode().startswith(READY):
                    return line.decode()[len(READY) :].strip()
            if self.process.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"{self.name} did not start; see {self._log.name}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_simulator() -> Child:
    """The ContraForce simulator (demo data, no faults) in its own process."""
    return Child(["-m", "bench.servers", "sim"], child_env(), "simulator")


def start_host(settings: dict[str, str], *, profile_to: Path | None = None) -> Child:
    """The local host serving `function_app.app` with these app settings, in its own process."""
    extra = {"BENCH_PROFILE": str(profile_to)} if profile_to is not None else {}
    return Child(["-m", "bench.servers", "host"], child_env({**settings, **extra}), "host")


# --- child side -------------------------------------------------------------------------------


def _serve(app: object, *, lifespan: str) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        log_level="warning",
        log_config=None,
        access_log=False,
        lifespan=lifespan,  # type: ignore[arg-type]
        http="h11",
        ws="none",
        timeout_graceful_shutdown=5,
        # Paths take turns, so a caller's connection can sit idle for a while between rounds;
        # uvicorn's default (5 s) would close it and race the caller's next request.
        timeout_keep_alive=600,
        backlog=2048,
    )

    class _Ready(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            os.write(1, f"{READY}http://127.0.0.1:{port}\n".encode())
            os.dup2(2, 1)  # nothing else goes to the parent's pipe

    _install_profiler()
    _Ready(config).run(sockets=[sock])


def _install_profiler() -> None:
    target = os.environ.get("BENCH_PROFILE")
    if not target:
        return
    profiler = cProfile.Profile()

    def start(_signum: int, _frame: FrameType | None) -> None:
        profiler.enable()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        profiler.disable()
        partial = f"{target}.part"
        profiler.dump_stats(partial)
        Path(partial).replace(target)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)


def _simulator() -> None:
    from local.sandbox import contraforce

    _serve(contraforce.create_app(), lifespan="off")


def _host() -> None:
    from function_app import app
    from local.host import LocalHost, load_host_json
    from shared.clients import registry

    host = LocalHost(
        app,
        host_json=load_host_json(ROOT / "host.json"),
        function_key=FUNCTION_KEY,
        on_shutdown=[registry.aclose],
    )
    _serve(host.asgi, lifespan="on")


def main(argv: list[str]) -> int:
    roles = {"sim": _simulator, "host": _host}
    if len(argv) != 1 or argv[0] not in roles:
        print("usage: python -m bench.servers sim|host", file=sys.stderr)
        return 2
    roles[argv[0]]()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
