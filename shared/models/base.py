"""Model bases: one per direction, each with its `extra` policy chosen on purpose."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints
from pydantic.alias_generators import to_camel


class InboundModel(BaseModel):
    """What a caller sends us: frozen, and an unknown field is an error, not a silent drop."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class VendorModel(BaseModel):
    """What an upstream answers: frozen; fields the vendor adds later are kept, so the mirror
    routes pass them through unchanged."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)


class CamelModel(BaseModel):
    """Our own answers: snake_case in Python, camelCase on the wire."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


# An identifier from a payload: bounded, printable, never empty. Never part of a URL.
BoundedId = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]
# A D3 incident number such as "20231025-130".
IncidentNumber = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]
# A D3 user or site name.
D3Name = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]
