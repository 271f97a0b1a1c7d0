"""Send a signed ContraForce webhook to the local host, as ContraForce would.

    .venv/bin/python -m local.send_webhook [--classification FalsePositive]
        [--incident ID | --number N] [--source sentinel]

Signs with `CONTRAFORCE_WEBHOOK_SECRETS` (first secret; `make run`'s sandbox secret by
default), posts to `http://$HOST:$PORT/api/webhooks/contraforce` (the same `HOST` and `PORT`
`make run` listens on; localhost:7071 by default) with the function key from
`LOCAL_FUNCTION_KEY` (or `--key`), and prints the answer. It signs and posts through the same
sender as `ila webhook send` (`ila.webhook`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping

import httpx

from ila.webhook import (
    DEMO_INCIDENT_ID,
    SANDBOX_WEBHOOK_SECRET,
    send_event,
    unlinking_event,
    webhook_url,
)
from incident_link_api.contraforce import IncidentSource
from local.sandbox.contraforce_state import DEMO_WORKSPACE_ID

__all__ = ["SANDBOX_WEBHOOK_SECRET", "build_parser", "default_url", "main"]
# A server listening on every address is reached on loopback.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "localhost"}  # noqa: S104 - mapped away


def default_url(env: Mapping[str, str]) -> str:
    """The local host's API base URL from `HOST` and `PORT`, as `make run` uses them."""
    host = env.get("HOST", "localhost").strip()
    host = _WILDCARDS.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{env.get('PORT', '7071').strip() or '7071'}/api"


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local.send_webhook",
        description=(
            "Send a signed ContraForce 'agent.investigation.completed.v1' webhook to the local "
            "host (make run), the way ContraForce would, and print the answer."
        ),
    )
    parser.add_argument(
        "--classification",
        default="FalsePositive",
        help="the agent's classification; FalsePositive and BenignPositive unlink "
        "(WEBHOOK_UNLINK_CLASSIFICATIONS), others are skipped (default: %(default)s)",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--incident",
        metavar="ID",
        help=f"the ContraForce incident id (data.incidentId; default: {DEMO_INCIDENT_ID}, "
        "a demo incident with a ticket)",
    )
    which.add_argument(
        "--number", metavar="N", help="the incident number instead (data.incidentNumber)"
    )
    parser.add_argument(
        "--source",
        default="sentinel",
        type=str.lower,
        choices=sorted(source.value.lower() for source in IncidentSource),
        help="the incident's source (data.source; default: %(default)s)",
    )
    parser.add_argument(
        "--workspace",
        default=str(DEMO_WORKSPACE_ID),
        help="the ContraForce workspace (data.accountId; default: the demo workspace)",
    )
    parser.add_argument(
        "--event-id",
        default=None,
        help="X-CF-Event-Id, the delivery's idempotency key (default: a new UUID; repeat one "
        "to see a redelivery acted on once)",
    )
    parser.add_argument(
        "--key",
        default=env.get("LOCAL_FUNCTION_KEY", ""),
        help="the function key (default: $LOCAL_FUNCTION_KEY)",
    )
    parser.add_argument(
        "--url",
        default=default_url(env),
        help="the app's API base URL (default: from $HOST and $PORT: %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None, env: Mapping[str, str] = os.environ) -> int:
    args = build_parser(env).parse_args(argv)
    secret = env.get("CONTRAFORCE_WEBHOOK_SECRETS", SANDBOX_WEBHOOK_SECRET).split(",")[0]
    event = unlinking_event(
        workspace=args.workspace,
        classification=args.classification,
        source=args.source,
        incident_id=args.incident or DEMO_INCIDENT_ID,
        incident_number=args.number,
    )
    url = webhook_url(args.url)
    try:
        reply = send_event(
            args.url,
            event,
            secret=secret,
            function_key=args.key,
            event_id=args.event_id,
            timeout=30,
        )
    except httpx.HTTPError as exc:
        sys.stderr.write(
            f"cannot reach {url}: {exc or type(exc).__name__} - is `make run` running there? "
            "(set PORT/HOST as for make run, or --url)\n"
        )
        return 2
    location = reply.headers.get("location")
    where = str(reply.url.join(location)) if location else ""  # a path locally: shown in full
    sys.stdout.write(f"HTTP {reply.status_code} {where}\n{reply.text}\n")
    return 0 if reply.is_success else 1


if __name__ == "__main__":
    raise SystemExit(main())
