"""The app as `make run` serves it (`python -m local` in its own process) against the
simulators and Azurite, for the client and `ila` tests: the end-to-end tests' host, shared."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Stack, stack

__all__ = ["app", "app_host", "stack"]


@pytest.fixture(scope="session")
def app_host(stack: Stack) -> Stack:
    return stack


@pytest.fixture
def app(app_host: Stack) -> Iterator[Stack]:
    """The served app, its simulators reset before and after the test."""
    app_host.contraforce.reset()
    app_host.d3.reset()
    yield app_host
    app_host.contraforce.reset()
    app_host.d3.reset()
