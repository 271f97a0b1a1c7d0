"""In-memory state of the ContraForce sandbox: workspaces, incidents, tickets, credentials."""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from uuid import UUID


class IncidentSource(StrEnum):
    """The seed's `IncidentSource` enum."""

    SENTINEL = "Sentinel"
    DEFENDER_XDR = "DefenderXDR"
    QRADAR = "QRadar"
    SPLUNK = "Splunk"
    CROWDSTRIKE = "CrowdStrike"
    SENTINEL_ONE = "SentinelOne"


@dataclass(frozen=True)
class Ticket:
    """A service ticket linked to an incident, e.g. ServiceNow INC0012345."""

    system: str
    ticket_id: str

    def to_json(self) -> dict[str, str]:
        """`{"system", "ticketId"}`."""
        return {"system": self.system, "ticketId": self.ticket_id}


@dataclass
class Incident:
    """An incident of one workspace; `ticket` is None when no ticket is linked."""

    id: str
    number: str
    source: IncidentSource
    title: str = ""
    ticket: Ticket | None = None

    def to_json(self) -> dict[str, Any]:
        """camelCase JSON for `/_sandbox/state`."""
        return {
            "id": self.id,
            "number": self.number,
            "source": self.source.value,
            "title": self.title,
            "ticket": None if self.ticket is None else self.ticket.to_json(),
        }


@dataclass
class Workspace:
    """A ContraForce workspace and its incidents."""

    id: UUID
    name: str
    incidents: list[Incident] = field(default_factory=list)

    def find(
        self, *, incident_id: str | None, number: str | None, source: IncidentSource | None
    ) -> Incident | None:
        """The incident matched by `incident_id` if given, else by `number`; `source` must match."""
        for incident in self.incidents:
            matched = incident.id == incident_id if incident_id else incident.number == number
            if matched and (source is None or incident.source is source):
                return incident
        return None


@dataclass(frozen=True)
class ServiceAccount:
    """Service-account credentials (HTTP Basic) and the workspaces it has a role on."""

    client_id: str
    client_secret: str
    workspaces: frozenset[UUID]


@dataclass(frozen=True)
class UnlinkEffect:
    """One real unlink performed by the sandbox."""

    workspace_id: UUID
    incident_id: str
    incident_number: str
    ticket: Ticket
    principal: str
    request_id: str
    timestamp: str

    def to_json(self) -> dict[str, Any]:
        """camelCase JSON for `/_sandbox/state`."""
        return {
            "action": "unlinkTicket",
            "workspaceId": str(self.workspace_id),
            "incidentId": self.incident_id,
            "incidentNumber": self.incident_number,
            "ticket": self.ticket.to_json(),
            "principal": self.principal,
            "requestId": self.request_id,
            "timestamp": self.timestamp,
        }


@dataclass
class ContraForceState:
    """Everything the ContraForce sandbox knows. Mutate under `lock`."""

    workspaces: dict[UUID, Workspace] = field(default_factory=dict)
    accounts: dict[str, ServiceAccount] = field(default_factory=dict)
    bearer_tokens: dict[str, frozenset[UUID]] = field(default_factory=dict)
    effects: list[UnlinkEffect] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add_workspace(self, workspace: Workspace) -> Workspace:
        """Add (or replace) a workspace."""
        self.workspaces[workspace.id] = workspace
        return workspace

    def add_account(self, account: ServiceAccount) -> ServiceAccount:
        """Add (or replace) a service account."""
        self.accounts[account.client_id] = account
        return account

    def clone(self) -> ContraForceState:
        """A deep copy with its own lock."""
        with self.lock:
            return ContraForceState(
                workspaces=copy.deepcopy(self.workspaces),
                accounts=dict(self.accounts),
                bearer_tokens=dict(self.bearer_tokens),
                effects=list(self.effects),
            )

    def restore(self, other: ContraForceState) -> None:
        """Replace this state's contents with a deep copy of `other`'s, in place."""
        fresh = other.clone()
        with self.lock:
            self.workspaces = fresh.workspaces
            self.accounts = fresh.accounts
            self.bearer_tokens = fresh.bearer_tokens
            self.effects = fresh.effects

    def incident(self, workspace_id: UUID, incident_id: str) -> Incident:
        """The incident with this id (KeyError if missing); handy in tests."""
        for incident in self.workspaces[workspace_id].incidents:
            if incident.id == incident_id:
                return incident
        raise KeyError(incident_id)

    def to_json(self) -> dict[str, Any]:
        """State for `/_sandbox/state`; secrets and tokens are not included."""
        with self.lock:
            return {
                "workspaces": [
                    {
                        "id": str(ws.id),
                        "name": ws.name,
                        "incidents": [i.to_json() for i in ws.incidents],
                    }
                    for ws in self.workspaces.values()
                ],
                "serviceAccounts": [
                    {"clientId": a.client_id, "workspaces": sorted(str(w) for w in a.workspaces)}
                    for a in self.accounts.values()
                ],
                "bearerTokens": len(self.bearer_tokens),
                "effects": [e.to_json() for e in self.effects],
            }


