"""P1: one action end to end through the local host vs a raw httpx call to the same simulator.

Both paths send the same bytes (`{"incident": {workspaceId, number 1003, source}}`, the body the
app itself sends upstream) to the same simulator process and get 200 `{"data": false}`:
raw `POST {sim}/api/v2/workspaces/{ws}/tickets/unlink` with HTTP Basic, and the app's
ContraForce mirror route `POST {host}/api/contraforce/workspaces/{ws}/tickets/unlink`. One load
client (same limits, keep-alive for every worker) is used for both; rounds alternate
raw/app so drift hits both alike.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common import (
    BASIC_AUTHORIZATION,
    FUNCTION_KEY,
    STEADY_BODY,
    WORKSPACE,
    percentile,
    ratio,
)


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    headers: Mapping[str, str]
    expect: bytes = b'"data":false'


def raw_target(simulator: str) -> Target:
    return Target(
        "raw",
        f"{simulator}/api/v2/workspaces/{WORKSPACE}/tickets/unlink",
        {"authorization": BASIC_AUTHORIZATION, "content-type": "application/json"},
    )


def app_target(host: str) -> Target:
    return Target(
        "app",
        f"{host}/api/contraforce/workspaces/{WORKSPACE}/tickets/unlink",
        {"x-functions-key": FUNCTION_KEY, "content-type": "application/json"},
    )


def dry_run_target(host: str) -> Target:
    """The same app route with `?dryRun=true`: everything but the upstream call."""
    return Target(
        "app-dry-run",
        f"{host}/api/contraforce/workspaces/{WORKSPACE}/tickets/unlink?dryRun=true",
        {"x-functions-key": FUNCTION_KEY, "content-type": "application/json"},
        expect=b'"status":"planned"',
    )


def caller_client() -> httpx.AsyncClient:
    """One caller's client: one keep-alive connection. Each worker has its own, as independent
    callers do; a single shared client's pool costs ~3 ms CPU per request at 50 in flight
    (httpcore 1.0.9), which would make the load generator the bottleneck."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(30.0),
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    )


async def burst(
    clients: Sequence[httpx.AsyncClient], target: Target, *, per_worker: int
) -> tuple[list[float], float, list[str]]:
    """One worker per client, each sending `per_worker` requests back to back.

    Returns each successful request's latency (seconds), the wall time of the burst, and the
    errors (transport errors and unexpected answers are counted, not retried)."""
    latencies: list[float] = []
    errors: list[str] = []

    async def worker(client: httpx.AsyncClient) -> None:
        for _ in range(per_worker):
            started = time.perf_counter()
            try:
                response = await client.post(
                    target.url, content=STEADY_BODY, headers=target.headers
                )
            except httpx.TransportError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            elapsed = time.perf_counter() - started
            if response.status_code != httpx.codes.OK or target.expect not in response.content:
                errors.append(f"HTTP {response.status_code} {response.text[:200]}")
                continue
            latencies.append(elapsed)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for client in clients:
            group.create_task(worker(client))
    return latencies, time.perf_counter() - started, errors


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Series:
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # process name -> CPU seconds
    errors: list[str] = field(default_factory=list)

    def cpu_ms_per_request(self, process: str) -> float:
        return self.cpu.get(process, 0.0) / len(self.latencies) * 1000 if self.latencies else 0.0

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0


