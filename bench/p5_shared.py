"""P5: one rate budget across instances. Four app processes against one simulator limited to R
requests per rolling second (429 + `Retry-After: 1` beyond it), sharing the budget through
Azurite (`SHARED_RATE_BUDGET=true`); then the same with Azurite stopped mid-run.

Child side (`python -m bench.p5_shared SECONDS`, app settings in the environment): imports
`function_app`, takes the canonical `unlink_ticket` handler and calls it as the worker does
with bulk bodies of `ITEMS_PER_CALL` items (each item one upstream request), until SECONDS have
passed; prints one JSON line: calls, items by status, attempts, and the longest gap between two
finished calls (a stall would show there).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.common import ROOT, WORKSPACE, Headline, app_settings, child_env
from bench.servers import Child
from local.azurite import Azurite

ITEMS_PER_CALL = 10
CALLS_IN_FLIGHT = 2
INCIDENTS = ("1001", "1002", "1003", "1004")
LOW = 0.9  # the aggregate admitted rate is at least 0.9 R (and at most R: no 429)
GAP = 5.0  # with the store stopped, no caller waits longer than this between answers


@dataclass
class SharedRun:
    rate: float
    processes: int
    seconds: float
    store_stopped_at: float | None  # seconds after the first upstream request
    children: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[tuple[float, int, int]] = field(default_factory=list)  # (s, requests, 429s)
    store_stopped_at_s: float | None = None  # seconds into the run

    @property
    def started_at(self) -> float:
        """When the simulator first saw requests (the children take seconds to import)."""
        return next((t for t, n, _ in self.timeline if n), 0.0)

    @property
    def rate_limited(self) -> int:
        return self.timeline[-1][2] if self.timeline else 0

    def admitted_rate(self, start: float, end: float) -> float:
        """Requests/s the simulator admitted (not answered 429) between two moments."""
        points = [(t, n - limited) for t, n, limited in self.timeline if start <= t <= end]
        if len(points) < 2 or points[-1][0] <= points[0][0]:
            return 0.0
        return (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])

    @property
    def failed(self) -> int:
        return sum(int(c["statuses"].get("failed", 0)) for c in self.children)

    @property
    def longest_gap(self) -> float:
        return max((float(c["longest_gap"]) for c in self.children), default=0.0)


def run(
    simulator: Child,
    azurite: Azurite,
    *,
    rate: float,
    processes: int,
    seconds: float,
    stop_store_after: float | None = None,
) -> SharedRun:
    """Run `processes` children for `seconds`; optionally stop Azurite after some seconds."""
    settings = app_settings(
        simulator.base_url,
        CONTRAFORCE_RATE_LIMIT_PER_SECOND=str(rate),
        SHARED_RATE_BUDGET="true",
        AzureWebJobsStorage=azurite.connection_string,
        MAX_BULK_ITEMS=str(ITEMS_PER_CALL),
        BULK_CONCURRENCY=str(ITEMS_PER_CALL),
    )
    sim = simulator.base_url
    result = SharedRun(rate, processes, seconds, stop_store_after)
    with httpx.Client(timeout=10.0) as client:
        client.post(f"{sim}/_sandbox/reset").raise_for_status()
        client.post(f"{sim}/_sandbox/faults", json={"rateLimitPerSecond": rate}).raise_for_status()
        started = time.perf_counter()
        children = [
            subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "bench.p5_shared", str(seconds)],
                cwd=ROOT,
                env=child_env(settings),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(processes)
        ]
        stop = threading.Event()
        poller = threading.Thread(
            target=_poll, args=(sim, started, stop, result.timeline), daemon=True
        )
        poller.start()
        try:
            if stop_store_after is not None:
                while not any(n for _, n, _ in result.timeline):  # children still starting
                    time.sleep(0.1)
                time.sleep(stop_store_after)
                result.store_stopped_at_s = time.perf_counter() - started
                azurite.stop()
            for child in children:
                out, err = child.communicate(timeout=seconds + 120)
                if child.returncode != 0:
                    raise RuntimeError(f"P5 child failed ({child.returncode}): {err[-2000:]}")
                result.children.append(json.loads(out.strip().splitlines()[-1]))
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
            stop.set()
            poller.join(5)
        client.delete(f"{sim}/_sandbox/faults").raise_for_status()
    return result


# --- report -----------------------------------------------------------------------------------


def steady_rate(run: SharedRun) -> float:
    """Admitted requests/s from 3 s after the first request (leases settled) to the end of the
    run or the store's stop."""
    start = run.started_at + 3.0  # leases settled
    end = run.store_stopped_at_s if run.store_stopped_at_s is not None else run.seconds
    return run.admitted_rate(start, end)


def headlines(runs: Sequence[SharedRun]) -> list[Headline]:
    rows = []
    for run in runs:
        steady = steady_rate(run)
        if run.store_stopped_at is None:
            rows.append(
                Headline(
                    f"P5 {run.processes} processes, one budget of {run.rate:g}/s: admitted rate",
                    f"{steady:.1f}/s = {steady / run.rate:.2f} R, {run.rate_limited} x 429, "
                    f"{run.failed} failed",
                    f">= {LOW} R, 0 x 429, 0 failed",
                    steady >= LOW * run.rate and run.rate_limited == 0 and run.failed == 0,
                )
            )
        else:
            rows.append(
                Headline(
                    f"P5 same, store stopped {run.store_stopped_at:g} s in: no stall",
                    f"longest wait between answers {run.longest_gap:.1f} s, "
                    f"{run.rate_limited} x 429 (retried), {run.failed} failed",
                    f"<= {GAP:g} s, 0 failed",
                    run.longest_gap <= GAP and run.failed == 0,
                )
            )
    return rows


