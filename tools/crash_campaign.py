"""A crash campaign over `make run`'s pieces: is every accepted operation final, and true?

    .venv/bin/python -m tools.crash_campaign [--rounds 20] [--seed 1] [--out report.md]

Starts the simulators and an Azurite on disk apart from the host (`python -m local.sandbox`),
then the host (`python -m local`, as `make run LOCAL_SANDBOX=apart` does) with a short retry
budget, so the operation lease (2 x budget + 5 s) and its recovery message (10 s after the
lease) come soon. Both simulators fault 30 % of the action requests (rate_limited,
unavailable, reset, applied_then_reset, slow; 6 % each). Each round sends keyed sync calls
(canonical and mirror routes), keyed `Prefer: respond-async` calls and signed webhooks, each
about an incident of its own, and kills the host with SIGKILL at a random moment; then
restarts it on the same port.

Callers behave as real ones do and no better: a call whose connection broke is sent once
more, as it was (same `Idempotency-Key`, same webhook event id), once the host is back; a 202
is followed by GET polls of its `Location`, nothing else; a mirror route's vendor-shaped "still
running" (409 `OPERATION_IN_PROGRESS`, or 429, with `Retry-After`) is asked again the same way,
since a mirror has no `Location`. Then, per operation:

- lost: accepted (it had a `Location`), and the host no longer knows it (404);
- stuck: accepted, and not final within the bound (lease + 60 s after the last kill);
- double: more than one effect in the simulator for the operation's incident;
- false: its final answer disagrees with the simulator (says done without the effect, or
  not done / failed while the effect happened); an `unknown` ("may have acted") answer is
  honest either way and counted apart.

The simulators' unlink acts once per incident (a second unlink finds nothing to do), so
"double" can only show a second *recorded* effect, which needs the incident re-linked; it
stays 0 here by construction and is printed for completeness.

`Sandbox` and `Host` are also what tests/e2e/test_crash_e2e.py runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ila.webhook import SANDBOX_WEBHOOK_SECRET, send_event, unlinking_event
from local import processes
from local.sandbox.__main__ import extra_linked, extra_number, read_env_file
from local.sandbox.contraforce_state import DEMO_WORKSPACE_ID
from local.sandbox.d3_state import DEMO_SITE, DEMO_USERNAME

ROOT = Path(__file__).resolve().parents[1]
FUNCTION_KEY = "crash-campaign-key"
WS = str(DEMO_WORKSPACE_ID)
STARTUP_SECONDS = 60.0
LEASE_MARGIN_SECONDS = 5.0  # shared/durable/attempt.py: lease = 2 x budget + 5 s
RECOVERY_MARGIN_SECONDS = 10.0  # and its recovery message is visible 10 s after the lease
BOUND_MARGIN_SECONDS = 60.0  # issue 24: final within the lease plus about a minute
# Quick real retries, as the e2e tests use them (local.sandbox.settings.FAST_RETRIES), with a
# Retry-After honored up to 1 s: the sandbox's 429 says 1.
RETRIES = {
    "RETRY_ATTEMPTS": "5",
    "RETRY_INITIAL_WAIT_SECONDS": "0.05",
    "RETRY_MAX_WAIT_SECONDS": "0.5",
    "RETRY_AFTER_CAP_SECONDS": "1",
}
FAULT_KINDS = ("rate_limited", "unavailable", "reset", "applied_then_reset", "slow")
KINDS = (
    "sync-unlink",
    "sync-remove",
    "mirror-contraforce",
    "mirror-d3",
    "async-unlink",
    "async-remove",
    "webhook",
)


def lease_seconds(budget: float) -> float:
    return 2 * budget + LEASE_MARGIN_SECONDS


def bound_seconds(budget: float) -> float:
    """How long after a crash every accepted operation must be final."""
    return lease_seconds(budget) + BOUND_MARGIN_SECONDS


def _eventually(check: Callable[[], bool], *, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {seconds:.0f} s: {what}")
        time.sleep(0.05)  # polls another process's progress


def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}:{parsed.port}"


@dataclass
class Sandbox:
    """`python -m local.sandbox` on free ports: both simulators and an Azurite in `folder`."""

    process: subprocess.Popen[bytes]
    settings: dict[str, str]
    folder: Path

    @classmethod
    def start(cls, folder: Path, *, extra: int = 0) -> Sandbox:
        folder.mkdir(parents=True, exist_ok=True)
        env_file = folder / "sandbox.env"
        env_file.unlink(missing_ok=True)
        with (folder / "sandbox.log").open("ab") as log:
            process = processes.spawn(
                [
                    sys.executable,
                    "-m",
                    "local.sandbox",
                    *("--storage-dir", str(folder / "azurite")),
                    *("--contraforce-port", "0", "--d3-port", "0", "--azurite-ports", "0,0,0"),
                    *("--extra", str(extra), "--env-file", str(env_file)),
                ],
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                stdout=log.fileno(),
                stderr=log.fileno(),
            )

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the sandbox exited with {process.returncode}: see {log.name}")
            return env_file.exists()

        try:
            _eventually(ready, seconds=STARTUP_SECONDS, what="the sandbox is ready")
        except BaseException:
            processes.stop(process)
            raise
        return cls(process, read_env_file(env_file), folder)

    @property
    def contraforce(self) -> str:
        """The ContraForce simulator's origin (its `/_sandbox/...` routes)."""
        return _origin(self.settings["CONTRAFORCE_BASE_URL"])

    @property
    def d3(self) -> str:
        """The D3 simulator's origin."""
        return _origin(self.settings["D3_BASE_URL"])

    def state(self, origin: str) -> dict[str, Any]:
        reply = httpx.get(f"{origin}/_sandbox/state", timeout=10)
        reply.raise_for_status()
        state: dict[str, Any] = reply.json()
        return state

    def set_faults(self, origin: str, plan: Mapping[str, Any]) -> None:
        httpx.post(f"{origin}/_sandbox/faults", json=dict(plan), timeout=10).raise_for_status()

    def clear_faults(self) -> None:
        for origin in (self.contraforce, self.d3):
            httpx.delete(f"{origin}/_sandbox/faults", timeout=10).raise_for_status()

    def stop(self) -> None:
        processes.stop(self.process)


