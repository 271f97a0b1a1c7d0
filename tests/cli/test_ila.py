"""`ila` against the real app (`python -m local`) over loopback HTTP, with the simulators and
Azurite: every command, its exit status (0 success, 2 partial, 1 failure, 130 interrupted)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import typer

from ila.app import app as ila_app
from ila.app import main
from local.azurite import Azurite
from local.sandbox.contraforce_state import DEMO_WORKSPACE_ID
from local.sandbox.faults import Fault, FaultKind, FaultPlan
from tests.e2e.conftest import FUNCTION_KEY, Stack

ROOT = Path(__file__).parents[2]
WS = str(DEMO_WORKSPACE_ID)


@pytest.fixture
def ila(app: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """`ila` pointed at the served app through ILA_URL / ILA_KEY, on a wide console."""
    monkeypatch.setenv("ILA_URL", app.base_url)
    monkeypatch.setenv("ILA_KEY", FUNCTION_KEY)
    monkeypatch.setenv("COLUMNS", "200")
    return app


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_unlink_prints_the_outcome_and_exits_0(
    ila: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "unlink", "--workspace", WS, "--incident", "1001", "--source", "Sentinel"
    )
    assert code == 0
    assert "succeeded" in out
    assert f"{WS}/Sentinel/1001" in out
    assert len(ila.contraforce.state.effects) == 1


def test_unlink_json_is_the_outcome(ila: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "unlink", "--workspace", WS, "--incident", "1001", "--dry-run", "--json"
    )
    assert code == 0
    assert json.loads(out)["status"] == "planned"
    assert ila.contraforce.state.effects == []


def test_an_upstream_refusal_prints_the_problem_and_exits_1(
    ila: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "unlink", "--workspace", WS, "--incident", "99999")
    assert code == 1
    assert "HTTP 404" in out
    assert "upstream: contraforce" in out


def test_remove_with_linked_listed_after_one_flag(
    ila: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        "remove",
        "--source-incident",
        "20231025-130",
        "--linked",
        "20231025-131",
        "20210127-197",
    )
    assert code == 0
    assert "20231025-130/20231025-131" in out
    assert "20231025-130/20210127-197" in out


def test_a_usage_error_exits_1_not_2_which_means_partial(
    ila: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "unlink", "--workspace", "not-a-uuid", "--incident", "1")
    assert code == 1
    assert "UUID" in err


def test_async_unlink_is_followed_to_its_final_outcome(
    ila: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "unlink", "--workspace", WS, "--incident", "1002", "--async", "--no-wait", "--json"
    )
    assert code == 0
    operation = json.loads(out)["operationId"]
    code, out, _ = run(capsys, "status", operation, "--wait", "--json")
    assert code == 0
    assert json.loads(out)["status"] == "succeeded"


def test_status_of_an_unknown_operation_exits_1(
    ila: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "status", "no-such-operation")
    assert code == 1
    assert "404" in out


# ---- bulk -------------------------------------------------------------------------------------


def test_bulk_csv_shows_progress_and_a_summary_and_exits_2_on_partial(
    ila: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text(
        f"workspaceId,incidentNumber,source\n{WS},1001,Sentinel\n{WS},1002,DefenderXDR\n{WS},99999,\n",
        encoding="utf-8",
    )
    code, out, err = run(capsys, "bulk", str(rows), "--batch-size", "2")
    assert code == 2
    assert "batch 1/2 unlink_ticket lines 2-3: succeeded (2 items)" in err
    assert "batch 2/2 unlink_ticket line 4: HTTP 404" in err
    assert "3/3" in err  # the progress bar's last state
    assert "succeeded │ 2" in out
    assert "failed    │ 1" in out
    assert len(ila.contraforce.state.effects) == 2


def test_bulk_json_lines_mixes_actions_and_exits_0(
    ila: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rows = tmp_path / "rows.jsonl"
    lines = [
        {"workspaceId": WS, "incident": {"number": "1001"}},
        {"sourceIncident": "20231025-130", "linkedIncidents": ["20231025-131"]},
        {"action": "unlink", "workspaceId": WS, "incident": {"id": "cs-ldt-0f9e8d7c"}},
    ]
    rows.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    code, out, _ = run(capsys, "bulk", str(rows))
    assert code == 0
    assert "succeeded │ 3" in out


def test_bulk_stops_before_sending_anything_at_a_bad_row(
    ila: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text(f"workspaceId,incidentNumber\n{WS},1001\nnot-a-uuid,1002\n", encoding="utf-8")
    code, _, err = run(capsys, "bulk", str(rows))
    assert code == 1
    assert "line 3" in err
    assert "nothing was sent" in err
    assert ila.contraforce.state.effects == []


def test_bulk_splits_a_batch_the_app_finds_too_large(
    ila: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "workspaceId,incidentNumber\n" + "".join(f"{WS},{n}\n" for n in range(150)),
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "bulk", str(rows), "--batch-size", "150", "--dry-run")
    assert code == 0
    assert "planned │ 150" in out


def test_bulk_interrupted_says_what_ran_and_exits_130(app: Stack, tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text(
        f"workspaceId,incidentNumber\n{WS},1001\n{WS},1002\n{WS},1004\n", encoding="utf-8"
    )
    app.contraforce.faults = FaultPlan(script=[None, Fault(FaultKind.SLOW, delay=5.0)])
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "ila", "bulk", str(rows), "--batch-size", "1"],
        cwd=ROOT,
        env={**os.environ, "ILA_URL": app.base_url, "ILA_KEY": FUNCTION_KEY, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while app.contraforce.gate.counters.action_requests < 2:  # batch 2 is in flight
        assert time.monotonic() < deadline, "batch 2 never reached the upstream"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=20)
    assert process.returncode == 130
    assert "interrupted while batch 2 (line 3, 1 rows) was in flight" in out
    assert "1 of 3 rows ran in 1 batch(es)" in out
    assert "succeeded │ 1" in out
    # The app finishes the batch that was in flight (nothing half done, nothing leaks into
    # the next test): its effect lands once the slow upstream answers.
    deadline = time.monotonic() + 15
    while len(app.contraforce.state.effects) < 2:
        assert time.monotonic() < deadline, "the in-flight batch never finished in the app"
        time.sleep(0.05)


# ---- operators' commands ----------------------------------------------------------------------


def test_replay_poison_dry_run_lists_and_moves_nothing(
    ila: Stack,
    azurite: Azurite,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    code, out, _ = run(capsys, "replay-poison", "--dry-run")
    assert code == 0
    assert "would be replayed" in out
    code, out, _ = run(capsys, "replay-poison")
    assert code == 0
    assert "moved from the poison queue" in out


def test_replay_poison_without_storage_settings_names_them_and_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "replay-poison")
    assert code == 1
    assert "AzureWebJobsStorage" in out


def test_doctor_passes_a_healthy_deployment(ila: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "doctor")
    assert code == 0
    assert "0 check(s) failed" in out
    assert "contraforce (Basic)" in out
    assert "credential accepted" in out
    assert ila.contraforce.state.effects == []


def test_doctor_fails_a_wrong_key_and_a_refused_credential(
    ila: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "doctor", "--key", "wrong")
    assert code == 1
    assert "function key" in out
    state = ila.contraforce.state
    state.accounts = {
        cid: __import__("dataclasses").replace(a, client_secret="x")
        for cid, a in state.accounts.items()
    }
    code, out, _ = run(capsys, "doctor")
    assert code == 1
    assert "refused the app's credential" in out


def test_doctor_env_names_an_unresolved_key_vault_reference_never_its_value(
    ila: Stack,
    azurite: Azurite,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reference = "@Microsoft.KeyVault(SecretUri=https://vault.example/secrets/d3-api-key/)"
    monkeypatch.setenv("D3_API_KEY", reference)
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    code, out, _ = run(capsys, "doctor", "--env")
    assert code == 1
    assert "env D3_API_KEY" in out
    assert "unresolved Key Vault reference" in out
    assert "vault.example" not in out


def test_webhook_send_test_event_is_verified_and_acknowledged(
    ila: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "webhook", "send")
    assert code == 0
    assert '"acknowledged"' in out
    assert ila.contraforce.state.effects == []


def test_webhook_send_with_a_wrong_secret_is_refused_and_exits_1(
    ila: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "webhook", "send", "--secret", "not-the-secret")
    assert code == 1
    assert "HTTP 401" in out


def test_openapi_prints_or_saves_either_document(
    ila: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "openapi")
    assert code == 0
    assert json.loads(out)["openapi"].startswith("3.1")
    saved = tmp_path / "swagger.json"
    code, _, _ = run(capsys, "openapi", "swagger", "--output", str(saved))
    assert code == 0
    assert json.loads(saved.read_text(encoding="utf-8"))["swagger"] == "2.0"


# ---- the command's shape ----------------------------------------------------------------------


def test_every_option_and_argument_has_help_text() -> None:
    group = typer.main.get_command(ila_app)
    missing = []
    stack = [("ila", group)]
    while stack:
        name, command = stack.pop()
        commands = getattr(command, "commands", {})
        stack += [(f"{name} {sub}", cmd) for sub, cmd in commands.items()]
        if not command.help:
            missing.append(name)
        missing += [
            f"{name} {param.name}"
            for param in command.params
            if param.name != "help" and not getattr(param, "help", None)
        ]
    assert missing == []


def test_the_cli_extra_pins_what_requirements_dev_pins() -> None:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]["cli"]
    pinned = (ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines()
    assert all(pin in pinned for pin in extra)


def test_the_console_script_is_ila_app_run() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert scripts["scripts"] == {"ila": "ila.app:run"}


def test_python_m_ila_runs_ila() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ila", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0
    assert "replay-poison" in done.stdout
