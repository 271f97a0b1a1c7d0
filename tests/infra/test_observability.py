"""The workbook and the alert rules watch what the app records, and notify the action group.

Each rule of tests/infra/templates.py runs on the real templates (no problems) and on copies with
one regression written in. The names the queries read (`ila.*`) are checked against the names
shared/telemetry.py and shared/actions.py record, so a renamed metric cannot leave a dashboard
or an alert silently empty.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.templates import (
    INFRA,
    OBSERVABILITY,
    ROOT,
    WORKBOOK,
    Templates,
    alert_rules,
    telemetry_names,
    workbook,
)


@pytest.fixture(scope="module")
def content() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((INFRA / WORKBOOK).read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def known() -> set[str]:
    return telemetry_names()


def test_the_workbook_has_every_panel_over_names_the_app_records(
    real: Templates, content: dict[str, Any], known: set[str]
) -> None:
    assert workbook(real, content, known) == []


def test_the_alert_rules_watch_what_the_issue_asks_and_notify_the_action_group(
    real: Templates, known: set[str]
) -> None:
    assert alert_rules(real, known) == []


def test_the_queries_read_names_the_app_records() -> None:
    assert {"ila.actions", "ila.upstream.attempts", "ila.correlation_id"} <= telemetry_names()


def mutated(sources: dict[str, str], old: str, new: str) -> Templates:
    text = sources[OBSERVABILITY]
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return Templates.parse({**sources, OBSERVABILITY: text.replace(old, new)})


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        (
            "    actions: {\n      actionGroups: actionGroups\n    }\n  }\n}\n\nresource failure",
            "    actions: {\n      actionGroups: []\n    }\n  }\n}\n\nresource failure",
            "action groups",
        ),
        ('== "401"', '== "403"', "an upstream answering 401"),
        (
            "where failurePercent > ${failureRate",
            "where failurePercent > 50 // ${x",
            "failure rate",
        ),
        ("category: 'StorageWrite'", "category: 'StorageRead'", "StorageWrite"),
        ('"ila.upstream.attempts"', '"ila.upstream.attempt_count"', "never records"),
        (
            "    enabled: true\n    evaluationFrequency: 'PT5M'\n    windowSize: 'PT15M'",
            "    enabled: false\n    evaluationFrequency: 'PT5M'\n    windowSize: 'PT15M'",
            "enabled",
        ),
        (
            "var actionGroups = empty(actionGroupId) ? [] : [",
            "var actionGroups = true ? [] : [",
            "var actionGroups",
        ),
    ],
)
def test_a_broken_alert_rule_is_named(
    sources: dict[str, str], known: set[str], old: str, new: str, complaint: str
) -> None:
    problems = alert_rules(mutated(sources, old, new), known)
    assert any(complaint in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ("ila.operations.poisoned", "ila.operations.poison", "poison count"),
        ("percentile(DurationMs, 95)", "max(DurationMs)", "p50/p95"),
        ('"timeContextFromParameter": "TimeRange",', "", "ignores the TimeRange"),
        (
            'Properties[\\"ila.correlation_id\\"]',
            'Properties[\\"ila.correlation\\"]',
            "never records",
        ),
    ],
)
def test_a_broken_workbook_is_named(
    real: Templates, known: set[str], old: str, new: str, complaint: str
) -> None:
    text = (INFRA / WORKBOOK).read_text(encoding="utf-8")
    assert old in text, old
    problems = workbook(real, json.loads(text.replace(old, new, 1)), known)
    assert any(complaint in problem for problem in problems), problems


def test_opentelemetry_is_enabled_for_host_and_python_worker(real: Templates) -> None:
    """Azure Functions' OpenTelemetry (Flex Consumption): `"telemetryMode": "OpenTelemetry"` at
    the root of host.json (learn.microsoft.com/azure/azure-functions/opentelemetry-howto,
    "Enable OpenTelemetry in the Functions host"), with APPLICATIONINSIGHTS_CONNECTION_STRING as
    the destination (same page, "Configure application settings"), and the Python worker's
    PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true: the worker then configures the Azure
    Monitor distro itself at start (Azure/azure-functions-python-worker, its dispatcher's
    worker_init_request calls initialize_azure_monitor() when the setting is true) and joins
    each invocation to the host's trace context, so host and worker spans form one trace."""
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    assert host["telemetryMode"] == "OpenTelemetry"
    settings = dict(real.app_settings())
    assert settings["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"] == "true"
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in settings
    disabled = str(settings["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"]).split(",")
    assert "httpx" in disabled  # the app's own span per attempt; httpx's would be a second
    requirements = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert any(line.startswith("azure-monitor-opentelemetry==") for line in requirements)
