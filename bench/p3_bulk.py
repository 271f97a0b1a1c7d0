"""P3: one 1,000-item bulk call against a simulator that allows R requests per rolling second
and answers 429 + `Retry-After: 1` beyond it. Wall time vs the ideal 1000/R, failed items, and
the 429s the simulator sent.

The canonical route `POST /api/actions/unlink-ticket` with `{"items": [...]}`; items cycle over
the demo incidents 1001-1004 (each item is one upstream request; the first unlink of 1001, 1002,
1004 succeeds, every other answers `data: false`, i.e. not_applied: neither counts as failed).
The host runs with `CONTRAFORCE_RATE_LIMIT_PER_SECOND=R` (the app paces itself at the limit),
`MAX_BULK_ITEMS=1000` and the `BULK_CONCURRENCY` given; retries are the defaults.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from bench.common import FUNCTION_KEY, WORKSPACE, Headline, app_settings
from bench.servers import Child, start_host

ITEMS = 1000
INCIDENTS = ("1001", "1002", "1003", "1004")
TARGET = 1.02  # wall time / the ideal items/R


@dataclass(frozen=True)
class BulkResult:
    rate: float
    items: int
    bulk_concurrency: int
    wall_seconds: float
    http_status: int
    statuses: dict[str, int]
    attempts: int
    upstream_requests: int
    rate_limited: int
    timeline: tuple[tuple[float, int], ...]  # (seconds since the call, requests seen upstream)

    @property
    def ideal_seconds(self) -> float:
        return self.items / self.rate

    @property
    def failed(self) -> int:
        return self.statuses.get("failed", 0)


def _items() -> list[dict[str, Any]]:
    return [
        {"workspaceId": WORKSPACE, "incident": {"number": INCIDENTS[i % len(INCIDENTS)]}}
        for i in range(ITEMS)
    ]


def run(simulator: Child, *, rate: float, bulk_concurrency: int) -> BulkResult:
    settings = app_settings(
        simulator.base_url,
        CONTRAFORCE_RATE_LIMIT_PER_SECOND=str(rate),
        MAX_BULK_ITEMS=str(ITEMS),
        BULK_CONCURRENCY=str(bulk_concurrency),
    )
    sim = simulator.base_url
    headers = {"x-functions-key": FUNCTION_KEY}
    with start_host(settings) as host, httpx.Client(timeout=httpx.Timeout(300.0)) as client:
        url = f"{host.base_url}/api/actions/unlink-ticket"
        # Warm-up: one item (imports, the upstream client and its connection), then start clean.
        warm = {"workspaceId": WORKSPACE, "incident": {"number": "1003"}}
        client.post(url, json=warm, headers=headers)
        client.post(f"{sim}/_sandbox/reset").raise_for_status()
        client.post(f"{sim}/_sandbox/faults", json={"rateLimitPerSecond": rate}).raise_for_status()
        time.sleep(1.1)  # the warm-up request leaves the simulator's rolling window
        body = json.dumps({"items": _items()}).encode()
        stop = threading.Event()
        timeline: list[tuple[float, int]] = []
        started = time.perf_counter()
        poller = threading.Thread(target=_poll, args=(sim, started, stop, timeline), daemon=True)
        poller.start()
        try:
            response = client.post(
                url, content=body, headers={**headers, "content-type": "application/json"}
            )
            wall = time.perf_counter() - started
        finally:
            stop.set()
            poller.join(5)
        counters = client.get(f"{sim}/_sandbox/counters").json()
        client.delete(f"{sim}/_sandbox/faults").raise_for_status()
        client.post(f"{sim}/_sandbox/reset").raise_for_status()
    outcome = response.json()
    outcome = outcome.get("outcome", outcome) if isinstance(outcome, dict) else {}
    items = outcome.get("items", []) if isinstance(outcome, dict) else []
    statuses = Counter(str(item.get("status")) for item in items if isinstance(item, dict))
    missing = ITEMS - len(items)
    if missing:
        statuses["missing from the answer"] += missing
    return BulkResult(
        rate=rate,
        items=ITEMS,
        bulk_concurrency=bulk_concurrency,
        wall_seconds=wall,
        http_status=response.status_code,
        statuses=dict(statuses),
        attempts=int(outcome.get("attempts", 0)) if isinstance(outcome, dict) else 0,
        upstream_requests=int(counters.get("actionRequests", 0)),
        rate_limited=int(counters.get("faultsByKind", {}).get("rate_limited", 0)),
        timeline=tuple(timeline),
    )


def _poll(
    simulator: str, started: float, stop: threading.Event, into: list[tuple[float, int]]
) -> None:
    """Sample the simulator's request counter every 0.25 s (a cheap GET on its admin route)."""
    with httpx.Client(timeout=5.0) as client:
        while not stop.wait(0.25):
            try:
                count = client.get(f"{simulator}/_sandbox/counters").json()["actionRequests"]
            except (httpx.HTTPError, KeyError, ValueError):
                continue
            into.append((time.perf_counter() - started, int(count)))


# --- report -----------------------------------------------------------------------------------


def wall_ratio(result: BulkResult | None) -> float:
    """Wall time over the ideal items/R."""
    return result.wall_seconds / result.ideal_seconds if result else math.nan


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


def headlines(result: BulkResult | None) -> list[Headline]:
    if result is None:
        return []
    measured = wall_ratio(result)
    return [
        Headline(
            f"P3 bulk wall / ideal ({result.items} items at {result.rate:g}/s)",
            f"{measured:.3f}x, {result.failed} failed, {result.rate_limited} x 429",
            f"<= {TARGET}x, 0 failed, 0 x 429",
            measured <= TARGET and result.failed == 0 and result.rate_limited == 0,
        )
    ]


def section(result: BulkResult | None) -> list[str]:
    if result is None:
        return ["## P3: not run"]
    out = [
        "## P3: 1,000-item bulk call against a rate-limited simulator",
        "",
        (
            f"Simulator: `FaultPlan(rate_limit_per_second={result.rate:g})` (429 + "
            f"`Retry-After: 1` beyond {result.rate:g} requests per rolling second). Host: "
            f"`CONTRAFORCE_RATE_LIMIT_PER_SECOND={result.rate:g}`, "
            f"`MAX_BULK_ITEMS={result.items}`, `BULK_CONCURRENCY={result.bulk_concurrency}`, "
            "retries and timeouts at their defaults. Canonical route, items cycling over "
            "incidents 1001-1004."
        ),
        "",
        (
            f"- wall time: {result.wall_seconds:.2f} s; ideal {result.items}/{result.rate:g} = "
            f"{result.ideal_seconds:.2f} s; ratio {wall_ratio(result):.3f}x"
        ),
        f"- HTTP {result.http_status}; items by status: "
        + ", ".join(f"{k} {v}" for k, v in sorted(result.statuses.items())),
        f"- failed items: {result.failed}",
        (
            f"- upstream requests the simulator saw: {result.upstream_requests}; answered 429: "
            f"{result.rate_limited}; attempts reported by the Outcome: {result.attempts}"
        ),
    ]
    steady = steady_rate(list(result.timeline), result.items)
    if steady is not None:
        rate, first_seen = steady
        out.append(
            f"- from the simulator's request counter, polled every 0.25 s: first upstream "
            f"request seen by {first_seen:.2f} s; steady rate {rate:.2f} requests/s between "
            f"10 % and 90 % of the items (limit {result.rate:g}/s)"
        )
    return out