@dataclass
class Host:
    """`python -m local` on `port` with `settings`, its output appended to `log`."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @classmethod
    def start(cls, settings: Mapping[str, str], *, port: int, log: Path) -> Host:
        with log.open("ab") as out:
            process = processes.spawn(
                [sys.executable, "-m", "local"],
                cwd=ROOT,
                env={
                    **{k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}},
                    "PORT": str(port),
                    "LOCAL_FUNCTION_KEY": FUNCTION_KEY,
                    **settings,
                },
                stdout=out.fileno(),
                stderr=out.fileno(),
            )
        host = cls(process, port)

        def healthy() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the host exited with {process.returncode}: see {log}")
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"{host.base_url}/health", timeout=2).status_code == 200
            return False

        try:
            _eventually(healthy, seconds=STARTUP_SECONDS, what="the host is healthy")
        except BaseException:
            host.kill()
            raise
        return host

    def kill(self) -> None:
        """SIGKILL: no cleanup runs in the host, as in a crash."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        processes.stop(self.process)


def host_settings(sandbox: Sandbox, *, budget: float) -> dict[str, str]:
    """The settings of a host against `sandbox` whose operation lease is 2 x budget + 5 s."""
    return {**sandbox.settings, **RETRIES, "RETRY_BUDGET_SECONDS": f"{budget:g}"}


def free_port() -> int:
    import socket  # noqa: PLC0415 - only here

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- the campaign ---------------------------------------------------------------------------


@dataclass
class Op:
    """One caller's operation about one incident (`extra_number(index)`)."""

    kind: str
    index: int
    key: str = field(default_factory=lambda: str(uuid.uuid4()))
    cut: bool = False  # the first POST got no answer (the host died)
    reposted: int | None = None  # the status the one re-post got
    location: str | None = None
    status: int | None = None  # the final answer's status
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    gone: bool = False  # a poll answered 404
    asks_again: bool = False  # a mirror answered "in progress, retry"
    retries: int = 0  # how often the caller asked a mirror again
    ask_at: float = 0.0  # not before its Retry-After
    sent_at: float = 0.0
    final_at: float | None = None
    unreached: bool = False

    @property
    def number(self) -> str:
        return extra_number(self.index)


