"""The core runs on clients built on `httpx.MockTransport` (tests/mock_upstreams.py): a handler
in, `Upstreams` out, no socket, simulator or Azurite."""

from __future__ import annotations

import json
from uuid import UUID

import httpx
import pytest

from incident_link_api.commands import RemoveLinkedIncidents, UnlinkTicket
from incident_link_api.contraforce import IncidentReference
from incident_link_api.outcome import ItemStatus, OutcomeStatus
from shared import actions
from shared.config import Settings
from tests.mock_upstreams import (
    CONTRAFORCE_BASE_URL,
    D3_BASE_URL,
    D3_KEY_HEADER,
    mock_upstreams,
    replying,
)

WORKSPACE = UUID("7b2d8c1e-0f4a-4c5e-9a51-2d1f0e6b9c3a")
SETTINGS = Settings.model_validate({"d3_default_username": "Admin", "d3_default_site": "SOC"})


async def test_a_contraforce_unlink_runs_through_the_mock_transport() -> None:
    seen, handler = replying(
        httpx.Response(503), httpx.Response(200, json={"data": True, "meta": {"requestId": "r-1"}})
    )
    command = UnlinkTicket(
        workspace_id=WORKSPACE,
        incident=IncidentReference.model_validate({"id": "inc-1", "workspaceId": str(WORKSPACE)}),
    )
    outcome = await actions.run(
        [command], upstreams=mock_upstreams(contraforce=handler), settings=SETTINGS,
        operation_id="op-1",
    )  # fmt: skip
    assert (outcome.status, outcome.attempts) == (OutcomeStatus.SUCCEEDED, 2)
    assert [item.upstream.request_id for item in outcome.items if item.upstream] == ["r-1"]
    assert [str(request.url) for request in seen] == [
        f"{CONTRAFORCE_BASE_URL}/workspaces/{WORKSPACE}/tickets/unlink"
    ] * 2
    assert json.loads(seen[0].content) == {
        "incident": {"id": "inc-1", "workspaceId": str(WORKSPACE)}
    }


async def test_a_d3_remove_runs_through_the_mock_transport_and_reports_each_incident() -> None:
    answer = {
        "error": "",
        "returnData": {
            "Status": "Partially Successful",
            "ErrorData": [{"Incident Number": "3", "Error message": "not linked"}],
        },
    }
    seen, handler = replying(httpx.Response(200, json=answer))
    command = RemoveLinkedIncidents(
        site="SOC", username="Admin", source_incident="1", linked_incidents=("2", "3")
    )
    outcome = await actions.run(
        [command], upstreams=mock_upstreams(d3=handler), settings=SETTINGS, operation_id="op-2"
    )
    assert outcome.status == OutcomeStatus.PARTIALLY_SUCCEEDED
    assert [(item.target, item.status) for item in outcome.items] == [
        ("1/2", ItemStatus.SUCCEEDED),
        ("1/3", ItemStatus.NOT_APPLIED),
    ]
    assert str(seen[0].url) == f"{D3_BASE_URL}/Command/RemoveLinkedIncidents"
    assert seen[0].headers[D3_KEY_HEADER] == "d3-key"


def test_an_upstream_the_test_gave_no_handler_for_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match="no D3 client"):
        mock_upstreams(contraforce=replying(httpx.Response(200))[1]).d3()
