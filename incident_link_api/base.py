"""Model bases: one per direction, each with its `extra` policy chosen on purpose."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

Upstream = Literal["contraforce", "d3"]
"""The upstreams this app calls, by the name every answer, log line and metric uses."""

# Every model's validator is built on first use (`defer_build`), not at import: a cold start that
# serves one route pays only for the models that route uses (bench P2).


class InboundModel(BaseModel):
    """What a caller sends us: frozen, and an unknown field is an error, not a silent drop."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", str_strip_whitespace=True, defer_build=True
    )


class VendorModel(BaseModel):
    """What an upstream answers: frozen; fields the vendor adds later are kept, so the mirror
    routes pass them through unchanged."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True, defer_build=True)


class CamelModel(BaseModel):
    """Our own answers: snake_case in Python, camelCase on the wire."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        defer_build=True,
    )


# Control (Cc), format (Cf: zero-width and bidirectional overrides such as U+202E) and line or
# paragraph separators (Zl, Zp): invisible or misleading in a log, a ticket or D3's audit trail.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


# The same refusal in the API description (Cc, Zl, Zp and the Cf characters of the Basic
# Multilingual Plane; an ECMA-262 pattern, as OpenAPI and Swagger documents use).
REFUSED_CHARACTERS = (
    r"\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e"
    r"\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
)
PRINTABLE_PATTERN = f"^[^{REFUSED_CHARACTERS}]+$"


def _printable(value: str) -> str:
    """The text itself, or a ValueError naming the first control or format character in it."""
    for char in value:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            raise ValueError(
                f"must not contain control, format or separator characters, got U+{ord(char):04X}"
            )
    return value


def _integer_as_decimal(value: object) -> object:
    """A JSON integer (Sentinel's `incidentNumber` is one) as the decimal string the vendors'
    schemas ask for. Booleans and floats are left alone, so they are refused as strings."""
    if type(value) is int:
        return str(value)
    return value


# An identifier from a payload: bounded, printable, never empty. Never part of a URL.
BoundedId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128),
    AfterValidator(_printable),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": 128, "pattern": PRINTABLE_PATTERN},
        mode="validation",
    ),
]
# An incident number: D3's "20231025-130" or ContraForce's "1001"; a JSON integer is taken too.
IncidentNumber = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(_printable),
    BeforeValidator(_integer_as_decimal),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "minLength": 1, "maxLength": 64, "pattern": PRINTABLE_PATTERN},
                {"type": "integer"},
            ]
        },
        mode="validation",
    ),
]
# D3's `Source Incident Number`: an incident number, or blank ("Default to the current incident
# of the playbook if left blank", D3's RemoveLinkedIncidents utility doc), forwarded as given.
D3SourceIncident = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=64),
    AfterValidator(_printable),
    BeforeValidator(_integer_as_decimal),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": 64, "pattern": PRINTABLE_PATTERN},
                {"type": "integer"},
            ]
        },
        mode="validation",
    ),
]
# A D3 user or site name.
D3Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=256),
    AfterValidator(_printable),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": 256, "pattern": PRINTABLE_PATTERN},
        mode="validation",
    ),
]
