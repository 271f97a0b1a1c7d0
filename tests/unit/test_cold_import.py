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
    "the storage path (durable, lifecycle, Azure Storage, stamina)": (
        "shared.durable",
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


def run_fresh(program: str) -> subprocess.CompletedProcess[str]:
    """`program` in a fresh interpreter at the repository's root, with no app settings."""
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "SYSTEMROOT"}}
    return subprocess.run(  # noqa: S603 - our own interpreter, a program from this file
        [sys.executable, "-c", program],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def imported() -> list[str]:
    """The modules a fresh interpreter holds after `import function_app`, with no settings."""
    result = run_fresh("import sys, function_app\nprint('\\n'.join(sys.modules))")
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.mark.parametrize("group", sorted(LOADED_ON_FIRST_USE))
def test_importing_the_app_does_not_load(group: str, imported: list[str]) -> None:
    prefixes = LOADED_ON_FIRST_USE[group]
    assert [module for module in imported if module.startswith(prefixes)] == []


# A client on httpx's MockTransport: answered at once, then a 503 before the answer.
_ANSWERED_THEN_RETRIED = """
import asyncio, logging, sys
from uuid import UUID
import httpx
from pydantic import SecretStr
from shared.clients.auth import BasicCredential
from shared.clients.contraforce import ContraForceClient
from shared.clients.http import RetryPolicy
from incident_link_api.commands import UnlinkTicket
from incident_link_api.contraforce import IncidentReference

answers = [httpx.Response(200, json={"data": True}), httpx.Response(503),
           httpx.Response(200, json={"data": True})]
workspace = UUID("7b2d8c1e-0f4a-4c5e-9a51-2d1f0e6b9c3a")
command = UnlinkTicket(workspace_id=workspace, incident=IncidentReference.model_validate(
    {"id": "inc-1", "workspaceId": str(workspace)}))

async def main():
    client = ContraForceClient(
        "https://cf.example/api/v2", BasicCredential("client-id", SecretStr("secret")),
        policy=RetryPolicy(attempts=3, budget_seconds=30, initial_wait_seconds=0,
                           max_wait_seconds=0, retry_after_cap_seconds=0),
        timeout=httpx.Timeout(5), rate_limit_per_second=None,
        transport=httpx.MockTransport(lambda _: answers.pop(0)))
    await client.unlink_ticket(command)
    print("answered at once:", "stamina" in sys.modules)
    await client.unlink_ticket(command)
    print("retried:", "stamina" in sys.modules)
    await client.aclose()

logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s")
asyncio.run(main())
"""


def test_stamina_loads_with_the_first_retry_not_with_the_first_call() -> None:
    """A call answered at once makes no retry (bench P2's cold start: stamina takes some 20 ms
    to import); the first retry loads it and is logged by our hook, not stamina's."""
    result = run_fresh(_ANSWERED_THEN_RETRIED)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["answered at once: False", "retried: True"]
    [retry] = [line for line in result.stderr.splitlines() if "retrying in" in line]
    assert retry.startswith("shared.retrying upstream=contraforce POST /api/v2/workspaces/")
    assert "attempt=1 failed (answered HTTP 503)" in retry
