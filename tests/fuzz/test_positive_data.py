"""The API document describes what the app accepts: every request schemathesis generates from
it as valid (positive data only) must be accepted, i.e. not refused with 400, 413, 415 or 422
(schemathesis's positive_data_acceptance check, ST202). The local host serves the real app over
real HTTP, with the simulators and Azurite behind it.

Two refusals are not the document's to prevent, and are told apart: an upstream's own verdict
passed through (a problem naming its `upstream`: the app accepted the request and D3 or
ContraForce refused it, e.g. a D3 site that does not exist), and a reused Idempotency-Key (a
documented 422): each generated request gets a key of its own.
"""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis
from schemathesis import GenerationMode, checks

from shared.openapi import openapi
from tests.fuzz.conftest import KEY, fuzz_settings

schema = schemathesis.openapi.from_dict(openapi())
schema.config.generation.update(modes=[GenerationMode.POSITIVE])


@schema.parametrize()
@fuzz_settings(max_examples=25)
def test_every_schema_valid_request_is_accepted(
    case: schemathesis.Case[Any], base_url: str
) -> None:
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = f"positive-{uuid.uuid4()}"
    response = case.call(base_url=base_url, headers={"x-functions-key": KEY}, timeout=30)
    if upstream_verdict(response):
        case.validate_response(response, checks=[checks.not_a_server_error])
    else:
        case.validate_response(
            response, checks=[checks.not_a_server_error, checks.positive_data_acceptance]
        )


def upstream_verdict(response: Any) -> bool:
    """A problem answer about an upstream's refusal, which the app passes through."""
    if not response.headers.get("content-type", [""])[0].startswith("application/problem+json"):
        return False
    body = response.json()
    return isinstance(body, dict) and body.get("upstream") in {"contraforce", "d3"}
