"""P1 on the production path, and P6: in one process, as the Functions worker runs the app.

Child side (`python -m bench.p1_production PLAN_JSON`, app settings in the environment): one
event loop; the app's ContraForce mirror handler is taken from `app.get_functions()` and called
with a real `func.HttpRequest`, as P4 does. Against the same simulator (a separate process):

- `raw-httpx`: one `httpx.AsyncClient` (httpcore pool), the request the app sends upstream;
- `raw-httpx-aiohttp`: the same client on the httpx-aiohttp transport;
- `raw-aiohttp`: one `aiohttp.ClientSession`;
- `app-httpcore` / `app-aiohttp`: the app's handler, its upstream client on each transport
  (`HTTP_TRANSPORT`); both clients are built once and swapped in between rounds.

Every path shares one pooled client among its workers (as the app does); rounds alternate
between paths. P6: rounds of ten sequential handler calls with pacing at the default 20/s and
with pacing off, each round starting with an empty window (1.1 s apart). Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bench.common import (
    BASIC_AUTHORIZATION,
    STEADY_BODY,
    WORKSPACE,
    Headline,
    percentile,
    ratio,
    run_child,
)

if TYPE_CHECKING:
    from bench.p1_latency import Series

PATHS = ("raw-httpx", "raw-httpx-aiohttp", "raw-aiohttp", "app-httpcore", "app-aiohttp")
MIRROR = "contraforce_unlink_ticket"
P6_RATE = 20.0  # the default CONTRAFORCE_RATE_LIMIT_PER_SECOND
P50_TARGET = 1.15  # app p50 / raw httpx p50, concurrency 1
THROUGHPUT_TARGET = 0.4  # app throughput / raw aiohttp throughput, concurrency 16
P99_TARGET = 3.0  # app p99 / raw aiohttp p99, concurrency 16
APP_PATH = "app-aiohttp"  # the app as configured by default (HTTP_TRANSPORT=aiohttp)
P6_TARGET = 1.2  # p50 paced / p50 pacing off

BySeries = Mapping[int, Mapping[str, "Series"]]  # concurrency -> path -> series


def run(settings: dict[str, str], plan: dict[str, Any]) -> dict[str, Any]:
    """Run the child; returns {"p1": {c: {path: {"latencies": [...], "wall": s, "cpu": s}}},
    "p6": {"paced": [...], "unpaced": [...]}}."""
    printed = run_child(
        ["-m", "bench.p1_production", json.dumps(plan)], settings, timeout=900, what="P1 child"
    )
    result: dict[str, Any] = json.loads(printed.strip().splitlines()[-1])
    return result


# --- report -----------------------------------------------------------------------------------


def headlines(p1: BySeries) -> list[Headline]:
    """P1's targets: the app vs raw httpx at concurrency 1, vs raw aiohttp at 16."""
    rows: list[Headline] = []
    one, many = p1.get(1, {}), p1.get(16, {})
    if APP_PATH in one and "raw-httpx" in one:
        app, raw = one[APP_PATH], one["raw-httpx"]
        p50 = ratio(app.p50_ms, raw.p50_ms)
        rows.append(
            Headline(
                "P1 app/raw httpx p50, concurrency 1 (in-process)",
                f"{p50:.2f}x ({app.p50_ms:.2f} vs {raw.p50_ms:.2f} ms)",
                f"<= {P50_TARGET}x",
                p50 <= P50_TARGET,
            )
        )
    if APP_PATH in many and "raw-aiohttp" in many:
        app, raw = many[APP_PATH], many["raw-aiohttp"]
        throughput = ratio(app.throughput, raw.throughput)
        p99 = ratio(app.p99_ms, raw.p99_ms)
        rows.append(
            Headline(
                "P1 app/raw aiohttp throughput, concurrency 16 (in-process)",
                f"{throughput:.2f}x ({app.throughput:.0f} vs {raw.throughput:.0f} req/s)",
                f">= {THROUGHPUT_TARGET}x",
                throughput >= THROUGHPUT_TARGET,
            )
        )
        rows.append(
            Headline(
                "P1 app/raw aiohttp p99, concurrency 16 (in-process)",
                f"{p99:.2f}x ({app.p99_ms:.1f} vs {raw.p99_ms:.1f} ms)",
                f"<= {P99_TARGET}x",
                p99 <= P99_TARGET,
            )
        )
    return rows


def section(p1: BySeries) -> list[str]:
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
    for concurrency, by_path in sorted(p1.items()):
        out += [
            f"| {concurrency} | {name} | {len(series.latencies)} | {series.p50_ms:.2f} | "
            f"{series.p99_ms:.2f} | {series.throughput:.0f} | "
            f"{series.cpu_ms_per_request('load'):.2f} |"
            for name, series in by_path.items()
        ]
    return out


def p6_headlines(p6: Mapping[str, Sequence[float]]) -> list[Headline]:
    if not p6.get("paced") or not p6.get("unpaced"):
        return []
    paced, unpaced = percentile(p6["paced"], 50), percentile(p6["unpaced"], 50)
    measured = ratio(paced, unpaced)
    return [
        Headline(
            "P6 ten sequential calls at 20/s, p50 paced / pacing off",
            f"{measured:.2f}x ({paced * 1000:.2f} vs {unpaced * 1000:.2f} ms)",
            f"<= {P6_TARGET}x",
            measured <= P6_TARGET,
        )
    ]