def _post(op: Op, base_url: str) -> httpx.Response:
    headers = {"x-functions-key": FUNCTION_KEY, "Idempotency-Key": op.key}
    number = op.number
    timeout = 60.0
    if op.kind == "webhook":
        event = unlinking_event(
            workspace=WS, classification="FalsePositive", source="sentinel", incident_number=number
        )
        return send_event(
            base_url,
            event,
            secret=SANDBOX_WEBHOOK_SECRET,
            function_key=FUNCTION_KEY,
            event_id=op.key,
            timeout=timeout,
        )
    unlink = {"workspaceId": WS, "incident": {"number": number, "source": "Sentinel"}}
    remove = {"sourceIncident": number, "linkedIncidents": [extra_linked(op.index)]}
    path, body = {
        "sync-unlink": ("actions/unlink-ticket", unlink),
        "async-unlink": ("actions/unlink-ticket", unlink),
        "sync-remove": ("actions/remove-linked-incidents", remove),
        "async-remove": ("actions/remove-linked-incidents", remove),
        "mirror-contraforce": (
            f"contraforce/workspaces/{WS}/tickets/unlink",
            {"incident": {"number": number}},
        ),
        "mirror-d3": (
            "d3/Command/RemoveLinkedIncidents",
            {
                "Username": DEMO_USERNAME,
                "Site": DEMO_SITE,
                "CommandParams": {
                    "Linked Incident Numbers to be Removed": [extra_linked(op.index)],
                    "Source Incident Number": number,
                },
            },
        ),
    }[op.kind]
    if op.kind.startswith("async"):
        headers["Prefer"] = "respond-async"
    return httpx.post(f"{base_url}/{path}", json=body, headers=headers, timeout=timeout)


def _in_progress(op: Op, reply: httpx.Response) -> bool:
    """A mirror's vendor-shaped "still running, retry" (409 or 429 with Retry-After): a mirror
    has no Location, so its caller asks again, as the answer says."""
    return op.kind.startswith("mirror") and reply.status_code in {409, 429}


def _take(op: Op, reply: httpx.Response, clock: Callable[[], float]) -> None:
    if reply.status_code == 202 and "location" in reply.headers:
        op.location = reply.headers["location"]
        return
    if _in_progress(op, reply):
        op.asks_again = True
        retry_after = reply.headers.get("retry-after", "1")
        op.ask_at = clock() + (float(retry_after) if retry_after.isdigit() else 1.0)
        return
    op.status, op.headers = reply.status_code, dict(reply.headers)
    try:
        op.body = reply.json()
    except ValueError:
        op.body = reply.text
    op.final_at = clock()


def submit(op: Op, base_url: str, clock: Callable[[], float]) -> None:
    """The first POST; a broken connection marks the operation `cut`."""
    op.sent_at = clock()
    try:
        _take(op, _post(op, base_url), clock)
    except httpx.TransportError:
        op.cut = True


def repost(op: Op, base_url: str, clock: Callable[[], float]) -> None:
    """The caller's one re-send of a call that got no answer: the same request, same key."""
    try:
        reply = _post(op, base_url)
    except httpx.TransportError:
        op.unreached = True
        return
    op.reposted = reply.status_code
    _take(op, reply, clock)


def waiting(op: Op) -> bool:
    """Accepted and not final: the caller polls its Location, or asks a mirror again."""
    return op.final_at is None and not op.gone and (op.location is not None or op.asks_again)


def poll(op: Op, base_url: str, clock: Callable[[], float]) -> None:
    """One GET of the operation's Location, as the caller was told; a mirror is asked again
    with the same request (its 409/429 says to)."""
    if not waiting(op):
        return
    if op.location is None:
        if clock() < op.ask_at:
            return
        op.retries += 1
        with contextlib.suppress(httpx.TransportError):
            _take(op, _post(op, base_url), clock)
        return
    url = str(httpx.URL(base_url).join(op.location))
    try:
        reply = httpx.get(url, headers={"x-functions-key": FUNCTION_KEY}, timeout=10)
    except httpx.TransportError:
        return  # the host is down; the caller polls again later
    if reply.status_code == 404:
        op.gone = True
        return
    if reply.status_code == 202:
        return
    _take(op, reply, clock)


