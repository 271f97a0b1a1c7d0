"""Signed ContraForce deliveries, sent the way ContraForce sends them.

The one sender behind `ila webhook send` and `python -m local.send_webhook` (make run's): each
builds its event with `unlinking_event` and signs and posts it with `send_event`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from shared.webhooks import UNLINKING_EVENT, sign

# make run's sandbox secret (local/__main__.py configures the app with it).
SANDBOX_WEBHOOK_SECRET = "sandbox-webhook-secret"  # noqa: S105 - a public demo value
DEMO_INCIDENT_ID = "6d1f0c2a-4e4b-4b8f-9d55-0a3c1b2e7f10"  # a sandbox incident with a ticket
ROUTE = "webhooks/contraforce"


def webhook_url(base_url: str) -> str:
    """The app's ContraForce webhook under its API base URL (`…/api`)."""
    return f"{base_url.rstrip('/')}/{ROUTE}"


def unlinking_event(
    *,
    workspace: str,
    classification: str,
    source: str,
    incident_id: str | None = None,
    incident_number: str | None = None,
    is_test: bool | None = None,
) -> dict[str, Any]:
    """An `agent.investigation.completed.v1` event about one incident, by id or by number.

    `is_test` goes into the body (signed: the app trusts `X-CF-Test` only where the body agrees);
    None leaves the field out.
    """
    data: dict[str, Any] = {
        "accountId": workspace,
        "source": source,
        "classification": classification,
    }
    if incident_number is not None:
        data["incidentNumber"] = incident_number
    else:
        data["incidentId"] = incident_id
    event: dict[str, Any] = {"type": UNLINKING_EVENT, "timestamp": datetime.now(UTC).isoformat()}
    if is_test is not None:
        event["isTest"] = is_test
    event["data"] = data
    return event


def send_event(
    base_url: str,
    event: Mapping[str, Any],
    *,
    secret: str,
    function_key: str | None,
    event_id: str | None = None,
    test: bool = False,
    timeout: float = 5.0,
) -> httpx.Response:
    """Sign `event` with `secret` and post it to the app's webhook; the app's answer.

    `event_id` is `X-CF-Event-Id`, the delivery's idempotency key (default: a fresh UUID);
    `test` marks the delivery `X-CF-Test: true`; `function_key`, when given, is sent as
    `x-functions-key`. Transport failures raise httpx's errors.
    """
    body = json.dumps(event).encode()
    stamp = datetime.now(UTC).isoformat()
    headers = {
        "Content-Type": "application/json",
        "X-CF-Schema": str(event["type"]),
        "X-CF-Event-Id": event_id or str(uuid.uuid4()),
        "X-CF-Timestamp": stamp,
        "X-CF-Signature": sign(body, secret=secret.strip().encode(), timestamp=stamp),
    }
    if test:
        headers["X-CF-Test"] = "true"
    if function_key is not None:
        headers["x-functions-key"] = function_key
    return httpx.post(webhook_url(base_url), content=body, headers=headers, timeout=timeout)
