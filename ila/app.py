"""The `ila` commands. Each says what it does in `--help`; every option has help text."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypedDict, Unpack

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console

from ila import render, webhook
from ila.render import FAILURE, INTERRUPTED, SUCCESS
from incident_link_actions_client import (
    ApiError,
    Client,
    IncidentInput,
    LinkActionsError,
    Outcome,
    RemoveLinkedIncidentsInput,
    StillPending,
    UnlinkTicketInput,
)

app = typer.Typer(
    name="ila",
    help="Run and operate Incident Link Actions: actions, bulk runs, operations, poison "
    "replay, a deployment check, signed test webhooks and the API documents. "
    "Exit status: 0 success, 2 partial success, 1 failure, 130 interrupted.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
webhook_app = typer.Typer(help="ContraForce webhooks.", no_args_is_help=True)
app.add_typer(webhook_app, name="webhook")


def default_url() -> str:
    """`make run`'s local host: `PORT` (7071) on loopback."""
    host = os.environ.get("HOST", "127.0.0.1")
    if host in {"", "0.0.0.0", "::"}:  # noqa: S104 - a bind-all address, reached on loopback
        host = "127.0.0.1"
    return f"http://{host}:{os.environ.get('PORT', '7071')}/api"


Url = Annotated[
    str | None,
    typer.Option(
        envvar="ILA_URL",
        show_default=False,
        help="The app's base URL, ending in /api (e.g. https://<app>.azurewebsites.net/api). "
        "Default: make run's local host, http://127.0.0.1:$PORT/api (PORT 7071).",
    ),
]
Key = Annotated[
    str | None,
    typer.Option(
        envvar="ILA_KEY",
        show_default=False,
        help="The function key (sent as x-functions-key). Default: LOCAL_FUNCTION_KEY, "
        "make run's key.",
    ),
]
AsJson = Annotated[
    bool, typer.Option("--json", help="Print the app's answer as JSON instead of a table.")
]
DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run", help="Validate and show the exact upstream request; send nothing upstream."
    ),
]
Queued = Annotated[
    bool,
    typer.Option(
        "--async",
        help="Ask the app to queue the work (Prefer: respond-async) and follow 202 + Location.",
    ),
]
NoWait = Annotated[
    bool,
    typer.Option(
        "--no-wait", help="With --async: print the pending operation instead of waiting for it."
    ),
]
IdempotencyKey = Annotated[
    str | None,
    typer.Option(
        help="Idempotency-Key to send (default: a fresh one). The same key again returns the "
        "first answer without acting twice."
    ),
]
Timeout = Annotated[
    float, typer.Option(min=0.1, help="Seconds to wait for one answer from the app.")
]


def target(url: str | None, key: str | None) -> tuple[str, str | None]:
    """The app's base URL and function key: the options, else the environment, else make run's."""
    return url or default_url(), key or os.environ.get("LOCAL_FUNCTION_KEY")


def client_for(
    url: str | None, key: str | None, *, timeout: float = 60.0, max_wait: float = 600.0
) -> Client:
    base, function_key = target(url, key)
    return Client(base, key=function_key, timeout=timeout, max_wait_seconds=max_wait)


