"""Bad input is refused with the right status and names the field; good input becomes Commands."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import pytest

from incident_link_api.commands import RemoveLinkedIncidents, UnlinkTicket
from shared.config import Settings
from shared.errors import InvalidPayload, PayloadTooLarge, RequestRejected, UnsupportedMediaType
from shared.intake import (
    Incoming,
    canonical_remove,
    canonical_unlink,
    contraforce_mirror,
    d3_mirror,
    dry_run_requested,
)

WS = "7b2d8c1e-0f4a-4c5e-9a51-2d1f0e6b9c3a"


def settings(**overrides: Any) -> Settings:
    return Settings.model_validate(
        {"d3_default_username": "Admin", "d3_default_site": "SOC", **overrides}
    )


def incoming(
    body: Any,
    *,
    content_type: str | None = "application/json",
    route: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> Incoming:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Incoming(raw, content_type, route or {}, list((query or {}).items()))


def test_non_json_content_type_is_415_naming_the_header() -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        canonical_unlink(incoming({}, content_type="text/plain"), settings())
    assert caught.value.status == 415
    assert "Content-Type" in caught.value.errors


def test_json_content_type_with_charset_is_accepted() -> None:
    body = {"workspaceId": WS, "incident": {"id": "i-1"}}
    commands = canonical_unlink(
        incoming(body, content_type="application/json; charset=utf-8"), settings()
    )
    assert len(commands) == 1


def test_body_over_the_limit_is_413() -> None:
    big = {"workspaceId": WS, "incident": {"id": "x" * 2000}}
    with pytest.raises(PayloadTooLarge) as caught:
        canonical_unlink(incoming(big), settings(max_body_bytes=1024))
    assert caught.value.status == 413


def test_malformed_json_is_400_saying_where() -> None:
    with pytest.raises(RequestRejected) as caught:
        canonical_unlink(incoming(b'{"workspaceId": '), settings())
    assert caught.value.code == "MALFORMED_JSON"
    assert "line 1 column 17" in caught.value.message


def test_deeply_nested_json_is_400_not_a_crash() -> None:
    with pytest.raises(RequestRejected) as caught:
        canonical_unlink(incoming(b"[" * 200_000), settings(max_body_bytes=1_048_576))
    assert caught.value.status == 400


def test_workspace_id_must_be_a_uuid_and_the_answer_echoes_what_was_given() -> None:
    with pytest.raises(InvalidPayload) as caught:
        canonical_unlink(incoming({"workspaceId": "abc", "incident": {"id": "1"}}), settings())
    assert "workspaceId" in caught.value.errors
    assert "'abc'" in caught.value.errors["workspaceId"][0]


def test_mirror_path_workspace_id_must_be_a_uuid() -> None:
    with pytest.raises(InvalidPayload) as caught:
        contraforce_mirror(
            incoming({"incident": {"id": "1"}}, route={"workspaceId": "../x"}), settings()
        )
    assert caught.value.errors == {"workspaceId": ["must be a UUID, got '../x'"]}


def test_missing_field_names_its_json_path_in_a_bulk_item() -> None:
    body = {"items": [{"workspaceId": WS, "incident": {"id": "1"}}, {"workspaceId": WS}]}
    with pytest.raises(InvalidPayload) as caught:
        canonical_unlink(incoming(body), settings())
    assert caught.value.errors == {"items[1].incident": ["Field required"]}


def test_unknown_field_is_refused_not_dropped() -> None:
    with pytest.raises(InvalidPayload) as caught:
        canonical_unlink(
            incoming({"workspaceId": WS, "incident": {"id": "1"}, "url": "x"}), settings()
        )
    assert "url" in caught.value.errors


def test_incident_needs_an_id_or_a_number() -> None:
    with pytest.raises(InvalidPayload) as caught:
        canonical_unlink(
            incoming({"workspaceId": WS, "incident": {"source": "Sentinel"}}), settings()
        )
    assert "incident" in caught.value.errors


def test_unknown_source_is_refused_with_the_allowed_values() -> None:
    with pytest.raises(InvalidPayload) as caught:
        canonical_unlink(
            incoming({"workspaceId": WS, "incident": {"id": "1", "source": "Elastic"}}), settings()
        )
    assert "'Sentinel'" in caught.value.errors["incident.source"][0]


def test_lowercase_source_is_accepted_and_sent_as_the_vendor_spells_it() -> None:
    [command] = canonical_unlink(
        incoming({"workspaceId": WS, "incident": {"id": "1", "source": "sentinel"}}), settings()
    )
    assert isinstance(command, UnlinkTicket)
    assert command.incident.source is not None
    assert command.incident.source.value == "Sentinel"


def test_incident_number_is_bounded() -> None:
    with pytest.raises(InvalidPayload) as caught:
        canonical_remove(
            incoming({"sourceIncident": "1", "linkedIncidents": ["9" * 65]}), settings()
        )
    assert "linkedIncidents[0]" in caught.value.errors


def test_control_characters_in_identifiers_are_refused() -> None:
    with pytest.raises(InvalidPayload):
        canonical_remove(
            incoming({"sourceIncident": "1\r\nX: y", "linkedIncidents": ["2"]}), settings()
        )


def test_too_many_bulk_items_is_413() -> None:
    items = [{"workspaceId": WS, "incident": {"id": str(i)}} for i in range(3)]
    with pytest.raises(PayloadTooLarge) as caught:
        canonical_unlink(incoming({"items": items}), settings(max_bulk_items=2))
    assert (caught.value.status, caught.value.code) == (413, "TOO_MANY_ITEMS")


def test_too_many_linked_incidents_is_413_naming_the_d3_field() -> None:
    body = {
        "CommandParams": {
            "Linked Incident Numbers to be Removed": ["1", "2", "3"],
            "Source Incident Number": "9",
        }
    }
    with pytest.raises(PayloadTooLarge) as caught:
        d3_mirror(incoming(body), settings(max_bulk_items=2))
    assert list(caught.value.errors) == ["CommandParams.Linked Incident Numbers to be Removed"]


def test_mirror_body_workspace_must_match_the_path() -> None:
    body = {"incident": {"id": "1", "workspaceId": "00000000-0000-0000-0000-000000000000"}}
    with pytest.raises(InvalidPayload) as caught:
        contraforce_mirror(incoming(body, route={"workspaceId": WS}), settings())
    assert "incident.workspaceId" in caught.value.errors


def test_mirror_fills_the_incident_workspace_from_the_path() -> None:
    [command] = contraforce_mirror(
        incoming({"incident": {"number": "42"}}, route={"workspaceId": WS.upper()}), settings()
    )
    assert isinstance(command, UnlinkTicket)
    assert command.workspace_id == UUID(WS)
    assert command.incident.workspace_id == WS


def test_d3_mirror_falls_back_to_the_configured_username_and_site() -> None:
    body = {
        "CommandParams": {
            "Linked Incident Numbers to be Removed": ["2", "2", "3"],
            "Source Incident Number": "1",
        }
    }
    [command] = d3_mirror(incoming(body), settings())
    assert command == RemoveLinkedIncidents(
        site="SOC", username="Admin", source_incident="1", linked_incidents=("2", "3")
    )


def test_d3_mirror_without_username_or_default_names_both_the_field_and_the_setting() -> None:
    body = {
        "CommandParams": {
            "Linked Incident Numbers to be Removed": ["2"],
            "Source Incident Number": "1",
        }
    }
    with pytest.raises(InvalidPayload) as caught:
        d3_mirror(incoming(body), Settings())
    assert caught.value.errors == {
        "Username": ["is required (no D3_DEFAULT_USERNAME is configured)"],
        "Site": ["is required (no D3_DEFAULT_SITE is configured)"],
    }


def test_d3_missing_linked_list_names_the_vendor_field() -> None:
    with pytest.raises(InvalidPayload) as caught:
        d3_mirror(incoming({"CommandParams": {"Source Incident Number": "1"}}), settings())
    assert list(caught.value.errors) == ["CommandParams.Linked Incident Numbers to be Removed"]


def test_canonical_remove_bulk_becomes_one_command_per_item() -> None:
    body = {
        "items": [
            {"sourceIncident": "1", "linkedIncidents": ["2"]},
            {"site": "Other", "sourceIncident": "3", "linkedIncidents": ["4", "5"]},
        ]
    }
    allowed = settings(d3_allowed_identities="Admin@SOC,Admin@Other")
    commands = canonical_remove(incoming(body), allowed)
    assert [
        (c.site, c.linked_incidents) for c in commands if isinstance(c, RemoveLinkedIncidents)
    ] == [
        ("SOC", ("2",)),
        ("Other", ("4", "5")),
    ]


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), ("1", True), ("false", False), ("0", False)]
)
def test_dry_run_flag_values(value: str, expected: bool) -> None:
    assert dry_run_requested(incoming({}, query={"dryRun": value})) is expected


def test_dry_run_flag_rejects_other_values_naming_the_parameter() -> None:
    with pytest.raises(InvalidPayload) as caught:
        dry_run_requested(incoming({}, query={"dryRun": "maybe"}))
    assert "dryRun" in caught.value.errors
