"""ContraForce webhooks: verify the signature over the raw body, then map events to Commands.

Verification (no Azure imports, no I/O) fails closed: anything wrong, a malformed header's
`ValueError` included, becomes `InvalidSignature` (401). ContraForce's docs and its samples
disagree on the signature form, so both are accepted:

- docs: `X-CF-Signature: Base64(HMAC-SHA256(secret, X-CF-Timestamp + "." + body))` with an
  ISO 8601 `X-CF-Timestamp`;
- samples: `X-CF-Signature: sha256=<hex>` over `"{unix seconds}." + body`.

A `sha256=` prefix means hex, else Base64; a timestamp of ASCII digits means Unix seconds, else
ISO 8601 with a time zone. The timestamp must be within 5 minutes of our clock, either way; one
that is neither form, or names a moment no clock can hold (`1e18` seconds), is a 401 like any
other malformed signature header. Every configured secret is tried (rotation), and comparisons
are constant-time.

Mapping is a small declared policy: `agent.investigation.completed.v1` with a classification
in `WEBHOOK_UNLINK_CLASSIFICATIONS` unlinks the incident's service ticket; every other event
(including `incident.created.v1`) is acknowledged and recorded as skipped.

Only the timestamp and the body are signed, so only they decide: the event type is the body's
`type` (never `X-CF-Schema` alone), and a delivery is a test only when the body says
`"isTest": true` (an `X-CF-Test` header the body does not back is ignored). Replays are caught
downstream by deduplicating on the signed content as well as on `X-CF-Event-Id`.

The body is read strictly where the policy decides on it: `isTest` must be a JSON boolean
(`"true"`, a string, is a 400, not a test), `incidentNumber` an integer or a string of digits
(`true` is a 400, never incident "1").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StrictBool

from incident_link_api.commands import UnlinkTicket
from incident_link_api.contraforce import IncidentReference
from shared.errors import InvalidPayload, InvalidSignature
from shared.intake import decode_json, parse
from shared.logsafe import clip

TOLERANCE_SECONDS = 300
UNLINKING_EVENT = "agent.investigation.completed.v1"
MAX_HEADER = 512
MAX_SHOWN = 100  # characters of an event's own text kept in a reason or a log line
# Unix seconds: at most 11 digits (year 5138), so no conversion overflows the platform's clock.
_MAX_UNIX_DIGITS = 11

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: its headers' facts and the raw body, not yet parsed."""

    event_id: str
    schema: str  # X-CF-Schema: not signed, informative only
    timestamp: datetime
    test_header: bool  # X-CF-Test: not signed, trusted only where the body agrees
    body: bytes
    signed_content: bytes  # what the signature covers: the timestamp as sent, ".", the body


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name) or headers.get(name.lower())
    if value is None or not value.strip():
        raise InvalidSignature(f"{name} header is missing", errors={name: ["is required"]})
    if len(value) > MAX_HEADER:
        raise InvalidSignature(f"{name} header is too long", errors={name: ["is too long"]})
    return value.strip()


def _parse_timestamp(text: str) -> datetime:
    """Unix seconds or ISO 8601 with a zone; `InvalidSignature` for anything else."""
    try:
        return _moment(text)
    except (ValueError, OverflowError, OSError) as exc:
        raise InvalidSignature(
            f"X-CF-Timestamp is neither Unix seconds nor an ISO 8601 time with a zone "
            f"({type(exc).__name__})",
            errors={"X-CF-Timestamp": ["is not Unix seconds or ISO 8601 with a time zone"]},
        ) from exc


def _moment(text: str) -> datetime:
    if text.isascii() and text.isdigit():
        if len(text) > _MAX_UNIX_DIGITS:
            raise ValueError("too many digits for Unix seconds")
        return datetime.fromtimestamp(int(text), tz=UTC)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("timestamp has no time zone")
    return moment.astimezone(UTC)


def _candidates(signature: str) -> list[bytes]:
    """Each signature in the header (several may be sent during a rotation), decoded."""
    decoded = []
    for part in signature.replace(",", " ").split():
        if part.lower().startswith("sha256="):
            decoded.append(bytes.fromhex(part[len("sha256=") :]))
        else:
            decoded.append(base64.b64decode(part, validate=True))
    return decoded


def verify(
    headers: Mapping[str, str],
    body: bytes,
    *,
    secrets: tuple[bytes, ...],
    now: datetime,
    authorization: str | None = None,
) -> Delivery:
    """Check a delivery's signature, age and (if configured) Authorization; never parses JSON."""
    try:
        return _verify(headers, body, secrets=secrets, now=now, authorization=authorization)
    except InvalidSignature:
        raise
    except (ValueError, TypeError, OverflowError, OSError, binascii.Error) as exc:
        raise InvalidSignature(
            f"webhook signature headers are malformed ({type(exc).__name__})",
            errors={"X-CF-Signature": ["is malformed"]},
        ) from exc


