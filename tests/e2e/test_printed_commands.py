"""The README's and the `make run` banner's commands work as printed, with a non-default PORT.

`python -m local` (what `make run` starts) runs in its own process with its own simulators and
Azurite, exactly as a new user gets it; its banner's commands and the README's shell blocks are
then run with bash, unchanged except for the port in the README's URLs (issue 12).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import HostProcess, _free_port

ROOT = Path(__file__).parents[2]
KEY = "devkey"  # the README's examples use it
DEFAULT_PORT = "7071"
COMMAND_SECONDS = 120
# `make run` starts its own Azurite and simulators: slower than the shared test stack.
STARTUP_SECONDS = 120.0

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="the commands use curl")


@dataclass(frozen=True)
class Printed:
    port: int
    banner: str
    log: Path

    def lines(self, pattern: str) -> list[str]:
        return [line for line in self.banner.splitlines() if re.search(pattern, line)]

    def sandbox_bases(self) -> list[str]:
        """The simulators' admin base URLs, from their `faults:` lines."""
        return [
            re.search(r"(http://\S+)/_sandbox/faults", line).group(1)  # type: ignore[union-attr]
            for line in self.lines(r"^  faults: curl")
        ]


def _environment(port: int) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "TMPDIR"}}
    return {**kept, "PORT": str(port)}


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Printed]:
    port = _free_port()
    assert str(port) != DEFAULT_PORT
    folder = tmp_path_factory.mktemp("make-run")
    out, log = folder / "banner.txt", folder / "host.log"
    with out.open("wb") as stdout, log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "local"],
            cwd=ROOT,
            env={**_environment(port), "LOCAL_FUNCTION_KEY": KEY},
            stdout=stdout,
            stderr=stderr,
        )
    host = HostProcess(process, f"http://127.0.0.1:{port}/api")
    try:
        _wait_until_ready(host, out)
        yield Printed(port, out.read_text(), log)
    finally:
        host.stop()


