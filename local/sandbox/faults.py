"""Fault plan shared by the sandbox simulators: what goes wrong, and when.

A `FaultPlan` decides, once per action request, whether the request is answered normally or with
a fault. In order: the rate limit (a rolling 1-second window), then the scripted sequence (one
entry consumed per request), then the per-kind probabilities drawn from a seeded `random.Random`.
`FaultGate` pairs a plan with request counters; `fault_response` turns a fault into an answer,
with the body supplied by the simulator so that it reads like the vendor's own errors.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


class FaultKind(StrEnum):
    """What a faulted request gets."""

    RATE_LIMITED = "rate_limited"  # 429 + Retry-After
    SERVER_ERROR = "server_error"  # 500
    UNAVAILABLE = "unavailable"  # 503, Retry-After optional
    BAD_GATEWAY_HTML = "bad_gateway_html"  # 502 text/html, like a proxy's error page
    SLOW = "slow"  # answered normally after a delay
    RESET = "reset"  # connection dropped before a complete response
    APPLIED_THEN_RESET = "applied_then_reset"  # the request takes effect, then the answer is lost


STATUS_BY_KIND: Mapping[FaultKind, int] = {
    FaultKind.RATE_LIMITED: 429,
    FaultKind.SERVER_ERROR: 500,
    FaultKind.UNAVAILABLE: 503,
    FaultKind.BAD_GATEWAY_HTML: 502,
}

BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class Fault:
    """One fault. `retry_after` (seconds) is sent for 429 and 503; `delay` is used by `slow`."""

    kind: FaultKind
    retry_after: int | None = None
    delay: float = 1.0

    @classmethod
    def of(cls, kind: FaultKind) -> Fault:
        """The fault with its default parameters (429 carries `Retry-After: 1`)."""
        return cls(kind, retry_after=1 if kind is FaultKind.RATE_LIMITED else None)

    @property
    def status(self) -> int | None:
        """The HTTP status answered, or None for `slow` and the resets."""
        return STATUS_BY_KIND.get(self.kind)

    def to_json(self) -> dict[str, Any]:
        """camelCase JSON, the shape `/_sandbox/faults` accepts."""
        return {"kind": self.kind.value, "retryAfter": self.retry_after, "delaySeconds": self.delay}


RATE_LIMIT_FAULT = Fault(FaultKind.RATE_LIMITED, retry_after=1)
NO_FAULT = "none"  # a script entry that lets one request through


class FaultPlanError(ValueError):
    """A fault plan that cannot be used: `errors` says what is wrong, keyed by JSON path."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = dict(errors)
        summary = "; ".join(f"{path or 'plan'}: {', '.join(m)}" for path, m in self.errors.items())
        super().__init__(f"invalid fault plan: {summary}")


def _path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


class _FaultSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    retry_after: int | None = Field(default=None, alias="retryAfter", ge=0)
    delay_seconds: float = Field(default=1.0, alias="delaySeconds", ge=0)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        kinds = [kind.value for kind in FaultKind] + [NO_FAULT]
        if value not in kinds:
            raise ValueError(f"must be one of {', '.join(kinds)}")
        return value


class _PlanSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    script: list[_FaultSpec] = Field(default_factory=list)
    probabilities: dict[FaultKind, float] = Field(default_factory=dict)
    seed: int | None = None
    rate_limit_per_second: float | None = Field(default=None, alias="rateLimitPerSecond", gt=0)