def stdout() -> Console:
    return Console(highlight=False, soft_wrap=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


def show(outcome: Outcome, *, as_json: bool) -> int:
    console = stdout()
    if as_json:
        console.print_json(render.outcome_json(outcome))
    else:
        render.show_outcome(console, outcome)
    return render.exit_status(outcome)


def answered(call: Callable[[], Outcome], *, as_json: bool) -> int:
    """Run one call; show its Outcome or its error; the exit status."""
    try:
        outcome = call()
    except ApiError as exc:
        if as_json:
            stdout().print_json(render.problem_json(exc))
        else:
            render.show_problem(stdout(), exc)
        return FAILURE
    except StillPending as exc:
        stderr().print(f"[yellow]{exc}[/]")
        return show(exc.outcome, as_json=as_json)
    except LinkActionsError as exc:
        stderr().print(f"[red]{type(exc).__name__}[/]: {exc}")
        return FAILURE
    return show(outcome, as_json=as_json)


class Sending(TypedDict):
    """How `unlink` and `remove` send their one request (the client's keyword arguments)."""

    dry_run: bool
    respond_async: bool
    wait: bool
    idempotency_key: str | None


def act(
    request: UnlinkTicketInput | RemoveLinkedIncidentsInput,
    *,
    as_json: bool,
    url: str | None,
    key: str | None,
    timeout: float,
    **sending: Unpack[Sending],
) -> int:
    """Send one action request (`unlink` or `remove`); show its Outcome; the exit status."""
    with client_for(url, key, timeout=timeout) as ila:
        if isinstance(request, UnlinkTicketInput):
            return answered(lambda: ila.unlink_ticket(request, **sending), as_json=as_json)
        return answered(lambda: ila.remove_linked_incidents(request, **sending), as_json=as_json)


def invalid(exc: ValidationError) -> int:
    console = stderr()
    for err in exc.errors(include_url=False):
        path = ".".join(str(part) for part in err["loc"]) or "input"
        console.print(f"[red]invalid {path}[/]: {err['msg']}")
    return FAILURE


@app.command()
def unlink(
    workspace: Annotated[
        uuid.UUID, typer.Option(help="The ContraForce workspace (account) id, a UUID.")
    ],
    incident: Annotated[
        str | None, typer.Option(help="The incident's number (as the SOC sees it).")
    ] = None,
    incident_id: Annotated[
        str | None, typer.Option(help="The incident's id, instead of --incident.")
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(help="Where the incident comes from, e.g. Sentinel or DefenderXDR."),
    ] = None,
    dry_run: DryRun = False,
    queued: Queued = False,
    no_wait: NoWait = False,
    idempotency_key: IdempotencyKey = None,
    as_json: AsJson = False,
    url: Url = None,
    key: Key = None,
    timeout: Timeout = 60.0,
) -> None:
    """Unlink the service ticket of one ContraForce incident."""
    if not (incident or incident_id):
        raise typer.BadParameter("give --incident NUMBER or --incident-id ID")
    try:
        request = UnlinkTicketInput(
            workspaceId=workspace,
            incident=IncidentInput.model_validate(
                {"number": incident, "id": incident_id, "source": source}
            ),
        )
    except ValidationError as exc:
        raise typer.Exit(invalid(exc)) from exc
    code = act(
        request,
        dry_run=dry_run,
        respond_async=queued,
        wait=not no_wait,
        idempotency_key=idempotency_key,
        as_json=as_json,
        url=url,
        key=key,
        timeout=timeout,
    )
    raise typer.Exit(code)


@app.command()
def remove(
    source_incident: Annotated[
        str, typer.Option(help="The D3 incident to remove links from, e.g. 20231025-130.")
    ],
    linked: Annotated[
        list[str] | None,
        typer.Option(
            help="A linked incident to remove; repeat it, or list more after it: --linked A B C."
        ),
    ] = None,
    more: Annotated[
        list[str] | None,
        typer.Argument(metavar="[LINKED]...", help="More linked incidents to remove."),
    ] = None,
    site: Annotated[
        str | None, typer.Option(help="D3 site (default: the app's D3_DEFAULT_SITE).")
    ] = None,
    username: Annotated[
        str | None, typer.Option(help="D3 user (default: the app's D3_DEFAULT_USERNAME).")
    ] = None,
    dry_run: DryRun = False,
    queued: Queued = False,
    no_wait: NoWait = False,
    idempotency_key: IdempotencyKey = None,
    as_json: AsJson = False,
    url: Url = None,
    key: Key = None,
    timeout: Timeout = 60.0,
) -> None:
    """Remove links from a D3 source incident to each linked incident."""
    incidents = [*(linked or []), *(more or [])]
    if not incidents:
        raise typer.BadParameter("give at least one linked incident: --linked A [B ...]")
    try:
        request = RemoveLinkedIncidentsInput.model_validate(
            {
                "sourceIncident": source_incident,
                "linkedIncidents": incidents,
                "site": site,
                "username": username,
            }
        )
    except ValidationError as exc:
        raise typer.Exit(invalid(exc)) from exc
    code = act(
        request,
        dry_run=dry_run,
        respond_async=queued,
        wait=not no_wait,
        idempotency_key=idempotency_key,
        as_json=as_json,
        url=url,
        key=key,
        timeout=timeout,
    )
    raise typer.Exit(code)


@app.command()
def bulk(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="CSV (with a header row) or JSON lines, one action per row. See the README.",
        ),
    ],
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Rows per request. Default: MAX_BULK_ITEMS from the environment, else 100 "
            "(the app's default); halved automatically if the app answers 413.",
        ),
    ] = None,
    dry_run: DryRun = False,
    url: Url = None,
    key: Key = None,
    timeout: Timeout = 120.0,
) -> None:
    """Run every row of FILE in batches, with a progress bar and a summary by status.

    Each batch carries an Idempotency-Key made from its content: after Ctrl-C (or a crash)
    run the same command again; batches that already ran answer from their record.
    """
    from ila import bulk as bulk_run  # noqa: PLC0415 - only this command needs it

    try:
        rows = bulk_run.read_rows(file)
    except bulk_run.BadRow as exc:
        stderr().print(f"[red]{exc}[/] (nothing was sent)")
        raise typer.Exit(FAILURE) from exc
    size = batch_size or int(os.environ.get("MAX_BULK_ITEMS") or bulk_run.DEFAULT_BATCH_SIZE)
    with client_for(url, key, timeout=timeout) as ila:
        code = bulk_run.run(ila, rows, batch_size=size, dry_run=dry_run, out=stdout())
    raise typer.Exit(code)


