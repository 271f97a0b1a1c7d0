"""`ila replay-poison`: the app's poison queue, read and replayed with the app's own settings."""

from __future__ import annotations

import asyncio
import json

from rich.console import Console
from rich.table import Table

from ila.render import FAILURE, SUCCESS
from shared import storage
from shared.config import get_settings
from shared.core import Core
from shared.durable.worker import replay_poison as replay
from shared.errors import AppError, NotConfigured

PEEK_LIMIT = 32  # Azure Queue Storage shows at most 32 messages without taking them


async def _replay(limit: int) -> list[str]:
    try:
        return await replay(Core.from_settings(get_settings()), limit=limit)
    finally:
        await storage.aclose()


async def _peek(limit: int) -> list[tuple[str, int]]:
    """(operation id, times delivered) of the first poison messages; nothing is taken."""
    try:
        found = await storage.storage(get_settings())
        messages = await found.poison.peek_messages(max_messages=min(limit, PEEK_LIMIT))
    finally:
        await storage.aclose()
    listed = []
    for message in messages:
        try:
            operation_id = str(json.loads(message.content).get("operationId"))
        except (ValueError, AttributeError):
            operation_id = "(unreadable message)"
        listed.append((operation_id, int(message.dequeue_count or 0)))
    return listed


def replay_poison(console: Console, *, dry_run: bool, limit: int) -> int:
    """Replay (or with `dry_run` list) poisoned work; the exit status."""
    try:
        if dry_run:
            listed = asyncio.run(_peek(limit))
        else:
            moved = asyncio.run(_replay(limit))
    except NotConfigured as exc:
        console.print(
            f"[red]not configured[/]: {exc.message} (settings: {', '.join(exc.settings)})"
        )
        return FAILURE
    except AppError as exc:
        console.print(f"[red]{type(exc).__name__}[/]: {exc.message}")
        return FAILURE
    if dry_run:
        table = Table("operation", "delivered", title="poison queue (nothing moved)")
        for operation_id, delivered in listed:
            table.add_row(operation_id, str(delivered))
        console.print(table)
        more = " (the first ones: a peek shows at most 32)" if len(listed) == PEEK_LIMIT else ""
        console.print(f"{len(listed)} message(s) would be replayed{more}")
        return SUCCESS
    for operation_id in moved:
        console.print(f"replayed operation {operation_id}")
    console.print(f"{len(moved)} message(s) moved from the poison queue")
    return SUCCESS