DEMO_WORKSPACE_ID = UUID("3f2a6c1e-8b7d-4c55-9a10-2f6e7d8c9b01")
DEMO_OTHER_WORKSPACE_ID = UUID("b7e9d2a4-5c31-4f8e-a6d2-9c0b1e2f3a44")
DEMO_CLIENT_ID = "sandbox-client"
DEMO_CLIENT_SECRET = "sandbox-secret"  # noqa: S105 - well-known sandbox demo credential


def demo_state() -> ContraForceState:
    """Two workspaces; `sandbox-client` has a role on the first only (the second answers 403)."""
    state = ContraForceState()
    state.add_workspace(
        Workspace(
            DEMO_WORKSPACE_ID,
            "Contoso SOC",
            [
                Incident(
                    "6d1f0c2a-4e4b-4b8f-9d55-0a3c1b2e7f10",
                    "1001",
                    IncidentSource.SENTINEL,
                    "Suspicious sign-in from TOR exit node",
                    Ticket("ServiceNow", "INC0012345"),
                ),
                Incident(
                    "da7e3b91-21c4-4f0e-8a3b-5e6f7a8b9c02",
                    "1002",
                    IncidentSource.DEFENDER_XDR,
                    "Ransomware behaviour detected on FIN-LT-042",
                    Ticket("Jira", "SEC-42"),
                ),
                Incident(
                    "splunk-notable-7731",
                    "1003",
                    IncidentSource.SPLUNK,
                    "Brute force against VPN gateway",
                ),
                Incident(
                    "cs-ldt-0f9e8d7c",
                    "1004",
                    IncidentSource.CROWDSTRIKE,
                    "Credential dumping with procdump",
                    Ticket("Autotask", "T20240101.0001"),
                ),
            ],
        )
    )
    state.add_workspace(
        Workspace(
            DEMO_OTHER_WORKSPACE_ID,
            "Fabrikam MSSP",
            [
                Incident(
                    "qradar-offense-5512",
                    "2001",
                    IncidentSource.QRADAR,
                    "Outbound traffic to known C2",
                    Ticket("ServiceNow", "INC0099999"),
                ),
                Incident(
                    "s1-threat-88213",
                    "2002",
                    IncidentSource.SENTINEL_ONE,
                    "Malicious PowerShell",
                ),
            ],
        )
    )
    state.add_account(
        ServiceAccount(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, frozenset({DEMO_WORKSPACE_ID}))
    )
    return state


def render_summary(state: ContraForceState, base_url: str | None = None) -> str:
    """A short human summary of the sandbox data (printed by the local launcher)."""
    where = f" at {base_url}" if base_url else ""
    lines = [f"ContraForce sandbox{where}"]
    for a in state.accounts.values():
        names = sorted(ws.name for w, ws in state.workspaces.items() if w in a.workspaces)
        lines.append(
            f"  service account {a.client_id} / {a.client_secret} (HTTP Basic, sandbox only)"
            f" - role on {', '.join(names) or 'no workspace'}"
        )
    for ws in state.workspaces.values():
        lines.append(f"  workspace {ws.name}: {ws.id}")
        for i in ws.incidents:
            link = f"linked to {i.ticket.system} {i.ticket.ticket_id}" if i.ticket else "no ticket"
            lines.append(f"    #{i.number} {i.source.value} id={i.id}: {link}")
    return "\n".join(lines)
