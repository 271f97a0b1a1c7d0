"""Every KQL query the project ships, and what Kusto's own language service makes of them.

The queries: the workbook's panels (infra/modules/workbook.json), the alert rules'
(infra/modules/observability.bicep) and the README's ```kusto blocks. `describe` compiles them
all in one Node process with `@kusto/language-service-next` (pinned in package.json), through
tools/kql_check.js, against the table schemas in tests/infra/data/log_analytics_tables.json
(transcribed from Microsoft's Azure Monitor Logs table reference, each table with its source).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tests.infra.templates import INFRA, OBSERVABILITY, WORKBOOK, Templates, read_sources

ROOT = Path(__file__).resolve().parents[2]
TABLES = Path(__file__).parent / "data" / "log_analytics_tables.json"
RUNNER = ROOT / "tools" / "kql_check.js"
README = ROOT / "README.md"
# Workbook parameters are replaced before a panel's query runs
# (https://learn.microsoft.com/azure/azure-monitor/visualize/workbooks-parameters); `grain` is a
# timespan the workbook picks for the time range.
WORKBOOK_PARAMETERS = {"{TimeRange:grain}": "1h"}
# Bicep interpolations in the alert queries: a value of each parameter's type.
ALERT_PARAMETERS = {
    "storageAccountName": "stlinkactions0123",
    "poisonQueueName": "link-actions-poison",
    "failureRateMinimumActions": "5",
    "failureRateThresholdPercent": "20",
}
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_KUSTO_BLOCK = re.compile(r"```(?:kusto|kql)\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class Read:
    """A table column a query reads; `key` for one element of a dynamic column."""

    table: str | None  # None where the language service ties the column to no one table
    column: str
    key: str | None


@dataclass(frozen=True)
class Filter:
    """An `==` or `in` comparison of a read with string literals."""

    read: Read
    values: tuple[str, ...]


@dataclass(frozen=True)
class Described:
    diagnostics: tuple[str, ...]
    tables: tuple[str, ...]
    reads: tuple[Read, ...]
    filters: tuple[Filter, ...]


def table_schemas() -> dict[str, list[tuple[str, str]]]:
    document = json.loads(TABLES.read_text(encoding="utf-8"))
    return {
        name: [(column, type_) for column, type_ in table["columns"]]
        for name, table in document["tables"].items()
    }


def workbook_queries(content: dict[str, Any]) -> dict[str, str]:
    queries: dict[str, str] = {}
    for item in content.get("items", []):
        if item.get("type") != 3:
            continue
        text = str(item["content"].get("query", ""))
        for parameter, value in WORKBOOK_PARAMETERS.items():
            text = text.replace(parameter, value)
        queries[f"workbook {item.get('name')}"] = text
    return queries


def _interpolated(text: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in ALERT_PARAMETERS:
            raise KeyError(f"an alert query interpolates {name}: add a value to ALERT_PARAMETERS")
        return ALERT_PARAMETERS[name]

    return _INTERPOLATION.sub(value, text)


def alert_queries(t: Templates) -> dict[str, str]:
    return {
        f"alert {rule.name}": _interpolated(str(criterion.get("query", "")))
        for rule in t.created("Microsoft.Insights/scheduledQueryRules")
        if rule.file == OBSERVABILITY
        for criterion in (rule.get("properties", "criteria", "allOf") or [])
    }


def readme_queries(text: str) -> dict[str, str]:
    """Each query of each ```kusto block: a line that does not start with `|` or a space
    starts a new one."""
    queries: dict[str, str] = {}
    for number, block in enumerate(_KUSTO_BLOCK.findall(text), start=1):
        current: list[str] = []
        found: list[str] = []
        for line in block.splitlines():
            if line.strip() and not line.startswith(("|", " ", "\t")) and current:
                found.append("\n".join(current))
                current = []
            if line.strip():
                current.append(line)
        if current:
            found.append("\n".join(current))
        for index, query in enumerate(found, start=1):
            queries[f"README block {number} query {index}"] = query
    return queries


@cache
def shipped_queries() -> dict[str, str]:
    """Every query the project ships, by where it is."""
    content: dict[str, Any] = json.loads((INFRA / WORKBOOK).read_text(encoding="utf-8"))
    return {
        **workbook_queries(content),
        **alert_queries(Templates.parse(read_sources())),
        **readme_queries(README.read_text(encoding="utf-8")),
    }


def describe(
    queries: dict[str, str], tables: dict[str, list[tuple[str, str]]] | None = None
) -> dict[str, Described]:
    """Compile `queries` with Kusto's language service (one Node process for all)."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH: the KQL checks need Node.js (README, Develop)")
    request = {"tables": table_schemas() if tables is None else tables, "queries": queries}
    result = subprocess.run(  # noqa: S603 - node, our script, JSON on stdin
        [node, str(RUNNER)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    answer: dict[str, Any] = json.loads(result.stdout)

    def read(item: dict[str, Any]) -> Read:
        return Read(item["table"], item["column"], item["key"])

    return {
        name: Described(
            diagnostics=tuple(
                f"{d['severity']} {d['code']}: {d['message']} (at …{d['excerpt']}…)"
                for d in found["diagnostics"]
            ),
            tables=tuple(found["tables"]),
            reads=tuple(read(r) for r in found["reads"]),
            filters=tuple(Filter(read(f), tuple(f["values"])) for f in found["filters"]),
        )
        for name, found in answer.items()
    }
