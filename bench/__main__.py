"""`make bench` = `python -m bench`: run P1-P6, write bench/results.md, print the headlines.

Bounded: about 7 minutes on 2 cores (P4's 100,000 actions take most of it and are capped in
time). Servers run in child processes and every child is stopped on the way out.
`BENCH_PROFILE_HOST=1` adds cProfile runs of the local host.
"""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    cold_start,
    p1_latency,
    p1_production,
    p2_import,
    p3_bulk,
    p4_memory,
    p5_shared,
    profiling,
    report,
)
from bench.common import app_settings
from bench.servers import start_host, start_simulator
from local.azurite import start_azurite

RESULTS = Path(__file__).resolve().parent / "results.md"

P1_HIGH_RATE = "1000000"  # pacing must not dominate P1 or P4
P1_PLAN = {  # concurrency -> (rounds, requests per worker per round, warm-up per worker)
    1: (5, 200, 50),
    16: (5, 40, 5),
}
P1_HOST_PLAN = {1: (3, 150, 30), 16: (3, 20, 4)}  # through the local host: a report line
P6_ROUNDS = 20
PROFILE_PLAN = {1: 200, 16: 20}  # concurrency -> requests per worker under cProfile
P2_REPEATS = 15
COLD_START_RUNS = 9
P3_RATE = 50.0
P3_BULK_CONCURRENCY = 16
P4_ACTIONS = 100_000
P4_CONCURRENCY = 2
P4_SECONDS = 240.0
P4_CHECKPOINTS = [1_000, 2_000, 5_000, 10_000, 25_000, 50_000, 75_000, 100_000]
P5_RATE = 50.0
P5_PROCESSES = 4
P5_SECONDS = 20.0
P5_STOP_STORE_AFTER = 8.0


def _step(message: str, started: float) -> None:
    print(f"[{time.perf_counter() - started:6.1f} s] {message}", flush=True)


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _quick() -> None:
    """BENCH_QUICK=1: the same run, much smaller (a smoke test of the benchmark itself)."""
    global P2_REPEATS, P3_RATE, P4_ACTIONS, P4_SECONDS, P4_CHECKPOINTS, P6_ROUNDS, P5_SECONDS
    global COLD_START_RUNS
    P1_PLAN.update({1: (1, 30, 5), 16: (1, 4, 1)})
    P1_HOST_PLAN.update({1: (1, 30, 5), 16: (1, 2, 1)})
    PROFILE_PLAN.update({1: 20, 16: 1})
    P6_ROUNDS = 2
    P5_SECONDS = 10.0
    COLD_START_RUNS = 1
    P2_REPEATS, P3_RATE, P4_ACTIONS, P4_SECONDS = 1, 500.0, 3_000, 60.0
    P4_CHECKPOINTS = [1_000, 3_000]


def main() -> int:
    if os.environ.get("BENCH_QUICK") == "1":
        _quick()
    started = time.perf_counter()
    results = report.Results(
        machine={
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "cpus": str(os.cpu_count()),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "load_before": _load(),
        },
        p4_target_actions=P4_ACTIONS,
        p4_seconds_cap=P4_SECONDS,
    )

    _step("P2: cold imports", started)
    hidden = p2_import.runtime_only_hidden()
    results.p2_hidden = len(hidden)
    results.p2_deployed = p2_import.measure(
        repeats=P2_REPEATS, hidden=hidden, settings=p2_import.DEPLOYED_SETTINGS
    )
    results.p2_venv = p2_import.measure(repeats=P2_REPEATS)
    if p2_import.import_ratio(results.p2_deployed) > p2_import.TARGET:
        results.p2_heavy, results.p2_app_self = p2_import.heavy_imports(
            p2_import.APP, hidden=hidden, settings=p2_import.DEPLOYED_SETTINGS
        )

    with start_simulator() as simulator:
        _step("P2 report line: a whole cold start (import, index, first call)", started)
        results.cold_start = cold_start.measure(
            {**app_settings(simulator.base_url), **p2_import.DEPLOYED_SETTINGS},
            runs=COLD_START_RUNS,
            hidden=hidden,
        )

        settings = app_settings(simulator.base_url, CONTRAFORCE_RATE_LIMIT_PER_SECOND=P1_HIGH_RATE)

        _step("P1 + P6: the production path in one process", started)
        measured = p1_production.run(
            settings,
            {"p1": {str(c): plan for c, plan in P1_PLAN.items()}, "p6_rounds": P6_ROUNDS},
        )
        for concurrency, by_path in measured["p1"].items():
            results.p1_prod[int(concurrency)] = {
                name: p1_latency.Series(
                    latencies=data["latencies"], wall=data["wall"], cpu={"load": data["cpu"]}
                )
                for name, data in by_path.items()
            }
        results.p6 = measured["p6"]

        _step("P1 report line: through the local host", started)
        with start_host(settings) as host:
            targets = [
                p1_latency.raw_target(simulator.base_url),
                p1_latency.app_target(host.base_url),
                p1_latency.dry_run_target(host.base_url),
            ]
            processes = {"simulator": simulator.pid, "host": host.pid}
            for concurrency, (rounds, per_worker, warmup) in P1_HOST_PLAN.items():
                results.p1[concurrency] = asyncio.run(
                    p1_latency.compare(
                        targets,
                        concurrency=concurrency,
                        rounds=rounds,
                        per_worker=per_worker,
                        warmup_per_worker=warmup,
                        processes=processes,
                    )
                )

        if os.environ.get("BENCH_PROFILE_HOST") == "1":
            _step("profiling the local host (cProfile)", started)
            for concurrency, per_worker in PROFILE_PLAN.items():
                results.profiles[concurrency] = profiling.profile_host(
                    settings, concurrency=concurrency, per_worker=per_worker
                )

        _step(f"P3: 1,000-item bulk at {P3_RATE:g} requests/s", started)
        results.p3 = p3_bulk.run(simulator, rate=P3_RATE, bulk_concurrency=P3_BULK_CONCURRENCY)
        if p3_bulk.wall_ratio(results.p3) > p3_bulk.TARGET:
            results.pacing = profiling.probe_pacing(P3_RATE, waiters=P3_BULK_CONCURRENCY, slots=101)

        _step(f"P4: memory over {P4_ACTIONS:,} actions (cap {P4_SECONDS:.0f} s)", started)
        results.p4 = p4_memory.run(
            settings,
            total=P4_ACTIONS,
            batch=1,
            concurrency=P4_CONCURRENCY,
            seconds=P4_SECONDS,
            checkpoints=P4_CHECKPOINTS,
        )

        for stop_after in (None, P5_STOP_STORE_AFTER):
            what = "" if stop_after is None else f", the store stopped after {stop_after:g} s"
            _step(f"P5: {P5_PROCESSES} processes, one budget of {P5_RATE:g}/s{what}", started)
            with start_azurite() as azurite:
                results.p5.append(
                    p5_shared.run(
                        simulator,
                        azurite,
                        rate=P5_RATE,
                        processes=P5_PROCESSES,
                        seconds=P5_SECONDS,
                        stop_store_after=stop_after,
                    )
                )

    results.machine["load_after"] = _load()
    results.duration_seconds = time.perf_counter() - started
    RESULTS.write_text(report.render(results))
    _step(f"wrote {RESULTS}", started)
    report.print_headlines(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