def claim(op: Op) -> str:
    """What the final answer says happened: `applied`, `not applied` or `unknown`."""
    body, text = op.body, json.dumps(op.body)
    if "OUTCOME_UNKNOWN" in text or (isinstance(body, dict) and body.get("status") == "unknown"):
        return "unknown"
    if isinstance(body, dict) and isinstance(body.get("items"), list):  # our Outcome
        statuses = {item.get("status") for item in body["items"]}
        if "unknown" in statuses:
            return "unknown"
        return "applied" if statuses == {"succeeded"} else "not applied"
    if op.status != 200 or not isinstance(body, dict):
        return "not applied"
    if "data" in body:  # ContraForce's envelope
        return "applied" if body["data"] is True else "not applied"
    data = body.get("returnData") or {}  # D3's
    failed = {e.get("Incident Number") for e in data.get("ErrorData") or []}
    if data.get("Status") == "Successful" and extra_linked(op.index) not in failed:
        return "applied"
    return "not applied"


def effects_of(op: Op, contraforce: Mapping[str, Any], d3: Mapping[str, Any]) -> int:
    if op.kind in {"sync-remove", "async-remove", "mirror-d3"}:
        return sum(e["sourceIncident"] == op.number for e in d3["effects"])
    return sum(e["incidentNumber"] == op.number for e in contraforce["effects"])


@dataclass
class Tally:
    rows: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, kind: str, what: str) -> None:
        self.rows.setdefault(kind, Counter())[what] += 1

    def table(self) -> str:
        columns = [
            "ops",
            "not final at a kill",
            "cut by a kill",
            "re-post got 202",
            "asked a mirror again",
            "final",
            "lost",
            "double",
            "false",
            "stuck",
            "unreached",
            "unknown",
            "inferred",
        ]
        total: Counter[str] = Counter()
        for counts in self.rows.values():
            total.update(counts)
        lines = [
            "| kind | " + " | ".join(columns) + " |",
            "|---|" + "---:|" * len(columns),
        ]
        for kind, counts in [*sorted(self.rows.items()), ("**all**", total)]:
            lines.append(f"| {kind} | " + " | ".join(str(counts[c]) for c in columns) + " |")
        return "\n".join(lines)


@dataclass(frozen=True)
class Plan:
    rounds: int
    per_round: int
    budget: float
    seed: int
    fault_rate: float

    @property
    def bound(self) -> float:
        return bound_seconds(self.budget)


def _fault_plan(plan: Plan, salt: int) -> dict[str, Any]:
    share = plan.fault_rate / len(FAULT_KINDS)
    return {"probabilities": dict.fromkeys(FAULT_KINDS, share), "seed": plan.seed * 100 + salt}


