"""Results as markdown (`bench/results.md`) and the headline lines printed at the end."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from bench.cold_start import ColdStart
from bench.common import percentile, ratio
from bench.p1_latency import Series
from bench.p2_import import APP, BASELINE, DEPLOYED_SETTINGS, ImportTiming
from bench.p3_bulk import BulkResult
from bench.p4_memory import Checkpoint
from bench.p5_shared import ITEMS_PER_CALL, SharedRun
from bench.profiling import LayerProfile, PacingProbe

P1_P50_TARGET = 1.15  # app p50 / raw httpx p50, concurrency 1
P1_THROUGHPUT_TARGET = 0.4  # app throughput / raw aiohttp throughput, concurrency 16
P1_P99_TARGET = 3.0  # app p99 / raw aiohttp p99, concurrency 16
P1_APP = "app-aiohttp"  # the app as configured by default (HTTP_TRANSPORT=aiohttp)
P2_TARGET = 2.0
P3_TARGET = 1.02
P6_TARGET = 1.2
P5_LOW = 0.9  # aggregate admitted rate >= 0.9 R (and <= R: no 429)
P5_GAP = 5.0  # with the store stopped: no caller waits longer than this between answers
P4_TARGET = 0.10


@dataclass
class Results:
    machine: dict[str, str]
    p1: dict[int, dict[str, Series]] = field(default_factory=dict)  # through the local host
    p1_prod: dict[int, dict[str, Series]] = field(default_factory=dict)  # in-process
    p6: dict[str, list[float]] = field(default_factory=dict)  # "paced" / "unpaced" latencies
    p5: list[SharedRun] = field(default_factory=list)  # store up, then stopped mid-run
    p2_deployed: dict[str, ImportTiming] = field(default_factory=dict)
    p2_venv: dict[str, ImportTiming] = field(default_factory=dict)
    p2_heavy: list[tuple[str, str, float]] = field(default_factory=list)
    p2_hidden: int = 0
    p2_app_self: float = 0.0
    cold_start: ColdStart | None = None  # a report line beside P2
    p3: BulkResult | None = None
    p4: list[Checkpoint] = field(default_factory=list)
    p4_target_actions: int = 100_000
    p4_seconds_cap: float = 0.0
    profiles: dict[int, LayerProfile] = field(default_factory=dict)
    pacing: PacingProbe | None = None
    duration_seconds: float = 0.0


@dataclass(frozen=True)
class Headline:
    name: str
    measured: str
    target: str
    met: bool


def _p1_ratio(results: Results, concurrency: int, q: float, path: str = "app") -> float:
    series = results.p1.get(concurrency, {})
    if path not in series or "raw" not in series:
        return math.nan
    return ratio(percentile(series[path].latencies, q), percentile(series["raw"].latencies, q))


def p2_ratio(timings: dict[str, ImportTiming], label: str = APP) -> float:
    """The import labelled `label` (a key of bench.p2_import.IMPORTS) / bare azure.functions."""
    if label not in timings or BASELINE not in timings:
        return math.nan
    return ratio(timings[label].import_seconds, timings[BASELINE].import_seconds)


def p2_round_ratio(timings: dict[str, ImportTiming], label: str = APP) -> float:
    """The median over rounds of (`label` / azure.functions in the same round): the typical
    ratio, where the best-of ratio compares two luckiest runs that may be minutes apart."""
    if label not in timings or BASELINE not in timings:
        return math.nan
    pairs = zip(timings[label].rounds, timings[BASELINE].rounds, strict=True)
    return statistics.median(ratio(mine, base) for mine, base in pairs)


def p3_ratio(results: Results) -> float:
    return results.p3.wall_seconds / results.p3.ideal_seconds if results.p3 else math.nan


def p4_growth(results: Results) -> tuple[Checkpoint | None, Checkpoint | None, float]:
    first = next((c for c in results.p4 if c.actions >= 1000), None)
    last = results.p4[-1] if results.p4 else None
    if first is None or last is None:
        return first, last, math.nan
    return first, last, last.hwm_kib / first.hwm_kib - 1


def headlines(results: Results) -> list[Headline]:
    rows: list[Headline] = []
    one, many = results.p1_prod.get(1, {}), results.p1_prod.get(16, {})
    if P1_APP in one and "raw-httpx" in one:
        p50 = ratio(one[P1_APP].p50_ms, one["raw-httpx"].p50_ms)
        rows.append(
            Headline(
                "P1 app/raw httpx p50, concurrency 1 (in-process)",
                f"{p50:.2f}x ({one[P1_APP].p50_ms:.2f} vs {one['raw-httpx'].p50_ms:.2f} ms)",
                f"<= {P1_P50_TARGET}x",
                p50 <= P1_P50_TARGET,
            )
        )
    if P1_APP in many and "raw-aiohttp" in many:
        app, raw = many[P1_APP], many["raw-aiohttp"]
        throughput = ratio(app.throughput, raw.throughput)
        p99 = ratio(app.p99_ms, raw.p99_ms)
        rows.append(
            Headline(
                "P1 app/raw aiohttp throughput, concurrency 16 (in-process)",
                f"{throughput:.2f}x ({app.throughput:.0f} vs {raw.throughput:.0f} req/s)",
                f">= {P1_THROUGHPUT_TARGET}x",
                throughput >= P1_THROUGHPUT_TARGET,
            )
        )
        rows.append(
            Headline(
                "P1 app/raw aiohttp p99, concurrency 16 (in-process)",
                f"{p99:.2f}x ({app.p99_ms:.1f} vs {raw.p99_ms:.1f} ms)",
                f"<= {P1_P99_TARGET}x",
                p99 <= P1_P99_TARGET,
            )
        )
    deployed = p2_ratio(results.p2_deployed)
    rows.append(
        Headline(
            "P2 import function_app / azure.functions (runtime deps only)",
            f"{deployed:.2f}x",
            f"<= {P2_TARGET}x",
            deployed <= P2_TARGET,
        )
    )
    venv = p2_ratio(results.p2_venv)
    rows.append(
        Headline(
            "P2 same, in the dev venv as is",
            f"{venv:.2f}x",
            f"<= {P2_TARGET}x",
            venv <= P2_TARGET,
        )
    )
    if results.p3 is not None:
        p3 = p3_ratio(results)
        rows.append(
            Headline(
                f"P3 bulk wall / ideal ({results.p3.items} items at {results.p3.rate:g}/s)",
                f"{p3:.3f}x, {results.p3.failed} failed, {results.p3.rate_limited} x 429",
                f"<= {P3_TARGET}x, 0 failed, 0 x 429",
                p3 <= P3_TARGET and results.p3.failed == 0 and results.p3.rate_limited == 0,
            )
        )
    if results.p6.get("paced") and results.p6.get("unpaced"):
        paced = percentile(results.p6["paced"], 50)
        unpaced = percentile(results.p6["unpaced"], 50)
        p6 = ratio(paced, unpaced)
        rows.append(
            Headline(
                "P6 ten sequential calls at 20/s, p50 paced / pacing off",
                f"{p6:.2f}x ({paced * 1000:.2f} vs {unpaced * 1000:.2f} ms)",
                f"<= {P6_TARGET}x",
                p6 <= P6_TARGET,
            )
        )
    for run in results.p5:
        steady = p5_steady(run)
        if run.store_stopped_at is None:
            rows.append(
                Headline(
                    f"P5 {run.processes} processes, one budget of {run.rate:g}/s: admitted rate",
                    f"{steady:.1f}/s = {steady / run.rate:.2f} R, {run.rate_limited} x 429, "
                    f"{run.failed} failed",
                    f">= {P5_LOW} R, 0 x 429, 0 failed",
                    steady >= P5_LOW * run.rate and run.rate_limited == 0 and run.failed == 0,
                )
            )
        else:
            rows.append(
                Headline(
                    f"P5 same, store stopped {run.store_stopped_at:g} s in: no stall",
                    f"longest wait between answers {run.longest_gap:.1f} s, "
                    f"{run.rate_limited} x 429 (retried), {run.failed} failed",
                    f"<= {P5_GAP:g} s, 0 failed",
                    run.longest_gap <= P5_GAP and run.failed == 0,
                )
            )
    first, last, growth = p4_growth(results)
    if first is not None and last is not None:
        reached = "" if last.actions >= results.p4_target_actions else " (time cap)"
        rows.append(
            Headline(
                f"P4 peak RSS {last.actions:,} vs {first.actions:,} actions{reached}",
                f"{growth * 100:+.1f} %",
                f"<= +{P4_TARGET * 100:.0f} %",
                growth <= P4_TARGET and last.actions >= results.p4_target_actions,
            )
        )
    return rows


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def render(results: Results) -> str:
    m = results.machine
    out: list[str] = [
        "# Benchmarks (`make bench`)",
        "",
        f"- date: {m['date']}",
        f"- machine: {m['cpus']} CPUs, {m['platform']}, Python {m['python']}",
        (
            f"- load average before / after: {m['load_before']} / {m['load_after']}"
            " (other work on the machine shows up in every number)"
        ),
        f"- whole run: {results.duration_seconds:.0f} s",
        "",
        "## Headline",
        "",
        "| measure | measured | target | met |",
        "|---|---|---|---|",
    ]
    out += [
        f"| {h.name} | {h.measured} | {h.target} | {'yes' if h.met else 'NO'} |"
        for h in headlines(results)
    ]
    out += ["", *_p1_prod_section(results), "", *_p1_section(results)]
    out += ["", *_p2_section(results), "", *_p3_section(results), "", *_p6_section(results)]
    out += ["", *_p4_section(results), "", *_p5_section(results)]
    out += ["", *_findings(results), "", *_where_section(results), ""]
    return "\n".join(out)


def _p1_section(results: Results) -> list[str]:
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
    for concurrency, by_path in sorted(results.p1.items()):
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
        for concurrency, by_path in sorted(results.p1.items())
        for name, series in by_path.items()
        for error in series.errors[:3]
    ]
    if failures:
        out += ["", "Errors (first three per path; not retried, not in the latencies):", ""]
        out += failures
    out += ["", "Ratios to raw:", ""]
    for concurrency in sorted(results.p1):
        for path in results.p1[concurrency]:
            if path == "raw":
                continue
            out.append(
                f"- concurrency {concurrency}, {path}: p50 "
                f"{_p1_ratio(results, concurrency, 50, path):.2f}x, p99 "
                f"{_p1_ratio(results, concurrency, 99, path):.2f}x"
            )
    return out


def _p1_prod_section(results: Results) -> list[str]:
    out = [
        "## P1: the production path, in one process",
        "",
        (
            "One process, one event loop, as the Functions worker runs the app: the ContraForce "
            "mirror handler taken from `app.get_functions()` and called with a real "
            "`func.HttpRequest` (as P4), vs raw clients sending the bytes the app sends "
            'upstream, all against the same simulator process (`{"data": false}` for '
            "incident 1003). **raw-httpx**: one `httpx.AsyncClient` (httpcore); "
            "**raw-httpx-aiohttp**: the same on the httpx-aiohttp transport; **raw-aiohttp**: "
            "one `aiohttp.ClientSession`; **app-httpcore** / **app-aiohttp**: the app with "
            "`HTTP_TRANSPORT=httpcore` / `aiohttp` (the default), pacing out of the way "
            "(`CONTRAFORCE_RATE_LIMIT_PER_SECOND=1000000`), logging at WARNING, no telemetry "
            "destination (OpenTelemetry's no-op API: no spans are built; with Application "
            "Insights each call also builds and exports two). Every path "
            "shares one pooled client among its workers; all warmed up (so the app's first "
            "calls have frozen what they loaded out of the collector's way, `shared/heap.py`); "
            "rounds alternate between paths. CPU ms/req is this process's (client and app, not "
            "the simulator)."
        ),
        "",
        "| concurrency | path | requests | p50 ms | p99 ms | req/s | CPU ms/req |",
        "|---|---|---|---|---|---|---|",
    ]
    for concurrency, by_path in sorted(results.p1_prod.items()):
        out += [
            f"| {concurrency} | {name} | {len(series.latencies)} | {series.p50_ms:.2f} | "
            f"{series.p99_ms:.2f} | {series.throughput:.0f} | "
            f"{series.cpu_ms_per_request('load'):.2f} |"
            for name, series in by_path.items()
        ]
    return out


def p5_steady(run: SharedRun) -> float:
    """Admitted requests/s from 3 s after the first request (leases settled) to the end of the
    run or the store's stop."""
    start = run.started_at + 3.0  # leases settled
    end = run.store_stopped_at_s if run.store_stopped_at_s is not None else run.seconds
    return run.admitted_rate(start, end)


