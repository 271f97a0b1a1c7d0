"""The work queue's message and how it is sent: which operation (its commands stay in the
table), and the W3C `traceparent` of the span that queued it."""

from __future__ import annotations

import json
from dataclasses import dataclass

from shared import telemetry
from shared.storage import Storage


@dataclass(frozen=True)
class QueuedWork:
    """The queue message: which operation (commands stay in the table), and the W3C
    `traceparent` of the span that queued it, when something is traced, so the run links back
    to the call that asked for it. Work sent again as it was (held by a live lease, replayed
    from the poison queue) keeps that context.

    `recovery` marks the message that resumes an operation whose run was lost (its host
    crashed): sent before an operation is accepted, and with every queued lease, visible once
    that lease has run out (`shared.durable.attempt.recovery_delay`). It acts only on an
    operation that needs it (`shared.lifecycle.recoverable`); otherwise it is dropped."""

    operation_id: str
    traceparent: str | None = None
    recovery: bool = False

    @classmethod
    def queued_here(cls, operation_id: str) -> QueuedWork:
        """Work for `operation_id` whose creation context is the current span."""
        return cls(operation_id, telemetry.creation_context())

    @classmethod
    def recovery_of(cls, operation_id: str) -> QueuedWork:
        """The message that resumes `operation_id` if its run is lost."""
        return cls(operation_id, telemetry.creation_context(), recovery=True)

    def to_message(self) -> str:
        data: dict[str, object] = {"operationId": self.operation_id}
        if self.traceparent is not None:
            data["traceparent"] = self.traceparent
        if self.recovery:
            data["recovery"] = True
        return json.dumps(data)

    @classmethod
    def from_message(cls, message: str) -> QueuedWork:
        data = json.loads(message)
        operation_id = data.get("operationId") if isinstance(data, dict) else None
        if not isinstance(operation_id, str) or not operation_id:
            raise ValueError("queue message has no operationId")
        traceparent = data.get("traceparent")
        return cls(
            operation_id,
            traceparent if isinstance(traceparent, str) else None,
            recovery=data.get("recovery") is True,
        )


async def send_work(
    storage: Storage, work: QueuedWork, *, delay: float, poison: bool = False
) -> None:
    """Put `work` on the work queue (or the poison queue), visible after `delay` seconds."""
    queue = storage.poison if poison else storage.queue
    await queue.send_message(work.to_message(), visibility_timeout=round(delay))