def p6_section(p6: Mapping[str, Sequence[float]]) -> list[str]:
    if not p6:
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
    for name, latencies in p6.items():
        out.append(
            f"| {name} | {len(latencies)} | {percentile(latencies, 50) * 1000:.2f} | "
            f"{percentile(latencies, 99) * 1000:.2f} | {max(latencies) * 1000:.2f} |"
        )
    return out


# --- child side -------------------------------------------------------------------------------

Call = Callable[[], Awaitable[None]]


async def _paths(
    upstream: str,
) -> tuple[dict[str, Call], Callable[[Any], Call], Callable[[], Awaitable[None]]]:
    import aiohttp
    import azure.functions as func
    import httpx

    from function_app import app
    from shared.clients import registry
    from shared.clients.transport import build_transport
    from shared.config import get_settings

    headers = {"authorization": BASIC_AUTHORIZATION, "content-type": "application/json"}
    url = f"{upstream}/workspaces/{WORKSPACE}/tickets/unlink"
    raw_httpx = httpx.AsyncClient(timeout=10.0, limits=build_limits())
    raw_httpx_aiohttp = httpx.AsyncClient(
        timeout=10.0, transport=build_transport("aiohttp", limits=build_limits())
    )
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))

    async def via_httpx(client: httpx.AsyncClient) -> None:
        response = await client.post(url, content=STEADY_BODY, headers=headers)
        if response.status_code != 200 or b'"data":false' not in response.content:
            raise RuntimeError(f"HTTP {response.status_code}")

    async def via_aiohttp() -> None:
        async with session.post(url, data=STEADY_BODY, headers=headers) as response:
            body = await response.read()
        if response.status != 200 or b'"data":false' not in body:
            raise RuntimeError(f"HTTP {response.status}")

    app.functions_bindings = None  # let get_functions() index this app
    functions = {str(f.get_function_name()): f for f in app.get_functions()}
    handler = functions[MIRROR].get_user_function()
    settings = get_settings()
    clients = {}
    for kind in ("httpcore", "aiohttp"):
        registry.reset()
        clients[kind] = registry.contraforce(settings.model_copy(update={"http_transport": kind}))
    registry.reset()

    def app_call(client: Any) -> Call:
        async def call() -> None:
            registry._registry.contraforce = client  # the bench swaps pools
            request = func.HttpRequest(
                method="POST",
                url=f"http://localhost:7071/api/contraforce/workspaces/{WORKSPACE}/tickets/unlink",
                headers={"Content-Type": "application/json"},
                params={},
                route_params={"workspaceId": WORKSPACE},
                body=STEADY_BODY,
            )
            response = await handler(request)
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {response.get_body()[:200]!r}")

        return call

    async def close() -> None:
        await raw_httpx.aclose()
        await raw_httpx_aiohttp.aclose()
        await session.close()
        for client in clients.values():
            await client.aclose()

    return (
        {
            "raw-httpx": lambda: via_httpx(raw_httpx),
            "raw-httpx-aiohttp": lambda: via_httpx(raw_httpx_aiohttp),
            "raw-aiohttp": via_aiohttp,
            "app-httpcore": app_call(clients["httpcore"]),
            "app-aiohttp": app_call(clients["aiohttp"]),
        },
        app_call,
        close,
    )


def build_limits() -> Any:
    from shared.clients.transport import POOL_LIMITS

    return POOL_LIMITS


async def _burst(call: Call, *, concurrency: int, per_worker: int) -> tuple[list[float], float]:
    latencies: list[float] = []

    async def worker() -> None:
        for _ in range(per_worker):
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return latencies, time.perf_counter() - started


async def _main(plan: dict[str, Any]) -> dict[str, Any]:
    from shared.clients import registry
    from shared.config import get_settings

    upstream = os.environ["CONTRAFORCE_BASE_URL"].rstrip("/")
    paths, app_call, close = await _paths(upstream)
    p1: dict[str, dict[str, dict[str, Any]]] = {}
    for concurrency_text, (rounds, per_worker, warmup) in plan["p1"].items():
        concurrency = int(concurrency_text)
        series: dict[str, dict[str, Any]] = {
            name: {"latencies": [], "wall": 0.0, "cpu": 0.0} for name in PATHS
        }
        for name in PATHS:
            await _burst(paths[name], concurrency=concurrency, per_worker=warmup)
        for _ in range(rounds):
            for name in PATHS:
                cpu = time.process_time()
                latencies, wall = await _burst(
                    paths[name], concurrency=concurrency, per_worker=per_worker
                )
                series[name]["cpu"] += time.process_time() - cpu
                series[name]["latencies"].extend(latencies)
                series[name]["wall"] += wall
        p1[concurrency_text] = series

    # P6: the same handler on the aiohttp transport, pacing at 20/s vs off.
    settings = get_settings()
    registry.reset()
    paced_client = registry.contraforce(
        settings.model_copy(update={"contraforce_rate_limit_per_second": P6_RATE})
    )
    registry.reset()
    unpaced_client = registry.contraforce(settings)
    p6: dict[str, list[float]] = {"paced": [], "unpaced": []}
    calls = {"paced": app_call(paced_client), "unpaced": app_call(unpaced_client)}
    for _ in range(plan["p6_rounds"]):
        for name, call in calls.items():
            await asyncio.sleep(1.1)  # an empty window for every round
            for _ in range(10):
                started = time.perf_counter()
                await call()
                p6[name].append(time.perf_counter() - started)
    await paced_client.aclose()
    await unpaced_client.aclose()
    await close()
    return {"p1": p1, "p6": p6}


def main(argv: list[str]) -> int:
    result = asyncio.run(_main(json.loads(argv[0])))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
