"""Client-side pacing to an upstream's published rate, the way the limit is written.

"50 requests/s" caps every rolling second; it does not ask for one request every 20 ms. So a
request leaves at once while fewer than N requests left in the last window, and otherwise at the
moment the oldest of the last N leaves the window (a sliding-window log of N send times):

- a caller below the limit never waits (ten calls back to back at 20/s all leave at once);
- a burst beyond the limit is spread so that no window of `window_seconds` holds more than N;
- slots are handed out on the ideal grid: a slot is computed from earlier *slots*, never from
  when a sleeper actually woke, so a late wake-up keeps its slot and costs no later request its
  own (the loss that made a one-slot bucket run at 48/s instead of 50/s).

The upstream counts arrivals, not our slots: a request that wakes a little late and one that
leaves on time exactly a window later could land inside one of its seconds. `window_seconds`
therefore carries a small guard beyond the second (`GUARD_SECONDS`); callers below the limit
never see it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

GUARD_SECONDS = 0.02  # beyond the upstream's second: wake-up lateness and network jitter


def window_for(rate_per_second: float) -> tuple[int, float]:
    """(N, window) for a rate: N = floor(R) per second from R >= 1 (never above R in any
    second), and one request per 1/R seconds below 1/s."""
    if not rate_per_second > 0 or math.isinf(rate_per_second):
        raise ValueError(f"rate must be a positive finite number, got {rate_per_second!r}")
    if rate_per_second >= 1:
        return math.floor(rate_per_second), 1.0
    return 1, 1.0 / rate_per_second


class SlidingWindow:
    """The slots: at most `limit` in any half-open window of `window_seconds`, first come first
    served, each as early as that allows. Pure bookkeeping; the caller brings the time."""

    def __init__(self, limit: int, window_seconds: float) -> None:
        if limit < 1 or not window_seconds > 0:
            raise ValueError(f"need limit >= 1 and window > 0, got {limit}, {window_seconds}")
        self.limit = limit
        self.window_seconds = window_seconds
        self._slots: deque[float] = deque(maxlen=limit)  # the last `limit` slots handed out

    def reserve(self, now: float) -> float:
        """Hand out the next slot (>= now): `now` if fewer than `limit` slots fall in the last
        window, else the oldest of the last `limit` slots plus the window."""
        slot = now
        if len(self._slots) == self.limit:
            slot = max(now, self._slots[0] + self.window_seconds)
        self._slots.append(slot)  # slots never decrease, so the deque stays sorted
        return slot


class Pacer:
    """Awaits this process's next slot for one upstream. `acquire()` before every attempt."""

    def __init__(
        self,
        rate_per_second: float,
        *,
        guard_seconds: float = GUARD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        limit, window = window_for(rate_per_second)
        self.rate_per_second = rate_per_second
        self._window = SlidingWindow(limit, window + guard_seconds)
        self._clock = clock
        self._sleep = sleep

    async def acquire(self) -> float:
        """Wait for this request's slot; returns how long it waited (0.0 below the limit).

        A cancelled waiter's slot stays spent: the window only ever errs on the safe side."""
        now = self._clock()
        delay = self._window.reserve(now) - now
        if delay > 0:
            await self._sleep(delay)
            return delay
        return 0.0
