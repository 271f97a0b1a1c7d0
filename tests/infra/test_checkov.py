"""tools/checkov_bicep.py fails on parse errors, failed checks and empty scans alike.

The judging logic runs here on report shapes checkov produces; the end-to-end tests run the real
checkov from its own virtualenv (.venv-checkov, from requirements-infra.txt) and are skipped when
that virtualenv does not exist.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.infra.templates import INFRA, ROOT
from tools.checkov_bicep import DEFAULT_CHECKOV, evaluate

SCRIPT = ROOT / "tools" / "checkov_bicep.py"

needs_checkov = pytest.mark.skipif(
    not DEFAULT_CHECKOV.is_file(),
    reason=f"checkov's virtualenv is missing ({DEFAULT_CHECKOV.relative_to(ROOT)}): create it "
    "with `python3.11 -m venv .venv-checkov && .venv-checkov/bin/python -m pip install "
    "-r requirements-infra.txt`",
)


def report(**summary: int) -> dict[str, Any]:
    counts = {"passed": 1, "failed": 0, "skipped": 0, "parsing_errors": 0, "resource_count": 1}
    return {
        "check_type": "bicep",
        "results": {
            "passed_checks": [],
            "failed_checks": [],
            "skipped_checks": [],
            "parsing_errors": [],
        },
        "summary": counts | summary,
    }


@pytest.fixture
def bicep_dir(tmp_path: Path) -> Path:
    (tmp_path / "main.bicep").write_text("param x string\n", encoding="utf-8")
    return tmp_path


def test_a_clean_report_passes(bicep_dir: Path) -> None:
    assert evaluate(report(), bicep_dir).ok


def test_parse_errors_fail_even_though_checkov_passed(bicep_dir: Path) -> None:
    broken = report(parsing_errors=1)
    broken["results"]["parsing_errors"] = [str(bicep_dir / "main.bicep")]
    outcome = evaluate(broken, bicep_dir)
    assert not outcome.ok
    assert "could not parse" in outcome.problems[0]
    assert str(bicep_dir / "main.bicep") in outcome.problems[0]


def test_a_parse_error_count_without_names_still_fails(bicep_dir: Path) -> None:
    assert not evaluate(report(parsing_errors=2), bicep_dir).ok


def test_failed_checks_fail(bicep_dir: Path) -> None:
    failing = report(failed=1)
    failing["results"]["failed_checks"] = [
        {
            "check_id": "CKV_AZURE_14",
            "check_name": "Ensure web app redirects all HTTP traffic to HTTPS",
            "resource": "Microsoft.Web/sites.app",
            "file_abs_path": str(bicep_dir / "main.bicep"),
            "file_line_range": [3, 9],
        }
    ]
    outcome = evaluate(failing, bicep_dir)
    assert not outcome.ok
    assert "CKV_AZURE_14" in outcome.problems[0]
    assert "main.bicep:3-9" in outcome.problems[0]


def test_a_bare_summary_means_nothing_was_scanned(bicep_dir: Path) -> None:
    bare = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0, "resource_count": 0}
    outcome = evaluate(bare, bicep_dir)
    assert outcome.problems == [f"checkov scanned nothing under {bicep_dir} (1 .bicep files there)"]


def test_no_resources_fails(bicep_dir: Path) -> None:
    assert not evaluate(report(resource_count=0), bicep_dir).ok


def test_no_bicep_files_fails(tmp_path: Path) -> None:
    assert evaluate(report(), tmp_path).problems == [f"no .bicep files under {tmp_path}"]


def test_one_report_per_framework_is_understood(bicep_dir: Path) -> None:
    other = report(failed=3) | {"check_type": "arm"}
    assert evaluate([report(), other], bicep_dir).ok


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own script, no shell
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


@pytest.mark.slow
@needs_checkov
def test_the_templates_pass_checkov() -> None:
    result = run(INFRA)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed" in result.stdout


@pytest.mark.slow
@needs_checkov
def test_an_unparsable_template_fails(tmp_path: Path) -> None:
    shutil.copytree(INFRA, tmp_path, dirs_exist_ok=True)
    storage = tmp_path / "modules" / "storage.bicep"
    text = storage.read_text(encoding="utf-8")
    storage.write_text(text[: len(text) // 2], encoding="utf-8")  # cut off mid-resource
    result = run(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "could not parse" in result.stderr
    assert "storage.bicep" in result.stderr


@pytest.mark.slow
@needs_checkov
def test_a_failing_check_fails(tmp_path: Path) -> None:
    (tmp_path / "main.bicep").write_text(
        "resource app 'Microsoft.Web/sites@2024-04-01' = {\n"
        "  name: 'app'\n"
        "  location: 'westeurope'\n"
        "  properties: {\n"
        "    httpsOnly: false\n"
        "  }\n"
        "}\n",
        encoding="utf-8",
    )
    result = run(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "CKV_AZURE_14" in result.stderr


@pytest.mark.slow
@needs_checkov
def test_an_empty_directory_fails(tmp_path: Path) -> None:
    result = run(tmp_path)
    assert result.returncode == 1
    assert "no .bicep files" in result.stderr