def _p5_section(results: Results) -> list[str]:
    if not results.p5:
        return ["## P5: not run"]
    first = results.p5[0]
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
    for run in results.p5:
        statuses: dict[str, int] = {}
        for child in run.children:
            for name, count in child["statuses"].items():
                statuses[name] = statuses.get(name, 0) + int(count)
        store = (
            "up"
            if run.store_stopped_at is None
            else f"stopped {run.store_stopped_at:g} s after the first request"
        )
        out.append(
            f"| {store} | {run.seconds:g} | {p5_steady(run):.1f} | {run.rate_limited} | "
            + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
            + f" | {sum(int(c['attempts']) for c in run.children)} | {run.longest_gap:.2f} |"
        )
        if run.store_stopped_at_s is not None:
            after = run.admitted_rate(run.store_stopped_at_s + 1, run.seconds)
            out.append(f"| (after the stop) | | {after:.1f} | | | | |")
    return out


def _p6_section(results: Results) -> list[str]:
    if not results.p6:
        return ["## P6: not run"]
    out = [
        "## P6: ten sequential calls below the limit",
        "",
        (
            "In the P1 process: rounds of ten back-to-back calls of the mirror handler "
            "(aiohttp transport), each round after 1.1 s of quiet, with the ContraForce client "
            "paced at the default 20/s and with pacing off; rounds alternate."
        ),
        "",
        "| pacing | calls | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|",
    ]
    for name, latencies in results.p6.items():
        out.append(
            f"| {name} | {len(latencies)} | {percentile(latencies, 50) * 1000:.2f} | "
            f"{percentile(latencies, 99) * 1000:.2f} | {max(latencies) * 1000:.2f} |"
        )
    return out


