"""P2: cold import of `function_app` vs bare `import azure.functions`, each in a fresh
interpreter (best of N, interleaved). The import itself is timed inside the child with
`perf_counter`; the whole process (interpreter start included) is timed from outside too.

Two more lines in the same rounds are the floor under the target: `azure.functions` plus the
libraries the app defines its models and settings with, and no app code. With `-X importtime`,
where the extra time goes: self time summed by top-level package.
"""

from __future__ import annotations

import math
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bench.common import ROOT, Headline, child_env, ratio, run_child

if TYPE_CHECKING:
    from bench.cold_start import ColdStart  # which imports this module

BASELINE = "azure.functions"
APP = "function_app"
TARGET = 2.0  # import function_app / import azure.functions
# What P2 times, by label: each statement in a fresh interpreter. The two library lines import
# what the app's models and settings are built from (pydantic's BaseModel and the types
# shared.config uses, then pydantic-settings) on top of azure.functions, and no app code.
_PYDANTIC = "import azure.functions\nfrom pydantic import BaseModel, HttpUrl, SecretStr"
IMPORTS = {
    BASELINE: "import azure.functions",
    "pydantic": _PYDANTIC,
    "pydantic + pydantic-settings": f"{_PYDANTIC}\nimport pydantic_settings",
    APP: "import function_app",
}
# App settings infra/main.bicep gives the app that change what an import does (checked against
# the template by tests/infra/test_cold_start.py): the "runtime deps only" lines run with them.
DEPLOYED_SETTINGS = {"PYDANTIC_DISABLE_PLUGINS": "__all__"}

_PROGRAM = (
    "import sys, time\n"
    "{hide}"
    "started = time.perf_counter()\n"
    "{statement}\n"
    "print(time.perf_counter() - started)\n"
)
# Makes the named top-level modules unimportable, as if their distributions were not installed.
_HIDE = (
    "HIDDEN = frozenset({hidden!r})\n"
    "class _Hide:\n"
    "    @staticmethod\n"
    "    def find_spec(name, path=None, target=None):\n"
    "        if name.partition('.')[0] in HIDDEN:\n"
    "            raise ModuleNotFoundError(f'No module named {{name!r}}', name=name)\n"
    "        return None\n"
    "sys.meta_path.insert(0, _Hide)\n"
)


def hide_program(hidden: frozenset[str]) -> str:
    """Python source that makes `hidden` top-level modules unimportable in the program it
    starts (empty: nothing hidden)."""
    return _HIDE.format(hidden=sorted(hidden)) if hidden else ""


_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)\s*$")


@dataclass(frozen=True)
class ImportTiming:
    label: str  # a key of IMPORTS
    import_seconds: float  # best of N, inside the child
    process_seconds: float  # best of N, the whole child process
    rounds: tuple[float, ...]  # each round's import seconds, in order (for per-round ratios)


def runtime_distributions() -> frozenset[str]:
    """Canonical names of the installed distributions in requirements.txt's dependency
    closure: what Azure installs for the app."""
    wanted = [
        Requirement(line.split("#", 1)[0].strip())
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.split("#", 1)[0].strip()
    ]
    runtime: set[str] = set()
    while wanted:
        requirement = wanted.pop()
        name = canonicalize_name(requirement.name)
        if name in runtime:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        runtime.add(name)
        for raw in dist.requires or []:
            nested = Requirement(raw)
            extras = requirement.extras or {""}
            if nested.marker is None or any(
                nested.marker.evaluate({"extra": extra}) for extra in extras
            ):
                wanted.append(nested)
    return frozenset(runtime)


def runtime_only_hidden() -> frozenset[str]:
    """Top-level modules of the installed distributions that requirements.txt does not pull in
    (dev and test tools): hiding them makes an import behave as in the deployed app. Matters
    because httpx imports its CLI (click, rich, pygments) when those happen to be installed."""
    runtime = runtime_distributions()
    hidden = {
        module
        for module, dists in metadata.packages_distributions().items()
        if module not in sys.stdlib_module_names
        and module not in _APP_PREFIXES  # the app itself, even if installed as a distribution
        and not any(canonicalize_name(dist) in runtime for dist in dists)
    }
    return frozenset(hidden)


