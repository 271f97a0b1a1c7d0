"""P4: peak RSS of one process after 1,000 and after 100,000 actions.

Child side (`python -m bench.p4_memory TOTAL CONCURRENCY SECONDS CHECKPOINTS...`): imports
`function_app`, takes the registered ContraForce mirror handler from `app.get_functions()` and
calls it the way the worker does (a real `func.HttpRequest`), `CONCURRENCY` calls in flight on
one event loop, against the simulator named by the app settings in its environment. At each
checkpoint it prints one JSON line: actions done, `ru_maxrss`, current RSS, elapsed. It stops at
TOTAL actions or after SECONDS, whichever comes first (then it reports where it got to).
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import resource
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import STEADY_BODY, WORKSPACE, Headline, run_child

MIRROR = "contraforce_unlink_ticket"
CANONICAL = "unlink_ticket"
TARGET = 0.10  # peak RSS growth from 1,000 to 100,000 actions


@dataclass(frozen=True)
class Checkpoint:
    actions: int
    hwm_kib: int  # VmHWM: peak RSS of this process image
    maxrss_kib: int  # ru_maxrss: also counts the parent's RSS at fork (Linux folds the
    #                  pre-exec high-water mark in), so it reads the parent's size early on
    rss_kib: int  # VmRSS: now
    seconds: float


def run(
    settings: dict[str, str],
    *,
    total: int,
    batch: int,
    concurrency: int,
    seconds: float,
    checkpoints: list[int],
) -> list[Checkpoint]:
    """Run the child and return its checkpoints (the last one is where it stopped).

    `batch` 1: one call of the ContraForce mirror handler per action. `batch` N > 1: calls of
    the canonical handler with `{"items": [...N items...]}`; each item is one action (one
    upstream request). Checkpoints count actions."""
    printed = run_child(
        [
            "-m",
            "bench.p4_memory",
            str(total),
            str(batch),
            str(concurrency),
            str(seconds),
            *map(str, checkpoints),
        ],
        settings,
        timeout=seconds + 120,
        what="memory child",
    )
    return [Checkpoint(**json.loads(line)) for line in printed.splitlines() if line.strip()]


# --- report -----------------------------------------------------------------------------------


def growth(checkpoints: Sequence[Checkpoint]) -> tuple[Checkpoint | None, Checkpoint | None, float]:
    """(the first checkpoint at 1,000 actions or more, the last, peak RSS growth between)."""
    first = next((c for c in checkpoints if c.actions >= 1000), None)
    last = checkpoints[-1] if checkpoints else None
    if first is None or last is None:
        return first, last, math.nan
    return first, last, last.hwm_kib / first.hwm_kib - 1


def headlines(checkpoints: Sequence[Checkpoint], *, target_actions: int) -> list[Headline]:
    first, last, grown = growth(checkpoints)
    if first is None or last is None:
        return []
    reached = "" if last.actions >= target_actions else " (time cap)"
    return [
        Headline(
            f"P4 peak RSS {last.actions:,} vs {first.actions:,} actions{reached}",
            f"{grown * 100:+.1f} %",
            f"<= +{TARGET * 100:.0f} %",
            grown <= TARGET and last.actions >= target_actions,
        )
    ]


def section(
    checkpoints: Sequence[Checkpoint], *, target_actions: int, seconds_cap: float
) -> list[str]:
    first, last, grown = growth(checkpoints)
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
            f"Time cap {seconds_cap:.0f} s."
        ),
        "",
        "| actions | peak RSS (VmHWM) MiB | current RSS MiB | ru_maxrss MiB | elapsed s |",
        "|---|---|---|---|---|",
    ]
    out += [
        f"| {c.actions:,} | {c.hwm_kib / 1024:.1f} | {c.rss_kib / 1024:.1f} | "
        f"{c.maxrss_kib / 1024:.1f} | {c.seconds:.1f} |"
        for c in checkpoints
    ]
    if first is not None and last is not None:
        out += [
            "",
            f"Peak RSS growth from {first.actions:,} to {last.actions:,} actions: "
            f"{grown * 100:+.1f} % ({(last.hwm_kib - first.hwm_kib) / 1024:+.1f} MiB)"
            + (
                ""
                if last.actions >= target_actions
                else f"; stopped by the time cap before {target_actions:,}"
            ),
        ]
    return out


# --- child side -------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def _report(actions: int, started: float) -> None:
    point = Checkpoint(
        actions=actions,
        hwm_kib=_status_kib("VmHWM"),
        maxrss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        rss_kib=_status_kib("VmRSS"),
        seconds=round(time.perf_counter() - started, 3),
    )
    print(json.dumps(point.__dict__), flush=True)


async def _main(
    total: int, batch: int, concurrency: int, seconds: float, checkpoints: list[int]
) -> None:
    import azure.functions as func

    from function_app import app
    from shared.clients import registry

    app.functions_bindings = None  # let get_functions() index this app (it refuses a second time)
    functions = {str(f.get_function_name()): f for f in app.get_functions()}
    handler: Callable[[func.HttpRequest], Awaitable[func.HttpResponse]] = functions[
        MIRROR if batch == 1 else CANONICAL
    ].get_user_function()
    if batch == 1:
        url = f"http://localhost:7071/api/contraforce/workspaces/{WORKSPACE}/tickets/unlink"
        route_params = {"workspaceId": WORKSPACE}
        body = STEADY_BODY
        expected = 200
    else:
        url = "http://localhost:7071/api/actions/unlink-ticket"
        route_params = {}
        item = {"workspaceId": WORKSPACE, "incident": {"number": "1003", "source": "Splunk"}}
        body = json.dumps({"items": [item] * batch}).encode()
        expected = 409  # every item not_applied (incident 1003 has no ticket): NOT_APPLIED
    headers = {"Content-Type": "application/json"}

    async def one() -> None:
        request = func.HttpRequest(
            method="POST",
            url=url,
            headers=headers,
            params={},
            route_params=route_params,
            body=body,
        )
        response = await handler(request)
        if response.status_code != expected or _failed_items(response.get_body()):
            raise RuntimeError(f"HTTP {response.status_code}: {response.get_body()[:300]!r}")

    started = time.perf_counter()
    deadline = started + seconds
    pending = sorted(checkpoints)
    issued = 0
    finished = 0

    async def worker() -> None:
        nonlocal issued, finished
        while issued < total and time.perf_counter() < deadline:
            issued += batch
            await one()
            finished += batch
            while pending and finished >= pending[0]:
                pending.pop(0)
                _report(finished, started)

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    if not checkpoints or finished != max(checkpoints):
        _report(finished, started)
    await registry.aclose()
    gc.collect()


def _failed_items(body: bytes) -> int:
    """Items with status `failed` in an Outcome (inside a problem's `outcome` on a 409)."""
    data = json.loads(body)
    if not isinstance(data, dict):
        return 0
    outcome = data.get("outcome", data)
    items = outcome.get("items", []) if isinstance(outcome, dict) else []
    return sum(1 for item in items if isinstance(item, dict) and item.get("status") == "failed")


def main(argv: list[str]) -> int:
    total, batch, concurrency, seconds, *checkpoints = argv
    asyncio.run(
        _main(
            int(total),
            int(batch),
            int(concurrency),
            float(seconds),
            [int(c) for c in checkpoints],
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
