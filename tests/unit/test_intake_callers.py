"""What real callers send is taken; what attackers send is refused with a 4xx naming the field.

Issue 12: Sentinel-triggered Logic Apps send integer incident numbers, scripts copy ContraForce's
own `IncidentReference` (with `workspaceId`), dry-run flags come in any case and without a
value, and hostile bodies carry huge integers, Unicode controls or someone else's D3 identity.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from incident_link_api.commands import RemoveLinkedIncidents, UnlinkTicket
from shared.config import Settings, get_settings, reset_settings
from shared.errors import Forbidden, InvalidPayload, NotConfigured, RequestRejected
from shared.intake import (
    Incoming,
    Parser,
    canonical_remove,
    canonical_unlink,
    contraforce_mirror,
    d3_mirror,
    decode_json,
    dry_run_requested,
    query_of,
)

WS = "7b2d8c1e-0f4a-4c5e-9a51-2d1f0e6b9c3a"
OTHER_WS = "3f2a6c1e-8b7d-4c55-9a10-2f6e7d8c9b01"
SETTINGS = Settings.model_validate({"d3_default_username": "Admin", "d3_default_site": "SOC"})


def incoming(body: Any, *, query: str = "", route: dict[str, str] | None = None) -> Incoming:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Incoming(raw, "application/json", route or {}, query_of(f"http://h/api/x?{query}"))


def unlink_of(commands: list[Any]) -> UnlinkTicket:
    [command] = commands
    assert isinstance(command, UnlinkTicket)
    return command


def remove_of(commands: list[Any]) -> RemoveLinkedIncidents:
    [command] = commands
    assert isinstance(command, RemoveLinkedIncidents)
    return command


# ---- integer incident numbers ------------------------------------------------------------


def test_canonical_unlink_takes_an_integer_number_and_sends_its_decimal_string() -> None:
    body = {"workspaceId": WS, "incident": {"number": 1002, "source": "Sentinel"}}
    command = unlink_of(canonical_unlink(incoming(body), SETTINGS))
    assert command.incident.number == "1002"
    assert command.incident.model_dump(by_alias=True, exclude_none=True)["number"] == "1002"


def test_contraforce_mirror_takes_an_integer_number() -> None:
    body = {"incident": {"number": 1002}}
    command = unlink_of(contraforce_mirror(incoming(body, route={"workspaceId": WS}), SETTINGS))
    assert command.incident.number == "1002"


def test_d3_envelope_takes_integer_incident_numbers() -> None:
    body = {
        "CommandParams": {
            "Linked Incident Numbers to be Removed": [198, "20210127-197"],
            "Source Incident Number": 130,
        }
    }
    command = remove_of(d3_mirror(incoming(body), SETTINGS))
    assert (command.source_incident, command.linked_incidents) == ("130", ("198", "20210127-197"))


def test_canonical_remove_takes_integer_incident_numbers() -> None:
    body = {"sourceIncident": 130, "linkedIncidents": [131, 132]}
    command = remove_of(canonical_remove(incoming(body), SETTINGS))
    assert (command.source_incident, command.linked_incidents) == ("130", ("131", "132"))


@pytest.mark.parametrize("number", [True, 1002.0, 1e3, [1002], {"n": 1}])
def test_booleans_floats_and_containers_are_not_incident_numbers(number: Any) -> None:
    body = {"workspaceId": WS, "incident": {"number": number}}
    with pytest.raises(InvalidPayload) as caught:
        canonical_unlink(incoming(body), SETTINGS)
    assert list(caught.value.errors) == ["incident.number"]


def test_an_integer_too_long_for_a_number_is_refused_naming_the_field() -> None:
    body = {"sourceIncident": 10**70, "linkedIncidents": ["1"]}
    with pytest.raises(InvalidPayload) as caught:
        canonical_remove(incoming(body), SETTINGS)
    assert list(caught.value.errors) == ["sourceIncident"]


# ---- ContraForce's IncidentReference inside the canonical body ---------------------------


def test_canonical_incident_may_carry_the_same_workspace_id() -> None:
    body = {"workspaceId": WS, "incident": {"workspaceId": WS.upper(), "number": "1"}}
    command = unlink_of(canonical_unlink(incoming(body), SETTINGS))
    assert (str(command.workspace_id), command.incident.workspace_id) == (WS, WS)


def test_canonical_incident_workspace_id_may_stand_alone() -> None:
    body = {"incident": {"workspaceId": WS, "number": "1", "source": "Sentinel"}}
    command = unlink_of(canonical_unlink(incoming(body), SETTINGS))
    assert str(command.workspace_id) == WS


def test_differing_workspace_ids_are_400_naming_both_fields() -> None:
    body = {"items": [{"workspaceId": WS, "incident": {"workspaceId": OTHER_WS, "id": "i"}}]}
    with pytest.raises(InvalidPayload) as caught:
        canonical_unlink(incoming(body), SETTINGS)
    assert sorted(caught.value.errors) == ["items[0].incident.workspaceId", "items[0].workspaceId"]


def test_no_workspace_id_anywhere_is_400_naming_it() -> None:
    with pytest.raises(InvalidPayload) as caught:
        canonical_unlink(incoming({"incident": {"id": "i"}}), SETTINGS)
    assert list(caught.value.errors) == ["workspaceId"]


def test_incident_workspace_id_must_be_a_uuid() -> None:
    body = {"incident": {"workspaceId": "abc", "id": "i"}}
    with pytest.raises(InvalidPayload) as caught:
        canonical_unlink(incoming(body), SETTINGS)
    assert list(caught.value.errors) == ["incident.workspaceId"]


# ---- the dry-run flag and the rest of the query ------------------------------------------


def test_query_of_keeps_empty_values_repeats_and_order() -> None:
    assert query_of("http://h/api/x?dryRun&code=k&dryRun=&a=%0A") == (
        ("dryRun", ""),
        ("code", "k"),
        ("dryRun", ""),
        ("a", "\n"),
    )


@pytest.mark.parametrize(
    "query",
    ["dryRun", "dryRun=", "dryrun", "DRYRUN=", "dryrun=true", "DryRun=TRUE", "dryRun=1",
     "dryRun=%20true%20", "dryRun&dryRun=true", "code=key&dryRun"],
)  # fmt: skip
def test_a_dry_run_flag_in_any_case_with_or_without_a_value_is_a_dry_run(query: str) -> None:
    assert dry_run_requested(incoming({}, query=query)) is True


@pytest.mark.parametrize("query", ["", "code=key", "dryRun=false", "DRYRUN=0", "CODE=key"])
def test_no_flag_or_a_false_flag_is_no_dry_run(query: str) -> None:
    assert dry_run_requested(incoming({}, query=query)) is False


@pytest.mark.parametrize("query", ["dryRun=maybe", "dryrun=yes", "dryRun=true%00"])
def test_a_flag_that_is_not_a_boolean_is_400_naming_dry_run(query: str) -> None:
    with pytest.raises(InvalidPayload) as caught:
        dry_run_requested(incoming({}, query=query))
    assert list(caught.value.errors) == ["dryRun"]


def test_a_flag_given_twice_with_different_values_is_400() -> None:
    with pytest.raises(InvalidPayload) as caught:
        dry_run_requested(incoming({}, query="dryRun=true&dryrun=false"))
    assert list(caught.value.errors) == ["dryRun"]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("dry_run=true", ["dry_run"]),
        ("dryRun&verbose=1&x", ["verbose", "x"]),
        ("=true", [""]),
        ("d%0Aryrun", ["d\nryrun"]),
    ],
)
def test_unknown_query_parameters_are_400_naming_each(query: str, named: list[str]) -> None:
    with pytest.raises(InvalidPayload) as caught:
        dry_run_requested(incoming({}, query=query))
    assert sorted(caught.value.errors) == named


# ---- hostile bodies ----------------------------------------------------------------------


def test_an_integer_literal_over_4300_digits_is_malformed_json() -> None:
    with pytest.raises(RequestRejected) as caught:
        decode_json(b'{"n": ' + b"9" * 4301 + b"}")
    assert (caught.value.status, caught.value.code) == (400, "MALFORMED_JSON")


@pytest.mark.parametrize(
    "parse", [canonical_unlink, canonical_remove, contraforce_mirror, d3_mirror]
)
def test_every_parser_refuses_a_huge_integer_as_malformed_json(parse: Parser) -> None:
    body = b'{"workspaceId": ' + b"1" * 5000 + b"}"
    with pytest.raises(RequestRejected) as caught:
        parse(incoming(body, route={"workspaceId": WS}), SETTINGS)
    assert caught.value.code == "MALFORMED_JSON"


REFUSED = ["\u0085", "\u2028", "\u2029", "\u202e", "\u200b", "\ufeff", "\x00", "\x1b", "\t"]


@pytest.mark.parametrize("char", REFUSED)
def test_control_format_and_separator_characters_inside_identifiers_are_refused(
    char: str,
) -> None:
    body = {"workspaceId": WS, "incident": {"id": f"a{char}b", "number": f"1{char}2"}}
    with pytest.raises(InvalidPayload) as caught:
        canonical_unlink(incoming(body), SETTINGS)
    assert sorted(caught.value.errors) == ["incident.id", "incident.number"]
    assert f"U+{ord(char):04X}" in caught.value.message


@pytest.mark.parametrize("char", REFUSED)
def test_control_characters_in_d3_names_and_numbers_are_refused(char: str) -> None:
    body = {
        "Username": f"Ad{char}min",
        "Site": "SOC",
        "CommandParams": {
            "Linked Incident Numbers to be Removed": [f"1{char}9"],
            "Source Incident Number": "1",
        },
    }
    with pytest.raises(InvalidPayload) as caught:
        d3_mirror(incoming(body), SETTINGS)
    assert sorted(caught.value.errors) == [
        "CommandParams.Linked Incident Numbers to be Removed[0]",
        "Username",
    ]


def test_printable_unicode_is_still_an_identifier() -> None:
    body = {"workspaceId": WS, "incident": {"id": "Vorfall-ü-事件-1"}}
    assert unlink_of(canonical_unlink(incoming(body), SETTINGS)).incident.id == "Vorfall-ü-事件-1"


# ---- who the caller may act as on D3 -----------------------------------------------------


def d3_body(username: str | None = None, site: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "CommandParams": {
            "Linked Incident Numbers to be Removed": ["2"],
            "Source Incident Number": "1",
        }
    }
    if username is not None:
        body["Username"] = username
    if site is not None:
        body["Site"] = site
    return body


@pytest.mark.parametrize(
    ("username", "site"), [("Mallory", "SOC"), ("Admin", "Other"), ("admin", "SOC")]
)
def test_by_default_only_the_default_identity_may_be_named(username: str, site: str) -> None:
    with pytest.raises(Forbidden) as caught:
        d3_mirror(incoming(d3_body(username, site)), SETTINGS)
    assert (caught.value.status, sorted(caught.value.errors)) == (403, ["Site", "Username"])
    assert "D3_ALLOWED_IDENTITIES" in caught.value.message


def test_the_default_identity_named_explicitly_is_allowed() -> None:
    command = remove_of(d3_mirror(incoming(d3_body("Admin", "SOC")), SETTINGS))
    assert (command.username, command.site) == ("Admin", "SOC")


def test_allowed_identities_replace_the_default_one() -> None:
    settings = Settings.model_validate(
        {
            "d3_default_username": "Admin",
            "d3_default_site": "SOC",
            "d3_allowed_identities": "Admin@SOC, soc.bot@corp.example@Security Operations",
        }
    )
    body = {"username": "soc.bot@corp.example", "site": "Security Operations", **d3_canonical()}
    command = remove_of(canonical_remove(incoming(body), settings))
    assert command.username == "soc.bot@corp.example"
    with pytest.raises(Forbidden) as caught:
        canonical_remove(incoming({"site": "Other", **d3_canonical()}), settings)
    assert sorted(caught.value.errors) == ["site", "username"]


def d3_canonical() -> dict[str, Any]:
    return {"sourceIncident": "1", "linkedIncidents": ["2"]}


def test_identities_without_defaults_or_allow_list_are_all_refused() -> None:
    with pytest.raises(Forbidden):
        d3_mirror(incoming(d3_body("Admin", "SOC")), Settings())


def test_a_malformed_allow_list_is_a_setting_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("D3_ALLOWED_IDENTITIES", "Admin@SOC,nobody")
    reset_settings()
    with pytest.raises(NotConfigured) as caught:
        get_settings()
    assert caught.value.settings == ("D3_ALLOWED_IDENTITIES",)
    assert "nobody" not in caught.value.message


# ---- Sentinel's identifiers and D3's blank source (issue 26) -----------------------------

ARM_ID = (
    "/subscriptions/d1d8779d-38d7-4f06-91db-9cbc8de0176f/resourceGroups/soc-rg/providers/"
    "Microsoft.OperationalInsights/workspaces/soc-law/providers/Microsoft.SecurityInsights/"
    "Incidents/73e01a99-5cd7-4139-a149-9f2736ff2ab5"
)
GUID = "73e01a99-5cd7-4139-a149-9f2736ff2ab5"


@pytest.mark.parametrize(
    ("incident", "field"),
    [
        ({"id": ARM_ID}, "incident.id"),
        ({"number": ARM_ID}, "incident.number"),
        ({"number": GUID, "source": "Sentinel"}, "incident.number"),
        ({"number": GUID.upper()}, "incident.number"),
    ],
)
def test_sentinel_identifier_where_the_number_belongs_is_a_400_saying_what_to_send(
    incident: dict[str, str], field: str
) -> None:
    with pytest.raises(InvalidPayload) as refused:
        canonical_unlink(incoming({"workspaceId": WS, "incident": incident}), SETTINGS)
    assert refused.value.code == "SENTINEL_IDENTIFIER"
    assert list(refused.value.errors or {}) == [field]
    assert "properties.incidentNumber" in refused.value.message


def test_sentinel_identifier_in_a_bulk_item_is_named_by_its_index() -> None:
    body = {"items": [{"workspaceId": WS, "incident": {"number": "1"}},
                      {"workspaceId": WS, "incident": {"id": ARM_ID}}]}  # fmt: skip
    with pytest.raises(InvalidPayload) as refused:
        canonical_unlink(incoming(body), SETTINGS)
    assert list(refused.value.errors or {}) == ["items[1].incident.id"]


def test_guid_incident_id_is_a_valid_contraforce_id_whatever_the_source() -> None:
    for source in ("Sentinel", "DefenderXDR", None):
        body = {"workspaceId": WS, "incident": {"id": GUID, "source": source}}
        assert unlink_of(canonical_unlink(incoming(body), SETTINGS)).incident.id == GUID


def test_sentinel_arm_id_on_the_contraforce_mirror_is_the_same_400() -> None:
    with pytest.raises(InvalidPayload) as refused:
        contraforce_mirror(
            incoming({"incident": {"id": ARM_ID}}, route={"workspaceId": WS}), SETTINGS
        )
    assert refused.value.code == "SENTINEL_IDENTIFIER"


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_d3_source_is_taken_on_the_d3_route_as_d3_takes_it(blank: str) -> None:
    body = {"CommandParams": {"Linked Incident Numbers to be Removed": ["7"],
                              "Source Incident Number": blank}}  # fmt: skip
    assert remove_of(d3_mirror(incoming(body), SETTINGS)).source_incident == ""


def test_blank_source_on_the_canonical_route_is_a_400_naming_it() -> None:
    with pytest.raises(InvalidPayload) as refused:
        canonical_remove(incoming({"sourceIncident": " ", "linkedIncidents": ["7"]}), SETTINGS)
    assert list(refused.value.errors or {}) == ["sourceIncident"]
