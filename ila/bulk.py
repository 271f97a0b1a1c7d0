"""`ila bulk FILE`: many actions from CSV or JSON lines, in batches, with progress and a summary.

Rows are checked before anything is sent (a bad row stops the run, naming its line). Rows are
sent in batches of at most `batch_size` per action (the app's MAX_BULK_ITEMS), each batch as
one bulk call whose Idempotency-Key is made from its content, so running the same file again
after an interruption repeats no effect: batches that ran answer from their record.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ila.render import FAILURE, INTERRUPTED, PARTIAL, SUCCESS
from incident_link_actions_client import (
    ApiError,
    Client,
    ContentTooLargeError,
    LinkActionsError,
    Outcome,
    RemoveLinkedIncidentsInput,
    UnlinkTicketInput,
)
from incident_link_actions_client._core import Action

DEFAULT_BATCH_SIZE = 100  # the app's MAX_BULK_ITEMS default
ACTIONS: dict[str, Action] = {
    "unlink": "unlink_ticket",
    "unlink-ticket": "unlink_ticket",
    "unlink_ticket": "unlink_ticket",
    "remove": "remove_linked_incidents",
    "remove-linked-incidents": "remove_linked_incidents",
    "remove_linked_incidents": "remove_linked_incidents",
}
CSV_COLUMNS = (
    "action",
    "workspaceId",
    "incidentId",
    "incidentNumber",
    "source",
    "sourceIncident",
    "linkedIncidents",
    "site",
    "username",
)
_LIST_SEPARATORS = re.compile(r"[\s;|,]+")

Input = UnlinkTicketInput | RemoveLinkedIncidentsInput


class BadRow(ValueError):
    """A row that cannot become an action; nothing is sent."""


@dataclass(frozen=True)
class Row:
    line: int
    action: Action
    request: Input


@dataclass(frozen=True)
class Batch:
    number: int
    action: Action
    rows: tuple[Row, ...]

    @property
    def lines(self) -> str:
        first, last = self.rows[0].line, self.rows[-1].line
        return f"line {first}" if first == last else f"lines {first}-{last}"

    def idempotency_key(self, *, dry_run: bool) -> str:
        """The same rows give the same key: a rerun repeats no effect."""
        items = [row.request.model_dump(mode="json", by_alias=True) for row in self.rows]
        canonical = json.dumps([self.action, dry_run, items], sort_keys=True)
        return "ila-bulk-" + hashlib.sha256(canonical.encode()).hexdigest()[:48]


# ---- reading ----------------------------------------------------------------------------------


def read_rows(path: Path) -> list[Row]:
    """Every row of a CSV (header row first) or JSON lines file, checked; `BadRow` otherwise."""
    text = path.read_text(encoding="utf-8-sig")
    is_json = path.suffix.lower() in {".jsonl", ".ndjson", ".json"} or text.lstrip().startswith("{")
    rows = list(_json_lines(text) if is_json else _csv_rows(text))
    if not rows:
        raise BadRow(f"{path}: no rows")
    return [_row(path, line, data) for line, data in rows]


def _json_lines(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise BadRow(f"line {line}: not JSON: {exc.msg} at column {exc.colno}") from exc
        if not isinstance(data, dict):
            raise BadRow(f"line {line}: expected a JSON object")
        yield line, data


def _csv_rows(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(text.splitlines())
    unknown = [name for name in reader.fieldnames or () if name not in CSV_COLUMNS]
    if unknown:
        raise BadRow(f"line 1: unknown column(s) {unknown}; known: {', '.join(CSV_COLUMNS)}")
    for record in reader:
        cells = {k: v.strip() for k, v in record.items() if k and isinstance(v, str) and v.strip()}
        if cells:
            yield reader.line_num, _from_csv(cells)


def _from_csv(cells: dict[str, str]) -> dict[str, Any]:
    if "sourceIncident" in cells or "linkedIncidents" in cells:
        data: dict[str, Any] = {
            key: cells[key]
            for key in ("action", "sourceIncident", "site", "username")
            if key in cells
        }
        data["linkedIncidents"] = [
            part for part in _LIST_SEPARATORS.split(cells.get("linkedIncidents", "")) if part
        ]
        return data
    incident = {
        "id": cells.get("incidentId"),
        "number": cells.get("incidentNumber"),
        "source": cells.get("source"),
    }
    data = {k: v for k, v in cells.items() if k in {"action", "workspaceId"}}
    data["incident"] = {k: v for k, v in incident.items() if v is not None}
    return data


def _row(path: Path, line: int, data: dict[str, Any]) -> Row:
    data = dict(data)
    named = data.pop("action", None)
    if named is not None:
        action = ACTIONS.get(str(named).strip().lower())
        if action is None:
            raise BadRow(f"{path} line {line}: unknown action {named!r}; use unlink or remove")
    elif "workspaceId" in data:
        action = "unlink_ticket"
    elif "sourceIncident" in data:
        action = "remove_linked_incidents"
    else:
        raise BadRow(f"{path} line {line}: needs workspaceId (unlink) or sourceIncident (remove)")
    model = UnlinkTicketInput if action == "unlink_ticket" else RemoveLinkedIncidentsInput
    try:
        request: Input = model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'row'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise BadRow(f"{path} line {line}: {problems}") from exc
    if isinstance(request, UnlinkTicketInput) and not (
        request.incident.id or request.incident.number
    ):
        raise BadRow(f"{path} line {line}: incident needs an id or a number")
    return Row(line, action, request)


def batches_of(rows: Sequence[Row], size: int) -> list[Batch]:
    """Rows grouped by action (in the order each action first appears), `size` at most each."""
    by_action: dict[Action, list[Row]] = {}
    for row in rows:
        by_action.setdefault(row.action, []).append(row)
    found: list[Batch] = []
    for action, group in by_action.items():
        for start in range(0, len(group), size):
            found.append(Batch(len(found) + 1, action, tuple(group[start : start + size])))
    return found


# ---- running ----------------------------------------------------------------------------------


@dataclass
class Tally:
    """What ran: item results by status, and batches that failed as a whole."""

    items: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    done_rows: int = 0
    done_batches: list[int] = field(default_factory=list)

    def count(self, outcome: Outcome) -> None:
        self.items.update(item.status.value for item in outcome.items)

    def exit_status(self) -> int:
        good = self.items["succeeded"] + self.items["planned"]
        total = sum(self.items.values())
        if total and good == total:
            return SUCCESS
        return PARTIAL if good else FAILURE


def _send(client: Client, batch: Batch, *, dry_run: bool) -> Outcome:
    key = batch.idempotency_key(dry_run=dry_run)
    if batch.action == "unlink_ticket":
        unlinks = [r.request for r in batch.rows if isinstance(r.request, UnlinkTicketInput)]
        return client.unlink_ticket(unlinks, dry_run=dry_run, idempotency_key=key)
    removes = [r.request for r in batch.rows if isinstance(r.request, RemoveLinkedIncidentsInput)]
    return client.remove_linked_incidents(removes, dry_run=dry_run, idempotency_key=key)


def _split(batch: Batch) -> list[Batch]:
    half = len(batch.rows) // 2
    return [
        Batch(batch.number, batch.action, batch.rows[:half]),
        Batch(batch.number, batch.action, batch.rows[half:]),
    ]


def run(
    client: Client, rows: Sequence[Row], *, batch_size: int, dry_run: bool, out: Console
) -> int:
    """Send every batch; show progress on stderr and the summary on `out`; the exit status."""
    pending = batches_of(rows, batch_size)
    total_batches = len(pending)
    tally = Tally()
    in_flight: Batch | None = None
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        console=Console(stderr=True, highlight=False),
    )
    try:
        with progress:
            task = progress.add_task("bulk", total=len(rows))
            while pending:
                in_flight = pending.pop(0)
                line = _run_batch(client, in_flight, dry_run=dry_run, tally=tally, pending=pending)
                in_flight = None
                if line is None:
                    continue
                progress.console.print(f"batch {line[0]}/{total_batches} {line[1]}")
                progress.update(task, completed=tally.done_rows)
    except KeyboardInterrupt:
        _summary(out, tally, interrupted=True)
        if in_flight is not None:
            out.print(
                f"[yellow]interrupted while batch {in_flight.number} ({in_flight.lines}, "
                f"{len(in_flight.rows)} rows) was in flight: it may have run.[/]"
            )
        out.print(
            f"{tally.done_rows} of {len(rows)} rows ran in {len(tally.done_batches)} batch(es). "
            "Run the same command again to finish: batches that ran answer from their "
            "record (same Idempotency-Key) and act no second time."
        )
        return INTERRUPTED
    _summary(out, tally, interrupted=False)
    return tally.exit_status()


def _run_batch(
    client: Client, batch: Batch, *, dry_run: bool, tally: Tally, pending: list[Batch]
) -> tuple[int, str] | None:
    """Send one batch; count what it did; a line to print (None if it was split instead)."""
    try:
        outcome = _send(client, batch, dry_run=dry_run)
    except ContentTooLargeError as exc:
        if len(batch.rows) > 1:
            pending[:0] = _split(batch)
            return None
        tally.items["failed"] += len(batch.rows)
        tally.failures.append(f"batch {batch.number} ({batch.lines}): {exc}")
        said = f"{batch.lines}: HTTP {exc.status} {exc.code}"
    except ApiError as exc:
        if exc.outcome is not None:
            tally.count(exc.outcome)
        else:
            tally.items["failed"] += len(batch.rows)
        tally.failures.append(f"batch {batch.number} ({batch.lines}): {exc}")
        said = f"{batch.lines}: HTTP {exc.status} {exc.code}"
    except LinkActionsError as exc:
        tally.items["failed"] += len(batch.rows)
        tally.failures.append(f"batch {batch.number} ({batch.lines}): {type(exc).__name__}: {exc}")
        said = f"{batch.lines}: {type(exc).__name__}"
    else:
        tally.count(outcome)
        said = f"{batch.lines}: {outcome.status.value} ({len(outcome.items)} items)"
    tally.done_rows += len(batch.rows)
    tally.done_batches.append(batch.number)
    return batch.number, f"{batch.action} {said}"


def _summary(out: Console, tally: Tally, *, interrupted: bool) -> None:
    table = Table("status", "items", title="ran so far" if interrupted else "summary")
    for status, count in sorted(tally.items.items()):
        table.add_row(status, str(count))
    out.print(table)
    for failure in tally.failures:
        out.print(f"[red]{failure}[/]")
