"""What a process loads to serve its calls lives as long as the process: keep the garbage
collector off it.

A full (generation 2) collection walks every object the collector tracks. Once a process has
served its first calls, most of those are the modules, pydantic validators and pooled clients
it loaded to serve them, alive until the process ends; what a collection is for is the cyclic
garbage calls leave behind (a queued run leaves some; a direct call leaves none, as
tests/functions/test_cycles.py checks). `after_call()` moves
everything tracked into the permanent generation (`gc.freeze()`) after each call that loaded
new modules, so later collections walk only what calls allocate. Measured in one process with
16 calls in flight (bench/results.md, P1): full collections went from 60-95 ms to about 10 ms,
and with them the p99.

The cost: cyclic garbage that exists at the moment of a freeze (left by calls in flight then)
is never collected; that is bounded by the calls in flight, once per freeze, and freezes stop
once the process has loaded what its routes need. Objects are still freed by reference
counting as usual.
"""

from __future__ import annotations

import gc
import sys

_modules_at_last_freeze = 0


def after_call() -> None:
    """Call when a call has been answered: freezes what is tracked if the call loaded modules."""
    global _modules_at_last_freeze  # one process, one count
    loaded = len(sys.modules)
    if loaded != _modules_at_last_freeze:
        _modules_at_last_freeze = loaded
        gc.freeze()
