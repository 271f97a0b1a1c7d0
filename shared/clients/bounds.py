"""What an upstream's answer may make us do, bounded: the documented ranges, in one place.

- `Retry-After`: read as whole seconds clamped to 0..`RETRY_AFTER_MAX_SECONDS` before any
  arithmetic (`clamp_retry_after`), by the one parser (`shared.clients.classify`); the wait
  we take is further capped by `RETRY_AFTER_CAP_SECONDS` and the call's deadline, and the hint
  we pass on to our caller is at most this range.
- An answer's body: at most `MAX_UPSTREAM_BODY_BYTES` (default `DEFAULT_MAX_UPSTREAM_BODY_BYTES`)
  on the wire *and* after decoding its `Content-Encoding` (`shared.clients.http`).
- One deadline per call: `RETRY_BUDGET_SECONDS`, covering connect, every read, every wait and
  every retry (`shared.clients.http.ResilientHttp.send`).

No imports: settings (`shared.config`) and the clients read the same numbers.
"""

from __future__ import annotations

import math

RETRY_AFTER_MAX_SECONDS = 3600  # an hour: the longest wait we believe, or tell a caller
DEFAULT_MAX_UPSTREAM_BODY_BYTES = 1_048_576  # an upstream's answers are a few hundred bytes


def clamp_retry_after(seconds: float) -> int:
    """`seconds` as whole seconds within 0..RETRY_AFTER_MAX_SECONDS: a fraction rounds up,
    anything below 0 (or not a number) is 0 and anything above the range (infinity too) is
    its top."""
    if not seconds > 0:  # negative, zero or NaN
        return 0
    if seconds >= RETRY_AFTER_MAX_SECONDS:
        return RETRY_AFTER_MAX_SECONDS
    return math.ceil(seconds)