def _verify(
    headers: Mapping[str, str],
    body: bytes,
    *,
    secrets: tuple[bytes, ...],
    now: datetime,
    authorization: str | None,
) -> Delivery:
    if authorization is not None:
        given = (headers.get("Authorization") or headers.get("authorization") or "").strip()
        if not hmac.compare_digest(given.encode(), authorization.encode()):
            raise InvalidSignature(
                "Authorization header does not match the webhook's configured credential",
                errors={"Authorization": ["does not match"]},
            )
    stamp = _header(headers, "X-CF-Timestamp")
    signature = _header(headers, "X-CF-Signature")
    moment = _parse_timestamp(stamp)
    skew = abs((now - moment).total_seconds())
    if skew > TOLERANCE_SECONDS:
        raise InvalidSignature(
            f"X-CF-Timestamp is {skew:.0f} s from our clock; "
            f"the tolerance is {TOLERANCE_SECONDS} s",
            errors={"X-CF-Timestamp": ["outside the 5-minute tolerance"]},
        )
    signed = stamp.encode() + b"." + body
    expected = [hmac.new(secret, signed, hashlib.sha256).digest() for secret in secrets]
    if not any(
        hmac.compare_digest(given, wanted)
        for given in _candidates(signature)
        for wanted in expected
    ):
        raise InvalidSignature(
            "X-CF-Signature does not match the body with any configured secret",
            errors={"X-CF-Signature": ["does not match"]},
        )
    event_id = (headers.get("X-CF-Event-Id") or headers.get("x-cf-event-id") or "").strip()
    if not event_id or len(event_id) > MAX_HEADER:
        raise InvalidPayload(
            "X-CF-Event-Id header is required to deliver at most once",
            errors={"X-CF-Event-Id": ["is required"]},
        )
    if not (event_id.isascii() and event_id.isprintable()):  # it is logged and stored as is
        raise InvalidPayload(
            "X-CF-Event-Id must be printable ASCII (ContraForce sends a GUID)",
            errors={"X-CF-Event-Id": ["must be printable ASCII"]},
        )
    schema = (headers.get("X-CF-Schema") or headers.get("x-cf-schema") or "").strip()
    test_header = (
        headers.get("X-CF-Test") or headers.get("x-cf-test") or ""
    ).strip().lower() == "true"
    return Delivery(
        event_id=event_id,
        schema=schema,
        timestamp=moment,
        test_header=test_header,
        body=body,
        signed_content=signed,
    )


def sign(body: bytes, *, secret: bytes, timestamp: str, hex_form: bool = False) -> str:
    """The `X-CF-Signature` ContraForce would send (for tests, tools and the sandbox)."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).digest()
    return f"sha256={digest.hex()}" if hex_form else base64.b64encode(digest).decode()


# ---- events → commands ---------------------------------------------------------------------


_MAX_NUMBER_DIGITS = 64


def _incident_number(value: object) -> str:
    """ContraForce's `incidentNumber` is a JSON integer; a string of digits is taken too. A
    boolean (to Python, `true` is the integer 1), a float or any other text is refused."""
    if type(value) is int and value >= 0:
        value = str(value)
    digits = isinstance(value, str) and value.isascii() and value.isdigit()
    if digits and len(str(value)) <= _MAX_NUMBER_DIGITS:
        return str(value)
    raise ValueError(f"must be an integer or a string of at most {_MAX_NUMBER_DIGITS} digits")


_IncidentNumber = Annotated[str, PlainValidator(_incident_number)]


class _EventData(BaseModel):
    """The fields of an event's `data` the policy reads; everything else is ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    account_id: UUID | None = Field(default=None, alias="accountId")
    workspace_id: UUID | None = Field(default=None, alias="workspaceId")
    incident_id: str | None = Field(default=None, alias="incidentId", max_length=128)
    incident_number: _IncidentNumber | None = Field(default=None, alias="incidentNumber")
    source: str | None = Field(default=None, max_length=64)
    classification: str | None = Field(default=None, max_length=64)


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    type: str | None = None
    is_test: StrictBool | None = Field(default=None, alias="isTest")
    data: _EventData = Field(default_factory=_EventData)


@dataclass(frozen=True)
class Decision:
    """What the policy does with an event: commands to run, or why it skips it."""

    event_type: str
    commands: tuple[UnlinkTicket, ...] = ()
    skipped: str | None = None
    is_test: bool = False


def _shown(text: str) -> str:
    """An event's own text, quoted, escaped and bounded before it goes into a stored reason or
    a log line."""
    return f"'{clip(text, MAX_SHOWN)}'"


def decide(delivery: Delivery, *, unlink_classifications: frozenset[str]) -> Decision:
    """Parse a verified delivery and apply the declared policy (signed facts only)."""
    event = parse(_Event, decode_json(delivery.body))
    event_type = event.type or ""
    if delivery.test_header and event.is_test is not True:
        logger.warning(
            "webhook event=%s: X-CF-Test is not backed by the signed body; handled as real",
            _shown(delivery.event_id),
        )
    if event.is_test is True:
        return Decision(event_type, is_test=True)
    if event_type != UNLINKING_EVENT:
        what = _shown(event_type) if event_type else "no type in the signed body"
        return Decision(event_type, skipped=f"no action is configured for {what}")
    data = event.data
    classification = (data.classification or "").strip()
    if classification.lower() not in unlink_classifications:
        return Decision(
            event_type,
            skipped=f"classification {_shown(classification)} is not in "
            "WEBHOOK_UNLINK_CLASSIFICATIONS",
        )
    workspace = data.workspace_id or data.account_id
    number = data.incident_number
    if workspace is None or not (data.incident_id or number):
        raise InvalidPayload(
            "event lacks the workspace (data.accountId) or the incident (data.incidentId)",
            errors={"data": ["needs accountId and incidentId or incidentNumber"]},
        )
    reference = parse(
        IncidentReference,
        {
            "id": data.incident_id,
            "number": number,
            "source": data.source,
            "workspaceId": str(workspace),
        },
        prefix="data",
    )
    return Decision(
        event_type, commands=(UnlinkTicket(workspace_id=workspace, incident=reference),)
    )
