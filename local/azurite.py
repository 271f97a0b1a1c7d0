"""Start Azurite (the npm package pinned in package.json) on free loopback ports.

Used by `make run` and by the tests; in-memory, so every start is empty. Its well-known
development account key is public (Microsoft documents it); it only opens this emulator.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

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


@dataclass
class Azurite:
    process: subprocess.Popen[bytes]
    host: str
    blob_port: int
    queue_port: int
    table_port: int

    @property
    def connection_string(self) -> str:
        return self.connection_string_for(ACCOUNT)

    def connection_string_for(self, account: str) -> str:
        base = f"http://{self.host}"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={base}:{self.blob_port}/{account};"
            f"QueueEndpoint={base}:{self.queue_port}/{account};"
            f"TableEndpoint={base}:{self.table_port}/{account};"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

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


def start_azurite(*, host: str = "127.0.0.1", timeout: float = 30.0, tries: int = 2) -> Azurite:
    """Start Azurite's blob, queue and table services; return once they accept connections.

    A free port found here can be taken by another process before Azurite binds it: then
    Azurite exits, and it is started again on new ports."""
    for attempt in range(1, tries + 1):
        try:
            return _start(host, timeout)
        except RuntimeError:
            if attempt == tries:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _start(host: str, timeout: float) -> Azurite:
    binary = ROOT / "node_modules" / ".bin" / "azurite"
    if not binary.exists():
        raise RuntimeError(f"{binary} is missing: run `npm ci` (make run / make test do it)")
    ports = [_free_port(host) for _ in range(3)]
    process = subprocess.Popen(  # noqa: S603 - the pinned local package, fixed arguments
        [
            str(binary),
            "--silent",
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
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
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    azurite = Azurite(process, host, *ports)
    deadline = time.monotonic() + timeout
    while not all(_listening(host, port) for port in ports):
        if process.poll() is not None or time.monotonic() > deadline:
            azurite.stop()
            raise RuntimeError(f"Azurite did not start on {host}:{ports}")
        time.sleep(0.05)  # readiness poll of a child process
    return azurite