def _once(
    statement: str, hidden: frozenset[str], settings: Mapping[str, str]
) -> tuple[float, float]:
    program = _PROGRAM.format(statement=statement, hide=hide_program(hidden))
    started = time.perf_counter()
    printed = run_child(["-c", program], settings, timeout=120, what="P2 import child")
    return float(printed.strip()), time.perf_counter() - started


def measure(
    *,
    repeats: int,
    hidden: frozenset[str] = frozenset(),
    settings: Mapping[str, str] | None = None,
) -> dict[str, ImportTiming]:
    """Best of `repeats` for each of IMPORTS, runs interleaved (one warm-up run each first),
    each child with `settings` in its environment."""
    given = settings or {}
    for statement in IMPORTS.values():
        _once(statement, hidden, given)  # warm the page cache and __pycache__
    samples: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for _ in range(repeats):
        for label, statement in IMPORTS.items():
            samples[label].append(_once(statement, hidden, given))
    return {
        label: ImportTiming(
            label,
            min(inner for inner, _ in runs),
            min(outer for _, outer in runs),
            tuple(inner for inner, _ in runs),
        )
        for label, runs in samples.items()
    }


@dataclass
class _Node:
    name: str
    depth: int
    self_us: int
    cumulative_us: int
    children: list[_Node]


_APP_PREFIXES = ("shared", "functions", "function_app")


def _is_app(name: str) -> bool:
    return name.split(".")[0] in _APP_PREFIXES


def heavy_imports(
    module: str,
    *,
    top: int = 10,
    hidden: frozenset[str] = frozenset(),
    settings: Mapping[str, str] | None = None,
) -> tuple[list[tuple[str, str, float]], float]:
    """The costliest third-party imports made directly by app modules, from `-X importtime`:
    (app module, imported module, cumulative seconds), largest first; and the app modules' own
    (self) time summed: executing their bodies, i.e. building the pydantic models. One run, and
    `-X importtime` inflates times: the listing says where the time goes, `measure` how much."""
    hide = hide_program(hidden)
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-X", "importtime", "-c", f"import sys\n{hide}import {module}"],
        cwd=ROOT,
        env=child_env(settings),
        capture_output=True,
        text=True,
        check=True,
    )
    pending: list[_Node] = []
    for line in done.stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if not match:
            continue
        depth = len(match.group(3)) // 2
        children: list[_Node] = []
        while pending and pending[-1].depth > depth:
            children.append(pending.pop())
        children.reverse()
        pending.append(
            _Node(match.group(4), depth, int(match.group(1)), int(match.group(2)), children)
        )
    found: list[tuple[str, str, float]] = []
    app_self_us = 0

    def walk(node: _Node) -> None:
        nonlocal app_self_us
        if _is_app(node.name):
            app_self_us += node.self_us
        for child in node.children:
            if (
                _is_app(node.name)
                and not _is_app(child.name)
                and child.name.split(".")[0] not in sys.stdlib_module_names
                and not child.name.startswith("azure.functions")  # the baseline itself
            ):
                found.append((node.name, child.name, child.cumulative_us / 1e6))
            walk(child)

    for root in pending:
        walk(root)
    return sorted(found, key=lambda item: -item[2])[:top], app_self_us / 1e6


# --- report -----------------------------------------------------------------------------------


def import_ratio(timings: Mapping[str, ImportTiming], label: str = APP) -> float:
    """The import labelled `label` (a key of IMPORTS) / bare azure.functions, best of N."""
    if label not in timings or BASELINE not in timings:
        return math.nan
    return ratio(timings[label].import_seconds, timings[BASELINE].import_seconds)


