"""A call answered at once leaves no reference cycles behind.

Under load it was the cycle collector's pauses, not the work, that made the slowest calls
(bench P1, in-process: some 93 objects in cycles a call, full collections of 10-95 ms). Cycles
made by the sandbox simulators, which serve from threads of this process, are not counted: only
objects of the app and of the libraries on its call path are.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.conftest import Sandboxes, load_json
from tests.functions.conftest import Reply, call
from tests.functions.test_routes import CF_MIRROR, D3_MIRROR, UNTICKETED, WS

ON_THE_CALL_PATH = (
    "shared",
    "functions",
    "azure.functions",
    "httpx",
    "httpx_aiohttp",
    "httpcore",
    "aiohttp",
    "multidict",
    "yarl",
    "stamina",
    "tenacity",
    "pydantic",
)
SEED = load_json("d3-remove-linked-incidents.samples.json")


def cyclic_garbage_on_the_call_path() -> Counter[str]:
    """Objects only the cycle collector would free, by type, for the modules above."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return Counter(
            f"{type(found).__module__}.{type(found).__qualname__}"
            for found in gc.garbage
            if type(found).__module__.startswith(ON_THE_CALL_PATH)
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def contraforce_mirror() -> Reply:
    return await call(
        CF_MIRROR,
        f"contraforce/workspaces/{WS}/tickets/unlink",
        {"incident": {"id": UNTICKETED}},
        route_params={"workspaceId": WS},
    )


async def d3_mirror() -> Reply:
    return await call(D3_MIRROR, "d3/Command/RemoveLinkedIncidents", SEED["request"])


@pytest.mark.parametrize("route", [contraforce_mirror, d3_mirror], ids=["contraforce", "d3"])
async def test_a_call_answered_at_once_leaves_nothing_for_the_cycle_collector(
    sandbox: Sandboxes, route: Callable[[], Awaitable[Any]]
) -> None:
    assert (await route()).status == 200  # clients built, modules loaded
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            assert (await route()).status == 200
        assert cyclic_garbage_on_the_call_path() == Counter()
    finally:
        gc.enable()