def _p2_section(results: Results) -> list[str]:
    out = [
        "## P2: cold import",
        "",
        (
            "Each in a fresh interpreter, best of N, runs interleaved; import timed inside the "
            "child (`perf_counter` around the import), whole process timed outside. *Runtime deps "
            f"only*: the {results.p2_hidden} top-level modules of distributions outside "
            "requirements.txt's dependency closure are made unimportable, and the app settings "
            "the template sets that change an import are set ("
            + ", ".join(f"`{name}={value}`" for name, value in DEPLOYED_SETTINGS.items())
            + "), as in the deployed app (in the dev venv, httpx also imports its CLI because "
            "click, rich and pygments are installed for schemathesis). The two library lines "
            "import `azure.functions` and the libraries the app's models and settings are "
            "built from, and no app code: the floor under the target."
        ),
        "",
        "| environment | import | import ms | x azure.functions | median per round | process ms |",
        "|---|---|---|---|---|---|",
    ]
    for environment, timings in (
        ("runtime deps only", results.p2_deployed),
        ("dev venv", results.p2_venv),
    ):
        out.extend(
            f"| {environment} | {timing.label} | {_ms(timing.import_seconds)} | "
            f"{p2_ratio(timings, timing.label):.2f}x | "
            f"{p2_round_ratio(timings, timing.label):.2f}x | {_ms(timing.process_seconds)} |"
            for timing in timings.values()
        )
    if results.cold_start is not None:
        cold = results.cold_start
        out += [
            "",
            (
                f"A whole cold start as deployed (a report line, not a target; median of "
                f"{cold.runs} fresh interpreters, runtime deps only, the deployed settings, the "
                f"simulator upstream): import `function_app` {cold.import_seconds * 1000:.0f} "
                f"ms, index its functions {cold.index_seconds * 1000:.1f} ms, the first "
                f"ContraForce call through the mirror handler "
                f"{cold.first_call_seconds * 1000:.0f} ms (settings read, httpx and aiohttp "
                "loaded, the upstream client and its pool built, validators built on first use): "
                f"{cold.total_seconds * 1000:.0f} ms in all; a warm call then takes "
                f"{_ms(cold.warm_call_seconds)} ms. P2 times the import alone: work moved "
                "from the import into the first call would lower P2, not this."
            ),
        ]
    if results.p2_heavy:
        out += [
            "",
            (
                "Costliest third-party imports made directly by app modules (runtime deps only; "
                "`-X importtime`, one run, cumulative, inflated by the option itself):"
            ),
            "",
            "| app module | imports | ms |",
            "|---|---|---|",
        ]
        out += [f"| `{a}` | `{b}` | {s * 1000:.0f} |" for a, b, s in results.p2_heavy]
        out += [
            "",
            (
                f"The app's own modules (functions/, shared/) take "
                f"{results.p2_app_self * 1000:.0f} ms of self time under `-X importtime` "
                "(their bodies: class definitions, pydantic building models and validators)."
            ),
        ]
    return out


