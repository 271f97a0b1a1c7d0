"""What the core runs on, handed in by the edge: settings, the upstream clients, the storage
and the clock. `Core.from_settings` builds this process's; a test builds its own (clients on
`httpx.MockTransport`, a fixed storage, a manual clock).

Storage is reached through `open_storage`, called by the paths that record: a direct call
never opens it, and the Azure Storage SDK loads with the first call that does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from shared import storage
from shared.clients.registry import Upstreams
from shared.config import Settings
from shared.storage import Storage

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Core:
    settings: Settings
    upstreams: Upstreams
    open_storage: Callable[[], Awaitable[Storage]]
    clock: Clock = utc_now

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock = utc_now) -> Core:
        """This process's clients and storage, built from `settings` on first use."""
        return cls(
            settings, Upstreams.from_settings(settings), partial(storage.storage, settings), clock
        )
