"""Every KQL query the project ships compiles, by Kusto's own language service, against the
columns Microsoft documents for the tables it reads.

`@kusto/language-service-next` (Microsoft's Kusto language service for JavaScript, pinned in
package.json) parses and semantically analyses each query, as Azure Monitor's query editor does:
an unknown table, column or function, a wrong argument type or a syntax error is a diagnostic, and
any diagnostic fails. The schemas are tests/infra/data/log_analytics_tables.json, transcribed from
https://learn.microsoft.com/azure/azure-monitor/reference/tables/ (one source per table).
"""

from __future__ import annotations

import json

import pytest

from tests.infra.kql import TABLES, Described, describe, shipped_queries, table_schemas

QUERIES = shipped_queries()


@pytest.fixture(scope="module")
def compiled() -> dict[str, Described]:
    return describe(QUERIES)


@pytest.mark.parametrize("where", sorted(QUERIES))
def test_the_query_compiles_against_the_documented_table_columns(
    compiled: dict[str, Described], where: str
) -> None:
    assert compiled[where].diagnostics == ()
    assert compiled[where].tables  # it reads at least one documented table


def test_every_panel_alert_and_readme_block_is_compiled() -> None:
    kinds = {where.split(" ", 1)[0] for where in QUERIES}
    assert kinds == {"workbook", "alert", "README"}
    assert sum(where.startswith("alert ") for where in QUERIES) == 4


def test_each_table_names_its_microsoft_source() -> None:
    document = json.loads(TABLES.read_text(encoding="utf-8"))
    for name, table in document["tables"].items():
        assert table["source"].startswith("https://learn.microsoft.com/azure/azure-monitor/"), name
        assert len(table["columns"]) > 10, name


@pytest.mark.parametrize(
    ("query", "diagnostic"),
    [
        ("AppMetrics | summarize sum(Count)", "'Count'"),  # AppMetrics has ItemCount, not Count
        ("AppDependencies | where Typ == 'HTTP'", "'Typ'"),
        ("AppRequests | where toint(ResultCode) >= ", "KS"),
        ("AppTraces | summarize percentil(SeverityLevel, 50)", "'percentil'"),
        ("customMetrics | take 1", "'customMetrics'"),  # no such table in the data
    ],
)
def test_a_wrong_query_is_reported(query: str, diagnostic: str) -> None:
    [found] = describe({"q": query}, table_schemas()).values()
    assert any(diagnostic in line for line in found.diagnostics), found.diagnostics


def test_what_a_query_reads_and_filters_is_told_column_by_column() -> None:
    [found] = describe(
        {"q": 'AppMetrics | where Name in ("a", "b") and tostring(Properties["s"]) == "x"'}
    ).values()
    reads = {(r.table, r.column, r.key) for r in found.reads}
    assert {("AppMetrics", "Name", None), ("AppMetrics", "Properties", "s")} <= reads
    assert {(f.read.column, f.read.key, f.values) for f in found.filters} == {
        ("Name", None, ("a", "b")),
        ("Properties", "s", ("x",)),
    }
