"""The app as `make run` serves it (`python -m local` in its own process) against the
simulators and Azurite, for the client and `ila` tests: the end-to-end tests' host, shared."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Stack, sandbox, stack

__all__ = ["app", "sandbox", "stack"]


@pytest.fixture
def app(sandbox: Stack) -> Stack:
    """The served app, its simulators reset before and after the test (e2e's `sandbox`)."""
    return sandbox
