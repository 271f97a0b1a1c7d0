"""In-memory state of the D3 SOAR sandbox: sites, their users, incidents and symmetric links."""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class D3Incident:
    """An incident and the numbers of the incidents linked to it (in link order)."""

    number: str
    title: str = ""
    links: list[str] = field(default_factory=list)


@dataclass
class Site:
    """A D3 site: who may run commands on it, and its incidents."""

    name: str
    users: set[str] = field(default_factory=set)
    incidents: dict[str, D3Incident] = field(default_factory=dict)

    def add(self, number: str, title: str = "") -> D3Incident:
        """Add an incident (no links)."""
        incident = self.incidents[number] = D3Incident(number, title)
        return incident

    def link(self, a: str, b: str) -> None:
        """Link two existing incidents, both ways."""
        if b not in self.incidents[a].links:
            self.incidents[a].links.append(b)
        if a not in self.incidents[b].links:
            self.incidents[b].links.append(a)

    def unlink(self, a: str, b: str) -> bool:
        """Remove the link both ways; False if they were not linked."""
        first, second = self.incidents.get(a), self.incidents.get(b)
        if first is None or b not in first.links:
            return False
        first.links.remove(b)
        if second is not None and a in second.links:
            second.links.remove(a)
        return True


@dataclass(frozen=True)
class RemoveLinkEffect:
    """One link really removed by the sandbox."""

    site: str
    source_incident: str
    linked_incident: str
    username: str
    timestamp: str

    def to_json(self) -> dict[str, str]:
        """camelCase JSON for `/_sandbox/state`."""
        return {
            "action": "removeLinkedIncident",
            "site": self.site,
            "sourceIncident": self.source_incident,
            "linkedIncident": self.linked_incident,
            "username": self.username,
            "timestamp": self.timestamp,
        }


@dataclass
class D3State:
    """Everything the D3 sandbox knows. Mutate under `lock`."""

    sites: dict[str, Site] = field(default_factory=dict)
    effects: list[RemoveLinkEffect] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add_site(self, site: Site) -> Site:
        """Add (or replace) a site."""
        self.sites[site.name] = site
        return site

    def clone(self) -> D3State:
        """A deep copy with its own lock."""
        with self.lock:
            return D3State(sites=copy.deepcopy(self.sites), effects=list(self.effects))

    def restore(self, other: D3State) -> None:
        """Replace this state's contents with a deep copy of `other`'s, in place."""
        fresh = other.clone()
        with self.lock:
            self.sites = fresh.sites
            self.effects = fresh.effects

    def links(self, site: str, number: str) -> list[str]:
        """The numbers linked to an incident; handy in tests."""
        with self.lock:
            return list(self.sites[site].incidents[number].links)

    def to_json(self) -> dict[str, Any]:
        """State for `/_sandbox/state`."""
        with self.lock:
            return {
                "sites": [
                    {
                        "name": s.name,
                        "users": sorted(s.users),
                        "incidents": [
                            {"number": i.number, "title": i.title, "links": list(i.links)}
                            for i in s.incidents.values()
                        ],
                    }
                    for s in self.sites.values()
                ],
                "effects": [e.to_json() for e in self.effects],
            }


DEMO_SITE = "Security Operations"
DEMO_USERNAME = "Admin"


def demo_state() -> D3State:
    """The seed's sample data plus a few more: 20231025-130 is linked to 20210127-197 and
    20231025-131 but not to 20210127-198, so the seed's sample request is Partially Successful.
    """
    state = D3State()
    soc = state.add_site(Site(DEMO_SITE, {DEMO_USERNAME, "soc.analyst"}))
    soc.add("20231025-130", "Phishing campaign against finance")
    soc.add("20231025-131", "Credential harvesting page reported")
    soc.add("20210127-197", "Earlier phishing wave, same sender domain")
    soc.add("20210127-198", "Unrelated malware alert")
    soc.link("20231025-130", "20210127-197")
    soc.link("20231025-130", "20231025-131")
    soc.add("20240301-001", "Impossible travel for j.doe")
    soc.add("20240301-002", "MFA fatigue for j.doe")
    soc.add("20240301-003", "Mailbox rule created for j.doe")
    soc.link("20240301-001", "20240301-002")
    soc.link("20240301-001", "20240301-003")
    soc.add("20240302-010", "Port scan from guest Wi-Fi")
    hunting = state.add_site(Site("Threat Hunting", {DEMO_USERNAME, "hunter"}))
    hunting.add("20240115-501", "Beaconing to rare domain")
    hunting.add("20240115-502", "Same domain seen on second host")
    hunting.link("20240115-501", "20240115-502")
    return state


def render_summary(state: D3State, base_url: str | None = None) -> str:
    """A short human summary of the sandbox data (printed by the local launcher)."""
    where = f" at {base_url}" if base_url else ""
    lines = [f"D3 SOAR sandbox{where}"]
    for site in state.sites.values():
        lines.append(f"  site {site.name!r}, users: {', '.join(sorted(site.users))}")
        for incident in site.incidents.values():
            linked = ", ".join(incident.links) or "no links"
            lines.append(f"    {incident.number}: {linked}")
    return "\n".join(lines)
