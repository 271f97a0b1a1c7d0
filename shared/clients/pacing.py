"""Client-side pacing to an upstream's published rate, the way the limit is written.

"50 requests/s" caps every rolling second; it does not ask for one request every 20 ms. So a
request leaves at once while fewer than N requests are in flight or were answered within the
last window, and otherwise as soon as that is true again (a sliding-window log held as N
permits, handed out first come first served):

- a caller below the limit never waits (ten calls back to back at 20/s all leave at once);
- a burst beyond the limit is spread so that no window holds more than N of its requests,
  *as the upstream counts them*;
- a permit comes back one window after its request was **answered**, not after it was sent or
  after its sender woke up. The upstream counts a request at some moment between our send and
  its answer, and that moment moves with connection setup and queueing: measured here, four
  requests sent together reached the simulator up to 250 ms apart, and a pacer that spaced
  the next window from the send times (the ideal grid) drew 429s
  (tests/integration/test_transport_parity.py). Counted from the answer, request k+N cannot
  land within a window of request k however late k was counted. The price is one upstream
  latency per window per permit (about 0.5 % at 5 ms); no waiter's wake-up time feeds any later
  slot, so a late wake-up costs nobody else anything.
- when the limit changes (a shared rate budget's share), requests already sent or handed their
  moment keep it: a second holds no more than the largest limit in force within it or the
  second before it (a moment is at most a window ahead), and a limit that drops and comes back
  frees no permit early (tests/unit/test_pacing_model.py).
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Generic, TypeVar, cast

T = TypeVar("T")


def window_for(rate_per_second: float) -> tuple[int, float]:
    """(N, window) for a rate: N = floor(R) per second from R >= 1 (never above R in any
    second), and one request per 1/R seconds below 1/s."""
    if not rate_per_second > 0 or math.isinf(rate_per_second):
        raise ValueError(f"rate must be a positive finite number, got {rate_per_second!r}")
    if rate_per_second >= 1:
        return math.floor(rate_per_second), 1.0
    return 1, 1.0 / rate_per_second


class SlidingWindow(Generic[T]):
    """N permits; pure bookkeeping (the caller brings the time and does the waiting).

    `take` a permit before a request leaves, `end` it once the request is answered (or gave
    up): the permit is free again one window later. Whoever finds every permit in flight waits
    in line and is handed the next permit that ends, with the moment it may leave."""

    def __init__(self, limit: int, window_seconds: float) -> None:
        if limit < 0 or not window_seconds > 0:
            raise ValueError(f"need limit >= 0 and window > 0, got {limit}, {window_seconds}")
        self.limit = limit
        self.window_seconds = window_seconds
        self._unused = limit
        self._retiring = 0  # permits to set aside as they come back (after `resize` down)
        self._free_at: deque[float] = deque()  # ended permits, when each is free (ascending)
        # Ended permits set aside by `resize` down, not free yet: minus when each is free (a
        # heap, so the one free last comes back first).
        self._shelved: list[float] = []
        self._line: deque[T] = deque()

    def take(self, now: float) -> float | None:
        """A permit: when the request may leave (`now` below the limit), or None if all N are
        in flight (then `wait_in_line`)."""
        if self._free_at and self._free_at[0] <= now:
            self._free_at.popleft()  # reuse a free permit first: the log stays one window long
            return now
        if self._unused:
            self._unused -= 1
            return now
        if self._free_at:
            return max(now, self._free_at.popleft())
        return None

    @property
    def waiting(self) -> int:
        """How many are in line for a permit."""
        return len(self._line)

    @property
    def out(self) -> int:
        """Requests holding a permit: sent (or handed a moment) and not answered yet. After
        `resize` down this can be more than the limit until the old requests are answered."""
        return self.limit + self._retiring - self._unused - len(self._free_at)

    def wait_in_line(self, waiter: T) -> None:
        self._line.append(waiter)

    def leave_line(self, waiter: T) -> None:
        if waiter in self._line:
            self._line.remove(waiter)

    def resize(
        self, limit: int, now: float, *, gone: Callable[[T], bool] = lambda _: False
    ) -> list[tuple[T, float]]:
        """Change N (0 pauses everyone). Fewer permits are retired as they come back, so
        requests already sent keep their places in the window; an ended permit set aside keeps
        the moment it is free. More permits are those first (a limit that drops and comes back
        within a window does not free a permit early), and go to those in line first (returned
        with the moment each may leave)."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        change, self.limit = limit - self.limit, limit
        handed: list[tuple[T, float]] = []
        if change > 0:
            revived = min(change, self._retiring)
            self._retiring -= revived
            change -= revived
            while change and self._shelved:  # the one free last first: the strictest
                bisect.insort(self._free_at, -heapq.heappop(self._shelved))
                change -= 1
            self._unused += change
            while self._line and (self._unused or self._free_at):
                waiter = self._line.popleft()
                if not gone(waiter):
                    handed.append((waiter, cast(float, self.take(now))))
        else:
            for _ in range(-change):
                if self._unused:
                    self._unused -= 1
                elif self._free_at:
                    self._shelve(self._free_at.pop(), now)  # the one free last
                else:
                    self._retiring += 1
        return handed

    def _shelve(self, free_at: float, now: float) -> None:
        """Set an ended permit aside while it still counts in the window (a free one is just
        dropped: it is as good as a new one)."""
        if free_at > now:
            heapq.heappush(self._shelved, -free_at)

    def end(
        self, now: float, *, gone: Callable[[T], bool] = lambda _: False
    ) -> tuple[T, float] | None:
        """A request was answered at `now`: its permit goes to the first waiter still there
        (returned with the moment it may leave), or back to the pool, or (retiring after
        `resize` down) aside with that moment."""
        free_at = now + self.window_seconds
        if self._retiring:
            self._retiring -= 1
            self._shelve(free_at, now)
            return None
        while self._line:
            waiter = self._line.popleft()
            if not gone(waiter):
                return waiter, free_at
        self._free_at.append(free_at)  # answers come in time order: stays ascending
        return None


