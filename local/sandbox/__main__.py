"""`make sandbox`: both simulators and an Azurite in a process of their own.

    .venv/bin/python -m local.sandbox [--storage-dir DIR] [--extra N] [--env-file PATH]
        [--contraforce-port 7072] [--d3-port 7073] [--azurite-ports 10000,10001,10002]

Then `make run LOCAL_SANDBOX=apart` (or `LOCAL_SANDBOX=apart .venv/bin/python -m local`) serves
the app against them: the host can be killed (`kill -9` included) and restarted while the
queues, the operations table and the upstreams' state live on here. With `--storage-dir`
(`LOCAL_STORAGE_DIR`), Azurite keeps its data in that folder, so a restart of this process
keeps it too. Port 0 picks a free port; `--env-file` writes the settings a host needs
(KEY=VALUE lines) once everything accepts connections. Ctrl-C or SIGTERM stops it all; if
this process is killed, its Azurite ends with it (`local.processes`).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

from local.azurite import start_azurite
from local.sandbox import (
    APART_HOST,
    AZURITE_PORTS,
    CONTRAFORCE_PORT,
    D3_PORT,
    apart_settings,
)
from local.sandbox.contraforce import ContraForceSimulator
from local.sandbox.contraforce_state import (
    DEMO_WORKSPACE_ID,
    ContraForceState,
    Incident,
    IncidentSource,
    Ticket,
)
from local.sandbox.contraforce_state import demo_state as contraforce_demo
from local.sandbox.d3 import D3Simulator
from local.sandbox.d3_state import DEMO_SITE, D3State
from local.sandbox.d3_state import demo_state as d3_demo
from local.server import serve_in_thread

logger = logging.getLogger("local.sandbox")


def extra_number(index: int) -> str:
    """The incident number of extra incident `index`, in both simulators (`--extra`)."""
    return f"9{index:05d}"


def extra_linked(index: int) -> str:
    """The D3 incident that extra incident `index` is linked to."""
    return f"9{index:05d}-L"


def contraforce_state(extra: int) -> ContraForceState:
    """The demo data plus `extra` ticketed incidents #900000… in the demo workspace."""
    state = contraforce_demo()
    incidents = state.workspaces[DEMO_WORKSPACE_ID].incidents
    for index in range(extra):
        number = extra_number(index)
        incidents.append(
            Incident(
                f"extra-{number}",
                number,
                IncidentSource.SENTINEL,
                f"Extra incident {index}",
                Ticket("ServiceNow", f"INC9{index:06d}"),
            )
        )
    return state


def d3_state(extra: int) -> D3State:
    """The demo data plus `extra` source incidents 900000… each linked to one 900000-L…."""
    state = d3_demo()
    site = state.sites[DEMO_SITE]
    for index in range(extra):
        site.add(extra_number(index), f"Extra incident {index}")
        site.add(extra_linked(index), f"Linked to extra incident {index}")
        site.link(extra_number(index), extra_linked(index))
    return state


def _ports(text: str) -> list[int]:
    ports = [int(part) for part in text.split(",")]
    if len(ports) != len(AZURITE_PORTS):
        raise argparse.ArgumentTypeError(f"three ports (blob,queue,table), got {text!r}")
    return ports


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local.sandbox",
        description="Serve the ContraForce and D3 simulators and an Azurite, apart from the "
        "host (make run LOCAL_SANDBOX=apart), until Ctrl-C.",
    )
    parser.add_argument("--host", default=APART_HOST, help="address to listen on (%(default)s)")
    parser.add_argument("--contraforce-port", type=int, default=CONTRAFORCE_PORT)
    parser.add_argument("--d3-port", type=int, default=D3_PORT)
    parser.add_argument(
        "--azurite-ports",
        type=_ports,
        default=list(AZURITE_PORTS),
        help="blob,queue,table (default: %(default)s; 0,0,0 for free ones)",
    )
    parser.add_argument(
        "--storage-dir",
        type=Path,
        default=Path(env["LOCAL_STORAGE_DIR"]) if env.get("LOCAL_STORAGE_DIR") else None,
        help="keep Azurite's data in this folder (default: $LOCAL_STORAGE_DIR, else in memory)",
    )
    parser.add_argument(
        "--extra",
        type=int,
        default=0,
        metavar="N",
        help="N more ticketed ContraForce incidents and linked D3 pairs, numbered 900000… "
        "(crash campaigns need many; default: %(default)s)",
    )
    parser.add_argument(
        "--env-file", type=Path, help="write the host's settings here (KEY=VALUE) once ready"
    )
    return parser


def _write_env(path: Path, settings: Mapping[str, str]) -> None:
    """Written whole or not at all: a reader polling for the file never sees half of it."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(f"{name}={value}\n" for name, value in settings.items()))
    partial.replace(path)


def read_env_file(path: Path) -> dict[str, str]:
    """The settings an `--env-file` holds."""
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ) -> int:
    args = build_parser(env).parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    with ExitStack() as stack:
        free = [0, 0, 0]
        azurite = stack.enter_context(
            start_azurite(
                host=args.host,
                location=args.storage_dir,
                ports=None if args.azurite_ports == free else args.azurite_ports,
            )
        )
        contraforce = ContraForceSimulator(contraforce_state(args.extra))
        cf_server = stack.enter_context(
            serve_in_thread(contraforce.app, host=args.host, port=args.contraforce_port)
        )
        d3 = D3Simulator(d3_state(args.extra))
        d3_server = stack.enter_context(serve_in_thread(d3.app, host=args.host, port=args.d3_port))
        settings = apart_settings(
            args.host,
            contraforce_port=cf_server.port,
            d3_port=d3_server.port,
            azurite_ports=(azurite.blob_port, azurite.queue_port, azurite.table_port),
        )
        if args.env_file is not None:
            _write_env(args.env_file, settings)
        defaults = (cf_server.port, d3_server.port) == (CONTRAFORCE_PORT, D3_PORT) and (
            azurite.blob_port,
            azurite.queue_port,
            azurite.table_port,
        ) == AZURITE_PORTS
        run = (
            "make run LOCAL_SANDBOX=apart"
            if defaults
            else "the host with these settings in its environment"
        )
        out = [
            "",
            "Incident Link Actions - sandbox apart from the host",
            contraforce.summary(cf_server.base_url),
            d3.summary(d3_server.base_url),
            f"Azurite queues on :{azurite.queue_port}, tables on :{azurite.table_port}, "
            + azurite.where,
            f"  extra incidents: {args.extra}" if args.extra else "",
            "",
            f"Serve the app against it: {run}",
            *(f"  {name}={value}" for name, value in settings.items()),
            "Ctrl-C stops the simulators and Azurite.",
            "",
        ]
        sys.stdout.write("\n".join(out) + "\n")
        sys.stdout.flush()
        try:
            signal.pause()
        except KeyboardInterrupt:
            return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
