"""Pacing as the limit is written: no rolling window over N, no wait below it, the ideal grid.

D3 documents "50 requests per second" (seeds/vendor-notes.md): a cap on every rolling second,
which the sandbox simulators enforce the same way (local/sandbox/faults.py, `FaultPlan`).
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import math
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.clients.pacing import Pacer, SlidingWindow, window_for


class FakeTime:
    """An injected clock; `sleep` advances it by the delay plus a fixed lateness."""

    def __init__(self, lateness: float = 0.0) -> None:
        self.now = 0.0
        self.lateness = lateness
        self.woke: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now += delay + self.lateness
        self.woke.append(self.now)


def most_in_any_window(times: list[float], window: float) -> int:
    """The largest number of `times` inside any half-open window [t, t + window)."""
    ordered = sorted(times)
    return max(
        (bisect.bisect_left(ordered, t + window) - i for i, t in enumerate(ordered)), default=0
    )


@dataclass
class Run:
    arrivals: list[float]
    latencies: list[float]
    sends: list[float]
    answers: list[float]


def simulate(limit: int, arrivals: list[float], latencies: list[float]) -> Run:
    """Drive `SlidingWindow` with an injected clock: request i arrives at arrivals[i], leaves
    when the window lets it, and is answered latencies[i] later (events in time order)."""
    window: SlidingWindow[int] = SlidingWindow(limit, 1.0)
    sends = [math.nan] * len(arrivals)
    answers = [math.nan] * len(arrivals)
    events: list[tuple[float, int, int]] = [(t, 1, i) for i, t in enumerate(arrivals)]
    heapq.heapify(events)  # (time, 0 = answered / 1 = arrives, request)

    def leave(i: int, at: float) -> None:
        sends[i] = at
        answers[i] = at + latencies[i]
        heapq.heappush(events, (answers[i], 0, i))

    while events:
        now, kind, i = heapq.heappop(events)
        if kind == 1:
            at = window.take(now)
            if at is None:
                window.wait_in_line(i)
            else:
                leave(i, at)
        else:
            handed = window.end(now)
            if handed is not None:
                leave(*handed)
    return Run(arrivals, latencies, sends, answers)


requests = st.integers(1, 80).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(0, 4, allow_nan=False), min_size=n, max_size=n).map(sorted),
        st.lists(st.floats(0, 0.3, allow_nan=False), min_size=n, max_size=n),
        st.lists(st.floats(0, 1, allow_nan=False), min_size=n, max_size=n),
    )
)


@given(limit=st.integers(1, 30), requests=requests)
def test_no_window_ever_holds_more_than_the_limit_as_the_upstream_counts(
    limit: int, requests: tuple[list[float], list[float], list[float]]
) -> None:
    arrivals, latencies, where = requests
    run = simulate(limit, arrivals, latencies)
    # The upstream counts each request somewhere between its send and its answer.
    counted = [s + w * lat for s, w, lat in zip(run.sends, where, latencies, strict=True)]
    assert most_in_any_window(counted, 1.0) <= limit
    assert all(s >= a for s, a in zip(run.sends, arrivals, strict=True))


@given(limit=st.integers(1, 30), requests=requests)
def test_a_caller_below_the_limit_never_waits(
    limit: int, requests: tuple[list[float], list[float], list[float]]
) -> None:
    arrivals, latencies, _ = requests
    run = simulate(limit, arrivals, latencies)
    for i, now in enumerate(arrivals):
        # in flight, or answered within the last second, when request i arrives
        busy = sum(
            1
            for j in range(len(arrivals))
            if j != i and run.sends[j] <= now and run.answers[j] > now - 1.0
        )
        waiting_ahead = sum(1 for j in range(i) if run.sends[j] > now)
        if busy < limit and not waiting_ahead:
            assert run.sends[i] == now


@given(limit=st.integers(1, 30), requests=requests)
def test_a_waiting_caller_leaves_a_second_after_an_answer_frees_its_permit(
    limit: int, requests: tuple[list[float], list[float], list[float]]
) -> None:
    arrivals, latencies, _ = requests
    run = simulate(limit, arrivals, latencies)
    for send, now in zip(run.sends, arrivals, strict=True):
        if send > now:
            assert any(math.isclose(send - 1.0, answer, abs_tol=1e-9) for answer in run.answers)


async def test_ten_sequential_calls_below_the_limit_do_not_wait() -> None:
    clock = FakeTime()
    pacer = Pacer(20, clock=clock, sleep=clock.sleep)
    waits = []
    for _ in range(10):
        async with pacer.slot() as waited:
            clock.now += 0.001  # the call itself
        waits.append(waited)
    assert waits == [0.0] * 10


async def test_a_burst_beyond_the_limit_waits_a_window_after_the_first_answer() -> None:
    clock = FakeTime()
    pacer = Pacer(5, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        async with pacer.slot() as waited:
            clock.now += 0.01
        assert waited == 0.0
    async with pacer.slot() as waited:
        pass
    assert clock.now == pytest.approx(1.01)  # the first answer came at 10 ms


async def test_a_late_wake_up_costs_later_requests_nothing() -> None:
    clock = FakeTime(lateness=0.004)  # every sleeper wakes 4 ms late
    pacer = Pacer(2, clock=clock, sleep=clock.sleep)
    for _ in range(2 + 2 * 10):
        async with pacer.slot():
            pass  # answered at once
    # Each permit comes back 1 s after its answer; a sleeper's lateness delays only itself:
    # the 10th wait of each permit ends at 10 s + 10 x 4 ms (its own wake-ups) at most.
    assert clock.woke[-1] == pytest.approx(10.04)


async def test_a_failed_request_frees_its_permit_for_the_next_in_line() -> None:
    pacer = Pacer(1)
    with pytest.raises(RuntimeError):
        async with pacer.slot():
            raise RuntimeError("upstream gone")
    async with asyncio.timeout(2), pacer.slot() as waited:
        pass
    assert waited < 1.5


async def test_a_cancelled_waiter_gives_up_its_place_in_line() -> None:
    clock = FakeTime()
    pacer = Pacer(1, clock=clock, sleep=clock.sleep)
    first = pacer.slot()
    await first.__aenter__()  # in flight
    cancelled = asyncio.create_task(pacer.slot().__aenter__())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    behind = asyncio.create_task(pacer.slot().__aenter__())
    await asyncio.sleep(0)
    await first.__aexit__(None, None, None)  # answered: the permit goes to `behind`
    assert await asyncio.wait_for(behind, 1) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("rate", "expected"), [(50.0, (50, 1.0)), (20.5, (20, 1.0)), (1.0, (1, 1.0)), (0.5, (1, 2.0))]
)
def test_rates_become_a_whole_count_per_window_never_above_the_rate(
    rate: float, expected: tuple[int, float]
) -> None:
    assert window_for(rate) == expected


@pytest.mark.parametrize("rate", [0.0, -1.0, float("inf"), float("nan")])
def test_an_unusable_rate_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="rate must be"):
        window_for(rate)


async def test_the_window_keeps_one_window_of_answers_not_every_answer() -> None:
    """A bug: with a high rate (P4 runs at 1,000,000/s) unused permits were taken before free
    ones, so every answer stayed in the log: memory grew with every request."""
    clock = FakeTime()
    window: SlidingWindow[int] = SlidingWindow(1_000_000, 1.0)
    for _ in range(10_000):
        assert window.take(clock.now) == clock.now
        clock.now += 0.01
        window.end(clock.now)
    assert len(window._free_at) <= 102  # about one second of answers at 100/s


def test_a_permit_answered_before_the_limit_drops_is_not_free_early_when_it_comes_back() -> None:
    """A bug found by test_pacing_model.py: `resize` down dropped an ended permit with the
    moment it is free, and `resize` up made a fresh one free at once: four requests in a
    second at a limit of 3."""
    window: SlidingWindow[str] = SlidingWindow(3, 1.0)
    assert [window.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert window.end(0.0) is None  # one answered at once: free again at 1.0
    window.resize(0, 0.0)
    window.resize(3, 0.0)
    assert window.take(0.0) == 1.0


def test_a_permit_retired_as_it_comes_back_still_counts_when_the_limit_comes_back() -> None:
    """The same bug the other way: a permit retired at its answer (after `resize` down) was
    gone, so `resize` up made a fresh one free at once."""
    window: SlidingWindow[str] = SlidingWindow(3, 1.0)
    assert [window.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    window.resize(0, 0.0)  # all three in flight: each retires as it comes back
    assert window.end(0.0) is None
    window.resize(3, 0.0)
    assert window.take(0.0) == 1.0


def test_a_limit_that_comes_back_brings_back_the_permit_still_counting_not_an_old_one() -> None:
    """Found in review, with test_pacing_model.py on random seeds: `resize` up brought back
    the permit set aside that was free first (long free: as good as a new one), while the one
    still counting stayed aside: two requests in one second at a limit of 1."""
    window: SlidingWindow[str] = SlidingWindow(2, 1.0)
    assert [window.take(0.0), window.take(0.0)] == [0.0, 0.0]
    assert window.end(0.0) is None
    assert window.end(0.0) is None  # both free again at 1.0
    window.resize(1, 5.0)
    assert window.take(7.0) == 7.0
    assert window.end(7.0) is None  # free again at 8.0
    window.resize(0, 7.0)
    window.resize(1, 7.0)
    assert window.take(7.0) == 8.0


def test_requests_of_a_larger_limit_still_out_after_a_cut_are_counted_out() -> None:
    """What the shared budget reports besides the limit: requests sent and not answered, even
    when a cut has lowered the limit below them (a slow upstream may count them late)."""
    window: SlidingWindow[str] = SlidingWindow(4, 1.0)
    assert [window.take(0.0) for _ in range(4)] == [0.0] * 4
    window.resize(1, 0.0)  # cut: the four stay out
    assert window.out == 4
    assert window.end(0.6) is None
    assert window.end(0.7) is None
    assert window.out == 2
    assert window.end(2.0) is None
    assert window.end(2.0) is None
    assert window.out == 0
    assert window.take(2.0) == 3.0  # the one permit left is free a window after its answer
    assert window.out == 1
