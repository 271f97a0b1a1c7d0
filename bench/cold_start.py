"""A cold start as the worker goes through it (a report line beside P2, not a target).

P2 times the import alone, so anything moved from the import to the first call would lower it
without making a cold start any shorter. This times the rest too, in a fresh interpreter with
the runtime dependencies only and the deployed settings (as P2's first line): import
`function_app`, index its functions (as the worker does after the import), then the first
ContraForce call through the mirror handler against the simulator (settings, the upstream
client and its pool, the first validators built on use), then a second, warm call.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from bench.common import STEADY_BODY, WORKSPACE, run_child
from bench.p2_import import hide_program

# The child is a program rather than a module of bench: bench's own imports (the sandbox's
# demo data) are not runtime dependencies and would be hidden.
_PROGRAM = """\
import asyncio, json, sys, time
{hide}
started = time.perf_counter()
import function_app
imported = time.perf_counter()
function_app.app.functions_bindings = None  # index this app, as the worker does
functions = {{str(f.get_function_name()): f for f in function_app.app.get_functions()}}
handler = functions["contraforce_unlink_ticket"].get_user_function()
indexed = time.perf_counter()
import azure.functions as func
from shared.clients import registry

async def call() -> float:
    request = func.HttpRequest(
        method="POST",
        url="http://localhost:7071/api/contraforce/workspaces/{workspace}/tickets/unlink",
        headers={{"Content-Type": "application/json"}},
        params={{}},
        route_params={{"workspaceId": "{workspace}"}},
        body={body!r},
    )
    began = time.perf_counter()
    response = await handler(request)
    if response.status_code != 200:
        sys.exit(f"HTTP {{response.status_code}}: {{response.get_body()[:300]!r}}")
    return time.perf_counter() - began

async def main() -> list[float]:
    try:
        return [await call(), await call()]
    finally:
        await registry.aclose()

first, warm = asyncio.run(main())
print(json.dumps({{"import": imported - started, "index": indexed - imported,
                  "first": first, "warm": warm}}))
"""


@dataclass(frozen=True)
class ColdStart:
    """Medians over fresh interpreters, in seconds."""

    runs: int
    import_seconds: float
    index_seconds: float
    first_call_seconds: float
    warm_call_seconds: float

    @property
    def total_seconds(self) -> float:
        return self.import_seconds + self.index_seconds + self.first_call_seconds


def measure(
    settings: Mapping[str, str], *, runs: int, hidden: frozenset[str] = frozenset()
) -> ColdStart:
    """`runs` fresh interpreters (after one warm-up for the page cache and __pycache__), each
    with `settings` (the app's, pointing at a running simulator) in its environment."""
    program = _PROGRAM.format(hide=hide_program(hidden), workspace=WORKSPACE, body=STEADY_BODY)
    samples: list[dict[str, float]] = []
    for _ in range(runs + 1):
        printed = run_child(["-c", program], settings, timeout=120, what="cold start child")
        samples.append(json.loads(printed.strip().splitlines()[-1]))
    measured = samples[1:]
    return ColdStart(
        runs,
        statistics.median(s["import"] for s in measured),
        statistics.median(s["index"] for s in measured),
        statistics.median(s["first"] for s in measured),
        statistics.median(s["warm"] for s in measured),
    )
