"""Showing answers: the Outcome as a table, a problem as its fields; and the exit status."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from incident_link_actions_client import ApiError, Outcome, OutcomeStatus

SUCCESS, FAILURE, PARTIAL, INTERRUPTED = 0, 1, 2, 130

_EXIT = {
    OutcomeStatus.SUCCEEDED: SUCCESS,
    OutcomeStatus.PLANNED: SUCCESS,
    OutcomeStatus.SKIPPED: SUCCESS,
    OutcomeStatus.PENDING: SUCCESS,
    OutcomeStatus.PARTIALLY_SUCCEEDED: PARTIAL,
    OutcomeStatus.FAILED: FAILURE,
    OutcomeStatus.UNKNOWN: FAILURE,  # may have acted: not a success to branch on
}
_STYLE = {
    "succeeded": "green",
    "planned": "cyan",
    "pending": "yellow",
    "not_applied": "yellow",
    "unknown": "magenta",
}


def exit_status(outcome: Outcome) -> int:
    """0 succeeded (or planned, skipped, still pending), 2 partially succeeded, 1 failed."""
    return _EXIT[outcome.status]


def outcome_json(outcome: Outcome) -> str:
    return outcome.model_dump_json(by_alias=True, indent=2)


def show_outcome(console: Console, outcome: Outcome) -> None:
    style = _STYLE.get(outcome.status.value, "red")
    console.print(
        f"operation [bold]{outcome.operation_id}[/] · {outcome.action or '-'} · "
        f"[{style}]{outcome.status.value}[/] · attempts {outcome.attempts}"
        + (" · dry run" if outcome.dry_run else "")
    )
    if outcome.reason:
        console.print(f"reason: {outcome.reason}")
    table = Table("#", "target", "status", "message", "upstream", "attempts")
    for item in outcome.items:
        upstream = item.upstream
        where = (
            f"{upstream.name} {upstream.status or ''} {upstream.request_id or ''}".strip()
            if upstream
            else ""
        )
        message = item.message or (item.error.message if item.error else "")
        item_style = _STYLE.get(item.status.value, "red")
        table.add_row(
            str(item.index),
            item.target,
            f"[{item_style}]{item.status.value}[/]",
            message,
            where,
            str(item.attempts),
        )
    if outcome.items:
        console.print(table)


def problem_json(error: ApiError) -> str:
    return json.dumps(error.problem, indent=2)


def show_problem(console: Console, error: ApiError) -> None:
    """A problem: status, code and detail, each field error, named settings, the Outcome."""
    console.print(
        f"[red]HTTP {error.status} {error.code or error.title or ''}[/]: {error.detail or ''}"
    )
    for field, messages in error.errors.items():
        for message in messages:
            console.print(f"  {field or 'body'}: {message}")
    facts: list[tuple[str, Any]] = [
        ("upstream", error.upstream),
        ("upstream status", error.upstream_status),
        ("upstream request id", error.request_id),
        ("retry after (s)", error.retry_after),
        ("settings", ", ".join(error.settings) or None),
        ("operation", error.operation_id),
    ]
    for name, value in facts:
        if value is not None:
            console.print(f"  {name}: {value}")
    if error.outcome is not None:
        show_outcome(console, error.outcome)
