"""Entra callers through App Service Authentication: trusted only when the platform says so,
allowed only when listed, refused with 403 otherwise."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.config import get_settings
from shared.errors import Forbidden, NotConfigured
from shared.principals import authentication_enabled, authorize, read_principal
from tests.principals import (
    LOGIC_APP_CLIENT_ID,
    LOGIC_APP_OBJECT_ID,
    UNKNOWN_CLIENT_ID,
    UNKNOWN_OBJECT_ID,
    encode,
    header_for,
    principal_document,
)

ON = {"WEBSITE_AUTH_ENABLED": "True"}


def allow(*ids: str) -> frozenset[str]:
    return frozenset(i.lower() for i in ids)


def test_an_allowed_client_id_acts_and_is_named_as_the_caller() -> None:
    headers = {"x-ms-client-principal": header_for(LOGIC_APP_CLIENT_ID, LOGIC_APP_OBJECT_ID)}
    principal = authorize(headers, environ=ON, allowed=lambda: allow(LOGIC_APP_CLIENT_ID))
    assert principal is not None
    assert principal.client_id == LOGIC_APP_CLIENT_ID
    assert principal.object_id == LOGIC_APP_OBJECT_ID
    assert principal.caller == f"aad:client={LOGIC_APP_CLIENT_ID};object={LOGIC_APP_OBJECT_ID}"


def test_an_allowed_object_id_acts_whatever_the_client() -> None:
    headers = {"x-ms-client-principal": header_for(UNKNOWN_CLIENT_ID, LOGIC_APP_OBJECT_ID)}
    assert authorize(headers, environ=ON, allowed=lambda: allow(LOGIC_APP_OBJECT_ID.upper()))


def test_a_v2_token_names_its_client_in_azp() -> None:
    headers = {
        "x-ms-client-principal": header_for(LOGIC_APP_CLIENT_ID, UNKNOWN_OBJECT_ID, version="2.0")
    }
    principal = authorize(headers, environ=ON, allowed=lambda: allow(LOGIC_APP_CLIENT_ID))
    assert principal is not None
    assert principal.client_id == LOGIC_APP_CLIENT_ID


def test_an_unknown_principal_is_forbidden_naming_its_ids() -> None:
    headers = {"x-ms-client-principal": header_for(UNKNOWN_CLIENT_ID, UNKNOWN_OBJECT_ID)}
    with pytest.raises(Forbidden) as caught:
        authorize(headers, environ=ON, allowed=lambda: allow(LOGIC_APP_CLIENT_ID))
    assert UNKNOWN_CLIENT_ID in caught.value.message
    assert caught.value.status == 403
    assert "principal" in caught.value.errors


def test_with_no_allow_list_every_entra_caller_is_forbidden() -> None:
    headers = {"x-ms-client-principal": header_for(LOGIC_APP_CLIENT_ID, LOGIC_APP_OBJECT_ID)}
    with pytest.raises(Forbidden):
        authorize(headers, environ=ON, allowed=frozenset)


@pytest.mark.parametrize("flag", ["", "False", "false", "0", "yes", "1"])
def test_a_forged_header_is_ignored_when_app_service_authentication_is_off(flag: str) -> None:
    headers = {"x-ms-client-principal": header_for(UNKNOWN_CLIENT_ID, UNKNOWN_OBJECT_ID)}

    def never() -> frozenset[str]:
        raise AssertionError("the allow-list must not even be consulted")

    assert authorize(headers, environ={"WEBSITE_AUTH_ENABLED": flag}, allowed=never) is None
    assert authorize(headers, environ={}, allowed=never) is None


@pytest.mark.parametrize("flag", ["True", "true", " TRUE "])
def test_the_platform_flag_is_read_as_app_service_writes_it(flag: str) -> None:
    assert authentication_enabled({"WEBSITE_AUTH_ENABLED": flag})


def test_without_a_principal_there_is_nothing_to_check() -> None:
    """A function-key caller or a ContraForce webhook behind Easy Auth's AllowAnonymous."""
    assert authorize({}, environ=ON, allowed=frozenset) is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not base64!",
        base64.b64encode(b"not json").decode(),
        encode({"auth_typ": "aad"}),
        encode({"auth_typ": "aad", "claims": "appid"}),
        encode({"auth_typ": "aad", "claims": [{"typ": "appid"}]}),
        base64.b64encode(b"[1, 2]").decode(),
        "A" * 20_000,
    ],
)
def test_an_unreadable_principal_is_forbidden_not_a_500(value: str) -> None:
    with pytest.raises(Forbidden, match="could not be read"):
        authorize(
            {"x-ms-client-principal": value}, environ=ON, allowed=lambda: allow(UNKNOWN_CLIENT_ID)
        )


def test_a_principal_without_ids_is_forbidden() -> None:
    document = principal_document(LOGIC_APP_CLIENT_ID, LOGIC_APP_OBJECT_ID)
    document["claims"] = [c for c in document["claims"] if "objectidentifier" not in c["typ"]]
    document["claims"] = [c for c in document["claims"] if c["typ"] != "appid"]
    principal = read_principal(encode(document))
    assert principal.ids == frozenset()
    with pytest.raises(Forbidden):
        authorize({"x-ms-client-principal": encode(document)}, environ=ON, allowed=frozenset)


def test_unpadded_base64_is_read() -> None:
    value = header_for(LOGIC_APP_CLIENT_ID, LOGIC_APP_OBJECT_ID).rstrip("=")
    assert read_principal(value).client_id == LOGIC_APP_CLIENT_ID


@given(st.text(max_size=300))
def test_any_header_value_is_a_principal_or_forbidden(value: str) -> None:
    with contextlib.suppress(Forbidden):
        read_principal(value)


def test_allowed_principals_are_read_from_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "ALLOWED_PRINCIPALS", f" {LOGIC_APP_CLIENT_ID.upper()} ,, {UNKNOWN_OBJECT_ID}"
    )
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    assert get_settings().allowed_principal_ids() == {LOGIC_APP_CLIENT_ID, UNKNOWN_OBJECT_ID}
    headers = {"x-ms-client-principal": header_for(LOGIC_APP_CLIENT_ID, LOGIC_APP_OBJECT_ID)}
    assert authorize(headers) is not None


def test_a_malformed_allow_list_fails_settings_by_name_never_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALLOWED_PRINCIPALS", f"{LOGIC_APP_CLIENT_ID},logic-app-secretish")
    with pytest.raises(NotConfigured) as caught:
        get_settings()
    assert caught.value.settings == ("ALLOWED_PRINCIPALS",)
    assert "secretish" not in caught.value.message
