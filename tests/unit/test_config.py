"""Settings refuse what the upstream boundary must never carry or exceed (issue 25)."""

from __future__ import annotations

import traceback

import pytest

from shared.config import get_settings
from shared.errors import NotConfigured

PASSWORD = "PASS-never-shown"


@pytest.mark.parametrize(
    "setting",
    [
        "CONTRAFORCE_BASE_URL",
        "D3_BASE_URL",
        "PUBLIC_BASE_URL",
        "AzureWebJobsStorage__queueServiceUri",
        "AzureWebJobsStorage__tableServiceUri",
    ],
)
@pytest.mark.parametrize("userinfo", [f"u:{PASSWORD}@", "u@", f":{PASSWORD}@"])
def test_finding_12_a_url_with_userinfo_is_refused_at_start_naming_the_setting_not_its_value(
    monkeypatch: pytest.MonkeyPatch, setting: str, userinfo: str
) -> None:
    monkeypatch.setenv(setting, f"http://{userinfo}host.example/api/v2")
    with pytest.raises(NotConfigured) as caught:
        get_settings()
    assert caught.value.settings == (setting,)
    assert setting in caught.value.message
    shown = "".join(traceback.format_exception(caught.value))  # the chained cause too
    assert PASSWORD not in shown
    assert "host.example" not in shown


def test_a_url_without_userinfo_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("D3_BASE_URL", "https://d3.example/MainApp/VSOC/api")
    assert get_settings().d3_base() == "https://d3.example/MainApp/VSOC/api"


@pytest.mark.parametrize("value", ["100", "1000000000"])
def test_max_upstream_body_bytes_is_bounded(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MAX_UPSTREAM_BODY_BYTES", value)
    with pytest.raises(NotConfigured) as caught:
        get_settings()
    assert caught.value.settings == ("MAX_UPSTREAM_BODY_BYTES",)


def test_max_upstream_body_bytes_defaults_to_one_mebibyte() -> None:
    assert get_settings().max_upstream_body_bytes == 1_048_576
