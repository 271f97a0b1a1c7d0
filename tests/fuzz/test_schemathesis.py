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
from local.server import serve_in_thread
from shared import storage
from shared.clients import registry
from shared.openapi import openapi
from tests.conftest import Sandboxes

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


@pytest.fixture
def base_url(
    sandboxes: Sandboxes, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    for name, value in {
        **sandboxes.settings,
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