class Campaign:
    def __init__(self, plan: Plan, folder: Path, out: Callable[[str], None]) -> None:
        self.plan = plan
        self.folder = folder
        self.out = out
        self.rng = random.Random(plan.seed)  # noqa: S311 - a reproducible schedule, not crypto
        self.start = time.monotonic()
        self.ops: list[Op] = []
        self.kills: list[float] = []
        self.port = free_port()
        self._lock = threading.Lock()

    def clock(self) -> float:
        return time.monotonic() - self.start

    @contextlib.contextmanager
    def _poller(self, base_url: str) -> Iterator[None]:
        done = threading.Event()

        def run() -> None:
            while not done.wait(1.0):
                with self._lock:
                    pending = [op for op in self.ops if waiting(op)]
                for op in pending:
                    poll(op, base_url, self.clock)

        thread = threading.Thread(target=run, name="poller", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _round(self, number: int, host: Host, settings: dict[str, str]) -> Host:
        ops = [
            Op(KINDS[(number + j) % len(KINDS)], number * self.plan.per_round + j)
            for j in range(self.plan.per_round)
        ]
        with self._lock:
            self.ops += ops
        threads = [
            threading.Thread(target=submit, args=(op, host.base_url, self.clock), daemon=True)
            for op in ops
        ]
        for thread in threads:
            thread.start()
            time.sleep(self.rng.uniform(0, 0.1))  # callers do not all arrive at once
        time.sleep(self.rng.uniform(0, 1.0))  # the crash comes at a random moment
        host.kill()
        self.kills.append(self.clock())
        for thread in threads:
            thread.join()
        host = Host.start(settings, port=self.port, log=self.folder / "host.log")
        reposts = [
            threading.Thread(target=repost, args=(op, host.base_url, self.clock), daemon=True)
            for op in ops
            if op.cut
        ]
        for thread in reposts:
            thread.start()
        for thread in reposts:
            thread.join()
        cut = sum(op.cut for op in ops)
        self.out(f"round {number + 1}/{self.plan.rounds}: {len(ops)} calls, {cut} cut by the kill")
        return host

    def run(self) -> Tally:
        plan = self.plan
        sandbox = Sandbox.start(self.folder, extra=plan.rounds * plan.per_round)
        try:
            for salt, origin in enumerate((sandbox.contraforce, sandbox.d3)):
                sandbox.set_faults(origin, _fault_plan(plan, salt))
            settings = host_settings(sandbox, budget=plan.budget)
            host = Host.start(settings, port=self.port, log=self.folder / "host.log")
            base_url = host.base_url  # the same port across restarts
            try:
                with self._poller(base_url):
                    for number in range(plan.rounds):
                        host = self._round(number, host, settings)
                    deadline = self.kills[-1] + plan.bound
                    self.out(f"waiting up to {deadline - self.clock():.0f} s for the bound")
                    while self.clock() < deadline and any(waiting(op) for op in self.ops):
                        time.sleep(1.0)
            finally:
                host.stop()
            return self._tally(sandbox.state(sandbox.contraforce), sandbox.state(sandbox.d3))
        finally:
            sandbox.stop()

    def _last_kill_before(self, moment: float) -> float:
        return max((kill for kill in self.kills if kill <= moment), default=0.0)

    def _tally(self, contraforce: Mapping[str, Any], d3: Mapping[str, Any]) -> Tally:
        tally = Tally()
        for op in self.ops:
            tally.add(op.kind, "ops")
            if op.cut:
                tally.add(op.kind, "cut by a kill")
            end = op.final_at if op.final_at is not None else self.clock()
            if any(op.sent_at <= kill <= end for kill in self.kills):
                tally.add(op.kind, "not final at a kill")
            if op.reposted == 202:
                tally.add(op.kind, "re-post got 202")
            if op.retries:
                tally.add(op.kind, "asked a mirror again")
            effects = effects_of(op, contraforce, d3)
            if effects > 1:
                tally.add(op.kind, "double")
            if op.final_at is None:
                if op.gone:
                    tally.add(op.kind, "lost")
                elif waiting(op):
                    tally.add(op.kind, "stuck")
                else:
                    tally.add(op.kind, "unreached")
                continue
            tally.add(op.kind, "final")
            if op.final_at - self._last_kill_before(op.final_at) > self.plan.bound:
                tally.add(op.kind, "stuck")
            if op.headers.get("x-ila-outcome-inferred") == "true" or '"inferred": true' in (
                json.dumps(op.body)
            ):
                tally.add(op.kind, "inferred")
            said = claim(op)
            if said == "unknown":
                tally.add(op.kind, "unknown")
            elif (said == "applied") != (effects > 0):
                tally.add(op.kind, "false")
                self.out(
                    f"  false: {op.kind} #{op.number} says {said!r} with {effects} effect(s): "
                    f"HTTP {op.status} {json.dumps(op.body)[:300]}"
                )
        return tally


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - the developer's git
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{' + uncommitted changes in the working tree' if dirty else ''}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.crash_campaign", description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=len(KINDS), help="calls per round")
    parser.add_argument(
        "--budget", type=float, default=5.0, help="RETRY_BUDGET_SECONDS (%(default)s)"
    )
    parser.add_argument("--fault-rate", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="keep the logs and Azurite's data here")
    parser.add_argument("--out", type=Path, help="also write the report (markdown) here")
    args = parser.parse_args(argv)
    plan = Plan(args.rounds, args.per_round, args.budget, args.seed, args.fault_rate)

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    commit = _commit()
    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        folder = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        tally = Campaign(plan, folder, say).run()
    wall = time.monotonic() - began
    report = "\n".join(
        [
            (
                f"Crash campaign: {plan.rounds} rounds x {plan.per_round} calls, one host "
                f"SIGKILL per round, {plan.fault_rate:.0%} upstream faults "
                f"({', '.join(FAULT_KINDS)}), seed {plan.seed}"
            ),
            (
                f"commit {commit}; RETRY_BUDGET_SECONDS={plan.budget:g}: lease "
                f"{lease_seconds(plan.budget):g} s, bound {plan.bound:g} s after the last "
                f"kill; wall time {wall:.0f} s"
            ),
            "",
            tally.table(),
            "",
        ]
    )
    say(report)
    if args.out is not None:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
