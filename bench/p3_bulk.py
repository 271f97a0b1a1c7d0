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
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from bench.common import FUNCTION_KEY, WORKSPACE, app_settings
from bench.servers import Child, start_host

ITEMS = 1000
INCIDENTS = ("1001", "1002", "1003", "1004")


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
