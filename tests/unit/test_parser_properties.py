"""Any bytes, or any JSON, become Commands or a 4xx refusal: never an unhandled exception."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incident_link_api.commands import RemoveLinkedIncidents, UnlinkTicket
from shared.config import Settings
from shared.errors import RequestRejected
from shared.intake import (
    Incoming,
    Parser,
    canonical_remove,
    canonical_unlink,
    contraforce_mirror,
    d3_mirror,
)

SETTINGS = Settings.model_validate({"d3_default_username": "Admin", "d3_default_site": "SOC"})
PARSERS: list[Parser] = [canonical_unlink, canonical_remove, contraforce_mirror, d3_mirror]
WORKSPACE = {"workspaceId": "3f2a6c1e-8b7d-4c55-9a10-2f6e7d8c9b01"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                [
                    "workspaceId",
                    "incident",
                    "id",
                    "number",
                    "source",
                    "items",
                    "sourceIncident",
                    "linkedIncidents",
                    "site",
                    "username",
                    "Username",
                    "Site",
                    "CommandParams",
                    "Linked Incident Numbers to be Removed",
                    "Source Incident Number",
                ]
            )
            | st.text(max_size=10),
            children,
            max_size=6,
        )
    ),
    max_leaves=25,
)


def _parse(parser: Parser, body: bytes) -> None:
    incoming = Incoming(body, "application/json", WORKSPACE, ())
    refused: RequestRejected | None = None
    try:
        commands = parser(incoming, SETTINGS)
    except RequestRejected as exc:
        refused, commands = exc, []
    if refused is not None:
        assert 400 <= refused.status < 500
    else:
        assert commands
        assert all(isinstance(c, UnlinkTicket | RemoveLinkedIncidents) for c in commands)


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
@settings(max_examples=150, deadline=None)
@given(body=st.binary(max_size=300))
def test_any_bytes_become_commands_or_a_refusal(parser: Parser, body: bytes) -> None:
    _parse(parser, body)


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_any_json_becomes_commands_or_a_refusal(parser: Parser, value: Any) -> None:
    _parse(parser, json.dumps(value).encode())
