"""One log line of ours for every retry stamina schedules in the process.

stamina's on-retry hooks are process-wide. `use_our_retry_log()` makes `log_retry` the only one
(in place of stamina's bare `stamina.retry_scheduled` line); whoever is about to retry calls it
first: upstream calls when their first attempt failed (`shared.clients.http`), so a call answered
at once never loads stamina (some 20 ms of a cold start), and the storage path before it writes
an answer (`shared.durable`, its one retried write). Each retry is then logged the same way from
the first one on, whichever path retries first.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stamina.instrumentation import RetryDetails

logger = logging.getLogger(__name__)


def log_retry(details: RetryDetails) -> None:
    """stamina's on-retry hook: one WARNING line per scheduled retry, naming the call, the
    attempt that failed, why (an upstream failure's reason, else the exception's type) and the
    wait before the next one. The call is the one the failure names (an upstream attempt's
    failure carries `call`: `upstream=... METHOD /path`), else the callable stamina retries."""
    cause = details.caused_by
    reason = getattr(cause, "reason", None)
    call = getattr(cause, "call", None)
    logger.warning(
        "%s attempt=%d failed (%s): retrying in %.2f s",
        call if isinstance(call, str) else details.name,
        details.retry_num,
        reason if isinstance(reason, str) else type(cause).__name__,
        details.wait_for,
    )


@cache
def use_our_retry_log() -> None:
    """Make `log_retry` stamina's on-retry hook (once per process; later calls do nothing)."""
    from stamina.instrumentation import set_on_retry_hooks  # noqa: PLC0415 - with the first retry

    set_on_retry_hooks([log_retry])
