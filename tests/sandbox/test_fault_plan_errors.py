"""A bad fault plan gets a clear problem+json naming what is wrong, on both simulators, over
real HTTP: no pydantic dump, no library URLs (issue 12)."""

from __future__ import annotations

import httpx
import pytest

BAD_PLANS = [
    pytest.param(b'{"script": [{"kind": "meteor"}]}', "script[0].kind", id="unknown-kind"),
    pytest.param(b'{"script": [{"kind": "slow", "delaySeconds": -1}]}', "script[0].delaySeconds",
                 id="negative-delay"),
    pytest.param(b'{"probabilities": {"server_error": 0.6, "unavailable": 0.6}}',
                 "probabilities", id="probabilities-over-1"),
    pytest.param(b'{"scirpt": []}', "scirpt", id="misspelt-member"),
    pytest.param(b"[]", "", id="not-an-object"),
    pytest.param(b'{"script": [', "", id="not-json"),
    pytest.param(b'{"seed": ' + b"9" * 5000 + b"}", "", id="huge-integer"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "field"), BAD_PLANS)
@pytest.mark.parametrize("simulator", ["cf_http", "d3_http"])
def test_a_bad_fault_plan_is_a_problem_naming_the_field_without_library_urls(
    body: bytes, field: str, simulator: str, request: pytest.FixtureRequest
) -> None:
    http: httpx.Client = request.getfixturevalue(simulator)
    response = http.post(
        "/_sandbox/faults", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["title"]) == (400, "Bad Request")
    assert field in problem["errors"]
    assert "pydantic" not in response.text
    assert "http" not in response.text
    assert "kinds: rate_limited, server_error" in problem["detail"]
    assert http.get("/_sandbox/faults").json()["script"] == []  # the old plan is kept
