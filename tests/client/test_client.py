"""The typed client against the real app (`python -m local`) over loopback HTTP, with the
simulators and Azurite: happy path, partial, every error class, polling, idempotent retry."""

from __future__ import annotations

import dataclasses
import socket
import uuid

import httpx
import pytest

from incident_link_actions_client import (
    AccessDeniedError,
    AsyncClient,
    Client,
    ConnectionFailed,
    ContentTooLargeError,
    IncidentInput,
    ItemStatus,
    KeyReusedError,
    NotAppliedError,
    NotFoundError,
    OutcomeStatus,
    RemoveLinkedIncidentsInput,
    RetryOptions,
    SettingsError,
    StillPending,
    UnavailableError,
    UnlinkTicketInput,
    UpstreamCredentialsError,
    UpstreamRefusedError,
)
from incident_link_api.outcome import Outcome
from local.sandbox.contraforce_state import DEMO_WORKSPACE_ID
from local.sandbox.faults import Fault, FaultKind, FaultPlan
from tests.e2e.conftest import FUNCTION_KEY, Stack, start_host

FAST = RetryOptions(attempts=3, initial_wait_seconds=0.01, max_wait_seconds=0.05)


def unlink(number: str) -> UnlinkTicketInput:
    return UnlinkTicketInput(workspaceId=DEMO_WORKSPACE_ID, incident=IncidentInput(number=number))


def client_of(app: Stack, **options: object) -> Client:
    return Client(app.base_url, key=FUNCTION_KEY, retry=FAST, **options)  # type: ignore[arg-type]


def test_unlink_returns_the_apps_own_outcome_model(app: Stack) -> None:
    with client_of(app) as ila:
        outcome = ila.unlink_ticket(unlink("1001"))
    assert isinstance(outcome, Outcome)
    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert outcome.items[0].upstream is not None
    assert outcome.items[0].upstream.request_id
    assert len(app.contraforce.state.effects) == 1


def test_remove_linked_incidents_succeeds(app: Stack) -> None:
    request = RemoveLinkedIncidentsInput(
        sourceIncident="20231025-130", linkedIncidents=["20231025-131"]
    )
    with client_of(app) as ila:
        outcome = ila.remove_linked_incidents(request)
    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert [item.status for item in outcome.items] == [ItemStatus.SUCCEEDED]


def test_dry_run_is_planned_and_sends_nothing_upstream(app: Stack) -> None:
    with client_of(app) as ila:
        outcome = ila.unlink_ticket(unlink("1001"), dry_run=True)
    assert outcome.status is OutcomeStatus.PLANNED
    assert outcome.items[0].request is not None
    assert app.contraforce.state.effects == []


def test_a_bulk_call_with_one_failed_item_is_partial_not_an_error(app: Stack) -> None:
    with client_of(app) as ila:
        outcome = ila.unlink_ticket([unlink("1001"), unlink("99999")])
    assert outcome.status is OutcomeStatus.PARTIALLY_SUCCEEDED
    assert [item.status for item in outcome.items] == [ItemStatus.SUCCEEDED, ItemStatus.FAILED]


# ---- errors: one class per way a caller must react ------------------------------------------


def test_the_upstreams_own_4xx_is_upstream_refused_with_its_code_and_request_id(
    app: Stack,
) -> None:
    with client_of(app) as ila, pytest.raises(UpstreamRefusedError) as caught:
        ila.unlink_ticket(unlink("99999"))
    assert caught.value.status == 404
    assert caught.value.upstream == "contraforce"
    assert caught.value.request_id
    assert caught.value.outcome is not None
    assert caught.value.outcome.status is OutcomeStatus.FAILED


def test_nothing_to_unlink_is_not_applied_with_the_outcome_inside(app: Stack) -> None:
    with client_of(app) as ila, pytest.raises(NotAppliedError) as caught:
        ila.unlink_ticket(unlink("1003"))  # 1003 has no ticket
    assert caught.value.status == 409
    assert caught.value.outcome is not None


def test_a_refused_credential_is_an_upstream_credentials_error(app: Stack) -> None:
    state = app.contraforce.state
    state.accounts = {
        cid: dataclasses.replace(account, client_secret="rotated")
        for cid, account in state.accounts.items()
    }
    with client_of(app) as ila, pytest.raises(UpstreamCredentialsError) as caught:
        ila.unlink_ticket(unlink("1001"))
    assert caught.value.status == 502
    assert caught.value.code == "UPSTREAM_AUTH_REJECTED"


def test_an_upstream_down_after_the_apps_retries_is_unavailable_with_retry_after(
    app: Stack,
) -> None:
    app.contraforce.faults = FaultPlan(script=[Fault(FaultKind.UNAVAILABLE)] * 10)
    with client_of(app) as ila, pytest.raises(UnavailableError) as caught:
        ila.unlink_ticket(unlink("1001"))
    assert caught.value.status == 503
    assert caught.value.code == "UPSTREAM_UNAVAILABLE"
    assert caught.value.retry_after is not None
    assert app.contraforce.state.effects == []


