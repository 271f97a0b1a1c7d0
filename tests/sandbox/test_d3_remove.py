"""D3 sandbox RemoveLinkedIncidents: the seed's sample, link removal, statuses and 400s."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from local.sandbox.d3 import D3Simulator
from local.sandbox.d3_state import D3State
from local.server import RunningServer
from tests.sandbox.conftest import D3_KEY_HEADERS, D3_REMOVE

SITE = "Security Operations"
# The seed's sample request and its 200 answer, verbatim.
SEED_REQUEST = {
    "Username": "Admin",
    "Site": "Security Operations",
    "CommandParams": {
        "Linked Incident Numbers to be Removed": ["20210127-198", "20210127-197"],
        "Source Incident Number": "20231025-130",
    },
}
SEED_ANSWER = {
    "error": "",
    "returnData": {
        "Status": "Partially Successful",
        "Data": {"Current linked Incident(s) of Incident 20231025-130 ": ["20231025-131"]},
        "ErrorData": [
            {
                "Incident Number": "20210127-198",
                "Error message": "The source incident is not linked to this incident.",
            }
        ],
    },
}


def remove(source: str, linked: list[str], site: str = SITE) -> dict[str, Any]:
    return {
        "Username": "Admin",
        "Site": site,
        "CommandParams": {
            "Linked Incident Numbers to be Removed": linked,
            "Source Incident Number": source,
        },
    }


def test_seed_sample_request_yields_the_seed_answer_exactly(
    d3_http: httpx.Client, d3_server: RunningServer, d3_sim: D3Simulator
) -> None:
    d3_base_url = d3_server.base_url + d3_sim.api_path  # like D3_BASE_URL: .../MainApp/VSOC/api
    response = d3_http.post(
        f"{d3_base_url}/Command/RemoveLinkedIncidents", json=SEED_REQUEST, headers=D3_KEY_HEADERS
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == SEED_ANSWER


async def test_removal_unlinks_both_directions_and_records_an_effect(
    d3_client: httpx.AsyncClient, d3_state: D3State
) -> None:
    await d3_client.post(D3_REMOVE, json=SEED_REQUEST, headers=D3_KEY_HEADERS)
    assert d3_state.links(SITE, "20231025-130") == ["20231025-131"]
    assert d3_state.links(SITE, "20210127-197") == []
    [effect] = d3_state.effects
    assert (effect.source_incident, effect.linked_incident) == ("20231025-130", "20210127-197")


async def test_all_removed_is_successful_with_no_error_data(
    d3_client: httpx.AsyncClient,
) -> None:
    body = remove("20240301-001", ["20240301-002", "20240301-003"])
    response = await d3_client.post(D3_REMOVE, json=body, headers=D3_KEY_HEADERS)
    assert response.json() == {
        "error": "",
        "returnData": {
            "Status": "Successful",
            "Data": {"Current linked Incident(s) of Incident 20240301-001 ": []},
            "ErrorData": [],
        },
    }


async def test_none_removed_is_failed_with_an_error_item_per_number(
    d3_client: httpx.AsyncClient, d3_state: D3State
) -> None:
    body = remove("20240302-010", ["20240301-002", "NOPE-1"])
    response = await d3_client.post(D3_REMOVE, json=body, headers=D3_KEY_HEADERS)
    answer = response.json()
    assert answer["error"] == ""
    assert answer["returnData"]["Status"] == "Failed"
    assert [e["Incident Number"] for e in answer["returnData"]["ErrorData"]] == [
        "20240301-002",
        "NOPE-1",
    ]
    assert d3_state.effects == []


async def test_repeating_a_removal_fails_the_second_time(d3_client: httpx.AsyncClient) -> None:
    body = remove("20240301-001", ["20240301-002"])
    await d3_client.post(D3_REMOVE, json=body, headers=D3_KEY_HEADERS)
    again = await d3_client.post(D3_REMOVE, json=body, headers=D3_KEY_HEADERS)
    assert again.json()["returnData"]["Status"] == "Failed"


async def test_unknown_source_incident_is_200_with_error_and_failed_status(
    d3_client: httpx.AsyncClient,
) -> None:
    response = await d3_client.post(
        D3_REMOVE, json=remove("20990101-000", ["20240301-002"]), headers=D3_KEY_HEADERS
    )
    assert response.status_code == 200
    assert response.json()["error"] == "Source incident 20990101-000 does not exist."
    assert response.json()["returnData"]["Status"] == "Failed"


async def test_unknown_site_is_400(d3_client: httpx.AsyncClient) -> None:
    body = remove("20231025-130", ["20210127-197"], site="Nowhere")
    response = await d3_client.post(D3_REMOVE, json=body, headers=D3_KEY_HEADERS)
    assert response.status_code == 400
    assert list(response.json()) == ["Error"]


async def test_malformed_json_is_400_error(d3_client: httpx.AsyncClient) -> None:
    headers = {**D3_KEY_HEADERS, "Content-Type": "application/json"}
    response = await d3_client.post(D3_REMOVE, content=b"{nope", headers=headers)
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["Error"]


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda b: b.pop("Username"), "Username"),
        (lambda b: b.pop("Site"), "Site"),
        (lambda b: b.pop("CommandParams"), "CommandParams"),
        (lambda b: b["CommandParams"].pop("Source Incident Number"), "Source Incident Number"),
        (
            lambda b: b["CommandParams"].pop("Linked Incident Numbers to be Removed"),
            "Linked Incident Numbers to be Removed",
        ),
        (
            lambda b: b["CommandParams"].update({"Linked Incident Numbers to be Removed": []}),
            "Linked Incident Numbers to be Removed",
        ),
        (
            lambda b: b["CommandParams"].update({"Linked Incident Numbers to be Removed": "x"}),
            "Linked Incident Numbers to be Removed",
        ),
    ],
)
async def test_missing_or_invalid_required_field_is_400_naming_it(
    d3_client: httpx.AsyncClient, mutate: Any, named: str
) -> None:
    body = remove("20231025-130", ["20210127-197"])
    mutate(body)
    response = await d3_client.post(D3_REMOVE, json=body, headers=D3_KEY_HEADERS)
    assert response.status_code == 400
    assert named in response.json()["Error"]


async def test_command_path_matches_case_insensitively(d3_client: httpx.AsyncClient) -> None:
    path = "/mainapp/vsoc/api/command/removelinkedincidents"
    response = await d3_client.post(path, json=SEED_REQUEST, headers=D3_KEY_HEADERS)
    assert response.status_code == 200


async def test_other_namespace_is_404_when_a_namespace_is_configured(
    d3_client: httpx.AsyncClient, d3_sim: D3Simulator
) -> None:
    path = "/MainApp/VSOC/api/api/Command/RemoveLinkedIncidents"
    response = await d3_client.post(path, json=SEED_REQUEST, headers=D3_KEY_HEADERS)
    assert response.status_code == 404
    assert d3_sim.gate.counters.action_requests == 0


async def test_any_namespace_is_accepted_when_none_is_configured(d3_state: D3State) -> None:
    sim = D3Simulator(d3_state, namespace=None)
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://d3.test") as client:
        path = "/Other/VSOC/api/Command/RemoveLinkedIncidents"
        response = await client.post(path, json=SEED_REQUEST, headers=D3_KEY_HEADERS)
    assert response.json() == SEED_ANSWER