def _p3_section(results: Results) -> list[str]:
    p3 = results.p3
    if p3 is None:
        return ["## P3: not run"]
    out = [
        "## P3: 1,000-item bulk call against a rate-limited simulator",
        "",
        (
            f"Simulator: `FaultPlan(rate_limit_per_second={p3.rate:g})` (429 + `Retry-After: 1` "
            f"beyond {p3.rate:g} requests per rolling second). Host: "
            f"`CONTRAFORCE_RATE_LIMIT_PER_SECOND={p3.rate:g}`, `MAX_BULK_ITEMS={p3.items}`, "
            f"`BULK_CONCURRENCY={p3.bulk_concurrency}`, retries and timeouts at their defaults. "
            "Canonical route, items cycling over incidents 1001-1004."
        ),
        "",
        (
            f"- wall time: {p3.wall_seconds:.2f} s; ideal {p3.items}/{p3.rate:g} = "
            f"{p3.ideal_seconds:.2f} s; ratio {p3_ratio(results):.3f}x"
        ),
        f"- HTTP {p3.http_status}; items by status: "
        + ", ".join(f"{k} {v}" for k, v in sorted(p3.statuses.items())),
        f"- failed items: {p3.failed}",
        (
            f"- upstream requests the simulator saw: {p3.upstream_requests}; answered 429: "
            f"{p3.rate_limited}; attempts reported by the Outcome: {p3.attempts}"
        ),
    ]
    steady = steady_rate(list(p3.timeline), p3.items)
    if steady is not None:
        rate, first_seen = steady
        out.append(
            f"- from the simulator's request counter, polled every 0.25 s: first upstream "
            f"request seen by {first_seen:.2f} s; steady rate {rate:.2f} requests/s between "
            f"10 % and 90 % of the items (limit {p3.rate:g}/s)"
        )
    return out