def test_a_wrong_function_key_is_access_denied(app: Stack) -> None:
    with (
        Client(app.base_url, key="wrong", retry=FAST) as ila,
        pytest.raises(AccessDeniedError) as c,
    ):
        ila.unlink_ticket(unlink("1001"))
    assert c.value.status == 401


def test_an_unknown_operation_is_not_found_naming_the_field(app: Stack) -> None:
    with client_of(app) as ila, pytest.raises(NotFoundError) as caught:
        ila.operation(str(uuid.uuid4()))
    assert "operationId" in caught.value.errors


def test_too_many_items_is_content_too_large(app: Stack) -> None:
    with client_of(app) as ila, pytest.raises(ContentTooLargeError) as caught:
        ila.unlink_ticket([unlink(str(n)) for n in range(101)], dry_run=True)
    assert caught.value.status == 413
    assert "items" in caught.value.errors


def test_the_same_idempotency_key_with_another_body_is_key_reused(app: Stack) -> None:
    key = f"test-{uuid.uuid4()}"
    with client_of(app) as ila:
        ila.unlink_ticket(unlink("1001"), idempotency_key=key)
        with pytest.raises(KeyReusedError) as caught:
            ila.unlink_ticket(unlink("1002"), idempotency_key=key)
    assert caught.value.status == 422
    assert len(app.contraforce.state.effects) == 1


def test_a_missing_setting_is_a_settings_error_naming_it(app: Stack) -> None:
    # D3_BASE_URL set (so no simulator stands in) but no D3 credential at all.
    settings = {
        k: v for k, v in app.settings.items() if k not in {"D3_API_KEY", "D3_API_KEY_HEADER"}
    }
    host = start_host(settings)
    try:
        request = RemoveLinkedIncidentsInput(sourceIncident="1", linkedIncidents=["2"])
        ila = Client(host.base_url, key=FUNCTION_KEY, retry=FAST)
        with ila, pytest.raises(SettingsError) as caught:
            ila.remove_linked_incidents(request)
    finally:
        host.stop()
    assert "D3_API_KEY" in caught.value.settings
    assert caught.value.status == 503


def test_no_app_listening_is_connection_failed_after_the_clients_retries() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ila = Client(f"http://127.0.0.1:{port}/api", retry=FAST)
    with ila, pytest.raises(ConnectionFailed):
        ila.health()


# ---- idempotent retry, polling ---------------------------------------------------------------


class LosesFirstAnswer(httpx.HTTPTransport):
    """Sends every request for real; the first POST's answer is lost on the way back."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST":
            self.keys.append(request.headers.get("idempotency-key"))
            if len(self.keys) == 1:
                response.read()
                response.close()
                raise httpx.ReadError("connection dropped after the request was sent")
        return response


def test_a_lost_answer_is_retried_with_the_same_key_and_acts_once(app: Stack) -> None:
    transport = LosesFirstAnswer()
    with client_of(app, transport=transport) as ila:
        outcome = ila.unlink_ticket(unlink("1001"))
    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert len(transport.keys) == 2
    assert transport.keys[0] == transport.keys[1] is not None
    assert len(app.contraforce.state.effects) == 1


def test_each_logical_call_gets_its_own_idempotency_key(app: Stack) -> None:
    keys: list[str | None] = []

    def record(request: httpx.Request) -> None:
        keys.append(request.headers.get("idempotency-key"))

    with client_of(app) as ila:
        ila._http.event_hooks["request"].append(record)
        ila.unlink_ticket(unlink("1001"), dry_run=True)
        ila.unlink_ticket(unlink("1001"), dry_run=True)
    assert len(set(keys)) == 2


async def test_async_client_follows_202_location_honouring_retry_after(app: Stack) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await __import__("asyncio").sleep(0.1)  # let the host's queue trigger work

    async with AsyncClient(app.base_url, key=FUNCTION_KEY, retry=FAST, sleep=sleep) as ila:
        outcome = await ila.unlink_ticket(unlink("1001"), respond_async=True)
    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert waits
    assert set(waits) == {5.0}  # the app's Retry-After
    assert len(app.contraforce.state.effects) == 1


async def test_async_client_without_wait_returns_the_pending_outcome(app: Stack) -> None:
    async with AsyncClient(app.base_url, key=FUNCTION_KEY, retry=FAST) as ila:
        pending = await ila.unlink_ticket(unlink("1002"), respond_async=True, wait=False)
        assert pending.status is OutcomeStatus.PENDING

        async def quick(_: float) -> None:
            await __import__("asyncio").sleep(0.1)

        ila._sleep = quick
        final = await ila.operation(pending.operation_id, wait=True)
    assert final.status is OutcomeStatus.SUCCEEDED


def test_waiting_longer_than_allowed_is_still_pending(app: Stack) -> None:
    app.contraforce.faults = FaultPlan(script=[Fault(FaultKind.SLOW, delay=3.0)])
    with client_of(app, max_wait_seconds=1.0) as ila, pytest.raises(StillPending) as caught:
        ila.unlink_ticket(unlink("1004"), respond_async=True)
    assert caught.value.outcome.status is OutcomeStatus.PENDING
