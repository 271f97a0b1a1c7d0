"""What importing `function_app` (the worker indexing the app, on every cold start) leaves for
later: each group loads with the first call that needs it, and a direct call needs none of the
storage path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

LOADED_ON_FIRST_USE = {
    "telemetry (OpenTelemetry, the Azure Monitor distro)": ("opentelemetry", "azure.monitor"),
    "the storage path (durable, records, lifecycle, Azure Storage, stamina)": (
        "shared.durable",
        "shared.records",
        "shared.lifecycle",
        "azure.data",
        "azure.storage",
        "stamina",
    ),
    "webhook verification": ("shared.webhooks",),
    "upstream clients (httpx, aiohttp)": ("shared.clients.http", "httpx", "aiohttp"),
    "the API documents": ("shared.openapi",),
    "the shared rate budget": ("shared.rate_budget",),
}


@pytest.fixture(scope="module")
def imported() -> list[str]:
    """The modules a fresh interpreter holds after `import function_app`, with no settings."""
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "SYSTEMROOT"}}
    result = subprocess.run(
        [sys.executable, "-c", "import sys, function_app\nprint('\\n'.join(sys.modules))"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.mark.parametrize("group", sorted(LOADED_ON_FIRST_USE))
def test_importing_the_app_does_not_load(group: str, imported: list[str]) -> None:
    prefixes = LOADED_ON_FIRST_USE[group]
    assert [module for module in imported if module.startswith(prefixes)] == []
