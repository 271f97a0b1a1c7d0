"""One rate budget per upstream for every instance, kept in the app's storage account.

D3 allows 50 requests/s per tenant, and Flex scales the HTTP group and the queue trigger apart,
each to dozens of instances: pacing each instance alone multiplies the limit. So each instance
*leases a share* of the upstream's N (requests per rolling second) from one Azure Table entity
per upstream, renewed about once a second while it has work (a few claims per second in all,
not one per request), and its local pacer (`shared.clients.pacing`) enforces that share.

- **Claims** read the entity, compute the new shares (`allot`) and write them back only if the
  entity did not change meanwhile (ETag, `If-Match`); a lost race reads again.
- **Never above N**: a share is granted only from what the other live instances do not hold. A
  share given up, or a lease not renewed within `LEASE_SECONDS`, keeps counting for
  `LINGER_SECONDS`: requests granted under it can still be in the upstream's last second.
- **Fair**: nobody gets more than N / (instances holding a lease, rounded up); a newcomer
  starts at what is free and gets its fair part as the others renew (about two renewals).
- **Never stalls**: every store call is bounded (`STORE_TIMEOUT_SECONDS`). While the store is
  slow or down an instance paces alone at its last share (the best guess of its part while the
  other instances stay), or at the full rate if it never had one; when instances come or go
  meanwhile the upstream may answer 429, which the retry policy honours (`Retry-After`,
  backoff). Requests never wait on the store itself, only on permits.

Table `ratebudget`; entity: PartitionKey `"rate-budget"`, RowKey the upstream, `shares` = JSON
`{instance: [share, expires, lingering, lingers_until]}` (Unix seconds; a few dozen bytes each,
far below Azure Table's 64 KiB a property).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.config import Settings
from shared.errors import NotConfigured

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

    from shared.clients.pacing import Pacer

logger = logging.getLogger(__name__)

TABLE = "ratebudget"
PARTITION = "rate-budget"
LEASE_SECONDS = 3.0
RENEW_SECONDS = 1.0
STORE_TIMEOUT_SECONDS = 0.5
# How long a share given up (or a lapsed lease) still counts from a claim that finds the
# instance's pacer applying it: a request that pacer handed a moment under it leaves up to a
# window later (shared.clients.pacing) and stays in the upstream's last second for one more;
# and the claim's answer reaches the pacer up to STORE_TIMEOUT_SECONDS after the moment it was
# computed for (if it never does, the next claim finds the pacer still applying the share).
LINGER_SECONDS = 2.0 + STORE_TIMEOUT_SECONDS
CLAIM_ATTEMPTS = 8


@dataclass(frozen=True)
class Share:
    """One instance's lease: `share` until `expires`; `lingering` (a larger share it gave up)
    still counts until `lingers_until`."""

    share: int
    expires: float
    lingering: int = 0
    lingers_until: float = 0.0

    def held(self, now: float) -> int:
        """What this instance's requests may account for in the upstream's last second: a
        lapsed lease too, for a while (its last requests are still in that second)."""
        current = self.share if self.expires + LINGER_SECONDS > now else 0
        return max(current, self.lingering if self.lingers_until > now else 0)

    def live(self, now: float) -> bool:
        return self.expires + LINGER_SECONDS > now or self.lingers_until > now


def allot(
    shares: Mapping[str, Share], me: str, *, limit: int, now: float, applied: int | None = None
) -> tuple[int, dict[str, Share]]:
    """My share of `limit` from now, and every live share after granting it (pure).

    `applied`: the largest limit my pacer applied since my last claim, or more if requests of
    a larger share are still out (None: the share last granted to me). It is more than that
    share when that claim's answer was lost (a cut not applied yet), when the pacer paced
    alone, or when the upstream is slow to answer, and it is what may still count."""
    live = {name: share for name, share in shares.items() if share.live(now)}
    others = [share for name, share in live.items() if name != me]
    taken = sum(share.held(now) for share in others)
    leased = 1 + sum(1 for share in others if share.expires > now)
    mine = max(0, min(-(-limit // leased), limit - taken))  # fair part, rounded up
    old = live.get(me)
    held = old.held(now) if old is not None else 0
    if applied is not None:
        cut = mine < applied  # requests granted under more than mine may still count
        held = max(held, applied)
    else:
        cut = old is not None and mine < held and mine < old.share
    if cut:
        # Giving up part of a share: the requests granted under it still count for a while.
        live[me] = Share(mine, now + LEASE_SECONDS, held, now + LINGER_SECONDS)
    elif old is not None and old.lingers_until > now:
        # Still lingering from an earlier cut: that clock is not restarted.
        live[me] = Share(mine, now + LEASE_SECONDS, old.lingering, old.lingers_until)
    else:
        live[me] = Share(mine, now + LEASE_SECONDS)
    return mine, live


def _decode(entity: Mapping[str, Any] | None) -> dict[str, Share]:
    if entity is None:
        return {}
    try:
        raw = json.loads(str(entity.get("shares", "{}")))
        return {
            str(name): Share(int(share), float(expires), int(lingering), float(until))
            for name, (share, expires, lingering, until) in raw.items()
        }
    except (ValueError, TypeError, AttributeError):
        logger.warning("rate budget entity unreadable: starting it over")
        return {}


def _encode(shares: Mapping[str, Share]) -> str:
    return json.dumps(
        {
            name: [s.share, round(s.expires, 3), s.lingering, round(s.lingers_until, 3)]
            for name, s in shares.items()
        },
        separators=(",", ":"),
    )


class BudgetStore:
    """The budget entities in one Azure Table (created on first use)."""

    def __init__(self, table: TableClient) -> None:
        self._table = table
        self._created = False

    async def claim(
        self, upstream: str, me: str, *, limit: int, now: float, applied: int | None = None
    ) -> int:
        """Lease my share (`allot`); raises the SDK's error (or `TimeoutError`) if the store
        fails."""
        from azure.core import MatchConditions  # noqa: PLC0415 - with the first claim
        from azure.core.exceptions import (  # noqa: PLC0415
            ResourceExistsError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )
        from azure.data.tables import UpdateMode  # noqa: PLC0415

        if not self._created:
            with contextlib.suppress(ResourceExistsError):
                await self._table.create_table()
            self._created = True
        for _ in range(CLAIM_ATTEMPTS):
            try:
                entity = await self._table.get_entity(PARTITION, upstream)
            except ResourceNotFoundError:
                entity = None
            mine, shares = allot(_decode(entity), me, limit=limit, now=now, applied=applied)
            body = {"PartitionKey": PARTITION, "RowKey": upstream, "shares": _encode(shares)}
            try:
                if entity is None:
                    await self._table.create_entity(body)
                else:
                    await self._table.update_entity(
                        body,
                        mode=UpdateMode.REPLACE,
                        etag=entity.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (ResourceExistsError, ResourceModifiedError):
                continue  # another instance claimed first: read again
            return mine
        raise TimeoutError(f"rate budget for {upstream}: {CLAIM_ATTEMPTS} claims lost races")

    async def aclose(self) -> None:
        await self._table.close()


def table_client(settings: Settings, table: str = TABLE) -> TableClient:
    """A client for the budget table, from the storage settings the durable path uses."""
    from azure.data.tables.aio import TableClient  # noqa: PLC0415 - only with a shared budget

    if settings.azure_web_jobs_storage is not None:
        return TableClient.from_connection_string(
            settings.azure_web_jobs_storage.get_secret_value(), table
        )
    if settings.storage_table_service_uri is None:
        raise NotConfigured(
            "SHARED_RATE_BUDGET needs AzureWebJobsStorage or AzureWebJobsStorage__tableServiceUri",
            settings=["AzureWebJobsStorage", "AzureWebJobsStorage__tableServiceUri"],
        )
    from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415 - Azure only

    return TableClient(
        str(settings.storage_table_service_uri),
        table,
        credential=DefaultAzureCredential(managed_identity_client_id=settings.storage_client_id),
    )


class SharedBudget:
    """Keeps this instance's share of one upstream's rate in its pacer, while it has work."""

    def __init__(
        self,
        upstream: str,
        store: BudgetStore,
        *,
        instance: str | None = None,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream = upstream
        self.instance = instance or uuid.uuid4().hex[:12]
        self._store = store
        self._wall_clock = wall_clock
        self._clock = clock
        self._pacer: Pacer | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_demand = -LEASE_SECONDS
        self._lease_until = -1.0
        self._last_share = 0
        self._peak = 0  # the largest limit set on the pacer since the last claim started
        self.claims = 0
        self.failures = 0

    def pacer(self, rate_per_second: float) -> Pacer:
        """The pacer to send through: no permits until the first claim answers (or fails)."""
        from shared.clients.pacing import Pacer  # noqa: PLC0415 - with the first client

        self._pacer = Pacer(rate_per_second, initial_limit=0, on_demand=self._demand)
        return self._pacer

    def _demand(self) -> None:
        self._last_demand = self._clock()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._keep())

    async def _keep(self) -> None:
        """Renew about once a second while requests come or wait; stop when none came for a
        lease and none waits (requests waiting for a share do not come again by themselves)."""
        while self._clock() - self._last_demand < LEASE_SECONDS or self._waiting():
            await self.renew()
            await asyncio.sleep(RENEW_SECONDS)
        if self._pacer is not None:  # the lease lapses: the next request claims again first
            self._apply(self._pacer, 0)

    @property
    def limit(self) -> int:
        """This instance's current N (its share, or what it paces at alone)."""
        return self._pacer.limit if self._pacer is not None else 0

    def _waiting(self) -> bool:
        return self._pacer is not None and self._pacer.waiting > 0

    async def renew(self) -> None:
        pacer = self._pacer
        if pacer is None:
            return
        # What the pacer applied since the last claim, and requests of a larger share still
        # out to a slow upstream (the upstream may count them as late as it answers), may
        # still be in the upstream's window: the store holds that for this instance while it
        # is more than the share. (What was answered since the last claim, and the limit in
        # force while that claim was out, are covered by that claim: LINGER_SECONDS.)
        applied, self._peak = max(self._peak, pacer.limit, pacer.out), 0
        try:
            async with asyncio.timeout(STORE_TIMEOUT_SECONDS):
                mine = await self._store.claim(
                    self.upstream,
                    self.instance,
                    limit=pacer.full_limit,
                    now=self._wall_clock(),
                    applied=applied,
                )
        except Exception as exc:  # noqa: BLE001 - any store failure means: pace alone
            self.failures += 1
            self._peak = max(self._peak, applied)  # the next claim tells it again
            alone = self._last_share or pacer.full_limit
            if self._clock() >= self._lease_until and pacer.limit != alone:
                logger.warning(
                    "rate budget for %s unavailable (%s): pacing this instance alone at %d/s",
                    self.upstream,
                    type(exc).__name__,
                    alone,
                )
                self._apply(pacer, alone)
            return
        self.claims += 1
        self._lease_until = self._clock() + LEASE_SECONDS - STORE_TIMEOUT_SECONDS
        self._last_share = mine or self._last_share
        self._apply(pacer, mine)

    def _apply(self, pacer: Pacer, limit: int) -> None:
        pacer.set_limit(limit)
        self._peak = max(self._peak, pacer.limit)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._store.aclose()
