"""The ContraForce sandbox against the vendor's OpenAPI excerpt (openapi-core)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_core import Config, OpenAPI
from openapi_core.deserializing.media_types.util import json_loads
from openapi_core.exceptions import OpenAPIError

from local.sandbox.contraforce import ContraForceSimulator
from local.sandbox.contraforce_state import DEMO_OTHER_WORKSPACE_ID
from local.sandbox.faults import Fault, FaultKind, FaultPlan
from tests.sandbox.conftest import CF_UNLINK
from tests.sandbox.openapi_httpx import OpenAPIRequest, OpenAPIResponse

SPEC_PATH = Path(__file__).parents[1] / "data" / "contraforce-unlink-ticket.openapi.yaml"
OTHER_WS = f"/api/v2/workspaces/{DEMO_OTHER_WORKSPACE_ID}/tickets/unlink"
UNKNOWN_WS = "/api/v2/workspaces/00000000-0000-4000-8000-000000000000/tickets/unlink"


@pytest.fixture(scope="module")
def spec() -> OpenAPI:
    # openapi-core reads only application/json as JSON out of the box; problems are JSON too.
    config = Config(extra_media_type_deserializers={"application/problem+json": json_loads})
    return OpenAPI.from_file_path(str(SPEC_PATH), config=config)


async def call(
    client: httpx.AsyncClient, path: str, body: Any, headers: dict[str, str]
) -> httpx.Response:
    return await client.post(path, json=body, headers=headers)


def assert_conforms(spec: OpenAPI, response: httpx.Response) -> None:
    spec.validate_response(OpenAPIRequest(response.request), OpenAPIResponse(response))


@pytest.mark.parametrize(
    ("path", "body", "authorized", "status"),
    [
        (CF_UNLINK, {"incident": {"number": "1001", "source": "Sentinel"}}, True, 200),
        (CF_UNLINK, {"incident": {"id": None, "number": "1003", "workspaceId": None}}, True, 200),
        (CF_UNLINK, {"incident": {"number": "1001"}}, False, 401),
        (OTHER_WS, {"incident": {"number": "2001"}}, True, 403),
        (UNKNOWN_WS, {"incident": {"number": "1"}}, True, 404),
        (CF_UNLINK, {"incident": {"number": "424242"}}, True, 404),
        (CF_UNLINK, {"incident": {"id": None, "number": None}}, True, 400),
    ],
)
async def test_answers_to_spec_valid_requests_conform_to_the_spec(
    spec: OpenAPI,
    cf_client: httpx.AsyncClient,
    cf_auth: dict[str, str],
    path: str,
    body: Any,
    authorized: bool,
    status: int,
) -> None:
    response = await call(cf_client, path, body, cf_auth if authorized else {})
    spec.validate_request(OpenAPIRequest(response.request))
    assert response.status_code == status
    assert_conforms(spec, response)


async def test_malformed_json_answer_conforms_to_the_spec(
    spec: OpenAPI, cf_client: httpx.AsyncClient, cf_auth: dict[str, str]
) -> None:
    headers = {**cf_auth, "Content-Type": "application/json"}
    response = await cf_client.post(CF_UNLINK, content=b"{", headers=headers)
    assert response.status_code == 400
    assert_conforms(spec, response)


async def test_server_error_fault_conforms_to_the_spec(
    spec: OpenAPI,
    cf_client: httpx.AsyncClient,
    cf_sim: ContraForceSimulator,
    cf_auth: dict[str, str],
) -> None:
    cf_sim.faults = FaultPlan(script=[Fault.of(FaultKind.SERVER_ERROR)])
    response = await call(cf_client, CF_UNLINK, {"incident": {"number": "1001"}}, cf_auth)
    assert response.status_code == 500
    assert_conforms(spec, response)


async def test_unknown_source_is_refused_by_the_spec_and_the_sandbox_alike(
    spec: OpenAPI, cf_client: httpx.AsyncClient, cf_auth: dict[str, str]
) -> None:
    body = {"incident": {"number": "1001", "source": "Elastic"}}
    response = await call(cf_client, CF_UNLINK, body, cf_auth)
    with pytest.raises(OpenAPIError):
        spec.validate_request(OpenAPIRequest(response.request))
    assert response.status_code == 400
    assert_conforms(spec, response)


async def test_validator_rejects_an_answer_that_breaks_the_schema(
    spec: OpenAPI, cf_client: httpx.AsyncClient, cf_auth: dict[str, str]
) -> None:
    response = await call(cf_client, CF_UNLINK, {"incident": {"number": "1003"}}, cf_auth)
    broken = httpx.Response(
        200,
        json={"data": "yes", "meta": response.json()["meta"]},
        request=response.request,
    )
    with pytest.raises(OpenAPIError):
        assert_conforms(spec, broken)


async def test_validator_rejects_a_problem_sent_as_plain_json(
    spec: OpenAPI, cf_client: httpx.AsyncClient
) -> None:
    response = await call(cf_client, CF_UNLINK, {"incident": {"number": "1003"}}, {})
    plain = httpx.Response(401, json=response.json(), request=response.request)
    with pytest.raises(OpenAPIError):
        assert_conforms(spec, plain)


async def test_validator_reads_problem_bodies_as_json(
    spec: OpenAPI, cf_client: httpx.AsyncClient
) -> None:
    response = await call(cf_client, CF_UNLINK, {"incident": {"number": "1003"}}, {})
    problem = {**response.json(), "errors": {"incident": "not a list"}}
    broken = httpx.Response(
        401,
        content=json.dumps(problem).encode(),
        headers={"content-type": "application/problem+json"},
        request=response.request,
    )
    with pytest.raises(OpenAPIError):
        assert_conforms(spec, broken)
