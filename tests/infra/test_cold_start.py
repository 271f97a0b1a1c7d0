"""What the template does to a cold start, and what bench P2's "runtime deps only" line assumes
of it."""

from __future__ import annotations

from importlib.metadata import entry_points

from packaging.utils import canonicalize_name

from bench.p2_import import DEPLOYED_SETTINGS, runtime_distributions
from tests.infra.templates import Templates


def test_the_deployed_app_skips_pydantics_plugin_scan(real: Templates) -> None:
    """pydantic looks for plugins when it builds its first validator: it reads the entry points
    of every installed distribution, unless PYDANTIC_DISABLE_PLUGINS is `__all__`, `1` or `true`
    (pydantic/plugin/_loader.py, get_plugins, added by pydantic#8767 "Environment variable to
    disable plugins"; plugins are entry points of the group `pydantic`, docs.pydantic.dev
    "Pydantic Plugins"). Bench P2 measures the deployed import with the template's settings."""
    settings = dict(real.app_settings())
    assert settings["PYDANTIC_DISABLE_PLUGINS"] == "__all__"
    assert {name: settings.get(name) for name in DEPLOYED_SETTINGS} == DEPLOYED_SETTINGS


def test_no_distribution_installed_with_the_app_is_a_pydantic_plugin() -> None:
    """Turning pydantic's plugins off loses nothing only while the app ships none (logfire, for
    one, is a pydantic plugin)."""
    runtime = runtime_distributions()
    assert {"pydantic", "pydantic-settings", "azure-functions"} <= runtime
    plugins = [
        f"{point.dist.name if point.dist else '?'}: {point.name}"
        for point in entry_points(group="pydantic")
        if point.dist is None or canonicalize_name(point.dist.name) in runtime
    ]
    assert plugins == []
