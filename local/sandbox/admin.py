"""Admin routes shared by the sandbox simulators (no auth: loopback sandboxes only).

`GET /_sandbox/state`, `GET /_sandbox/counters`, `GET|POST|DELETE /_sandbox/faults`,
`POST /_sandbox/reset`. Faults never apply to these routes.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Generic, Protocol, Self, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from local.sandbox.faults import FaultGate, FaultKind, FaultPlan, FaultPlanError

logger = logging.getLogger(__name__)

PREFIX = "/_sandbox"


class Sandbox(Protocol):
    """What the admin routes need from a simulator."""

    @property
    def gate(self) -> FaultGate:
        """The simulator's fault plan and counters."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """The simulator's state as JSON, including its `effects` list."""
        ...

    def reset(self) -> None:
        """Restore the initial state, clear faults and counters."""
        ...


class State(Protocol):
    """What a simulator's in-memory state offers for snapshots and resets."""

    def clone(self) -> Self: ...

    def restore(self, other: Self) -> None: ...

    def to_json(self) -> dict[str, Any]: ...


S = TypeVar("S", bound=State)


class Simulator(Generic[S]):
    """What every simulator shares: its state, the state to reset to, and its fault gate."""

    def __init__(self, state: S, faults: FaultPlan | None) -> None:
        self.state = state
        self._initial = state.clone()
        self._gate = FaultGate(faults)

    @property
    def gate(self) -> FaultGate:
        """The fault plan and counters."""
        return self._gate

    @property
    def faults(self) -> FaultPlan:
        """The current fault plan."""
        return self._gate.plan

    @faults.setter
    def faults(self, plan: FaultPlan) -> None:
        self._gate.plan = plan

    def snapshot(self) -> dict[str, Any]:
        """State JSON for `/_sandbox/state`."""
        return self.state.to_json()

    def reset(self) -> None:
        """Back to the state the simulator was created with; faults and counters cleared."""
        self.state.restore(self._initial)
        self._gate.reset()


def _bad_plan(detail: str, errors: dict[str, list[str]]) -> Response:
    """400 application/problem+json (RFC 9457), `errors` keyed by the plan's JSON path."""
    body = {
        "type": "about:blank",
        "title": "Bad Request",
        "status": 400,
        "detail": f"{detail}. Shape: {FAULT_PLAN_EXAMPLE}",
        "errors": errors,
    }
    return JSONResponse(body, status_code=400, media_type="application/problem+json")


# What `/_sandbox/faults` takes, for error messages and the `make run` banner.
FAULT_PLAN_EXAMPLE = (
    '{"script": [{"kind": "rate_limited"}, {"kind": "unavailable", "retryAfter": 1}, '
    '{"kind": "none"}], "probabilities": {"server_error": 0.1}, "seed": 1, '
    '"rateLimitPerSecond": 5}; kinds: ' + ", ".join(kind.value for kind in FaultKind) + ", none"
)


def admin_routes(sandbox: Sandbox) -> list[BaseRoute]:
    """The `/_sandbox/...` routes for one simulator."""

    async def state(_: Request) -> Response:
        body = sandbox.snapshot()
        body["counters"] = sandbox.gate.counters.to_json()
        body["faults"] = sandbox.gate.plan.to_json()
        return JSONResponse(body)

    async def counters(_: Request) -> Response:
        return JSONResponse(sandbox.gate.counters.to_json())

    async def get_faults(_: Request) -> Response:
        return JSONResponse(sandbox.gate.plan.to_json())

    async def set_faults(request: Request) -> Response:
        raw = await request.body()
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError, huge integers
            return _bad_plan(f"the fault plan is not JSON: {exc}", {"": ["not JSON"]})
        try:
            plan = FaultPlan.from_json(data, clock=sandbox.gate.plan.clock)
        except FaultPlanError as exc:
            return _bad_plan(str(exc), exc.errors)
        sandbox.gate.plan = plan
        logger.info("sandbox fault plan replaced")
        return JSONResponse(plan.to_json())

    async def clear_faults(_: Request) -> Response:
        sandbox.gate.plan = FaultPlan(clock=sandbox.gate.plan.clock)
        return JSONResponse(sandbox.gate.plan.to_json())

    async def reset(_: Request) -> Response:
        sandbox.reset()
        logger.info("sandbox reset")
        return JSONResponse(sandbox.snapshot())

    return [
        Route(f"{PREFIX}/state", state, methods=["GET"]),
        Route(f"{PREFIX}/counters", counters, methods=["GET"]),
        Route(f"{PREFIX}/faults", get_faults, methods=["GET"]),
        Route(f"{PREFIX}/faults", set_faults, methods=["POST"]),
        Route(f"{PREFIX}/faults", clear_faults, methods=["DELETE"]),
        Route(f"{PREFIX}/reset", reset, methods=["POST"]),
    ]
