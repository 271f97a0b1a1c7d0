"""The served app for the `ila` tests (the same fixtures as the client's)."""

from tests.client.conftest import app, app_host, stack

__all__ = ["app", "app_host", "stack"]
