"""Operator commands. `python -m shared.cli replay-poison` moves poisoned work back to the
work queue (after the cause is fixed) and prints each operation it moved."""

from __future__ import annotations

import argparse
import asyncio
import sys

from shared import storage
from shared.config import get_settings
from shared.durable import replay_poison


async def _replay(limit: int) -> list[str]:
    try:
        return await replay_poison(get_settings(), limit=limit)
    finally:
        await storage.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    replay = commands.add_parser("replay-poison", help="move poison messages back to the queue")
    replay.add_argument("--limit", type=int, default=1000, help="at most this many (1000)")
    args = parser.parse_args(argv)
    moved = asyncio.run(_replay(args.limit))
    for operation_id in moved:
        sys.stdout.write(f"replayed operation {operation_id}\n")
    sys.stdout.write(f"{len(moved)} message(s) moved from the poison queue\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