def round_ratio(timings: Mapping[str, ImportTiming], label: str = APP) -> float:
    """The median over rounds of (`label` / azure.functions in the same round): the typical
    ratio, where the best-of ratio compares two luckiest runs that may be minutes apart."""
    if label not in timings or BASELINE not in timings:
        return math.nan
    pairs = zip(timings[label].rounds, timings[BASELINE].rounds, strict=True)
    return statistics.median(ratio(mine, base) for mine, base in pairs)


def headlines(
    deployed: Mapping[str, ImportTiming], venv: Mapping[str, ImportTiming]
) -> list[Headline]:
    rows = []
    for name, timings in (
        ("P2 import function_app / azure.functions (runtime deps only)", deployed),
        ("P2 same, in the dev venv as is", venv),
    ):
        measured = import_ratio(timings)
        rows.append(Headline(name, f"{measured:.2f}x", f"<= {TARGET}x", measured <= TARGET))
    return rows


def section(
    deployed: Mapping[str, ImportTiming],
    venv: Mapping[str, ImportTiming],
    *,
    hidden: int,
    heavy: Sequence[tuple[str, str, float]],
    app_self_seconds: float,
    cold: ColdStart | None,
) -> list[str]:
    """P2's tables, with the whole cold start beside it as a report line."""
    out = [
        "## P2: cold import",
        "",
        (
            "Each in a fresh interpreter, best of N, runs interleaved; import timed inside the "
            "child (`perf_counter` around the import), whole process timed outside. *Runtime deps "
            f"only*: the {hidden} top-level modules of distributions outside "
            "requirements.txt's dependency closure are made unimportable, and the app settings "
            "the template sets that change an import are set ("
            + ", ".join(f"`{name}={value}`" for name, value in DEPLOYED_SETTINGS.items())
            + "), as in the deployed app (in the dev venv, httpx also imports its CLI because "
            "click, rich and pygments are installed for schemathesis). The two library lines "
            "import `azure.functions` and the libraries the app's models and settings are "
            "built from, and no app code: the floor under the target."
        ),
        "",
        "| environment | import | import ms | x azure.functions | median per round | process ms |",
        "|---|---|---|---|---|---|",
    ]
    for environment, timings in (("runtime deps only", deployed), ("dev venv", venv)):
        out.extend(
            f"| {environment} | {timing.label} | {timing.import_seconds * 1000:.2f} | "
            f"{import_ratio(timings, timing.label):.2f}x | "
            f"{round_ratio(timings, timing.label):.2f}x | {timing.process_seconds * 1000:.2f} |"
            for timing in timings.values()
        )
    if cold is not None:
        out += [
            "",
            (
                f"A whole cold start as deployed (a report line, not a target; median of "
                f"{cold.runs} fresh interpreters, runtime deps only, the deployed settings, the "
                f"simulator upstream): import `function_app` {cold.import_seconds * 1000:.0f} "
                f"ms, index its functions {cold.index_seconds * 1000:.1f} ms, the first "
                f"ContraForce call through the mirror handler "
                f"{cold.first_call_seconds * 1000:.0f} ms (settings read, httpx and aiohttp "
                "loaded, the upstream client and its pool built, validators built on first use): "
                f"{cold.total_seconds * 1000:.0f} ms in all; a warm call then takes "
                f"{cold.warm_call_seconds * 1000:.2f} ms. P2 times the import alone: work moved "
                "from the import into the first call would lower P2, not this."
            ),
        ]
    if heavy:
        out += [
            "",
            (
                "Costliest third-party imports made directly by app modules (runtime deps only; "
                "`-X importtime`, one run, cumulative, inflated by the option itself):"
            ),
            "",
            "| app module | imports | ms |",
            "|---|---|---|",
        ]
        out += [f"| `{a}` | `{b}` | {seconds * 1000:.0f} |" for a, b, seconds in heavy]
        out += [
            "",
            (
                f"The app's own modules (functions/, shared/) take "
                f"{app_self_seconds * 1000:.0f} ms of self time under `-X importtime` "
                "(their bodies: class definitions, pydantic building models and validators)."
            ),
        ]
    return out