@app.command()
def status(
    operation_id: Annotated[str, typer.Argument(help="The operation id (X-Operation-Id).")],
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="Wait until the operation is final, polling as Retry-After says."
        ),
    ] = False,
    max_wait: Annotated[
        float, typer.Option(min=0, help="With --wait: give up after this many seconds.")
    ] = 600.0,
    as_json: AsJson = False,
    url: Url = None,
    key: Key = None,
) -> None:
    """Show an operation's Outcome (one that was queued: 202 + Location)."""
    with client_for(url, key, max_wait=max_wait) as ila:
        code = answered(lambda: ila.operation(operation_id, wait=wait), as_json=as_json)
    raise typer.Exit(code)


@app.command("replay-poison")
def replay_poison(
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="List what the poison queue holds; move nothing."),
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="Move (or list) at most this many.")] = 1000,
) -> None:
    """Move poisoned work back to the work queue, after its cause is fixed.

    Uses the app's storage settings from the environment (AzureWebJobsStorage, or the
    identity-based AzureWebJobsStorage__queueServiceUri and __tableServiceUri).
    """
    from ila import poison  # noqa: PLC0415 - loads the app's settings and storage

    raise typer.Exit(poison.replay_poison(stdout(), dry_run=dry_run, limit=limit))


@app.command()
def doctor(
    env: Annotated[
        bool,
        typer.Option(
            "--env",
            help="Also check the app settings in this shell's environment: missing or invalid "
            "by name, unresolved Key Vault references, storage reachable.",
        ),
    ] = False,
    url: Url = None,
    key: Key = None,
    timeout: Timeout = 60.0,
) -> None:
    """Check a deployment: health and settings (names, never values), the function key,
    the operations store, and whether each upstream answers and accepts the app's credential
    (a request for an incident that does not exist, which cannot change anything)."""
    from ila import doctor as checks  # noqa: PLC0415

    with client_for(url, key, timeout=timeout) as ila:
        found = checks.over_http(ila)
    if env:
        found += checks.in_environment()
    raise typer.Exit(checks.report(stdout(), found))


