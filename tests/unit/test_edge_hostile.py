"""Issue 25, the edge's hostile input: each finding's test, named for it (1, 5, 6, 13, 14).

Each of these failed before its fix: an upstream status outside `HTTPStatus` (1), a webhook
timestamp no clock holds (5), caller and upstream text forging log lines and swelling answers
(6), an Easy Auth principal nested 5,000 deep or vouched for by another provider (13), and
webhook bodies read laxly (14).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incident_link_api.outcome import ItemError
from shared import problems
from shared.errors import Forbidden, InvalidPayload, InvalidSignature, UpstreamRejected
from shared.logsafe import clip
from shared.principals import authorize, read_principal
from shared.rendering import render_problem
from shared.webhooks import UNLINKING_EVENT, Delivery, decide, sign, verify
from tests.functions.conftest import call
from tests.principals import LOGIC_APP_CLIENT_ID, LOGIC_APP_OBJECT_ID, encode, principal_document

NOW = datetime(2026, 12, 8, 12, 0, 0, tzinfo=UTC)
SECRET = b"edge-secret"
WORKSPACE = "3f2a6c1e-8b7d-4c55-9a10-2f6e7d8c9b01"
FORGED = "x\n2026-12-07 16:40:00,000 ERROR shared.actions: FORGED"
ANSI = "\x1b[2J\x1b[31mred"


# ---- finding 1: any upstream status 100-599 maps to an answer, never our 500 -----------------


@pytest.mark.parametrize("status", [420, 460, 499])
def test_finding_1_an_upstream_4xx_outside_httpstatus_passes_through_with_a_generic_title(
    status: int,
) -> None:
    rejected = UpstreamRejected("odd", upstream="d3", attempts=1, status=status, code="ODD")
    problem = problems.from_error(rejected)
    rendered = render_problem(problem, "problem")
    assert (problem.status, problem.title, problem.code) == (
        status,
        f"Client Error {status}",
        "ODD",
    )
    assert rendered.status == status


def test_finding_1_a_recorded_499_answers_every_poll_with_its_status() -> None:
    recorded = ItemError(kind="rejected", message="closed", upstream_status=499, code="CLOSED")
    problem = problems.from_upstream("contraforce", recorded)
    assert (problem.status, problem.title) == (499, "Client Error 499")


def test_finding_1_every_status_from_100_to_599_has_a_title() -> None:
    titles = {status: problems.status_title(status) for status in range(100, 600)}
    assert titles[404] == "Not Found"
    assert titles[520] == "Server Error 520"
    assert titles[299] == "Success 299"
    assert all(titles.values())


# ---- finding 5: a webhook timestamp no clock can hold is a 401, not a 500 ------------------


def _signed_headers(timestamp: str, body: bytes) -> dict[str, str]:
    return {
        "X-CF-Event-Id": "5b0c7a1e-3c55-4c7a-9a51-2d1f0e6b9c3a",
        "X-CF-Timestamp": timestamp,
        "X-CF-Signature": sign(body, secret=SECRET, timestamp=timestamp),
    }


async def test_finding_5_a_webhook_timestamp_near_1e18_is_a_401_problem_not_a_500(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONTRAFORCE_WEBHOOK_SECRETS", SECRET.decode())
    body = json.dumps({"type": UNLINKING_EVENT, "data": {}}).encode()
    reply = await call(
        "contraforce_webhook",
        "webhooks/contraforce",
        raw=body,
        headers=_signed_headers("1" + "0" * 18, body),
    )
    assert (reply.status, reply.media_type) == (401, "application/problem+json")
    assert reply.body["errors"] == {
        "X-CF-Timestamp": ["is not Unix seconds or ISO 8601 with a time zone"]
    }


@pytest.mark.parametrize(
    "timestamp",
    ["1" + "0" * 18, "9" * 30, "0001-01-01T00:00:00+05:00", "١٧٦٤٥٢٣٨٠٠", "1e18", "²"],
)
def test_finding_5_a_timestamp_no_clock_holds_is_an_invalid_signature(timestamp: str) -> None:
    with pytest.raises(InvalidSignature) as refused:
        verify(_signed_headers(timestamp, b"{}"), b"{}", secrets=(SECRET,), now=NOW)
    assert refused.value.status == 401


@given(st.text(max_size=40))
def test_finding_5_any_timestamp_text_is_accepted_or_refused_as_an_invalid_signature(
    timestamp: str,
) -> None:
    with contextlib.suppress(InvalidSignature):  # a 401; anything else fails the test
        verify(_signed_headers(timestamp, b"{}"), b"{}", secrets=(SECRET,), now=NOW)


# ---- finding 6: untrusted text is escaped and clipped in logs and answers -----------------


def test_finding_6_clip_escapes_control_characters_and_bounds_the_length() -> None:
    assert "\n" not in clip(FORGED)
    assert clip(FORGED).startswith("x\\n2026")
    assert "\x1b" not in clip(ANSI)
    assert len(clip("k" * 200_000)) <= 200
    assert clip("Linked Incident Numbers to be Removed") == "Linked Incident Numbers to be Removed"


@pytest.mark.parametrize("key", [FORGED, ANSI, "k" * 200_000])
async def test_finding_6_a_hostile_json_key_neither_forges_a_log_line_nor_swells_the_answer(
    key: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"workspaceId": WORKSPACE, "incident": {"number": "1001", key: 1}, key: 2}
    with caplog.at_level(logging.DEBUG):
        reply = await call("unlink_ticket", "actions/unlink-ticket", body)
    assert reply.status == 400
    assert len(json.dumps(reply.body)) < 8_000
    assert any("request refused" in record.getMessage() for record in caplog.records)
    for record in caplog.records:
        line = record.getMessage()
        assert "\n" not in line
        assert "\x1b" not in line
        assert len(line) < 4_000


def test_finding_6_an_upstream_code_and_request_id_are_escaped_before_they_are_logged() -> None:
    rejected = UpstreamRejected(
        "no\nERROR forged",
        upstream="contraforce",
        attempts=1,
        status=404,
        code="NOT_FOUND\n2026 ERROR forged",
        request_id="r\x1b[2J" + "r" * 10_000,
        errors={"k" * 100_000: ["m" * 100_000]},
    )
    error = problems.item_error(rejected)
    shown = [error.message, error.code or "", error.request_id or ""]
    assert all("\n" not in text and "\x1b" not in text for text in shown)
    assert len(json.dumps(problems.from_error(rejected).body())) < 8_000


# ---- finding 13: the Easy Auth principal is read within bounds, and only Entra's ----------


def _header(document: object) -> dict[str, str]:
    value = base64.b64encode(json.dumps(document).encode()).decode()
    return {"x-ms-client-principal": value}


def test_finding_13_a_principal_nested_5000_deep_is_a_403_not_a_recursion_error() -> None:
    deep = "[" * 5_000 + "]" * 5_000
    value = base64.b64encode(f'{{"auth_typ": "aad", "claims": {deep}}}'.encode()).decode()
    with pytest.raises(Forbidden) as refused:
        read_principal(value)
    assert (refused.value.status, refused.value.code) == (403, "PRINCIPAL_UNREADABLE")


async def test_finding_13_a_deep_principal_on_a_route_is_a_403_problem_not_a_500(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    deep = "[" * 5_000 + "]" * 5_000
    value = base64.b64encode(f'{{"auth_typ": "aad", "claims": {deep}}}'.encode()).decode()
    reply = await call(
        "unlink_ticket",
        "actions/unlink-ticket",
        {"workspaceId": WORKSPACE, "incident": {"number": "1001"}},
        headers={"x-ms-client-principal": value},
    )
    assert (reply.status, reply.media_type) == (403, "application/problem+json")
    assert reply.body["code"] == "PRINCIPAL_UNREADABLE"


@pytest.mark.parametrize("provider", ["github", "google", "", None])
def test_finding_13_a_principal_from_another_identity_provider_is_refused(
    provider: str | None,
) -> None:
    document = principal_document(LOGIC_APP_CLIENT_ID, LOGIC_APP_OBJECT_ID)
    if provider is None:
        del document["auth_typ"]
    else:
        document["auth_typ"] = provider
    with pytest.raises(Forbidden) as refused:
        authorize(
            {"x-ms-client-principal": encode(document)},
            environ={"WEBSITE_AUTH_ENABLED": "True"},
            allowed=lambda: frozenset({LOGIC_APP_OBJECT_ID}),
        )
    assert (refused.value.status, refused.value.code) == (403, "PRINCIPAL_NOT_ENTRA")


@pytest.mark.parametrize("client_id", ["a\n2026 ERROR forged", "\x1b[2J", "a" * 129])
def test_finding_13_a_principal_whose_id_would_forge_a_log_line_is_refused(
    client_id: str,
) -> None:
    with pytest.raises(Forbidden) as refused:
        read_principal(encode(principal_document(client_id, LOGIC_APP_OBJECT_ID)))
    assert refused.value.code == "PRINCIPAL_UNREADABLE"


@given(st.recursive(st.none() | st.booleans() | st.text(), st.lists, max_leaves=50))
def test_finding_13_any_claims_value_is_a_principal_or_a_403(claims: object) -> None:
    value = _header({"auth_typ": "aad", "claims": claims})["x-ms-client-principal"]
    with contextlib.suppress(Forbidden):  # a 403; anything else fails the test
        read_principal(value)


# ---- finding 14: webhook bodies are strictly typed where the policy decides ---------------


def _delivery(event: dict[str, object]) -> Delivery:
    body = json.dumps(event).encode()
    return Delivery(
        event_id="e-1",
        schema=UNLINKING_EVENT,
        timestamp=NOW,
        test_header=False,
        body=body,
        signed_content=b"t." + body,
    )


def _unlinking(**data: object) -> dict[str, object]:
    return {
        "type": UNLINKING_EVENT,
        "data": {"accountId": WORKSPACE, "classification": "FalsePositive", **data},
    }


@pytest.mark.parametrize("event_id", ["e\n2026 ERROR forged", "e\x1b[2J", "é"])
def test_finding_6_a_webhook_event_id_that_would_forge_a_log_line_is_refused(
    event_id: str,
) -> None:
    headers = {**_signed_headers(NOW.isoformat(), b"{}"), "X-CF-Event-Id": event_id}
    with pytest.raises(InvalidPayload) as refused:
        verify(headers, b"{}", secrets=(SECRET,), now=NOW)
    assert "X-CF-Event-Id" in refused.value.errors


@pytest.mark.parametrize("number", [True, False, 1.0, "1 ", "-1", "1e3", -1])
def test_finding_14_an_incident_number_that_is_not_an_integer_or_digits_is_refused(
    number: object,
) -> None:
    with pytest.raises(InvalidPayload) as refused:
        decide(
            _delivery(_unlinking(incidentNumber=number)),
            unlink_classifications=frozenset({"falsepositive"}),
        )
    assert "data.incidentNumber" in refused.value.errors


@pytest.mark.parametrize("number", [1001, "1001"])
def test_finding_14_an_integer_or_a_digit_string_incident_number_unlinks(number: object) -> None:
    decision = decide(
        _delivery(_unlinking(incidentNumber=number)),
        unlink_classifications=frozenset({"falsepositive"}),
    )
    assert [c.incident.number for c in decision.commands] == ["1001"]


@pytest.mark.parametrize("flag", ["true", 1, "yes"])
def test_finding_14_is_test_must_be_a_json_boolean(flag: object) -> None:
    with pytest.raises(InvalidPayload) as refused:
        decide(
            _delivery({**_unlinking(incidentNumber=1), "isTest": flag}),
            unlink_classifications=frozenset({"falsepositive"}),
        )
    assert "isTest" in refused.value.errors
