"""The served app for the `ila` tests (the same fixtures as the client's)."""

from tests.client.conftest import app, sandbox, stack

__all__ = ["app", "sandbox", "stack"]
