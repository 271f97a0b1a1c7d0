"""The durable path through the real local host process: queue triggers on Azurite, and a
host killed while a message is in flight."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from local.sandbox.contraforce_state import DEMO_WORKSPACE_ID
from local.sandbox.faults import Fault, FaultKind, FaultPlan
from tests.e2e.conftest import FUNCTION_KEY, Stack, start_host

WS = str(DEMO_WORKSPACE_ID)
TICKETED = "6d1f0c2a-4e4b-4b8f-9d55-0a3c1b2e7f10"
HEADERS = {"x-functions-key": FUNCTION_KEY}


def eventually(check: Callable[[], bool], *, seconds: float, what: str) -> None:
    """Poll another process's progress, bounded; the wait is the system's, not the test's."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds}s: {what}")
        time.sleep(0.05)


def test_respond_async_is_worked_by_the_hosts_queue_trigger(sandbox: Stack) -> None:
    reply = httpx.post(
        f"{sandbox.base_url}/actions/unlink-ticket",
        json={"workspaceId": WS, "incident": {"id": TICKETED}},
        headers={**HEADERS, "Prefer": "respond-async"},
    )
    assert reply.status_code == 202
    location = str(httpx.URL(sandbox.base_url).join(reply.headers["location"]))
    eventually(
        lambda: httpx.get(location, headers=HEADERS).status_code == 200,
        seconds=20,
        what="operation done",
    )
    assert httpx.get(location, headers=HEADERS).json()["status"] == "succeeded"
    assert len(sandbox.contraforce.state.effects) == 1


def test_host_killed_while_a_message_is_in_flight_is_redelivered_and_applied_once(
    sandbox: Stack,
) -> None:
    # The first upstream call hangs; the host dies while waiting for it.
    sandbox.contraforce.faults = FaultPlan(script=[Fault(FaultKind.SLOW, delay=8.0)])
    crash_prone = {
        **sandbox.settings,
        "RETRY_BUDGET_SECONDS": "4",  # the operation's lease: budget + 5 s
        "LOCAL_QUEUE_LEASE_SECONDS": "10",  # how long a taken message stays hidden
    }
    first = start_host(crash_prone)
    try:
        reply = httpx.post(
            f"{first.base_url}/actions/unlink-ticket",
            json={"workspaceId": WS, "incident": {"id": TICKETED}},
            headers={**HEADERS, "Prefer": "respond-async"},
        )
        assert reply.status_code == 202
        eventually(
            lambda: sandbox.contraforce.gate.counters.action_requests >= 1,
            seconds=20,
            what="the worker sent the upstream call",
        )
    finally:
        first.stop(kill=True)

    second = start_host(crash_prone)
    try:
        operation = reply.headers["x-operation-id"]
        url = f"{second.base_url}/operations/{operation}"
        eventually(
            lambda: httpx.get(url, headers=HEADERS).status_code == 200,
            seconds=40,
            what="redelivered",
        )
        assert httpx.get(url, headers=HEADERS).json()["status"] == "succeeded"
    finally:
        second.stop()
    assert len(sandbox.contraforce.state.effects) == 1