def steady_rate(timeline: list[tuple[float, int]], items: int) -> tuple[float, float] | None:
    """(requests/s between 10 % and 90 % of the items, when the first was seen) from the
    simulator's counter polls."""
    low = [(t, n) for t, n in timeline if n >= items * 0.1]
    high = [(t, n) for t, n in timeline if n <= items * 0.9]
    seen = [t for t, n in timeline if n > 0]
    if not low or not high or not seen:
        return None
    (t0, n0), (t1, n1) = low[0], high[-1]
    if t1 <= t0:
        return None
    return (n1 - n0) / (t1 - t0), seen[0]


def _p4_section(results: Results) -> list[str]:
    first, last, growth = p4_growth(results)
    out = [
        "## P4: peak RSS after 1,000 vs 100,000 actions, one process",
        "",
        (
            "A child process imports `function_app`, takes the registered ContraForce mirror "
            "handler from `app.get_functions()` and calls it as the worker does (a real "
            "`func.HttpRequest`), 2 calls in flight, one action (one upstream request) per call, "
            "against the same simulator. Peak RSS is the process's VmHWM; `ru_maxrss` is shown "
            "too but is not usable here: Linux folds the pre-exec high-water mark (the parent "
            "benchmark's RSS, shared at fork) into it. "
            f"Time cap {results.p4_seconds_cap:.0f} s."
        ),
        "",
        "| actions | peak RSS (VmHWM) MiB | current RSS MiB | ru_maxrss MiB | elapsed s |",
        "|---|---|---|---|---|",
    ]
    out += [
        f"| {c.actions:,} | {c.hwm_kib / 1024:.1f} | {c.rss_kib / 1024:.1f} | "
        f"{c.maxrss_kib / 1024:.1f} | {c.seconds:.1f} |"
        for c in results.p4
    ]
    if first is not None and last is not None:
        out += [
            "",
            f"Peak RSS growth from {first.actions:,} to {last.actions:,} actions: "
            f"{growth * 100:+.1f} % ({(last.hwm_kib - first.hwm_kib) / 1024:+.1f} MiB)"
            + (
                ""
                if last.actions >= results.p4_target_actions
                else f"; stopped by the time cap before {results.p4_target_actions:,}"
            ),
        ]
    return out