class Pacer:
    """Paces one upstream in this process: `async with pacer.slot():` around each attempt."""

    def __init__(
        self,
        rate_per_second: float,
        *,
        initial_limit: int | None = None,
        on_demand: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        limit, window = window_for(rate_per_second)
        self.rate_per_second = rate_per_second
        self.full_limit = limit  # N for the whole rate; a shared budget sets less (`set_limit`)
        start = limit if initial_limit is None else initial_limit
        self._window: SlidingWindow[asyncio.Future[float]] = SlidingWindow(start, window)
        self._on_demand = on_demand
        self._clock = clock
        self._sleep = sleep

    @property
    def limit(self) -> int:
        return self._window.limit

    @property
    def waiting(self) -> int:
        """Requests waiting for a permit (all of them, if the limit is 0)."""
        return self._window.waiting

    @property
    def out(self) -> int:
        """Requests sent (or handed a moment) and not answered yet."""
        return self._window.out

    def set_limit(self, limit: int) -> None:
        """This process's N from now on (a share of the upstream's rate)."""
        handed = self._window.resize(
            min(limit, self.full_limit), self._clock(), gone=lambda line: line.done()
        )
        for line, at in handed:
            line.set_result(at)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        """Wait for this request's turn (yields how long it waited: 0.0 below the limit). The
        request counts as answered when the block exits, however it exits, so a failed or
        cancelled request frees its permit too and nothing behind it can stall."""
        if self._on_demand is not None:
            self._on_demand()
        started = self._clock()
        at = self._window.take(started)
        if at is None:
            line: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            self._window.wait_in_line(line)
            try:
                at = await line
            except asyncio.CancelledError:
                if line.cancelled():
                    self._window.leave_line(line)
                else:  # handed a permit just as it was cancelled
                    self._end()
                raise
        try:
            delay = at - self._clock()
            if delay > 0:
                await self._sleep(delay)
            yield self._clock() - started if at > started else 0.0
        finally:
            self._end()

    def _end(self) -> None:
        handed = self._window.end(self._clock(), gone=lambda line: line.done())
        if handed is not None:
            line, at = handed
            line.set_result(at)