def _store(run: SharedRun) -> str:
    if run.store_stopped_at is None:
        return "up"
    return f"stopped {run.store_stopped_at:g} s after the first request"


def section(runs: Sequence[SharedRun]) -> list[str]:
    if not runs:
        return ["## P5: not run"]
    first = runs[0]
    out = [
        "## P5: one rate budget across instances",
        "",
        (
            f"{first.processes} app processes (each imports `function_app` and calls the "
            "canonical `unlink_ticket` handler as the worker does, 2 calls in flight, "
            f"{ITEMS_PER_CALL} items a call, one upstream request an item) against one "
            f"simulator that answers 429 beyond {first.rate:g} requests per rolling second. "
            f"`CONTRAFORCE_RATE_LIMIT_PER_SECOND={first.rate:g}`, `SHARED_RATE_BUDGET=true`, "
            "the budget in Azurite. The simulator's counters are polled every 0.5 s; the steady "
            "rate is taken from 3 s after the first upstream request (the children take seconds to "
            "import). Second run: Azurite is stopped mid-run; each instance then paces alone at "
            "its last share (429s, retried, only if instances came or went meanwhile)."
        ),
        "",
        (
            "| store | seconds | admitted/s (steady) | 429s | items by status | attempts | "
            "longest wait between answers s |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        statuses: Counter[str] = Counter()
        for child in run.children:
            statuses.update({name: int(count) for name, count in child["statuses"].items()})
        out.append(
            f"| {_store(run)} | {run.seconds:g} | {steady_rate(run):.1f} | {run.rate_limited} | "
            + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
            + f" | {sum(int(c['attempts']) for c in run.children)} | {run.longest_gap:.2f} |"
        )
        if run.store_stopped_at_s is not None:
            after = run.admitted_rate(run.store_stopped_at_s + 1, run.seconds)
            out.append(f"| (after the stop) | | {after:.1f} | | | | |")
    out += [
        "",
        "The budget's claims, summed over the instances (final shares in instance order):",
        "",
        "| store | instances | final shares | claims | failed claims | claims/s per instance |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        budgets = [b for child in run.children for b in child.get("budgets", [])]
        claims = sum(int(b["claims"]) for b in budgets)
        per_instance = claims / max(run.seconds, 1) / max(len(budgets), 1)
        out.append(
            f"| {_store(run)} | {len(budgets)} | {', '.join(str(b['limit']) for b in budgets)} "
            f"| {claims} | {sum(int(b['failures']) for b in budgets)} | {per_instance:.1f} |"
        )
    return out


def _poll(
    simulator: str, started: float, stop: threading.Event, into: list[tuple[float, int, int]]
) -> None:
    with httpx.Client(timeout=5.0) as client:
        while not stop.wait(0.5):
            try:
                counters = client.get(f"{simulator}/_sandbox/counters").json()
            except (httpx.HTTPError, ValueError):
                continue
            limited = int(counters.get("faultsByKind", {}).get("rate_limited", 0))
            into.append((time.perf_counter() - started, int(counters["actionRequests"]), limited))


# --- child side -------------------------------------------------------------------------------


async def _main(seconds: float) -> dict[str, Any]:
    import azure.functions as func

    from function_app import app
    from shared.clients import registry

    app.functions_bindings = None  # let get_functions() index this app
    functions = {str(f.get_function_name()): f for f in app.get_functions()}
    handler = functions["unlink_ticket"].get_user_function()
    items = [
        {"workspaceId": WORKSPACE, "incident": {"number": INCIDENTS[i % len(INCIDENTS)]}}
        for i in range(ITEMS_PER_CALL)
    ]
    body = json.dumps({"items": items}).encode()
    statuses: Counter[str] = Counter()
    calls = attempts = 0
    finished: list[float] = []
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal calls, attempts
        while time.perf_counter() < deadline:
            request = func.HttpRequest(
                method="POST",
                url="http://localhost:7071/api/actions/unlink-ticket",
                headers={"Content-Type": "application/json"},
                params={},
                route_params={},
                body=body,
            )
            response = await handler(request)
            data = json.loads(response.get_body())
            outcome = data.get("outcome", data) if isinstance(data, dict) else {}
            for item in outcome.get("items", []):
                statuses[str(item.get("status"))] += 1
            attempts += int(outcome.get("attempts", 0))
            calls += 1
            finished.append(time.perf_counter())

    async with asyncio.TaskGroup() as group:
        for _ in range(CALLS_IN_FLIGHT):
            group.create_task(caller())
    budgets = [
        {"claims": b.claims, "failures": b.failures, "limit": b.limit}
        for b in registry._registry.budgets  # the bench reads what the budget did
    ]
    await registry.aclose()
    moments = sorted(finished)  # from the first answer on: start-up is not a stall
    gaps = [b - a for a, b in itertools.pairwise(moments)]
    return {
        "calls": calls,
        "statuses": dict(statuses),
        "attempts": attempts,
        "longest_gap": max(gaps, default=0.0),
        "budgets": budgets,
    }


def main(argv: list[str]) -> int:
    print(json.dumps(asyncio.run(_main(float(argv[0])))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