def _where_section(results: Results) -> list[str]:
    out = ["## Where the time goes (profiles of the host; indicative shares)", ""]
    for concurrency, profile in sorted(results.profiles.items()):
        total = sum(profile.microseconds_per_request.values())
        out += [
            (
                f"### Host under cProfile, concurrency {concurrency} ({profile.requests} requests; "
                f"busy {total:.0f} us/request under the profiler, idle {profile.idle_share:.0%})"
            ),
            "",
            "| layer | us/request | share |",
            "|---|---|---|",
        ]
        out += [
            f"| {layer} | {us:.0f} | {us / total:.0%} |"
            for layer, us in profile.microseconds_per_request.items()
            if us / total >= 0.005
        ]
        out += ["", "| frame (cumulative, on CPU) | us/request |", "|---|---|"]
        out += [f"| {label} | {us:.0f} |" for label, us in profile.hotspots.items()]
        out += ["", "| top own-time functions | us/request |", "|---|---|"]
        out += [f"| `{name.removeprefix('~:')}` | {us:.0f} |" for name, us in profile.top_functions]
        out.append("")
    if results.pacing is not None:
        pacing = results.pacing
        out += [
            "### The pacer alone",
            "",
            (
                f"`Pacer({pacing.rate:g})` with {pacing.waiters} waiting tasks and "
                f"nothing else running: {pacing.slots} slots in {pacing.seconds:.2f} s = "
                f"{pacing.achieved_rate:.2f}/s (one slot every {pacing.interval_ms:.2f} ms "
                f"instead of {1000 / pacing.rate:.2f} ms)."
            ),
            "",
        ]
    return out


def print_headlines(results: Results) -> None:
    print()
    print("bench: headline ratios (details in bench/results.md)")
    for h in headlines(results):
        print(f"  {'ok  ' if h.met else 'MISS'} {h.name}: {h.measured} (target {h.target})")