async def compare(
    targets: Sequence[Target],
    *,
    concurrency: int,
    rounds: int,
    per_worker: int,
    warmup_per_worker: int,
    processes: Mapping[str, int],
) -> dict[str, Series]:
    """Warm up every target, then alternate measured rounds between them.

    `processes` (name -> pid) are sampled for CPU time around every measured burst, and so is
    this process, as "load"."""
    results = {target.name: Series() for target in targets}
    async with AsyncExitStack() as stack:
        clients = {
            target.name: [
                await stack.enter_async_context(caller_client()) for _ in range(concurrency)
            ]
            for target in targets
        }
        for target in targets:
            _, _, errors = await burst(clients[target.name], target, per_worker=warmup_per_worker)
            results[target.name].errors.extend(f"warm-up: {error}" for error in errors)
        for _ in range(rounds):
            for target in targets:
                before = _cpu_sample(processes)
                latencies, wall, errors = await burst(
                    clients[target.name], target, per_worker=per_worker
                )
                after = _cpu_sample(processes)
                series = results[target.name]
                series.latencies.extend(latencies)
                series.wall += wall
                series.errors.extend(errors)
                for name, spent in after.items():
                    series.cpu[name] = series.cpu.get(name, 0.0) + spent - before[name]
    return results


def _cpu_sample(processes: Mapping[str, int]) -> dict[str, float]:
    sample = {name: cpu_seconds(pid) for name, pid in processes.items()}
    sample["load"] = time.process_time()
    return sample


# --- report -----------------------------------------------------------------------------------


def _ratio_to_raw(by_path: Mapping[str, Series], path: str, q: float) -> float:
    if path not in by_path or "raw" not in by_path:
        return math.nan
    return ratio(percentile(by_path[path].latencies, q), percentile(by_path["raw"].latencies, q))


def section(p1: Mapping[int, Mapping[str, Series]]) -> list[str]:
    """P1 through the local host: a report line (it describes `make run`), not a target."""
    out = [
        "## P1 through the local host (a report line, not a target)",
        "",
        (
            'Same simulator process, same request bytes (`{"incident": {workspaceId, number '
            "1003, source}}`, the body the app sends upstream), both answered 200 "
            '`{"data": false}`: incident 1003 has no ticket, so every request does the same work '
            "and the state never changes. **raw** = `POST {sim}/api/v2/workspaces/{ws}/tickets/"
            "unlink` with HTTP Basic; **app** = the ContraForce mirror route `POST {host}/api/"
            "contraforce/workspaces/{ws}/tickets/unlink` with the function key (host in its own "
            "process, `CONTRAFORCE_RATE_LIMIT_PER_SECOND=1000000`, logging at WARNING); "
            "**app-dry-run** = the same with `?dryRun=true` (everything but the upstream call). "
            "Each worker is one caller with its own `httpx.AsyncClient` "
            "(one keep-alive connection); all paths warmed up, rounds alternate between paths. "
            "The local host is a second Python HTTP hop that does not exist in Azure: these "
            "figures describe `make run`, not production."
        ),
        "",
        (
            "| concurrency | path | requests | errors | p50 ms | p99 ms | req/s | CPU ms/req: load "
            "| host | simulator |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for concurrency, by_path in sorted(p1.items()):
        for name, series in by_path.items():
            host_cpu = series.cpu_ms_per_request("host")
            out.append(
                f"| {concurrency} | {name} | {len(series.latencies)} | {len(series.errors)} | "
                f"{series.p50_ms:.2f} | "
                f"{series.p99_ms:.2f} | {series.throughput:.0f} | "
                f"{series.cpu_ms_per_request('load'):.2f} | {host_cpu:.2f} | "
                f"{series.cpu_ms_per_request('simulator'):.2f} |"
            )
    failures = [
        f"- concurrency {concurrency}, {name}: {error}"
        for concurrency, by_path in sorted(p1.items())
        for name, series in by_path.items()
        for error in series.errors[:3]
    ]
    if failures:
        out += ["", "Errors (first three per path; not retried, not in the latencies):", ""]
        out += failures
    out += ["", "Ratios to raw:", ""]
    for concurrency, by_path in sorted(p1.items()):
        out += [
            f"- concurrency {concurrency}, {path}: p50 "
            f"{_ratio_to_raw(by_path, path, 50):.2f}x, p99 {_ratio_to_raw(by_path, path, 99):.2f}x"
            for path in by_path
            if path != "raw"
        ]
    return out
