"""Per-invocation context (operation and correlation ids) carried without threading args."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Invocation:
    operation_id: str
    correlation_id: str
    principal: str | None = None  # the Entra principal behind App Service Authentication


_current: ContextVar[Invocation | None] = ContextVar("invocation", default=None)


def set_invocation(invocation: Invocation) -> None:
    _current.set(invocation)


def current_invocation() -> Invocation | None:
    return _current.get()


def correlation_headers() -> dict[str, str]:
    """Headers that let an upstream's logs be joined with ours."""
    invocation = _current.get()
    if invocation is None:
        return {}
    return {"X-Correlation-Id": invocation.correlation_id}
