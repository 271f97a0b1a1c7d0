"""Shared bits: paths, child environments, percentiles, the demo request, a headline row."""

from __future__ import annotations

import base64
import json
import math
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from local.sandbox.contraforce_state import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_WORKSPACE_ID

ROOT = Path(__file__).resolve().parents[1]
FUNCTION_KEY = "bench-function-key"
WORKSPACE = str(DEMO_WORKSPACE_ID)

# Incident 1003 has no ticket: every unlink answers 200 `{"data": false}` upstream and changes
# nothing, so every request (raw or through the app, first or thousandth) does the same work.
STEADY_INCIDENT = {"workspaceId": WORKSPACE, "number": "1003", "source": "Splunk"}
STEADY_BODY = json.dumps({"incident": STEADY_INCIDENT}, separators=(",", ":")).encode()
BASIC_AUTHORIZATION = "Basic " + base64.b64encode(
    f"{DEMO_CLIENT_ID}:{DEMO_CLIENT_SECRET}".encode()
).decode("ascii")

_PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


def child_env(settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment for a child: no stray app settings, only what is given."""
    env = {name: os.environ[name] for name in _PASSED_THROUGH if name in os.environ}
    env.update(settings or {})
    return env


def run_child(
    args: Sequence[str], settings: Mapping[str, str], *, timeout: float, what: str
) -> str:
    """Run our interpreter with `args` in ROOT and a clean environment plus `settings`; its
    stdout. Raises RuntimeError with the end of its stderr if it fails."""
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, *args],
        cwd=ROOT,
        env=child_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr[-3000:]}")
    return done.stdout


def app_settings(contraforce_base: str, **overrides: str) -> dict[str, str]:
    """App settings pointing at the ContraForce simulator at `contraforce_base` (its root)."""
    return {
        "CONTRAFORCE_BASE_URL": f"{contraforce_base}/api/v2",
        "CONTRAFORCE_CLIENT_ID": DEMO_CLIENT_ID,
        "CONTRAFORCE_CLIENT_SECRET": DEMO_CLIENT_SECRET,
        **overrides,
    }


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank on the sorted values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.inf


@dataclass(frozen=True)
class Headline:
    """One row of the report's headline table: a measure against its target."""

    name: str
    measured: str
    target: str
    met: bool
