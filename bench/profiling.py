"""Where the time goes, when a target is missed: cProfile of the host child grouped by layer,
and a pacing probe for the app's limiter. Profiles inflate Python-heavy code (deterministic
profiling costs per call), so shares are indicative; the timings in P1 are the real numbers.
"""

from __future__ import annotations

import asyncio
import pstats
import signal
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import p1_latency
from bench.common import ROOT
from bench.servers import start_host
from shared.clients.pacing import Pacer

# (layer, test on the profile entry's file name); first match wins. Built-in functions ("~")
# are charged to the layer of their callers, except those named in _BUILTIN_LAYERS.
_LAYERS: list[tuple[str, Callable[[str], bool]]] = [
    ("import system (failed imports at run time)", lambda f: f.startswith("<frozen importlib")),
    ("server: uvicorn", lambda f: "/uvicorn/" in f),
    ("HTTP/1.1 parsing: h11 (server and client)", lambda f: "/h11/" in f),
    ("local host adapter (local/)", lambda f: f.startswith(str(ROOT / "local"))),
    ("azure.functions (HttpRequest/HttpResponse)", lambda f: "/azure/functions/" in f),
    ("app upstream client (shared/clients/)", lambda f: f.startswith(str(ROOT / "shared/clients"))),
    (
        "app edge + actions (functions/, shared/)",
        lambda f: f.startswith((str(ROOT / "shared"), str(ROOT / "functions"))),
    ),
    (
        "httpx + httpcore + anyio (upstream client)",
        lambda f: any(
            part in f for part in ("/httpx/", "/httpcore/", "/anyio/", "/sniffio/", "/idna/")
        ),
    ),
    ("pydantic", lambda f: "/pydantic" in f),
    ("stamina + tenacity (retries)", lambda f: "/stamina/" in f or "/tenacity/" in f),
    ("logging", lambda f: "/logging/" in f),
    ("asyncio event loop", lambda f: "/asyncio/" in f or f.endswith("selectors.py")),
    ("json", lambda f: "/json/" in f),
]
_BUILTIN_LAYERS: list[tuple[str, Callable[[str], bool]]] = [
    ("idle (waiting in epoll)", lambda name: "epoll" in name and "poll" in name),
    (
        "socket syscalls (send/recv/accept/connect)",
        lambda name: "_socket.socket" in name,
    ),
]
OTHER = "other (stdlib, uuid, datetime, ...)"
IDLE = "idle (waiting in epoll)"


# Cumulative (on-CPU) time of a few functions, per request. Plain functions only: cProfile's
# cumulative time of a coroutine frame (counted per resume) does not add up reliably.
HOTSPOTS: list[tuple[str, str, str]] = [
    (
        "httpcore pool bookkeeping: _assign_requests_to_connections",
        "/httpcore/_async/connection_pool.py",
        "_assign_requests_to_connections",
    ),
    (
        "httpcore current_async_library",
        "/httpcore/_synchronization.py",
        "current_async_library",
    ),
]


@dataclass(frozen=True)
class LayerProfile:
    requests: int
    concurrency: int
    microseconds_per_request: dict[str, float]  # busy layers only, largest first
    idle_share: float
    hotspots: dict[str, float]  # cumulative µs per request
    top_functions: list[tuple[str, float]]  # own µs per request


def _layer_of_file(filename: str) -> str:
    for layer, test in _LAYERS:
        if test(filename):
            return layer
    return OTHER


Key = tuple[str, int, str]


def layers(stats: pstats.Stats) -> dict[str, float]:
    """Own time (seconds) by layer; built-ins charged to their callers' layers."""
    raw: dict[Key, tuple[int, int, float, float, dict[Key, tuple[int, int, float, float]]]]
    raw = stats.stats  # type: ignore[attr-defined]
    totals: dict[str, float] = defaultdict(float)
    for (filename, _line, name), (_cc, _nc, own, _cum, callers) in raw.items():
        if filename != "~":
            totals[_layer_of_file(filename)] += own
            continue
        special = next((layer for layer, test in _BUILTIN_LAYERS if test(name)), None)
        if special is not None:
            totals[special] += own
            continue
        weights = {caller: edge[2] for caller, edge in callers.items()}
        weight_sum = sum(weights.values())
        if weight_sum <= 0:
            totals[OTHER] += own
            continue
        for (caller_file, _l, _n), weight in weights.items():
            layer = OTHER if caller_file == "~" else _layer_of_file(caller_file)
            totals[layer] += own * weight / weight_sum
    return dict(totals)


