"""Fuzzing the whole API from its own OpenAPI document: the local host over real HTTP, the
simulators and Azurite behind it. Zero 5xx, every 4xx is problem+json, every answer matches
the schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from function_app import app
from local.azurite import Azurite
from local.host import LocalHost
from local.sandbox import contraforce as cf_sandbox
from local.sandbox import d3 as d3_sandbox
from local.sandbox.contraforce_state import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from local.sandbox.d3_state import DEMO_SITE, DEMO_USERNAME
from local.server import serve_in_thread
from shared import storage
from shared.clients import registry
from shared.openapi import openapi

KEY = "fuzz-function-key"
schema = schemathesis.openapi.from_dict(openapi())
# What the issue asks: no 5xx, documented statuses and content types, schema-valid answers.
# (Not positive_data_acceptance: a schema-valid body can still be refused for reasons a
# schema cannot say - an Idempotency-Key reused with another body is 422 by design.)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, str]]:
    cf_app = cf_sandbox.create_app()
    d3_sim = d3_sandbox.D3Simulator()
    with serve_in_thread(cf_app) as cf, serve_in_thread(d3_sim.app) as d3:
        yield {
            "CONTRAFORCE_BASE_URL": f"{cf.base_url}/api/v2",
            "D3_BASE_URL": f"{d3.base_url}{d3_sim.api_path}",
        }


@pytest.fixture
def base_url(
    upstreams: dict[str, str], azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    for name, value in {
        **upstreams,
        "CONTRAFORCE_CLIENT_ID": DEMO_CLIENT_ID,
        "CONTRAFORCE_CLIENT_SECRET": DEMO_CLIENT_SECRET,
        "D3_API_KEY_HEADER": d3_sandbox.DEFAULT_API_KEY_HEADER,
        "D3_API_KEY": d3_sandbox.DEFAULT_API_KEY,
        "D3_DEFAULT_USERNAME": DEMO_USERNAME,
        "D3_DEFAULT_SITE": DEMO_SITE,
        "AzureWebJobsStorage": azurite.connection_string,
        "CONTRAFORCE_WEBHOOK_SECRETS": "fuzz-webhook-secret",
        "RETRY_ATTEMPTS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    host = LocalHost(
        app, host_json={}, function_key=KEY, on_shutdown=[registry.aclose, storage.aclose]
    )
    with serve_in_thread(host.asgi, lifespan="on") as server:
        yield f"{server.base_url}/api"


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_api_answers_every_generated_request_by_its_contract(
    case: schemathesis.Case[Any], base_url: str
) -> None:
    response = case.call(base_url=base_url, headers={"x-functions-key": KEY}, timeout=30)
    case.validate_response(response, checks=CHECKS)
    answered_by_app = "x-operation-id" in response.headers  # not the host's own 404/405
    if answered_by_app and 400 <= response.status_code < 500:
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.startswith("application/problem+json"), response.text
