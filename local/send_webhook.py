"""Send a signed ContraForce webhook to the local host, as ContraForce would.

    .venv/bin/python -m local.send_webhook [--classification FalsePositive] [--incident ID]

Signs with `CONTRAFORCE_WEBHOOK_SECRETS` (first secret; `make run`'s sandbox secret by
default), posts to `http://localhost:$PORT/api/webhooks/contraforce` with the function key
from `LOCAL_FUNCTION_KEY` (or `--key`), and prints the answer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from datetime import UTC, datetime

import httpx

from local.sandbox.contraforce_state import DEMO_WORKSPACE_ID
from shared.webhooks import UNLINKING_EVENT, sign

SANDBOX_WEBHOOK_SECRET = "sandbox-webhook-secret"  # noqa: S105 - the sandbox's demo value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.send_webhook")
    parser.add_argument("--classification", default="FalsePositive")
    parser.add_argument("--incident", default="6d1f0c2a-4e4b-4b8f-9d55-0a3c1b2e7f10")
    parser.add_argument("--event-id", default=str(uuid.uuid4()))
    parser.add_argument("--key", default=os.environ.get("LOCAL_FUNCTION_KEY", ""))
    parser.add_argument("--url", default=f"http://localhost:{os.environ.get('PORT', '7071')}/api")
    args = parser.parse_args(argv)
    secret = os.environ.get("CONTRAFORCE_WEBHOOK_SECRETS", SANDBOX_WEBHOOK_SECRET).split(",")[0]
    body = json.dumps(
        {
            "type": UNLINKING_EVENT,
            "timestamp": datetime.now(UTC).isoformat(),
            "data": {
                "accountId": str(DEMO_WORKSPACE_ID),
                "incidentId": args.incident,
                "source": "sentinel",
                "classification": args.classification,
            },
        }
    ).encode()
    stamp = datetime.now(UTC).isoformat()
    reply = httpx.post(
        f"{args.url}/webhooks/contraforce",
        content=body,
        headers={
            "Content-Type": "application/json",
            "x-functions-key": args.key,
            "X-CF-Schema": UNLINKING_EVENT,
            "X-CF-Event-Id": args.event_id,
            "X-CF-Timestamp": stamp,
            "X-CF-Signature": sign(body, secret=secret.strip().encode(), timestamp=stamp),
        },
    )
    sys.stdout.write(
        f"HTTP {reply.status_code} {reply.headers.get('location', '')}\n{reply.text}\n"
    )
    return 0 if reply.is_success else 1


if __name__ == "__main__":
    raise SystemExit(main())
