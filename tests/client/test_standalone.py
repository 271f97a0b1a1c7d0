"""The client stands alone: its distribution (`clients/python`) holds the client and the wire
models and nothing of the app, and both import and work with the app's packages unavailable."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIENT_PYPROJECT = ROOT / "clients" / "python" / "pyproject.toml"
CLIENT_PACKAGES = ("incident_link_actions_client", "incident_link_api")
APP_PACKAGES = ("shared", "ila", "functions", "function_app", "local", "bench", "tools")

# Run in a fresh interpreter: importing any of the app's packages raises. It imports every
# module of the client's packages, then makes one call with each client over a MockTransport
# (what a call imports lazily is imported too).
WITHOUT_THE_APP = """
import asyncio, importlib, pkgutil, sys

BLOCKED = set(sys.argv[1:])

class RefuseTheApp:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{name} is the app's, not the client's")
        return None

sys.meta_path.insert(0, RefuseTheApp())

import httpx
import incident_link_actions_client as client
import incident_link_api as api

for package in (client, api):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)

OUTCOME = {
    "operationId": "op-1", "action": "unlink_ticket", "status": "succeeded",
    "items": [], "startedAt": "2026-01-01T00:00:00Z",
}
BUSY = {"status": 503, "code": "STORE_UNAVAILABLE"}
answers = []

def answer(request):
    answers.append(request.url.path)
    if len(answers) % 2:  # a passing failure first, each call: the retry path runs too
        return httpx.Response(
            503, json=BUSY, headers={"content-type": "application/problem+json", "retry-after": "0"}
        )
    return httpx.Response(200, json=OUTCOME)

request = client.UnlinkTicketInput(
    workspaceId="3f2a6c1e-8b7d-4c55-9a10-2f6e7d8c9b01",
    incident=client.IncidentInput(number="1001"),
)
fast = client.RetryOptions(initial_wait_seconds=0.0, max_wait_seconds=0.0)
with client.Client("http://app.test/api", retry=fast, transport=httpx.MockTransport(answer)) as c:
    assert c.unlink_ticket(request).operation_id == "op-1"

async def call_async():
    transport = httpx.MockTransport(answer)
    async with client.AsyncClient("http://app.test/api", retry=fast, transport=transport) as c:
        return await c.unlink_ticket(request)

assert asyncio.run(call_async()).operation_id == "op-1"
loaded = sorted({name.partition(".")[0] for name in sys.modules} & BLOCKED)
assert not loaded, loaded
print("standalone", len(answers))
"""


def client_distribution() -> dict[str, object]:
    return tomllib.loads(CLIENT_PYPROJECT.read_text(encoding="utf-8"))


def test_the_client_imports_and_calls_with_the_apps_packages_unavailable() -> None:
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", WITHOUT_THE_APP, *APP_PACKAGES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["standalone", "4"]  # two calls, each retried once


def test_the_client_distribution_holds_only_the_client_and_its_models() -> None:
    setuptools = client_distribution()["tool"]["setuptools"]  # type: ignore[index]
    assert sorted(setuptools["packages"]) == sorted(CLIENT_PACKAGES)
    assert (CLIENT_PYPROJECT.parent / setuptools["package-dir"][""]).resolve() == ROOT


def test_the_client_packages_import_only_the_stdlib_and_their_declared_dependencies() -> None:
    project = client_distribution()["project"]
    declared = {
        requirement.partition(">")[0].partition("=")[0].partition("<")[0].strip()
        for requirement in project["dependencies"]  # type: ignore[index]
    }
    allowed = sys.stdlib_module_names | set(CLIENT_PACKAGES) | declared
    imported: dict[str, set[str]] = {}
    for package in CLIENT_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    imported.setdefault(name.partition(".")[0], set()).add(path.name)
    assert {name: files for name, files in imported.items() if name not in allowed} == {}
    assert declared == {"httpx", "pydantic", "stamina"}


def test_the_client_and_the_development_install_require_the_same_versions() -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    client = client_distribution()["project"]
    assert set(client["dependencies"]) <= set(root["dependencies"])  # type: ignore[index]