@webhook_app.command("send")
def webhook_send(
    secret: Annotated[
        str,
        typer.Option(
            envvar="ILA_WEBHOOK_SECRET",
            show_default=False,
            help="The webhook signing secret (one of the app's CONTRAFORCE_WEBHOOK_SECRETS). "
            "Default: make run's sandbox secret.",
        ),
    ] = webhook.SANDBOX_WEBHOOK_SECRET,
    test: Annotated[
        bool,
        typer.Option(
            "--test/--real",
            help="--test (default) marks the delivery X-CF-Test: true: verified, not acted on. "
            "--real sends an event the app acts on.",
        ),
    ] = True,
    workspace: Annotated[
        str,
        typer.Option(help="data.accountId: the ContraForce workspace."),
    ] = "3f2a6c1e-8b7d-4c55-9a10-2f6e7d8c9b01",
    incident_id: Annotated[
        str, typer.Option(help="data.incidentId: the incident to unlink.")
    ] = webhook.DEMO_INCIDENT_ID,
    classification: Annotated[
        str, typer.Option(help="data.classification (FalsePositive and BenignPositive unlink).")
    ] = "FalsePositive",
    event_id: Annotated[
        str | None, typer.Option(help="X-CF-Event-Id (default: a fresh UUID).")
    ] = None,
    url: Url = None,
    key: Key = None,
) -> None:
    """Send a signed ContraForce event (agent.investigation.completed.v1) and print the answer."""
    event = webhook.unlinking_event(
        workspace=workspace,
        classification=classification,
        source="sentinel",
        incident_id=incident_id,
        is_test=test,
    )
    base, function_key = target(url, key)
    try:
        reply = webhook.send_event(
            base,
            event,
            secret=secret,
            function_key=function_key or None,
            event_id=event_id,
            test=test,
        )
    except httpx.TransportError as exc:
        stderr().print(f"[red]no answer from {base}[/]: {type(exc).__name__}: {exc}")
        raise typer.Exit(FAILURE) from exc
    console = stdout()
    console.print(f"HTTP {reply.status_code} {reply.headers.get('location', '')}".rstrip())
    if reply.text.strip():
        console.out(reply.text, highlight=False)
    raise typer.Exit(SUCCESS if reply.is_success else FAILURE)


class Document(StrEnum):
    openapi = "openapi"
    swagger = "swagger"


@app.command()
def openapi(
    document: Annotated[
        Document,
        typer.Argument(help="openapi: OpenAPI 3.1; swagger: Swagger 2.0 (Logic Apps)."),
    ] = Document.openapi,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", dir_okay=False, help="Save to this file, not stdout."),
    ] = None,
    url: Url = None,
    key: Key = None,
) -> None:
    """Print or save the app's API description."""
    with client_for(url, key) as ila:
        try:
            found: dict[str, Any] = ila.openapi(swagger=document is Document.swagger)
        except LinkActionsError as exc:
            stderr().print(f"[red]{type(exc).__name__}[/]: {exc}")
            raise typer.Exit(FAILURE) from exc
    text = json.dumps(found, indent=2) + "\n"
    if output is None:
        stdout().out(text, highlight=False)
    else:
        output.write_text(text, encoding="utf-8")
        stderr().print(f"saved {document.value} document to {output}")
    raise typer.Exit(SUCCESS)


def main(argv: list[str] | None = None) -> int:
    """Run `ila`. Usage errors exit 1, not click's 2: 2 means partial success here."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="ila", standalone_mode=False)
    except typer.Abort:
        stderr().print("interrupted")
        return INTERRUPTED
    except typer.TyperException as exc:  # a usage error: a bad or missing option
        stderr().print(f"[red]error[/]: {exc} (see --help)")
        return FAILURE
    return result if isinstance(result, int) else SUCCESS


def run() -> None:
    """The `ila` console script."""
    raise SystemExit(main())
