"""The D3 sandbox's 200/401/429/500 bodies have exactly the seed document's field names."""

from __future__ import annotations

import json

import httpx
import pytest

from local.sandbox.d3 import D3Simulator
from local.sandbox.faults import Fault, FaultKind, FaultPlan
from tests.sandbox.conftest import D3_KEY_HEADERS, D3_REMOVE

# The seed's samples, verbatim (whitespace included).
SEED_200 = """{
    "error": "",
    "returnData": {
      "Status": "Partially Successful",
      "Data": {
          "Current linked Incident(s) of Incident 20231025-130 ": [
              "20231025-131"
          ]
      },
      "ErrorData": [
          {
              "Incident Number": "20210127-198",
              "Error message": "The source incident is not linked to this incident."
          }
      ]
    }
}"""
SEED_401 = '{"Error": "Invalid authentication key."}'
SEED_429 = (
    '{"Error": "The request exceeds rate limits or is otherwise '
    'blocked by rate limiting policies."}'
)
SEED_500 = '{"Error": "Unexpected Error."}'
SEED_REQUEST = {
    "Username": "Admin",
    "Site": "Security Operations",
    "CommandParams": {
        "Linked Incident Numbers to be Removed": ["20210127-198", "20210127-197"],
        "Source Incident Number": "20231025-130",
    },
}


async def test_200_body_has_the_seed_field_names_at_every_level(
    d3_client: httpx.AsyncClient,
) -> None:
    seed = json.loads(SEED_200)
    answer = (await d3_client.post(D3_REMOVE, json=SEED_REQUEST, headers=D3_KEY_HEADERS)).json()
    assert list(answer) == list(seed)
    assert list(answer["returnData"]) == list(seed["returnData"])
    assert list(answer["returnData"]["Data"]) == list(seed["returnData"]["Data"])
    assert [list(e) for e in answer["returnData"]["ErrorData"]] == [
        list(e) for e in seed["returnData"]["ErrorData"]
    ]


async def test_401_body_is_the_seed_sample(d3_client: httpx.AsyncClient) -> None:
    response = await d3_client.post(D3_REMOVE, json=SEED_REQUEST)
    assert (response.status_code, response.json()) == (401, json.loads(SEED_401))


@pytest.mark.parametrize(
    ("kind", "status", "seed"),
    [(FaultKind.RATE_LIMITED, 429, SEED_429), (FaultKind.SERVER_ERROR, 500, SEED_500)],
)
async def test_fault_body_is_the_seed_sample(
    d3_client: httpx.AsyncClient, d3_sim: D3Simulator, kind: FaultKind, status: int, seed: str
) -> None:
    d3_sim.faults = FaultPlan(script=[Fault.of(kind)])
    response = await d3_client.post(D3_REMOVE, json=SEED_REQUEST, headers=D3_KEY_HEADERS)
    assert (response.status_code, response.json()) == (status, json.loads(seed))
    assert response.headers["content-type"] == "application/json"
