"""shared.heap: what the first calls load is frozen out of the collector's way, once."""

from __future__ import annotations

import gc
import sys
import types

import pytest

from shared import heap


@pytest.fixture
def freezes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """gc.freeze() calls, recorded (with the module count each saw) instead of made."""
    seen: list[int] = []
    monkeypatch.setattr(gc, "freeze", lambda: seen.append(len(sys.modules)))
    monkeypatch.setattr(heap, "_modules_at_last_freeze", 0)
    return seen


def test_the_first_call_freezes_and_a_call_that_loads_nothing_does_not(
    freezes: list[int],
) -> None:
    heap.after_call()
    heap.after_call()
    assert len(freezes) == 1


def test_a_call_that_loaded_a_module_freezes_again(
    freezes: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    heap.after_call()
    monkeypatch.setitem(sys.modules, "loaded_by_a_later_call", types.ModuleType("x"))
    heap.after_call()
    heap.after_call()
    assert len(freezes) == 2
    assert freezes[1] == freezes[0] + 1
