"""Test doubles for the sandbox: a manual clock and a sleep that only records."""

from __future__ import annotations

import base64


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


class RecordingSleep:
    """An async sleep that returns at once and remembers how long it was asked to wait."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def basic(client_id: str, secret: str) -> str:
    """An `Authorization: Basic ...` value."""
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
