"""`make run`: serve function_app.py on http://localhost:7071/api against the sandbox.

Starts a sandbox simulator for each upstream whose base URL is not set in the environment,
points the app's settings at it, serves every trigger of the real `function_app.app` through
the local host, and prints the URLs, the function key and ready-to-paste curl commands.
Everything honors the environment: `PORT`, `HOST`, `LOCAL_FUNCTION_KEY`, and every app setting
(with `CONTRAFORCE_BASE_URL` / `D3_BASE_URL` set, that simulator is not started; with
`AzureWebJobsStorage` set, no Azurite is).

Two settings of its own make a crash worth watching:
- `LOCAL_STORAGE_DIR=<folder>`: the Azurite started here keeps its data in that folder
  (Azurite's `--location`) instead of in memory, so a restart finds the queues and operations;
- `LOCAL_SANDBOX=apart`: the simulators and Azurite are the ones `python -m local.sandbox`
  (`make sandbox`) serves in a process of their own, on its fixed ports (or, with
  `LOCAL_SANDBOX=<file>`, where its `--env-file` says); nothing is started here, and a
  host-only restart keeps the storage and the upstreams' state.

Ctrl-C stops it all. Children (Azurite) end with this process even if it is killed
(`local.processes`).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shlex
import signal
import socket
import sys
from collections.abc import Mapping, MutableMapping
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn

from function_app import app
from local import easy_auth
from local.azurite import start_azurite
from local.host import LocalHost, body_limit, load_host_json
from local.queues import QueueOptions, QueueRunner
from local.sandbox import APART_HOST, apart_settings
from local.sandbox import contraforce as cf_sandbox
from local.sandbox import d3 as d3_sandbox
from local.sandbox.__main__ import read_env_file
from local.sandbox.contraforce_state import DEMO_WORKSPACE_ID
from local.sandbox.d3_state import DEMO_SITE, DEMO_USERNAME
from local.sandbox.settings import contraforce_settings, d3_settings
from local.send_webhook import SANDBOX_WEBHOOK_SECRET
from local.server import serve_in_thread
from shared import storage, telemetry
from shared.clients import registry
from shared.config import get_settings

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("local")
STORAGE_SETTING = "AzureWebJobsStorage"
# Like the sandbox's webhook secret: known, local only, stable across restarts.
SANDBOX_STATUS_LINK_SECRET = "sandbox-status-link-secret-local-only-0001"  # noqa: S105 - sandbox only
STORAGE_DIR_SETTING = "LOCAL_STORAGE_DIR"
SANDBOX_SETTING = "LOCAL_SANDBOX"


def faults_example(server_base_url: str) -> str:
    """A ready-to-paste fault plan for one simulator: a 429, then a 503, then normal answers."""
    plan = json.dumps({"script": [{"kind": "rate_limited"}, {"kind": "unavailable"}]})
    return (
        f"  faults: curl -s -X POST {server_base_url}/_sandbox/faults "
        f"-H 'Content-Type: application/json' -d {shlex.quote(plan)}\n"
        '          (the next call still succeeds, after 2 retries: "attempts":3;'
        f" curl -s -X DELETE {server_base_url}/_sandbox/faults clears the plan;"
        f" GET {server_base_url}/_sandbox/state shows state and effects)"
    )


class SandboxNotRunning(RuntimeError):
    """`LOCAL_SANDBOX` names a sandbox apart, and nothing answers where it should be."""


def _origin(url: str) -> tuple[str, int]:
    parsed = urlsplit(url)
    return parsed.hostname or APART_HOST, parsed.port or 80


def _answers(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def _use_sandbox_apart(env: MutableMapping[str, str], where: str) -> str:
    """Point the settings the environment does not set at `python -m local.sandbox`: on its
    fixed ports (`where` is `apart`), or as its `--env-file` says (`where` is that file)."""
    if where.lower() == "apart":
        settings = apart_settings()
    elif Path(where).is_file():
        settings = read_env_file(Path(where))
    else:
        raise SandboxNotRunning(
            f"{SANDBOX_SETTING}={where!r}: 'apart' (make sandbox's fixed ports), the --env-file "
            "of python -m local.sandbox, or unset (the simulators run in this process)"
        )
    origins = {
        name: _origin(settings[setting])
        for name, setting in (("ContraForce", "CONTRAFORCE_BASE_URL"), ("D3", "D3_BASE_URL"))
    }
    for name, (host, port) in origins.items():
        if not _answers(host, port):
            raise SandboxNotRunning(
                f"{SANDBOX_SETTING}={where}, but no {name} simulator answers on {host}:{port}: "
                "start `make sandbox` (python -m local.sandbox) first"
            )
    for name, value in settings.items():
        env.setdefault(name, value)
    return "\n".join(
        [
            (
                f"Simulators and Azurite apart ({SANDBOX_SETTING}={where}), served by "
                "python -m local.sandbox: kill and restart this host, they keep their state"
            ),
            *(faults_example(f"http://{host}:{port}") for host, port in origins.values()),
        ]
    )


def _start_sandboxes(stack: ExitStack, env: MutableMapping[str, str]) -> list[str]:
    """Start the simulators the environment does not replace; return their summaries."""
    summaries = []
    if where := env.get(SANDBOX_SETTING, "").strip():
        summaries.append(_use_sandbox_apart(env, where))
    if not env.get("CONTRAFORCE_BASE_URL"):
        cf_app = cf_sandbox.create_app()
        server = stack.enter_context(serve_in_thread(cf_app))
        env.update(contraforce_settings(server.base_url))
        summaries.append(cf_sandbox.simulator_of(cf_app).summary(server.base_url))
        summaries.append(faults_example(server.base_url))
    if not env.get("D3_BASE_URL"):
        simulator = d3_sandbox.D3Simulator()
        server = stack.enter_context(serve_in_thread(simulator.app))
        for name, value in d3_settings(server.base_url, simulator).items():
            if name.startswith("D3_DEFAULT_"):
                env.setdefault(name, value)
            else:
                env[name] = value
        summaries.append(simulator.summary(server.base_url))
        summaries.append(faults_example(server.base_url))
    if not env.get("CONTRAFORCE_WEBHOOK_SECRETS"):
        env["CONTRAFORCE_WEBHOOK_SECRETS"] = SANDBOX_WEBHOOK_SECRET
        summaries.append(
            f"ContraForce webhooks signed with {SANDBOX_WEBHOOK_SECRET!r} (sandbox only)"
        )
    if not env.get("AzureWebJobsStorage"):
        folder = env.get(STORAGE_DIR_SETTING, "").strip()
        azurite = stack.enter_context(start_azurite(location=Path(folder) if folder else None))
        env["AzureWebJobsStorage"] = azurite.connection_string
        summaries.append(
            f"Azurite (Azure Storage emulator) queues on :{azurite.queue_port}, "
            f"tables on :{azurite.table_port}, {azurite.where}"
            + ("" if folder else f" ({STORAGE_DIR_SETTING}=.azurite keeps it on disk)")
        )
    return summaries


def curl_examples(base: str, key: str) -> str:
    """Ready-to-paste commands against the demo data."""
    ws = DEMO_WORKSPACE_ID
    examples = [
        (
            "Unlink the ServiceNow ticket of incident #1001 (canonical route, Outcome answer)",
            f"{base}/actions/unlink-ticket",
            {"workspaceId": str(ws), "incident": {"number": "1001", "source": "Sentinel"}},
        ),
        (
            "ContraForce drop-in route: answers {data, meta}; run it twice to see data=false",
            f"{base}/contraforce/workspaces/{ws}/tickets/unlink",
            {"incident": {"number": "1002", "source": "DefenderXDR"}},
        ),
        (
            "Remove linked D3 incidents: D3's own sample, answered Partially Successful",
            f"{base}/d3/Command/RemoveLinkedIncidents",
            {
                "Username": DEMO_USERNAME,
                "Site": DEMO_SITE,
                "CommandParams": {
                    "Linked Incident Numbers to be Removed": ["20210127-198", "20210127-197"],
                    "Source Incident Number": "20231025-130",
                },
            },
        ),
        (
            "Partial success on the canonical route: HTTP 207 with one item per incident",
            f"{base}/actions/remove-linked-incidents",
            {"sourceIncident": "20231025-130", "linkedIncidents": ["20231025-131", "20210127-198"]},
        ),
        (
            "Dry run: the exact upstream request, credentials masked, nothing sent",
            f"{base}/actions/unlink-ticket?dryRun=true",
            {"workspaceId": str(ws), "incident": {"number": "1004"}},
        ),
    ]
    lines = []
    for title, url, body in examples:
        lines.append(f"# {title}")
        lines.append(
            f"curl -s -X POST {shlex.quote(url)} -H 'Content-Type: application/json' "
            f"-H 'x-functions-key: {key}' -d {shlex.quote(json.dumps(body))}"
        )
        lines.append("")
    return "\n".join(lines)


def operator_commands(env: Mapping[str, str], *, key: str, azurite: str | None) -> str:
    """The commands that act on this running host, with the environment they need.

    `azurite` is the connection string of the Azurite started here (its key is the public
    development key); a storage connection string from the environment is never printed.
    """
    prefix = " ".join(
        f"{name}={shlex.quote(env[name])}" for name in ("HOST", "PORT") if env.get(name)
    )
    prefix = f"{prefix} LOCAL_FUNCTION_KEY={shlex.quote(key)}".strip()
    storage = f"AzureWebJobsStorage={shlex.quote(azurite)} " if azurite else ""
    return "\n".join(
        [
            "# Send a signed ContraForce webhook (queued: 202 + Location, then applied)",
            f"{prefix} .venv/bin/python -m local.send_webhook",
            "# Move poisoned queue work back to the queue (after fixing what poisoned it)",
            f"{storage}.venv/bin/python -m ila replay-poison",
            "",
        ]
    )


def telemetry_summary(env: Mapping[str, str]) -> str:
    """Where this run's spans go (shared.telemetry reads the same settings on first use)."""
    if env.get(telemetry.CONNECTION_STRING_SETTING):
        where = "Application Insights (APPLICATIONINSIGHTS_CONNECTION_STRING)"
    elif env.get(telemetry.OTLP_SETTING):
        where = f"OTLP collector {telemetry.redacted_url(env[telemetry.OTLP_SETTING])}"
    elif env.get(telemetry.CONSOLE_SETTING, "").strip().lower() in {"1", "true", "yes", "on"}:
        where = "printed to this console"
    else:
        return (
            f"  telemetry     off: {telemetry.CONSOLE_SETTING}=true make run prints spans here;"
            f" {telemetry.OTLP_SETTING}=http://localhost:4318 sends them to a collector"
        )
    return f"  telemetry     spans and metrics: {where}"


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    """SIGTERM (a service manager, `kill`) unwinds like Ctrl-C, so the simulators and the
    Azurite this process started are stopped too. uvicorn hands the signal back once it has
    shut down; without this handler the process would die there, before its cleanup."""
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "7071"))
    key = os.environ.get("LOCAL_FUNCTION_KEY") or secrets.token_urlsafe(24)
    # The 202's Location: this host's own address as the banner prints it (never a request's
    # Host), signed with the sandbox's fixed secret unless one is given (shared/status_links.py):
    # a host restarted on kept storage must still honour the links it gave before it died.
    os.environ.setdefault("PUBLIC_BASE_URL", f"http://localhost:{port}")
    os.environ.setdefault("STATUS_LINK_SECRET", SANDBOX_STATUS_LINK_SECRET)

    with ExitStack() as stack:
        own_azurite = not os.environ.get(STORAGE_SETTING)
        try:
            summaries = _start_sandboxes(stack, os.environ)
        except SandboxNotRunning as exc:
            sys.stderr.write(f"{exc}\n")
            return 2
        azurite = os.environ[STORAGE_SETTING] if own_azurite else None
        host_json = load_host_json(ROOT / "host.json")
        lease = float(os.environ.get("LOCAL_QUEUE_LEASE_SECONDS", "600"))
        queues = QueueRunner(options=QueueOptions.from_host_json(host_json, lease_seconds=lease))
        local_host = LocalHost(
            app,
            host_json=host_json,
            function_key=key,
            # Every route reads at most the app's own limit (Azure's host reads up to its
            # FUNCTIONS_REQUEST_BODY_SIZE_LIMIT, 100 MB by default, before the app runs).
            max_body_bytes=min(body_limit(), get_settings().max_body_bytes),
            on_startup=[lambda: queues.start(local_host.queue_functions)],
            on_shutdown=[queues.stop, registry.aclose, storage.aclose],
        )
        served, stand_in = easy_auth.wrap(local_host.asgi, os.environ)
        summaries += [stand_in] if stand_in else []
        base = f"http://localhost:{port}/{local_host.route_prefix}".rstrip("/")
        out = [
            "",
            "Incident Link Actions - local host (function_app.py, no Core Tools)",
            f"  base URL      {base}",
            f"  function key  {key}   (header x-functions-key, or ?code=)",
            f"  health        {base}/health",
            telemetry_summary(os.environ),
            "  routes:",
            *(
                f"    {','.join(r.methods or ('ANY',)):<5} {r.path:<55} {r.auth_level.name.lower()}"
                for r in local_host.http_routes
            ),
            *(
                f"    QUEUE {q.queue_name:<55} {q.function_name}"
                for q in local_host.queue_functions
            ),
            "",
            *summaries,
            "",
            curl_examples(base, key),
            operator_commands(os.environ, key=key, azurite=azurite),
            "Ctrl-C stops the host and what it started (simulators, Azurite).",
            "",
        ]
        sys.stdout.write("\n".join(out) + "\n")
        sys.stdout.flush()
        uvicorn.run(
            served,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
