"""The fault plan: scripted sequence, seeded probabilities, rolling 1-second rate limit."""

from __future__ import annotations

from typing import Any

import pytest

from local.sandbox.faults import Fault, FaultGate, FaultKind, FaultPlan
from tests.sandbox.fakes import FakeClock


def kinds(plan: FaultPlan, n: int) -> list[FaultKind | None]:
    return [None if (f := plan.next_fault()) is None else f.kind for _ in range(n)]


def test_empty_plan_never_faults() -> None:
    assert kinds(FaultPlan(), 5) == [None] * 5


def test_script_is_consumed_one_entry_per_request_then_requests_pass() -> None:
    plan = FaultPlan(script=[Fault.of(FaultKind.UNAVAILABLE)] * 3)
    assert kinds(plan, 5) == [FaultKind.UNAVAILABLE] * 3 + [None, None]


def test_none_in_a_script_lets_that_request_through() -> None:
    plan = FaultPlan.from_json(
        {"script": [{"kind": "server_error"}, {"kind": "none"}, {"kind": "reset"}]}
    )
    assert kinds(plan, 4) == [FaultKind.SERVER_ERROR, None, FaultKind.RESET, None]


def test_same_seed_gives_the_same_faults() -> None:
    probabilities = {FaultKind.SERVER_ERROR: 0.2, FaultKind.UNAVAILABLE: 0.2}
    first = kinds(FaultPlan(probabilities=probabilities, seed=7), 200)
    second = kinds(FaultPlan(probabilities=probabilities, seed=7), 200)
    assert first == second
    assert {FaultKind.SERVER_ERROR, FaultKind.UNAVAILABLE, None} == set(first)


def test_probability_sets_roughly_the_share_of_faulted_requests() -> None:
    drawn = kinds(FaultPlan(probabilities={FaultKind.SERVER_ERROR: 0.3}, seed=1), 2000)
    assert 500 < drawn.count(FaultKind.SERVER_ERROR) < 700


def test_probability_one_faults_every_request() -> None:
    plan = FaultPlan(probabilities={FaultKind.RATE_LIMITED: 1.0}, seed=1)
    assert kinds(plan, 10) == [FaultKind.RATE_LIMITED] * 10


def test_rate_limited_fault_defaults_to_retry_after_one_second() -> None:
    assert Fault.of(FaultKind.RATE_LIMITED).retry_after == 1
    assert Fault.of(FaultKind.UNAVAILABLE).retry_after is None


def test_rate_limit_rejects_requests_beyond_r_within_one_second() -> None:
    clock = FakeClock()
    plan = FaultPlan(rate_limit_per_second=3, clock=clock)
    decided = kinds(plan, 3)
    clock.advance(0.5)
    decided += kinds(plan, 1)
    assert decided == [None, None, None, FaultKind.RATE_LIMITED]


def test_rate_limit_fault_says_retry_after_one_second() -> None:
    plan = FaultPlan(rate_limit_per_second=1, clock=FakeClock())
    plan.next_fault()
    assert plan.next_fault() == Fault(FaultKind.RATE_LIMITED, retry_after=1)


def test_rate_limit_admits_again_once_the_window_has_rolled() -> None:
    clock = FakeClock()
    plan = FaultPlan(rate_limit_per_second=2, clock=clock)
    kinds(plan, 3)
    clock.advance(1.0)
    assert kinds(plan, 3) == [None, None, FaultKind.RATE_LIMITED]


def test_requests_refused_by_the_rate_limit_do_not_fill_the_window() -> None:
    clock = FakeClock()
    plan = FaultPlan(rate_limit_per_second=1, clock=clock)
    plan.next_fault()
    clock.advance(0.9)
    plan.next_fault()  # refused at t+0.9
    clock.advance(0.1)
    assert plan.next_fault() is None


def test_rate_limit_is_checked_before_the_script() -> None:
    plan = FaultPlan(
        script=[Fault.of(FaultKind.SERVER_ERROR)] * 2, rate_limit_per_second=1, clock=FakeClock()
    )
    assert kinds(plan, 2) == [FaultKind.SERVER_ERROR, FaultKind.RATE_LIMITED]


def test_from_json_reads_every_member() -> None:
    clock = FakeClock()
    plan = FaultPlan.from_json(
        {
            "script": [
                {"kind": "unavailable", "retryAfter": 2},
                {"kind": "slow", "delaySeconds": 0.25},
            ],
            "probabilities": {"server_error": 0.1},
            "seed": 1,
            "rateLimitPerSecond": 5,
        },
        clock=clock,
    )
    assert plan.to_json() == {
        "script": [
            {"kind": "unavailable", "retryAfter": 2, "delaySeconds": 1.0},
            {"kind": "slow", "retryAfter": None, "delaySeconds": 0.25},
        ],
        "probabilities": {"server_error": 0.1},
        "seed": 1,
        "rateLimitPerSecond": 5,
    }
    assert plan.clock is clock


@pytest.mark.parametrize(
    "doc",
    [
        {"script": [{"kind": "explode"}]},
        {"script": [{"kind": "slow", "delaySeconds": -1}]},
        {"probabilities": {"server_error": 1.5}},
        {"probabilities": {"server_error": 0.6, "unavailable": 0.6}},
        {"rateLimitPerSecond": 0},
        {"unknown": 1},
        [],
    ],
)
def test_from_json_rejects_invalid_plans_with_value_error(doc: Any) -> None:
    with pytest.raises(ValueError, match=r"fault plan|probabilities"):
        FaultPlan.from_json(doc)


def test_gate_counts_action_requests_and_faulted_ones_by_kind() -> None:
    gate = FaultGate(FaultPlan(script=[Fault.of(FaultKind.SERVER_ERROR), None]))
    for _ in range(3):
        gate.admit()
    assert gate.counters.to_json() == {
        "actionRequests": 3,
        "faulted": 1,
        "faultsByKind": {"server_error": 1},
    }


def test_gate_reset_clears_plan_and_counters_but_keeps_the_clock() -> None:
    clock = FakeClock()
    gate = FaultGate(FaultPlan(script=[Fault.of(FaultKind.RESET)], clock=clock))
    gate.admit()
    gate.reset()
    assert gate.counters.action_requests == 0
    assert gate.admit() is None
    assert gate.plan.clock is clock
