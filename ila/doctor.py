"""`ila doctor`: is a deployment able to work? Settings by name, never by value.

Over HTTP (the app as deployed): health and its settings report, the function key, the
operations store, and for each configured upstream one request about an incident that does
not exist (ContraForce: the all-zero workspace; D3: source incident `ila-doctor-probe`): it
cannot change anything, yet proves the upstream answers and accepts the app's credential (a
refused credential is our 502). With `--env`, the settings in this environment are checked too.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from ila.render import FAILURE, SUCCESS
from incident_link_actions_client import (
    AccessDeniedError,
    ApiError,
    Client,
    IncidentInput,
    LinkActionsError,
    NotAppliedError,
    NotFoundError,
    Outcome,
    RemoveLinkedIncidentsInput,
    SettingsError,
    UnlinkTicketInput,
    UpstreamCredentialsError,
    UpstreamRefusedError,
)
from shared import storage
from shared.config import KEY_VAULT_REFERENCE, Settings, setting_name
from shared.errors import AppError, NotConfigured

PROBE_INCIDENT = "ila-doctor-probe"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: not applicable here (e.g. an upstream this deployment does not use)
    detail: str


def passed(name: str, detail: str) -> Check:
    return Check(name, ok=True, detail=detail)


def failed(name: str, detail: str) -> Check:
    return Check(name, ok=False, detail=detail)


def skipped(name: str, detail: str) -> Check:
    return Check(name, ok=None, detail=detail)


def over_http(client: Client) -> list[Check]:
    try:
        health = client.health()
    except LinkActionsError as exc:
        return [failed("app", f"no health answer from {client.base_url}: {exc}")]
    checks = [passed("app", f"answers at {client.base_url}")]
    if health.get("status") == "healthy":
        checks.append(passed("settings", "valid"))
    else:
        names = ", ".join(health.get("settings") or []) or "(not named)"
        checks.append(failed("settings", f"invalid or unresolved: {names}"))
    checks += _key_and_store(client)
    probes: dict[str, Callable[[], Outcome]] = {
        "contraforce": lambda: client.unlink_ticket(
            UnlinkTicketInput(
                workspaceId=uuid.UUID(int=0), incident=IncidentInput(number=PROBE_INCIDENT)
            )
        ),
        "d3": lambda: client.remove_linked_incidents(
            RemoveLinkedIncidentsInput(
                sourceIncident=PROBE_INCIDENT, linkedIncidents=[PROBE_INCIDENT]
            )
        ),
    }
    for name, info in (health.get("upstreams") or {}).items():
        if not isinstance(info, dict) or name not in probes:
            continue
        if not info.get("configured"):
            settings = ", ".join(info.get("settings") or [])
            checks.append(skipped(name, f"not configured ({settings})"))
            continue
        checks.append(_probe(name, str(info.get("credential")), probes[name]))
    return checks


def _key_and_store(client: Client) -> list[Check]:
    try:
        client.operation(str(uuid.uuid4()))
    except NotFoundError:
        return [passed("function key", "accepted"), passed("storage", "answered")]
    except AccessDeniedError as exc:
        return [failed("function key", f"refused (HTTP {exc.status}): check --key/ILA_KEY")]
    except ApiError as exc:
        named = f" (settings: {', '.join(exc.settings)})" if exc.settings else ""
        return [
            passed("function key", "accepted"),
            failed("storage", f"HTTP {exc.status} {exc.code}: {exc.detail}{named}"),
        ]
    except LinkActionsError as exc:
        return [failed("function key", f"{type(exc).__name__}: {exc}")]
    return [failed("storage", "an operation that cannot exist was found")]


def _probe(name: str, credential: str, call: Callable[[], Outcome]) -> Check:
    label = f"{name} ({credential})"
    try:
        call()
    except (NotAppliedError, UpstreamRefusedError) as exc:
        said = exc.upstream_status or exc.status
        return passed(label, f"answered HTTP {said}: credential accepted")
    except UpstreamCredentialsError as exc:
        return failed(label, f"refused the app's credential: {exc.detail}")
    except SettingsError as exc:
        return failed(label, f"not configured: {', '.join(exc.settings)}")
    except ApiError as exc:
        return failed(label, f"HTTP {exc.status} {exc.code}: {exc.detail}")
    except LinkActionsError as exc:
        return failed(label, f"{type(exc).__name__}: {exc}")
    return passed(label, "answered: credential accepted")


def in_environment(environ: dict[str, str] | None = None) -> list[Check]:
    """The app settings of this environment: by name, never by value."""
    env = dict(os.environ if environ is None else environ)
    known = {setting_name(field).lower(): setting_name(field) for field in Settings.model_fields}
    checks = [
        failed(f"env {known[name.lower()]}", "unresolved Key Vault reference")
        for name, value in sorted(env.items())
        if name.lower() in known and value.strip().startswith(KEY_VAULT_REFERENCE)
    ]
    try:
        settings = Settings()
    except ValidationError as exc:
        unresolved = {check.name for check in checks}
        for err in exc.errors(include_url=False):
            name = f"env {setting_name(str(err['loc'][0]))}" if err["loc"] else "env"
            if name not in unresolved:
                checks.append(failed(name, err["msg"]))
        return checks
    checks.append(passed("env settings", "valid"))
    for name, credential in (
        ("contraforce", settings.contraforce_credential),
        ("d3", settings.d3_credential),
    ):
        try:
            found = credential()
        except NotConfigured as exc:
            checks.append(skipped(f"env {name}", f"{exc.message}"))
        else:
            checks.append(passed(f"env {name}", type(found).__name__.removesuffix("Settings")))
    checks.append(asyncio.run(_storage(settings)))
    return checks


async def _storage(settings: Settings) -> Check:
    try:
        await storage.storage(settings)
    except AppError as exc:
        return failed("env storage", exc.message)
    finally:
        await storage.aclose()
    return passed("env storage", "reachable; queues and table exist")


def report(console: Console, checks: list[Check]) -> int:
    table = Table("check", "result", "detail", title="ila doctor")
    marks = {True: "[green]ok[/]", False: "[red]FAIL[/]", None: "[yellow]skip[/]"}
    for check in checks:
        table.add_row(check.name, marks[check.ok], check.detail)
    console.print(table)
    failed = [check.name for check in checks if check.ok is False]
    console.print(f"{len(failed)} check(s) failed" + (f": {', '.join(failed)}" if failed else ""))
    return FAILURE if failed else SUCCESS
