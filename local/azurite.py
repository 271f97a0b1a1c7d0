"""Start Azurite (the npm package pinned in package.json) on loopback ports.

Used by `make run`, `python -m local.sandbox` and the tests. In memory by default, so every
start is empty; with `location`, its data lives in that folder (Azurite's `--location`) and a
new Azurite on the same folder finds the queues and tables of the last one. Azurite writes its
metadata to disk every 5 s and when stopped: a stop keeps everything, a SIGKILL may lose the
last few seconds of writes. Its well-known development account key is public (Microsoft
documents it); it only opens this emulator. Azurite is a child that ends with this process
(`local.processes`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from local import processes

ACCOUNT = "devstoreaccount1"
# Azurite's documented, public development key: not a secret.
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
# A second account for tests that run the worker in-process, so the queue triggers of local
# host processes (on the default account) never take their messages. Azurite takes custom
# accounts from AZURITE_ACCOUNTS and then serves only those, so the default is listed too.
PRIVATE_ACCOUNT = "inprocessaccount"
ROOT = Path(__file__).resolve().parents[1]


def connection_string(host: str, ports: Sequence[int], account: str = ACCOUNT) -> str:
    """The connection string of an Azurite on `host` with blob, queue and table `ports`."""
    base = f"http://{host}"
    blob, queue, table = ports
    return (
        f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint={base}:{blob}/{account};"
        f"QueueEndpoint={base}:{queue}/{account};"
        f"TableEndpoint={base}:{table}/{account};"
    )


@dataclass
class Azurite:
    process: subprocess.Popen[bytes]
    host: str
    blob_port: int
    queue_port: int
    table_port: int
    location: Path | None = None

    @property
    def connection_string(self) -> str:
        return self.connection_string_for(ACCOUNT)

    def connection_string_for(self, account: str) -> str:
        return connection_string(
            self.host, (self.blob_port, self.queue_port, self.table_port), account
        )

    @property
    def where(self) -> str:
        """Where its data lives, for banners: `in memory` or `on disk at <folder>`."""
        return f"on disk at {self.location}" if self.location else "in memory"

    def stop(self) -> None:
        """SIGTERM (Azurite saves its data), SIGKILL after 10 s; its process group too."""
        processes.stop(self.process)

    def __enter__(self) -> Azurite:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def start_azurite(
    *,
    host: str = "127.0.0.1",
    location: Path | None = None,
    ports: Sequence[int] | None = None,
    timeout: float = 30.0,
    tries: int = 2,
) -> Azurite:
    """Start Azurite's blob, queue and table services; return once they accept connections.

    `location`: the folder its data lives in (created if missing), or None for in memory.
    `ports`: blob, queue and table ports, or None for free ones. A free port found here can be
    taken by another process before Azurite binds it: then Azurite exits, and it is started
    again on new ports (fixed ports are tried once)."""
    for attempt in range(1, (tries if ports is None else 1) + 1):
        try:
            return _start(host, location, ports, timeout)
        except RuntimeError:
            if attempt == tries or ports is not None:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _start(
    host: str, location: Path | None, fixed: Sequence[int] | None, timeout: float
) -> Azurite:
    binary = ROOT / "node_modules" / ".bin" / "azurite"
    if not binary.exists():
        raise RuntimeError(f"{binary} is missing: run `npm ci` (make run / make test do it)")
    ports = list(fixed) if fixed is not None else [_free_port(host) for _ in range(3)]
    if location is not None:
        location = location.resolve()
        location.mkdir(parents=True, exist_ok=True)
        persistence = ["--location", str(location)]
    else:
        persistence = ["--inMemoryPersistence"]
    process = processes.spawn(
        [
            str(binary),
            "--silent",
            *persistence,
            "--skipApiVersionCheck",
            "--disableTelemetry",  # else it phones home, and a SIGTERM waits on that
            "--loose",
            *("--blobHost", host, "--blobPort", str(ports[0])),
            *("--queueHost", host, "--queuePort", str(ports[1])),
            *("--tableHost", host, "--tablePort", str(ports[2])),
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "AZURITE_ACCOUNTS": f"{ACCOUNT}:{ACCOUNT_KEY};{PRIVATE_ACCOUNT}:{ACCOUNT_KEY}",
        },
    )
    azurite = Azurite(process, host, ports[0], ports[1], ports[2], location)
    deadline = time.monotonic() + timeout
    while not all(_listening(host, port) for port in ports):
        if process.poll() is not None or time.monotonic() > deadline:
            azurite.stop()
            raise RuntimeError(f"Azurite did not start on {host}:{ports}")
        time.sleep(0.05)  # readiness poll of a child process
    return azurite
