"""Retries say which upstream, which attempt, why and how long we wait, in our own line (storage
writes' retries too); an upstream's odd `Retry-After` is ignored rather than crashing the call
(issue 12)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import cast
from uuid import UUID

import httpx
import pytest
import stamina
import stamina.instrumentation
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from incident_link_api.commands import UnlinkTicket
from incident_link_api.contraforce import IncidentReference
from shared import retrying
from shared.clients.auth import BasicCredential
from shared.clients.classify import parse_retry_after
from shared.clients.contraforce import ContraForceClient
from shared.clients.http import RetryPolicy
from shared.durable import attempt
from shared.durable.store import RecordStore
from shared.errors import StoreUnavailable
from shared.lifecycle import CommandRow

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
WORKSPACE = UUID("7b2d8c1e-0f4a-4c5e-9a51-2d1f0e6b9c3a")
POLICY = RetryPolicy(
    attempts=3, budget_seconds=30, initial_wait_seconds=0, max_wait_seconds=0,
    retry_after_cap_seconds=5,
)  # fmt: skip


@pytest.fixture(autouse=True)
def no_real_waits() -> Iterator[None]:
    stamina.set_testing(True, attempts=100, cap=True)
    yield
    stamina.set_testing(False)


def client(*responses: httpx.Response) -> ContraForceClient:
    queue = list(responses)
    return ContraForceClient(
        "https://cf.example/api/v2",
        BasicCredential("client-id", SecretStr("secret")),
        policy=POLICY,
        timeout=httpx.Timeout(5),
        transport=httpx.MockTransport(lambda _: queue.pop(0)),
    )


def unlink() -> UnlinkTicket:
    return UnlinkTicket(
        workspace_id=WORKSPACE,
        incident=IncidentReference.model_validate({"id": "inc-1", "workspaceId": str(WORKSPACE)}),
    )


@pytest.mark.parametrize(
    "value", ["²", "1²", "٣", "\uff15", "1.5", "-1", "0x10", "", "soon", "1e3"]
)
def test_retry_after_other_than_ascii_digits_or_a_date_is_absent(value: str) -> None:
    assert parse_retry_after(value, now=NOW) is None


@given(st.text())
def test_retry_after_never_raises_and_is_never_negative(value: str) -> None:
    seconds = parse_retry_after(value, now=NOW)
    assert seconds is None or seconds >= 0


async def test_a_superscript_retry_after_is_retried_not_a_crash() -> None:
    upstream = client(
        httpx.Response(503, headers=[(b"Retry-After", "²".encode())]),
        httpx.Response(200, json={"data": True}),
    )
    result = await upstream.unlink_ticket(unlink())
    assert result.attempts == 2
    await upstream.aclose()


async def test_each_retry_is_one_line_naming_upstream_attempt_reason_and_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream = client(
        httpx.Response(503, headers={"Retry-After": "2"}),
        httpx.Response(429),
        httpx.Response(200, json={"data": True}),
    )
    with caplog.at_level(logging.DEBUG):
        await upstream.unlink_ticket(unlink())
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    call = f"upstream=contraforce POST /api/v2/workspaces/{WORKSPACE}/tickets/unlink"
    assert [r.getMessage() for r in retries] == [
        f"{call} attempt=1 failed (answered HTTP 503): retrying in 0.00 s",
        f"{call} attempt=2 failed (answered HTTP 429): retrying in 0.00 s",
    ]
    assert all(r.name == "shared.retrying" for r in retries)
    assert not [r for r in caplog.records if r.name == "stamina"]
    await upstream.aclose()


async def test_a_store_write_retried_before_any_upstream_call_is_logged_by_our_hook(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """stamina's hooks are process-wide and it loads lazily: the storage path installs our line
    too, so a fresh worker's first retry is logged even when it is a storage write's."""
    stamina.instrumentation.set_on_retry_hooks(None)  # stamina's defaults, as in a new process
    retrying.use_our_retry_log.cache_clear()
    written = object()
    failures = [StoreUnavailable("the table timed out")]

    class FlakyStore:
        async def save_row(self, row: object) -> object:
            if failures:
                raise failures.pop()
            return row

    with caplog.at_level(logging.DEBUG):
        stored = await attempt._store_answer(
            cast(RecordStore, FlakyStore()), cast(CommandRow, written)
        )
    assert stored is written
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert [(r.name, r.getMessage().split(" retrying")[0]) for r in retries] == [
        (
            "shared.retrying",
            "shared.durable.attempt._store_answer attempt=1 failed (StoreUnavailable):",
        )
    ]
    assert not [r for r in caplog.records if r.name == "stamina"]
