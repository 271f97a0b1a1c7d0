"""Crashes over `make run`'s pieces, as separate processes (issue 24, item 6).

The simulators and an Azurite on disk run apart (`python -m local.sandbox`), the host is
`python -m local` (as `make run LOCAL_SANDBOX=apart` starts it); the host is killed with
SIGKILL mid-call and restarted, and every operation must be final and true within the bound
(the lease plus a minute) with the caller only polling. And no child outlives its parent:
Azurite ends with the process that started it, however that process ended.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from azure.storage.queue import QueueClient

from local.azurite import start_azurite
from local.sandbox.faults import FaultKind
from tools.crash_campaign import (
    Host,
    Op,
    Sandbox,
    bound_seconds,
    claim,
    effects_of,
    free_port,
    host_settings,
    poll,
    repost,
    submit,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and PDEATHSIG"),
]

BUDGET = 6.0  # RETRY_BUDGET_SECONDS: the lease is 2 x 6 + 5 = 17 s, its recovery at 27 s
SLOW = 4.0  # the upstream's delay while the host is killed


def eventually(check: Callable[[], bool], *, seconds: float, what: str) -> None:
    """Poll another process's progress, bounded; the wait is the system's, not the test's."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:.0f} s: {what}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    """Running: a zombie (dead, not yet reaped by its new parent) is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def azurite_children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == parent and b"azurite" in command:
            found.append(int(stat.parent.name))
    return found


@pytest.fixture
def apart(tmp_path: Path) -> Iterator[Sandbox]:
    running = Sandbox.start(tmp_path / "sandbox", extra=3)
    yield running
    running.stop()


def test_azurite_on_disk_keeps_its_queues_across_a_restart(tmp_path: Path) -> None:
    with start_azurite(location=tmp_path / "azurite") as first:
        queue = QueueClient.from_connection_string(first.connection_string, "kept")
        queue.create_queue()
        queue.send_message("survives")
        queue.close()
    with start_azurite(location=tmp_path / "azurite") as second:
        queue = QueueClient.from_connection_string(second.connection_string, "kept")
        kept = [message.content for message in queue.peek_messages()]
        queue.close()
    assert kept == ["survives"]


def test_azurite_ends_when_the_sandbox_process_is_killed_with_sigkill(
    apart: Sandbox,
) -> None:
    [child] = azurite_children(apart.process.pid)
    os.kill(apart.process.pid, signal.SIGKILL)
    apart.process.wait(timeout=10)
    eventually(lambda: not alive(child), seconds=5, what=f"Azurite (pid {child}) ended")


def test_azurite_of_make_run_ends_when_the_host_is_killed_with_sigkill(tmp_path: Path) -> None:
    # No storage in the environment: the host starts its own Azurite, on disk as asked.
    storage = tmp_path / "azurite"
    host = Host.start(
        {"LOCAL_STORAGE_DIR": str(storage)}, port=free_port(), log=tmp_path / "host.log"
    )
    try:
        [child] = azurite_children(host.process.pid)
        assert any(storage.glob("__azurite_db_queue__*"))
    finally:
        host.kill()
    eventually(lambda: not alive(child), seconds=5, what=f"Azurite (pid {child}) ended")


def test_a_host_restart_against_the_sandbox_apart_keeps_storage_and_upstream_state(
    apart: Sandbox, tmp_path: Path
) -> None:
    # What `make run LOCAL_SANDBOX=apart` does, with the sandbox's --env-file for its ports.
    settings = {"LOCAL_SANDBOX": str(apart.folder / "sandbox.env")}
    port, log = free_port(), tmp_path / "host.log"
    op = Op("sync-unlink", 0)
    host = Host.start(settings, port=port, log=log)
    try:
        submit(op, host.base_url, time.monotonic)
    finally:
        host.kill()
    first = op.body
    host = Host.start(settings, port=port, log=log)
    try:
        repost(op, host.base_url, time.monotonic)  # the same key: the stored answer
    finally:
        host.stop()
    contraforce = apart.state(apart.contraforce)
    assert (first["status"], op.body["operationId"]) == ("succeeded", first["operationId"])
    assert effects_of(op, contraforce, {}) == 1


def _counters(origin: str) -> int:
    requests: int = httpx.get(f"{origin}/_sandbox/counters", timeout=5).json()["actionRequests"]
    return requests


def test_host_killed_mid_sync_call_and_mid_queued_work_every_operation_ends_final_and_true(
    apart: Sandbox, tmp_path: Path
) -> None:
    slow = {"script": [{"kind": FaultKind.SLOW.value, "delaySeconds": SLOW}] * 2}
    apart.set_faults(apart.contraforce, slow)  # the sync call and the webhook's work
    apart.set_faults(apart.d3, slow)  # the respond-async call's work
    settings = host_settings(apart, budget=BUDGET)
    port, log = free_port(), tmp_path / "host.log"
    host = Host.start(settings, port=port, log=log)
    ops = [Op("sync-unlink", 0), Op("async-remove", 1), Op("webhook", 2)]
    clock = time.monotonic
    callers = [threading.Thread(target=submit, args=(op, host.base_url, clock)) for op in ops]
    for caller in callers:
        caller.start()
    try:
        eventually(
            lambda: _counters(apart.contraforce) >= 2 and _counters(apart.d3) >= 1,
            seconds=30,
            what="the three upstream calls are out",
        )
    finally:
        host.kill()  # mid-call: the upstream acts, its answer has nowhere to go
    crashed = clock()
    for caller in callers:
        caller.join()
    sync, *queued = ops
    assert sync.cut, "the sync caller lost its connection"
    assert all(op.location for op in queued), "queued work was accepted with a Location"

    host = Host.start(settings, port=port, log=log)
    try:
        repost(sync, host.base_url, clock)  # the caller's one re-send: same key, told to poll
        assert sync.reposted == 202, "the re-send did not run it: the dead host's lease holds"

        def all_final() -> bool:
            for op in ops:
                poll(op, host.base_url, clock)
            return all(op.final_at is not None for op in ops)

        eventually(all_final, seconds=bound_seconds(BUDGET) - (clock() - crashed), what="final")
    finally:
        host.stop()
    contraforce, d3 = apart.state(apart.contraforce), apart.state(apart.d3)
    assert [(op.status, claim(op), effects_of(op, contraforce, d3)) for op in ops] == [
        (200, "applied", 1),
        (200, "applied", 1),
        (200, "applied", 1),
    ]
