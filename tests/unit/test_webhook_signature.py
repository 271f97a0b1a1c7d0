"""ContraForce webhook verification: both signature forms, rotation, tolerance, fail closed."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import InvalidPayload, InvalidSignature, RequestRejected
from shared.webhooks import UNLINKING_EVENT, Delivery, decide, sign, verify

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
ISO = "2026-11-23T12:00:00Z"
UNIX = str(int(NOW.timestamp()))
SECRETS = (b"current-secret", b"previous-secret")
BODY = json.dumps({"type": UNLINKING_EVENT, "data": {"incidentId": "i-1"}}).encode()


def headers(*, timestamp: str = ISO, signature: str | None = None, **extra: str) -> dict[str, str]:
    return {
        "X-CF-Schema": UNLINKING_EVENT,
        "X-CF-Event-Id": "5b0c7a1e-3c55-4c7a-9a51-2d1f0e6b9c3a",
        "X-CF-Timestamp": timestamp,
        "X-CF-Signature": signature
        if signature is not None
        else sign(BODY, secret=SECRETS[0], timestamp=timestamp),
        **extra,
    }


def test_documented_form_base64_over_iso_timestamp_is_accepted() -> None:
    delivery = verify(headers(), BODY, secrets=SECRETS, now=NOW)
    assert (delivery.event_id, delivery.schema, delivery.test_header) == (
        "5b0c7a1e-3c55-4c7a-9a51-2d1f0e6b9c3a",
        UNLINKING_EVENT,
        False,
    )


def test_sample_form_sha256_hex_over_unix_seconds_is_accepted() -> None:
    digest = hmac.new(SECRETS[0], f"{UNIX}.".encode() + BODY, hashlib.sha256).hexdigest()
    delivery = verify(
        headers(timestamp=UNIX, signature=f"sha256={digest}"), BODY, secrets=SECRETS, now=NOW
    )
    assert delivery.timestamp == NOW


def test_documented_signature_is_computed_as_the_docs_say() -> None:
    expected = base64.b64encode(
        hmac.new(SECRETS[0], f"{ISO}.".encode() + BODY, hashlib.sha256).digest()
    ).decode()
    assert sign(BODY, secret=SECRETS[0], timestamp=ISO) == expected


def test_a_rotated_secret_still_verifies() -> None:
    signature = sign(BODY, secret=SECRETS[1], timestamp=ISO)
    assert verify(headers(signature=signature), BODY, secrets=SECRETS, now=NOW)


def test_tampered_body_is_rejected() -> None:
    with pytest.raises(InvalidSignature):
        verify(headers(), BODY.replace(b"i-1", b"i-2"), secrets=SECRETS, now=NOW)


def test_wrong_secret_is_rejected() -> None:
    with pytest.raises(InvalidSignature):
        verify(
            headers(signature=sign(BODY, secret=b"other", timestamp=ISO)),
            BODY,
            secrets=SECRETS,
            now=NOW,
        )


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_stale_or_future_timestamps_are_rejected(offset: timedelta) -> None:
    stamp = (NOW + offset).isoformat()
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify(
            headers(timestamp=stamp, signature=sign(BODY, secret=SECRETS[0], timestamp=stamp)),
            BODY,
            secrets=SECRETS,
            now=NOW,
        )


def test_timestamps_just_inside_the_tolerance_are_accepted() -> None:
    stamp = (NOW - timedelta(minutes=4, seconds=59)).isoformat()
    assert verify(
        headers(timestamp=stamp, signature=sign(BODY, secret=SECRETS[0], timestamp=stamp)),
        BODY,
        secrets=SECRETS,
        now=NOW,
    )


@pytest.mark.parametrize("missing", ["X-CF-Timestamp", "X-CF-Signature"])
def test_missing_signature_headers_are_rejected(missing: str) -> None:
    given_headers = headers()
    del given_headers[missing]
    with pytest.raises(InvalidSignature, match=missing):
        verify(given_headers, BODY, secrets=SECRETS, now=NOW)


@pytest.mark.parametrize(
    ("timestamp", "signature"),
    [
        ("yesterday", None),
        ("2026-11-23T12:00:00", None),
        (ISO, "sha256=zz"),
        (ISO, "not base64!"),
        ("9" * 40, None),
    ],
)
def test_malformed_headers_fail_closed_as_invalid_signature(
    timestamp: str, signature: str | None
) -> None:
    with pytest.raises(InvalidSignature):
        verify(
            headers(timestamp=timestamp, signature=signature or "AAAA"),
            BODY,
            secrets=SECRETS,
            now=NOW,
        )


def test_signed_delivery_without_event_id_is_a_bad_request() -> None:
    given_headers = headers()
    del given_headers["X-CF-Event-Id"]
    with pytest.raises(InvalidPayload, match="X-CF-Event-Id"):
        verify(given_headers, BODY, secrets=SECRETS, now=NOW)


def test_configured_authorization_must_match() -> None:
    with pytest.raises(InvalidSignature, match="Authorization"):
        verify(
            headers(Authorization="Bearer wrong"),
            BODY,
            secrets=SECRETS,
            now=NOW,
            authorization="Bearer right",
        )
    assert verify(
        headers(Authorization="Bearer right"),
        BODY,
        secrets=SECRETS,
        now=NOW,
        authorization="Bearer right",
    )


def test_the_unsigned_test_header_is_read_but_only_as_a_claim() -> None:
    assert verify(headers(**{"X-CF-Test": "true"}), BODY, secrets=SECRETS, now=NOW).test_header


def test_the_signature_covers_exactly_the_content_deduplicated_on() -> None:
    delivery = verify(headers(), BODY, secrets=SECRETS, now=NOW)
    assert delivery.signed_content == f"{ISO}.".encode() + BODY


@given(
    body=st.binary(max_size=512), timestamp=st.text(max_size=40), signature=st.text(max_size=120)
)
def test_any_input_either_verifies_or_raises_invalid_signature(
    body: bytes, timestamp: str, signature: str
) -> None:
    try:
        verify(
            {"X-CF-Timestamp": timestamp, "X-CF-Signature": signature, "X-CF-Event-Id": "e"},
            body,
            secrets=SECRETS,
            now=NOW,
        )
    except InvalidSignature:
        return
    pytest.fail("an unsigned random delivery verified")  # pragma: no cover


# ---- the event policy ------------------------------------------------------------------------

WS = "3f2a6c1e-8b7d-4c55-9a10-2f6e7d8c9b01"
CLASSIFICATIONS = frozenset({"falsepositive", "benignpositive"})


def delivery(
    event: Mapping[str, object], *, schema: str | None = None, test_header: bool = False
) -> Delivery:
    body = json.dumps(event).encode()
    return Delivery(
        "e-1",
        str(event.get("type", "")) if schema is None else schema,
        NOW,
        test_header=test_header,
        body=body,
        signed_content=b"stamp." + body,
    )


ACTING_EVENT = {
    "type": UNLINKING_EVENT,
    "data": {"accountId": WS, "incidentId": "i-9", "classification": "FalsePositive"},
}


def test_a_test_header_the_signed_body_does_not_back_does_not_suppress_the_action() -> None:
    decision = decide(
        delivery(ACTING_EVENT, test_header=True), unlink_classifications=CLASSIFICATIONS
    )
    assert (decision.is_test, len(decision.commands)) == (False, 1)


def test_a_body_that_says_it_is_a_test_is_a_test_delivery() -> None:
    decision = decide(
        delivery({**ACTING_EVENT, "isTest": True}), unlink_classifications=CLASSIFICATIONS
    )
    assert (decision.is_test, decision.commands) == (True, ())


def test_the_schema_header_never_names_the_event_when_the_signed_body_has_no_type() -> None:
    untyped = {"data": ACTING_EVENT["data"]}
    decision = decide(
        delivery(untyped, schema=UNLINKING_EVENT), unlink_classifications=CLASSIFICATIONS
    )
    assert decision.commands == ()
    assert decision.skipped == "no action is configured for no type in the signed body"


def test_a_huge_event_type_is_skipped_with_a_bounded_reason() -> None:
    decision = decide(
        delivery({"type": "x" * 200_000, "data": {}}), unlink_classifications=CLASSIFICATIONS
    )
    assert decision.skipped is not None
    assert len(decision.skipped) < 200


def test_false_positive_investigation_unlinks_the_incident_ticket() -> None:
    event = {
        "type": UNLINKING_EVENT,
        "data": {
            "accountId": WS,
            "incidentId": "i-9",
            "incidentNumber": 1001,
            "source": "sentinel",
            "classification": "FalsePositive",
        },
    }
    [command] = decide(delivery(event), unlink_classifications=CLASSIFICATIONS).commands
    assert (str(command.workspace_id), command.incident.id, command.incident.number) == (
        WS,
        "i-9",
        "1001",
    )
    assert command.incident.source is not None
    assert command.incident.source.value == "Sentinel"


def test_true_positive_investigation_is_skipped_with_the_reason() -> None:
    event = {
        "type": UNLINKING_EVENT,
        "data": {"accountId": WS, "incidentId": "i-9", "classification": "TruePositive"},
    }
    decision = decide(delivery(event), unlink_classifications=CLASSIFICATIONS)
    assert decision.commands == ()
    assert decision.skipped is not None
    assert "TruePositive" in decision.skipped


def test_incident_created_is_skipped() -> None:
    decision = decide(
        delivery({"type": "incident.created.v1", "data": {}}),
        unlink_classifications=CLASSIFICATIONS,
    )
    assert decision.skipped is not None


def test_acting_event_without_an_incident_is_a_bad_request() -> None:
    event = {"type": UNLINKING_EVENT, "data": {"accountId": WS, "classification": "FalsePositive"}}
    with pytest.raises(InvalidPayload):
        decide(delivery(event), unlink_classifications=CLASSIFICATIONS)


def test_a_verified_body_nested_too_deeply_is_a_bad_request_not_a_crash() -> None:
    with pytest.raises(RequestRejected, match="nested too deeply") as caught:
        decide(
            Delivery(
                "e",
                UNLINKING_EVENT,
                NOW,
                test_header=False,
                body=b"[" * 200_000,
                signed_content=b"",
            ),
            unlink_classifications=CLASSIFICATIONS,
        )
    assert (caught.value.status, caught.value.code) == (400, "MALFORMED_JSON")


def test_an_unknown_source_in_the_event_names_the_field() -> None:
    event = {
        "type": UNLINKING_EVENT,
        "data": {
            "accountId": WS,
            "incidentId": "i-9",
            "source": "elastic",
            "classification": "FalsePositive",
        },
    }
    with pytest.raises(InvalidPayload) as caught:
        decide(delivery(event), unlink_classifications=CLASSIFICATIONS)
    assert list(caught.value.errors) == ["data.source"]


@given(st.binary(max_size=256))
def test_any_verified_body_becomes_a_decision_or_a_bad_request(body: bytes) -> None:
    with contextlib.suppress(RequestRejected):
        decide(
            Delivery("e", UNLINKING_EVENT, NOW, test_header=False, body=body, signed_content=body),
            unlink_classifications=CLASSIFICATIONS,
        )