def _wait_until_ready(host: HostProcess, banner: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if host.process.poll() is not None:
            raise RuntimeError(f"python -m local exited with {host.process.returncode}")
        if "Ctrl-C stops" in banner.read_text():
            try:
                if httpx.get(f"{host.base_url}/health", timeout=1.0).is_success:
                    return
            except httpx.TransportError:
                pass
        time.sleep(0.05)  # readiness poll of a child process, not a test wait
    raise RuntimeError(f"python -m local not ready after {STARTUP_SECONDS}s")


@pytest.fixture
def fresh(printed: Printed) -> Printed:
    for base in printed.sandbox_bases():
        httpx.post(f"{base}/_sandbox/reset").raise_for_status()
    return printed


def run(command: str, port: int) -> subprocess.CompletedProcess[str]:
    """Run one printed command (or block) with bash; `curl` also prints each status code."""
    script = "curl() { command curl -w '\\n=> %{http_code}\\n' \"$@\"; }\n" + command
    return subprocess.run(  # noqa: S603 - our own printed commands, on loopback
        ["/usr/bin/env", "bash", "-c", script],
        cwd=ROOT,
        env={**_environment(port), "WS": "3f2a6c1e-8b7d-4c55-9a10-2f6e7d8c9b01"},
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )


def statuses(output: str) -> list[int]:
    return [int(code) for code in re.findall(r"^=> (\d{3})$", output, flags=re.MULTILINE)]


def readme_blocks(port: int) -> list[str]:
    """The README's shell blocks from "Try it" to "Configuration", with the port changed."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Try it") : text.index("## Configuration")]
    blocks = re.findall(r"^```sh\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)
    runnable = [b for b in blocks if not b.lstrip().startswith(("make run", "make test"))]
    return [b.replace(f"localhost:{DEFAULT_PORT}", f"localhost:{port}") for b in runnable]


def test_the_banner_prints_the_port_the_simulators_and_the_commands(printed: Printed) -> None:
    assert f"http://localhost:{printed.port}/api" in printed.banner
    assert len(printed.sandbox_bases()) == 2
    assert printed.lines(rf"^PORT={printed.port} LOCAL_FUNCTION_KEY={KEY} .*local\.send_webhook$")
    assert printed.lines(r"^AzureWebJobsStorage='.*' \.venv/bin/python -m ila replay-poison")


def test_banner_faults_then_curl_examples_work_as_printed(fresh: Printed) -> None:
    contraforce_faults = fresh.lines(r"^  faults: curl")[0].removeprefix("  faults: ")
    assert statuses(run(contraforce_faults, fresh.port).stdout) == [200]
    curls = fresh.lines(r"^curl ")
    assert len(curls) == 5
    first = run(curls[0], fresh.port)
    body = json.loads(first.stdout.split("\n=> ")[0])
    assert (statuses(first.stdout), body["status"], body["attempts"]) == ([200], "succeeded", 3)
    answered = [statuses(run(command, fresh.port).stdout) for command in curls[1:]]
    assert answered == [[200], [200], [207], [200]]


def test_banner_send_webhook_and_replay_commands_work_as_printed(fresh: Printed) -> None:
    [send] = fresh.lines(r"local\.send_webhook$")
    sent = run(send, fresh.port)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith(f"HTTP 202 http://localhost:{fresh.port}/api/operations/")
    # The delivery unlinks demo incident #1001 from the queue: let it finish here, or it may
    # run after the next test has reset the sandbox and take that test's ticket.
    assert finished(sent.stdout.split()[2]) == 200
    [replay] = fresh.lines(r"replay-poison$")
    replayed = run(replay, fresh.port)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.endswith("message(s) moved from the poison queue\n")


def finished(location: str, *, seconds: float = 60.0) -> int:
    """Poll an operation's Location until it is no longer 202; its final status."""
    deadline = time.monotonic() + seconds
    while True:
        status = httpx.get(location, headers={"x-functions-key": KEY}, timeout=10).status_code
        if status != 202 or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def test_readme_commands_work_as_printed_with_another_port(fresh: Printed) -> None:
    outputs = []
    for block in readme_blocks(fresh.port):
        result = run(block, fresh.port)
        assert result.returncode == 0, (block, result.stderr)
        assert "Traceback" not in result.stderr
        outputs.append(result.stdout)
    codes = [code for output in outputs for code in statuses(output)]
    # Try it: 200, D3 200, dry run 200, the operation placeholder "02fa10d9-…" 404;
    # Routes: mirror 200, partial 207, bulk 207, bad input 400, health 200.
    assert codes == [200, 200, 200, 404, 200, 207, 207, 400, 200]
    webhooks = "\n".join(outputs)
    assert f"HTTP 202 http://localhost:{fresh.port}/api/operations/" in webhooks
    assert '"status":"skipped"' in webhooks


def test_the_host_logs_one_line_per_upstream_call_and_our_retry_line(printed: Printed) -> None:
    contraforce_faults = printed.lines(r"^  faults: curl")[0].removeprefix("  faults: ")
    run(contraforce_faults, printed.port)
    run(printed.lines(r"^curl ")[0], printed.port)
    deadline = time.monotonic() + 10
    while "retrying in" not in printed.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)  # the child process writes its log asynchronously
    log = printed.log.read_text()
    assert "HTTP Request:" not in log  # httpx's own INFO line
    assert "stamina.retry_scheduled" not in log
    call = r"upstream=contraforce POST /api/v2/workspaces/\S+/tickets/unlink"
    assert re.search(
        rf"{call} attempt=1 failed \(answered HTTP 429\): retrying in \d+\.\d\d s", log
    )


def test_send_webhook_without_a_running_app_is_one_line_not_a_traceback() -> None:
    port = _free_port()
    result = run(".venv/bin/python -m local.send_webhook", port)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"cannot reach http://localhost:{port}/api/webhooks/contraforce")


def test_stopping_make_run_with_sigterm_stops_the_azurite_it_started(tmp_path: Path) -> None:
    """A service manager (or a test) stops the host with SIGTERM, not Ctrl-C: the Azurite the
    host started must go with it, not linger as an orphan on its ports."""
    port = _free_port()
    banner = tmp_path / "banner.txt"
    with banner.open("wb") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "local"],
            cwd=ROOT,
            env={**_environment(port), "LOCAL_FUNCTION_KEY": KEY},
            stdout=stdout,
            stderr=subprocess.DEVNULL,
        )
    host = HostProcess(process, f"http://127.0.0.1:{port}/api")
    try:
        _wait_until_ready(host, banner)
        found = re.search(r"QueueEndpoint=http://127\.0\.0\.1:(\d+)/", banner.read_text())
        assert found is not None, "the banner names the Azurite it started"
        queue_port = int(found.group(1))
        assert _listening(queue_port)
    finally:
        host.stop()
    deadline = time.monotonic() + 10
    while _listening(queue_port):
        assert time.monotonic() < deadline, "Azurite outlived the host that started it"
        time.sleep(0.05)  # another process winding down


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
