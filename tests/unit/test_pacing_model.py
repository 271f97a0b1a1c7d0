"""A model-based test of the pacer's bookkeeping (hypothesis `RuleBasedStateMachine`):
`SlidingWindow` driven the way `Pacer` drives it, while a shared rate budget changes its limit.

The world's moves are rules: a request arrives (it leaves at once, at a moment the window names,
or waits in line), an answer comes back, a request gives up (waiting in line, or asleep until
its moment; a cancelled waiter may stay in line until its task runs again), the limit changes
(`Pacer.set_limit`, 0 included), time passes.

After every step:
(a) never above the limit: no rolling second holds more requests sent than the largest limit
    in force within it or the second before it (a request handed its moment under the old
    limit still leaves at it, at most a window later: the shared budget's lingering covers
    that, and its model, test_rate_budget_model.py, builds on this);
(b) nobody jumps the line: while a request waits, no permit is free;
(c) never a stall: while a request waits and the limit is above 0, some request holds a permit
    (its answer will hand it on);
(d) waiters leave in the order they came.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shared.clients.pacing import SlidingWindow

WINDOW = 1.0
# A request handed its moment leaves at it, at most one window later, even if the limit drops
# meanwhile: what a second holds was granted within that second or the one before it.
REACH = 2 * WINDOW
EPSILON = 1e-9  # a permit is free exactly a window after its answer: no rounding in between


@dataclass
class Request:
    arrived: float
    leaves: float | None = None  # when it leaves (may be ahead of now: it sleeps until then)
    answered: float | None = None
    gone: bool = False  # gave up: its line future is cancelled
    never_sent: bool = False  # gave up while asleep until its moment

    def sent_by(self, now: float) -> bool:
        return self.leaves is not None and self.leaves <= now and not self.never_sent


class PacingModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.window: SlidingWindow[int] = SlidingWindow(3, WINDOW)
        self.limits: list[tuple[float, int]] = [(float("-inf"), 3)]
        self.requests: list[Request] = []
        self.line_order: list[int] = []  # waiters, in the order they were handed permits

    def gone(self, rid: int) -> bool:
        return self.requests[rid].gone

    def hand(self, handed: list[tuple[int, float]]) -> None:
        for rid, at in handed:
            assert not self.requests[rid].gone, "a permit went to a request that gave up"
            self.requests[rid].leaves = at
            self.line_order.append(rid)

    def holding(self) -> list[int]:
        """Requests holding a permit: leaving or in flight, not yet answered."""
        return [
            rid
            for rid, r in enumerate(self.requests)
            if r.leaves is not None and r.answered is None and not r.gone
        ]

    # -- rules --

    @rule()
    def request_arrives(self) -> None:
        rid = len(self.requests)
        self.requests.append(Request(self.now))
        at = self.window.take(self.now)
        if at is None:
            self.window.wait_in_line(rid)
        else:
            self.requests[rid].leaves = at

    @precondition(lambda self: any(self.requests[r].sent_by(self.now) for r in self.holding()))
    @rule(pick=st.integers(0, 1000))
    def answer_comes_back(self, pick: int) -> None:
        sent = [r for r in self.holding() if self.requests[r].sent_by(self.now)]
        rid = sent[pick % len(sent)]
        self.requests[rid].answered = self.now
        handed = self.window.end(self.now, gone=self.gone)
        if handed is not None:
            self.hand([handed])

    @precondition(
        lambda self: any(
            not r.gone and r.answered is None and (r.leaves is None or r.leaves > self.now)
            for r in self.requests
        )
    )
    @rule(pick=st.integers(0, 1000), leaves_line_now=st.booleans())
    def request_gives_up(self, pick: int, leaves_line_now: bool) -> None:
        """As `Pacer.slot` on cancellation: a waiter leaves the line (now, or when its task
        runs again: until then it is skipped as `gone`); one asleep until its moment frees its
        permit (`end`)."""
        candidates = [
            rid
            for rid, r in enumerate(self.requests)
            if not r.gone and r.answered is None and (r.leaves is None or r.leaves > self.now)
        ]
        rid = candidates[pick % len(candidates)]
        request = self.requests[rid]
        request.gone = True
        if request.leaves is None:
            if leaves_line_now:
                self.window.leave_line(rid)
            return
        request.never_sent = True  # the block exits and its permit is ended
        request.answered = self.now
        handed = self.window.end(self.now, gone=self.gone)
        if handed is not None:
            self.hand([handed])

    @rule(limit=st.integers(0, 3))
    def limit_changes(self, limit: int) -> None:
        self.hand(self.window.resize(limit, self.now, gone=self.gone))
        self.limits.append((self.now, limit))

    @rule(seconds=st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.999, 1.0, 1.001, 1.7]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        for rid, request in enumerate(self.requests):
            if request.gone and request.leaves is None:
                self.window.leave_line(rid)  # its task ran again: it leaves the line

    # -- invariants --

    @invariant()
    def never_above_the_limit(self) -> None:
        sends = sorted(
            r.leaves for r in self.requests if r.leaves is not None and r.sent_by(self.now)
        )
        for end in sends:
            inside = [s for s in sends if end - WINDOW + EPSILON < s <= end]
            allowed = largest_limit(self.limits, end - REACH, end)
            assert len(inside) <= allowed, f"(a) {len(inside)} sent in ({end - 1:.3f}, {end:.3f}]"

    @invariant()
    def nobody_jumps_the_line(self) -> None:
        if any(r.leaves is None and not r.gone for r in self.requests):
            probe = copy.deepcopy(self.window)
            assert probe.take(self.now) is None, "(b) a permit is free while a request waits"

    @invariant()
    def never_a_stall(self) -> None:
        waiting = any(r.leaves is None and not r.gone for r in self.requests)
        if waiting and self.window.limit > 0:
            assert self.holding(), "(c) a request waits and no permit will come back"

    @invariant()
    def waiters_leave_in_order(self) -> None:
        assert self.line_order == sorted(self.line_order), f"(d) {self.line_order}"


def largest_limit(limits: list[tuple[float, int]], since: float, until: float) -> int:
    """The largest limit in force within (since, until], from a history of (when, limit)."""
    before = [limit for when, limit in limits if when <= since]
    during = [limit for when, limit in limits if since < when <= until]
    return max([before[-1], *during])


TestPacingModel = PacingModel.TestCase
TestPacingModel.settings = settings(
    max_examples=int(os.environ.get("PACING_MODEL_EXAMPLES", "200")),
    stateful_step_count=50,
    deadline=None,
    derandomize=os.environ.get("PACING_MODEL_RANDOM") != "1",  # CI replays a fixed seed
    database=None,
)