def _production_findings(results: Results) -> list[str]:
    out: list[str] = []
    for concurrency, by_path in sorted(results.p1_prod.items()):
        if not {"app-httpcore", "app-aiohttp", "raw-httpx", "raw-httpx-aiohttp"} <= by_path.keys():
            continue
        core, aio = by_path["app-httpcore"], by_path["app-aiohttp"]
        raw_core, raw_aio = by_path["raw-httpx"], by_path["raw-httpx-aiohttp"]
        out.append(
            f"- **P1, transport at concurrency {concurrency}**: the app on aiohttp's pool "
            f"{aio.p50_ms:.2f} ms p50, {aio.p99_ms:.2f} ms p99, {aio.throughput:.0f} req/s, "
            f"{aio.cpu_ms_per_request('load'):.2f} ms CPU/req; on httpcore {core.p50_ms:.2f} / "
            f"{core.p99_ms:.2f} ms, {core.throughput:.0f} req/s, "
            f"{core.cpu_ms_per_request('load'):.2f} ms CPU/req. Raw httpx on the two: "
            f"{raw_aio.cpu_ms_per_request('load'):.2f} vs "
            f"{raw_core.cpu_ms_per_request('load'):.2f} ms CPU/req."
        )
    many = results.p1_prod.get(16, {})
    if {P1_APP, "raw-aiohttp", "raw-httpx-aiohttp"} <= many.keys():
        app, raw, raw_aio = many[P1_APP], many["raw-aiohttp"], many["raw-httpx-aiohttp"]
        out.append(
            f"- **P1, what is left at concurrency 16**: CPU bound on 2 shared cores, throughput "
            f"follows CPU per request: raw aiohttp {raw.cpu_ms_per_request('load'):.2f} ms, "
            f"httpx on the same pool {raw_aio.cpu_ms_per_request('load'):.2f} ms (httpx's own "
            f"request and URL models), the app {app.cpu_ms_per_request('load'):.2f} ms (that, "
            "plus the worker's HttpRequest/HttpResponse, parsing, pydantic models, retries, "
            "the Outcome and its answer)."
        )
    if results.p6.get("paced") and results.p6.get("unpaced"):
        out.append(
            "- **P6**: below the limit the pacer only takes a permit, it never sleeps: p50 "
            f"{percentile(results.p6['paced'], 50) * 1000:.2f} ms paced vs "
            f"{percentile(results.p6['unpaced'], 50) * 1000:.2f} ms unpaced (the one-slot bucket "
            "made each of these calls wait about 50 ms, 1/R at 20/s)."
        )
    for run in results.p5:
        budgets = [b for child in run.children for b in child.get("budgets", [])]
        claims = sum(int(b["claims"]) for b in budgets)
        failures = sum(int(b["failures"]) for b in budgets)
        shares = ", ".join(str(b["limit"]) for b in budgets)
        store = "up" if run.store_stopped_at is None else "stopped mid-run"
        out.append(
            f"- **P5, store {store}**: {len(budgets)} instances, final shares {shares}; "
            f"{claims} claims and {failures} failed claims in about {run.seconds:g} s "
            f"({claims / max(run.seconds, 1) / max(len(budgets), 1):.1f} claims/s per "
            f"instance); {run.rate_limited} x 429; longest wait between answers "
            f"{run.longest_gap:.2f} s."
        )
    return out


