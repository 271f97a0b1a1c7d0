#!/usr/bin/env python3
"""Run checkov on the Bicep templates and fail on anything short of a clean, complete scan.

checkov exits 0 when it cannot parse a .bicep file: it drops the file, counts it under
`summary.parsing_errors` and reports on the rest. This wrapper runs `checkov --framework bicep
-o json` and fails (exit 1) when any file did not parse, when any check failed, or when nothing
was scanned; it exits 2 when checkov itself cannot be run or its output cannot be read.

checkov lives in its own virtualenv (it pins an old pycep-parser): by default
`.venv-checkov/bin/checkov` at the repository root; override with --checkov or $CHECKOV.
Any Python 3.11 runs this script; it needs only the standard library.

    python3 tools/checkov_bicep.py [DIRECTORY]     # DIRECTORY defaults to infra/
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
SETUP_HINT = (
    "create it with: python3.11 -m venv .venv-checkov && "
    ".venv-checkov/bin/python -m pip install -r requirements-infra.txt"
)
TIMEOUT_SECONDS = 600


class ToolError(Exception):
    """checkov could not be run, or its output could not be understood (exit 2)."""


@dataclass
class Outcome:
    """What one checkov run found, and what is wrong with it."""

    files: list[Path]
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    resources: int = 0
    problems: list[str] = field(default_factory=list)
    skips: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def run_checkov(checkov: Path, directory: Path) -> Any:
    """Run checkov on `directory` and return its parsed JSON report."""
    command = [
        str(checkov),
        "--framework",
        "bicep",
        "--directory",
        str(directory),
        "--output",
        "json",
        "--skip-download",  # no platform calls: offline-safe, and nothing else changes
    ]
    env = {**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"}
    try:
        result = subprocess.run(  # noqa: S603 - a fixed command line, no shell
            command,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
            env=env,
        )
    except FileNotFoundError as exc:
        raise ToolError(f"checkov not found at {checkov}; {SETUP_HINT}") from exc
    except subprocess.TimeoutExpired as exc:
        raise ToolError(f"checkov did not finish within {TIMEOUT_SECONDS} s") from exc
    # 0: clean, 1: failed checks. Anything else is checkov itself failing.
    if result.returncode not in (0, 1):
        raise ToolError(
            f"checkov exited with {result.returncode}:\n{_tail(result.stderr or result.stdout)}"
        )
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise ToolError(f"checkov printed no JSON report:\n{_tail(result.stdout)}") from exc


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _bicep_reports(report: Any) -> list[dict[str, Any]]:
    """The Bicep reports in checkov's output: one dict, or a list with one per framework.

    With nothing to scan, checkov prints a bare summary without `check_type`: no report.
    """
    reports = report if isinstance(report, list) else [report]
    if not all(isinstance(item, dict) for item in reports):
        raise ToolError("checkov's JSON report has an unexpected shape")
    return [item for item in reports if item.get("check_type") == "bicep"]


def evaluate(report: Any, directory: Path) -> Outcome:
    """Judge a checkov JSON report against the .bicep files in `directory`."""
    outcome = Outcome(files=sorted(directory.rglob("*.bicep")))
    if not outcome.files:
        outcome.problems.append(f"no .bicep files under {directory}")
        return outcome
    reports = _bicep_reports(report)
    if not reports:
        outcome.problems.append(
            f"checkov scanned nothing under {directory} ({len(outcome.files)} .bicep files there)"
        )
        return outcome

    unparsed: list[str] = []
    records: dict[str, list[dict[str, Any]]] = {"failed": [], "skipped": [], "passed": []}
    for item in reports:
        summary = item.get("summary", {})
        results = item.get("results", {})
        outcome.passed += int(summary.get("passed", 0))
        outcome.failed += int(summary.get("failed", 0))
        outcome.skipped += int(summary.get("skipped", 0))
        outcome.resources += int(summary.get("resource_count", 0))
        unparsed += [str(path) for path in results.get("parsing_errors", [])]
        if int(summary.get("parsing_errors", 0)) and not results.get("parsing_errors"):
            unparsed.append(f"{summary['parsing_errors']} file(s) (checkov did not name them)")
        for kind in records:
            records[kind] += results.get(f"{kind}_checks", [])

    if unparsed:
        outcome.problems.append(
            "checkov could not parse these files, so it checked nothing in them:\n"
            + "\n".join(f"  {path}" for path in unparsed)
        )
    for record in records["failed"]:
        lines = "-".join(str(n) for n in record.get("file_line_range", []))
        outcome.problems.append(
            f"FAILED {record.get('check_id')} {record.get('check_name')}\n"
            f"  {record.get('resource')} in {record.get('file_abs_path')}:{lines}"
        )
    if outcome.failed and not records["failed"]:
        outcome.problems.append(f"checkov counted {outcome.failed} failed check(s)")
    if outcome.resources == 0:
        outcome.problems.append(f"checkov found no resources to check under {directory}")
    present = {path.resolve() for path in outcome.files}
    for kind, items in records.items():
        for record in items:
            path = Path(str(record.get("file_abs_path", ""))).resolve()
            if path not in present:
                outcome.problems.append(f"checkov reported a {kind} check on unknown file {path}")
    for record in records["skipped"]:
        reason = record.get("check_result", {}).get("suppress_comment", "")
        outcome.skips.append(f"{record.get('check_id')} on {record.get('resource')}: {reason}")
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "directory", nargs="?", type=Path, default=ROOT / "infra", help="default: infra/"
    )
    parser.add_argument(
        "--checkov",
        type=Path,
        default=Path(os.environ.get("CHECKOV", str(DEFAULT_CHECKOV))),
        help=f"checkov executable (default: $CHECKOV or {DEFAULT_CHECKOV.relative_to(ROOT)})",
    )
    parser.add_argument("--verbose", action="store_true", help="also list the skipped checks")
    args = parser.parse_args(argv)
    directory: Path = args.directory
    if not directory.is_dir():
        sys.stderr.write(f"checkov_bicep: {directory} is not a directory\n")
        return 2
    try:
        outcome = evaluate(run_checkov(args.checkov, directory), directory)
    except ToolError as exc:
        sys.stderr.write(f"checkov_bicep: {exc}\n")
        return 2

    sys.stdout.write(
        f"checkov bicep: {len(outcome.files)} files, {outcome.resources} resources; "
        f"{outcome.passed} passed, {outcome.failed} failed, {outcome.skipped} skipped\n"
    )
    if args.verbose:
        sys.stdout.writelines(f"  skipped {skip}\n" for skip in outcome.skips)
    if outcome.ok:
        return 0
    sys.stderr.writelines(f"checkov_bicep: {problem}\n" for problem in outcome.problems)
    return 1


if __name__ == "__main__":
    sys.exit(main())