class FaultPlan:
    """Decides which action requests fail. Thread-safe; an empty plan never faults.

    - `script`: consumed one entry per request; `None` entries let a request through.
    - `probabilities`: per-kind chance for each request once the script is used up; their sum
      must not exceed 1; drawn from `random.Random(seed)` (or the `rng` given) for reproducibility.
    - `rate_limit_per_second`: requests beyond R admitted in the last second get 429 +
      `Retry-After: 1`; requests answered 429 by the limiter do not count towards the window.
    """

    def __init__(
        self,
        *,
        script: Iterable[Fault | None] = (),
        probabilities: Mapping[FaultKind, float] | None = None,
        seed: int | None = None,
        rate_limit_per_second: float | None = None,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        probabilities = dict(probabilities or {})
        if any(not 0.0 <= p <= 1.0 for p in probabilities.values()):
            raise ValueError(f"probabilities must be between 0 and 1, got {probabilities}")
        if sum(probabilities.values()) > 1.0 + 1e-9:
            raise ValueError(f"probabilities must add up to at most 1, got {probabilities}")
        if rate_limit_per_second is not None and rate_limit_per_second <= 0:
            raise ValueError(f"rate_limit_per_second must be > 0, got {rate_limit_per_second}")
        self._script: deque[Fault | None] = deque(script)
        self._probabilities = {k: p for k, p in probabilities.items() if p > 0}
        self.seed = seed
        self.rate_limit_per_second = rate_limit_per_second
        self.clock = clock
        self._rng = rng if rng is not None else random.Random(seed)  # noqa: S311 - not crypto
        self._window: deque[float] = deque()
        self._lock = threading.Lock()

    @classmethod
    def from_json(cls, data: Any, *, clock: Clock = time.monotonic) -> FaultPlan:
        """Build a plan from `/_sandbox/faults` JSON; raise `ValueError` saying what is wrong.

        Shape: `{"script": [{"kind": "unavailable", "retryAfter": 2}, {"kind": "none"},
        {"kind": "slow", "delaySeconds": 0.5}], "probabilities": {"server_error": 0.1},
        "seed": 1, "rateLimitPerSecond": 5}`; every member is optional.
        """
        try:
            spec = _PlanSpec.model_validate(data)
        except ValidationError as exc:
            errors: dict[str, list[str]] = {}
            for error in exc.errors(include_url=False):
                errors.setdefault(_path(tuple(error["loc"])), []).append(error["msg"])
            raise FaultPlanError(errors) from exc
        script: list[Fault | None] = []
        for item in spec.script:
            if item.kind == NO_FAULT:
                script.append(None)
                continue
            kind = FaultKind(item.kind)
            default = Fault.of(kind)
            retry_after = item.retry_after if item.retry_after is not None else default.retry_after
            script.append(Fault(kind, retry_after=retry_after, delay=item.delay_seconds))
        try:
            return cls(
                script=script,
                probabilities=spec.probabilities,
                seed=spec.seed,
                rate_limit_per_second=spec.rate_limit_per_second,
                clock=clock,
            )
        except ValueError as exc:
            raise FaultPlanError({"probabilities": [str(exc)]}) from exc

    def to_json(self) -> dict[str, Any]:
        """The plan as it stands (remaining script), camelCase."""
        with self._lock:
            return {
                "script": [{"kind": "none"} if f is None else f.to_json() for f in self._script],
                "probabilities": {k.value: p for k, p in self._probabilities.items()},
                "seed": self.seed,
                "rateLimitPerSecond": self.rate_limit_per_second,
            }

    def next_fault(self) -> Fault | None:
        """Decide the fate of one action request: a fault, or None to answer normally."""
        with self._lock:
            if self._rate_limited():
                return RATE_LIMIT_FAULT
            if self._script:
                return self._script.popleft()
            if self._probabilities:
                draw = self._rng.random()
                total = 0.0
                for kind, probability in self._probabilities.items():
                    total += probability
                    if draw < total:
                        return Fault.of(kind)
            return None

    def _rate_limited(self) -> bool:
        if self.rate_limit_per_second is None:
            return False
        now = self.clock()
        while self._window and self._window[0] <= now - 1.0:
            self._window.popleft()
        if len(self._window) >= self.rate_limit_per_second:
            return True
        self._window.append(now)
        return False


@dataclass
class Counters:
    """Action requests received, and how many were answered with a fault (by kind)."""

    action_requests: int = 0
    faulted: int = 0
    by_kind: dict[FaultKind, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """camelCase JSON for `/_sandbox/counters`."""
        return {
            "actionRequests": self.action_requests,
            "faulted": self.faulted,
            "faultsByKind": {k.value: n for k, n in self.by_kind.items()},
        }


class FaultGate:
    """A simulator's fault plan plus its counters; `admit` is called once per action request."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self.plan = plan if plan is not None else FaultPlan()
        self.counters = Counters()
        self._lock = threading.Lock()

    def admit(self) -> Fault | None:
        """Count one action request and return the fault it gets, if any."""
        fault = self.plan.next_fault()
        with self._lock:
            self.counters.action_requests += 1
            if fault is not None:
                self.counters.faulted += 1
                self.counters.by_kind[fault.kind] = self.counters.by_kind.get(fault.kind, 0) + 1
        if fault is not None:
            logger.info("sandbox fault injected: %s", fault.kind.value)
        return fault

    def reset(self) -> None:
        """Clear the plan (keeping its clock) and the counters."""
        self.plan = FaultPlan(clock=self.plan.clock)
        with self._lock:
            self.counters = Counters()


class SandboxConnectionResetError(ConnectionResetError):
    """Raised on purpose after the response has started, so the server drops the connection."""


def _not_a_deliberate_reset(record: logging.LogRecord) -> bool:
    """Logging filter: drop the server's traceback for a reset we caused on purpose."""
    return not (record.exc_info and isinstance(record.exc_info[1], SandboxConnectionResetError))


class ResetResponse(Response):
    """Starts a response promising a body, then raises: the client sees a broken connection.

    The server logs unhandled app errors with a traceback; that record is filtered out of
    `uvicorn.error` for this deliberate one.
    """

    def __init__(self) -> None:
        super().__init__(status_code=200, media_type="application/json")

    async def __call__(self, _scope: Scope, _receive: Receive, send: Send) -> None:
        """Send the status line and headers only, then abort."""
        logging.getLogger("uvicorn.error").addFilter(_not_a_deliberate_reset)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
            }
        )
        raise SandboxConnectionResetError("sandbox fault 'reset': connection dropped on purpose")


ErrorRenderer = Callable[[int, Fault], Response]


def fault_response(fault: Fault, render_error: ErrorRenderer) -> Response:
    """The answer to a fault other than `slow`; `render_error(status, fault)` gives the body."""
    if fault.kind in {FaultKind.RESET, FaultKind.APPLIED_THEN_RESET}:
        return ResetResponse()
    if fault.kind is FaultKind.SLOW:
        raise ValueError("a 'slow' fault delays the normal answer; it has no response of its own")
    if fault.kind is FaultKind.BAD_GATEWAY_HTML:
        return HTMLResponse(BAD_GATEWAY_HTML, status_code=502)
    status = STATUS_BY_KIND[fault.kind]
    response = render_error(status, fault)
    if fault.retry_after is not None:
        response.headers["Retry-After"] = str(fault.retry_after)
    return response