def _findings(results: Results) -> list[str]:
    out = ["## Findings (numbers from this run)", ""]
    out += _production_findings(results)
    one = results.p1.get(1, {})
    if {"raw", "app", "app-dry-run"} <= one.keys():
        raw, app, dry = one["raw"], one["app"], one["app-dry-run"]
        out.append(
            f"- **P1, structure**: even with no upstream call at all, the extra hop through the "
            f"local host (uvicorn + h11 + LocalHost + the app's edge) answers in "
            f"{dry.p50_ms:.2f} ms p50 vs {raw.p50_ms:.2f} ms for the whole raw call "
            f"({dry.p50_ms / raw.p50_ms:.2f}x): a second Python HTTP hop cannot fit in 1.15x "
            "of one. The upstream leg inside the app then adds "
            f"{app.p50_ms - dry.p50_ms:.2f} ms p50."
        )
        out.append(
            f"- **P1, CPU per request at concurrency 1**: host {app.cpu_ms_per_request('host'):.2f}"
            f" ms with the upstream call vs {dry.cpu_ms_per_request('host'):.2f} ms dry-run, so "
            f"the app's upstream call costs "
            f"{app.cpu_ms_per_request('host') - dry.cpu_ms_per_request('host'):.2f} ms CPU in "
            f"the host; the same raw httpx call costs the load generator "
            f"{raw.cpu_ms_per_request('load'):.2f} ms (and the simulator "
            f"{raw.cpu_ms_per_request('simulator'):.2f} ms)."
        )
    for concurrency, profile in sorted(results.profiles.items()):
        layers_ = profile.microseconds_per_request
        total = sum(layers_.values()) or 1.0
        client = layers_.get("httpx + httpcore + anyio (upstream client)", 0.0)
        imports = layers_.get("import system (failed imports at run time)", 0.0)
        pool = profile.hotspots.get(
            "httpcore pool bookkeeping: _assign_requests_to_connections", 0.0
        )
        own = layers_.get("app edge + actions (functions/, shared/)", 0.0) + layers_.get(
            "app upstream client (shared/clients/)", 0.0
        )
        out.append(
            f"- **P1, host profile at concurrency {concurrency}**: httpx/httpcore/anyio "
            f"{client / total:.0%} of the host's busy time; `current_async_library` in httpcore "
            f"(per lock setup) {imports / total:.0%}; httpcore's pool "
            f"bookkeeping (`_assign_requests_to_connections`, O(connections x waiting "
            f"requests)) {pool / total:.0%}; the app's own code (functions/, shared/) "
            f"{own / total:.0%}, pydantic {layers_.get('pydantic', 0.0) / total:.0%}."
        )
    deployed = results.p2_deployed
    if {APP, BASELINE} <= deployed.keys():
        extra = deployed[APP].import_seconds - deployed[BASELINE].import_seconds
        line = (
            f"- **P2**: `function_app` costs {extra * 1000:.0f} ms on top of `azure.functions` "
            f"({p2_ratio(deployed):.2f}x best of N, {p2_round_ratio(deployed):.2f}x the median "
            "round); the libraries alone, with no app code, come to "
            + " and ".join(
                f"{p2_ratio(deployed, label):.2f}x / {p2_round_ratio(deployed, label):.2f}x "
                f"({label})"
                for label in deployed
                if label not in (APP, BASELINE)
            )
        )
        if results.p2_heavy:
            top = ", ".join(
                f"`{a}` -> `{b}` {sec * 1000:.0f} ms" for a, b, sec in results.p2_heavy[:5]
            )
            line += (
                f"; largest imports made by app modules (under -X importtime, inflated): {top}; "
                f"the app modules' own bodies {results.p2_app_self * 1000:.0f} ms"
            )
        if results.cold_start is not None:
            cold = results.cold_start
            line += (
                f"; a whole cold start (import, index, first call) takes "
                f"{cold.total_seconds * 1000:.0f} ms, the first call "
                f"{cold.first_call_seconds * 1000:.0f} ms of it"
            )
        out.append(line + ".")
    if results.p3 is not None:
        steady = steady_rate(list(results.p3.timeline), results.p3.items)
        line = (
            f"- **P3**: {results.p3.rate_limited} answers 429 and {results.p3.failed} failed items"
        )
        if steady is not None:
            line += (
                f"; the upstream saw a steady {steady[0]:.2f} requests/s against a limit of "
                f"{results.p3.rate:g}/s"
            )
        if results.pacing is not None:
            line += (
                "; the pacer alone (`Pacer(R)`, nothing else running) gives "
                f"{results.pacing.achieved_rate:.2f}/s"
            )
        out.append(line + ".")
    first, last, growth = p4_growth(results)
    if first is not None and last is not None and len(results.p4) > 2:
        middle = results.p4[len(results.p4) // 2]
        out.append(
            f"- **P4**: peak RSS {first.hwm_kib / 1024:.1f} MiB after {first.actions:,}, "
            f"{middle.hwm_kib / 1024:.1f} MiB after {middle.actions:,}, "
            f"{last.hwm_kib / 1024:.1f} MiB after {last.actions:,} ({growth * 100:+.1f} %)."
        )
    return out
