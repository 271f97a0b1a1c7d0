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


# ---- issue 25: lenient where the decision needs no member; D3's rule in one place -----------


def unlink_command() -> UnlinkTicket:
    return UnlinkTicket(
        workspace_id=WORKSPACE,
        incident=IncidentReference.model_validate({"id": "inc-1", "workspaceId": str(WORKSPACE)}),
    )


def remove_command(*linked: str) -> RemoveLinkedIncidents:
    return RemoveLinkedIncidents(
        site="SOC", username="Admin", source_incident="1", linked_incidents=linked
    )


async def test_finding_8_a_mistyped_member_the_decision_does_not_read_is_ignored() -> None:
    seen, handler = replying(
        httpx.Response(
            200,
            json={"data": True, "meta": {"requestId": 123, "timestamp": "t"}, "extra": [1]},
            headers={"X-Request-Id": "hdr-1"},
        )
    )
    outcome = await actions.run(
        [unlink_command()], upstreams=mock_upstreams(contraforce=handler), settings=SETTINGS,
        operation_id="op-8",
    )  # fmt: skip
    assert (outcome.status, len(seen)) == (OutcomeStatus.SUCCEEDED, 1)
    assert [item.upstream.request_id for item in outcome.items if item.upstream] == ["hdr-1"]
    [reply] = outcome.replies
    assert reply.model_dump(mode="json", by_alias=True, exclude_none=True) == {
        "data": True,
        "meta": {"timestamp": "t"},
        "extra": [1],
    }


async def test_finding_8_an_html_200_is_an_ambiguous_send_and_its_retry_settles_it() -> None:
    """The HTML 200 may have been the unlink; the retry's "nothing to do" is then the
    documented inference (a success, marked so), never a 409 for a caller that cannot tell."""
    seen, handler = replying(
        httpx.Response(200, text="<html>ok</html>", headers={"Content-Type": "text/html"}),
        httpx.Response(200, json={"data": False}),
    )
    outcome = await actions.run(
        [unlink_command()], upstreams=mock_upstreams(contraforce=handler), settings=SETTINGS,
        operation_id="op-8b",
    )  # fmt: skip
    assert (outcome.status, outcome.attempts, len(seen)) == (OutcomeStatus.SUCCEEDED, 2, 2)


@pytest.mark.parametrize("return_data", ["", None, {"Status": "Failed"}, [1, 2], 7])
async def test_finding_9_a_d3_200_with_an_error_is_a_permanent_failure_with_d3s_message(
    return_data: object,
) -> None:
    seen, handler = replying(
        httpx.Response(200, json={"error": "Incident X does not exist.", "returnData": return_data})
    )
    outcome = await actions.run(
        [remove_command("2", "3")], upstreams=mock_upstreams(d3=handler), settings=SETTINGS,
        operation_id="op-9",
    )  # fmt: skip
    assert len(seen) == 1  # not retried
    assert [(item.status, item.message) for item in outcome.items] == [
        (ItemStatus.NOT_APPLIED, "Incident X does not exist."),
    ] * 2
    assert all(item.error and item.error.kind == "not_applied" for item in outcome.items)


async def test_a_d3_error_wins_over_its_own_error_data() -> None:
    """Whatever `returnData` holds: no incident of a failed command is "nothing to do" (which
    an ambiguous earlier send would turn into a success)."""
    answer = {
        "error": "command failed",
        "returnData": {
            "Status": "Partially Successful",
            "ErrorData": [{"Incident Number": "3", "Error message": "not linked"}],
        },
    }
    _, handler = replying(httpx.Response(200, json=answer))
    ran = await actions.run_command(
        remove_command("2", "3"), mock_upstreams(d3=handler), settings=SETTINGS, ambiguous=True
    )
    assert [(item.status, item.message) for item in ran.items] == [
        (ItemStatus.NOT_APPLIED, "command failed"),
    ] * 2


async def test_a_d3_data_member_of_another_type_is_dropped_and_the_status_still_read() -> None:
    answer = {"error": "", "returnData": {"Status": "Successful", "Data": ["not", "a", "dict"]}}
    seen, handler = replying(httpx.Response(200, json=answer))
    outcome = await actions.run(
        [remove_command("2")], upstreams=mock_upstreams(d3=handler), settings=SETTINGS,
        operation_id="op-9c",
    )  # fmt: skip
    assert (outcome.status, len(seen)) == (OutcomeStatus.SUCCEEDED, 1)


@pytest.mark.parametrize(
    "answer",
    [
        {"error": "", "returnData": {"Status": 5}},
        {"error": "", "returnData": {"Status": "Successful", "ErrorData": "none"}},
        {"error": "", "returnData": ""},
        {"error": 5},
        {"data": "yes"},
    ],
)
async def test_a_200_whose_deciding_member_is_mistyped_may_have_acted(answer: object) -> None:
    """What the decision needs cannot be read: not a success, not a refusal; the upstream may
    have acted, and every attempt answered the same."""
    seen, handler = replying(httpx.Response(200, json=answer))
    if "data" in answer:  # type: ignore[operator]
        command: UnlinkTicket | RemoveLinkedIncidents = unlink_command()
        upstreams = mock_upstreams(contraforce=handler)
    else:
        command, upstreams = remove_command("2"), mock_upstreams(d3=handler)
    ran = await actions.run_command(command, upstreams, settings=SETTINGS)
    assert (ran.may_have_acted, len(seen)) == (True, 3)
    assert all(item.status is not ItemStatus.SUCCEEDED for item in ran.items)
    assert all(item.error is not None for item in ran.items)