def profile_host(settings: dict[str, str], *, concurrency: int, per_worker: int) -> LayerProfile:
    """Warm the host up, profile `concurrency x per_worker` app requests, group by layer."""
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        target_file = Path(tmp) / "host.prof"
        with start_host(settings, profile_to=target_file) as host:
            target = p1_latency.app_target(host.base_url)

            async def drive(per: int) -> None:
                await p1_latency.compare(
                    [target],
                    concurrency=concurrency,
                    rounds=1,
                    per_worker=per,
                    warmup_per_worker=max(1, per // 4),
                    processes={},
                )

            asyncio.run(drive(2))
            host.signal(signal.SIGUSR1)
            time.sleep(0.2)
            asyncio.run(drive(per_worker))
            host.signal(signal.SIGUSR2)
            deadline = time.monotonic() + 30
            while not target_file.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            stats = pstats.Stats(str(target_file))
    by_layer = layers(stats)
    # The drive() above also ran warm-up requests inside the profiled window: count them.
    requests = concurrency * (per_worker + max(1, per_worker // 4))
    idle = by_layer.pop(IDLE, 0.0)
    busy = sum(by_layer.values())
    per_request = {
        layer: seconds / requests * 1e6
        for layer, seconds in sorted(by_layer.items(), key=lambda item: -item[1])
    }
    raw: dict[Key, tuple[int, int, float, float, object]] = stats.stats  # type: ignore[attr-defined]
    hotspots: dict[str, float] = {}
    for label, file_part, function in HOTSPOTS:
        cumulative = sum(
            entry[3]
            for (filename, _line, name), entry in raw.items()
            if name == function and filename.endswith(file_part)
        )
        hotspots[label] = cumulative / requests * 1e6
    own = sorted(
        (
            (f"{_short(filename)}:{name}", entry[2] / requests * 1e6)
            for (filename, _line, name), entry in raw.items()
            if not (filename == "~" and "epoll" in name)
        ),
        key=lambda item: -item[1],
    )
    return LayerProfile(
        requests=requests,
        concurrency=concurrency,
        microseconds_per_request=per_request,
        idle_share=idle / (idle + busy) if idle + busy else 0.0,
        hotspots=hotspots,
        top_functions=own[:8],
    )


def _short(filename: str) -> str:
    for marker in ("site-packages/", "python3.11/", str(ROOT) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


@dataclass(frozen=True)
class PacingProbe:
    rate: float
    waiters: int
    slots: int
    seconds: float

    @property
    def achieved_rate(self) -> float:
        return (self.slots - 1) / self.seconds if self.seconds else 0.0

    @property
    def interval_ms(self) -> float:
        return self.seconds / (self.slots - 1) * 1000 if self.slots > 1 else 0.0


def probe_pacing(rate: float, *, waiters: int, slots: int) -> PacingProbe:
    """How fast the app's `Pacer(R)` really lets a long burst go, with `waiters` tasks
    competing, nothing else running: time from the first slot to the last."""

    async def main() -> float:
        limiter = Pacer(rate)
        stamps: list[float] = []
        remaining = slots

        async def waiter() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                async with limiter.slot():
                    pass
                stamps.append(time.perf_counter())

        async with asyncio.TaskGroup() as group:
            for _ in range(waiters):
                group.create_task(waiter())
        return max(stamps) - min(stamps)

    return PacingProbe(rate, waiters, slots, asyncio.run(main()))


# --- report -----------------------------------------------------------------------------------


def section(profiles: Mapping[int, LayerProfile], pacing: PacingProbe | None) -> list[str]:
    """The host's profiles by layer (run with BENCH_PROFILE_HOST=1) and the pacer alone (run
    when P3 misses its target)."""
    out = ["## Where the time goes (profiles of the host; indicative shares)", ""]
    for concurrency, profile in sorted(profiles.items()):
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
    if pacing is not None:
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


def top(values: dict[str, float], count: int) -> Sequence[tuple[str, float]]:
    return sorted(values.items(), key=lambda item: -item[1])[:count]
