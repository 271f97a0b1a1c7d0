"""Generate the sync client (`_sync.py`) from the async one (`_async.py`) with `unasync`.

    .venv/bin/python tools/generate_sync_client.py          # rewrite _sync.py
    .venv/bin/python tools/generate_sync_client.py --check  # exit 1 if _sync.py is stale

`make lint` runs `--check` (as encode/httpcore's `scripts/unasync.py --check` does), so the two
clients cannot drift apart: edit `_async.py` only. unasync drops `async`/`await` and renames
by token (`__aenter__` → `__enter__`, `AsyncX` → `SyncX`); `RENAMES` below says where this
client's names differ from that rule. The module docstring is replaced by `SYNC_DOCSTRING`, and
ruff formats the result as it formats every file (lines that lost an `await` may join).
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tempfile
from pathlib import Path

import unasync  # type: ignore[import-untyped]  # unasync ships no type information

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "incident_link_actions_client"
ASYNC_SOURCE = PACKAGE / "_async.py"
SYNC_SOURCE = PACKAGE / "_sync.py"

RENAMES = {
    "AsyncClient": "Client",  # ours and httpx's
    "AsyncBaseTransport": "BaseTransport",  # httpx's
    "AsyncSleep": "Sleep",  # _core's
    "aclose": "close",  # ours and httpx's
    "asyncio": "time",  # asyncio.sleep → time.sleep
}
SYNC_DOCSTRING = '''"""`Client`: the synchronous client, on `httpx.Client`.

Generated from `_async.py` by `tools/generate_sync_client.py` (with `unasync`); do not edit:
edit `_async.py`, then run `.venv/bin/python tools/generate_sync_client.py`.
"""
'''


def without_docstring(source: str) -> str:
    """The module's source after its docstring."""
    first = ast.parse(source).body[0]
    if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)):
        raise SystemExit(f"{ASYNC_SOURCE.name} must open with its module docstring")
    assert first.end_lineno is not None  # noqa: S101 - always set by ast.parse
    return "".join(source.splitlines(keepends=True)[first.end_lineno :])


def unasynced(source: str) -> str:
    """`source` through unasync's token rules and `RENAMES` (unasync works on files)."""
    with tempfile.TemporaryDirectory() as folder:
        async_file = Path(folder) / ASYNC_SOURCE.name
        async_file.write_text(source, encoding="utf-8")
        rule = unasync.Rule(
            f"/{ASYNC_SOURCE.name}", f"/{SYNC_SOURCE.name}", additional_replacements=RENAMES
        )
        unasync.unasync_files([str(async_file)], rules=[rule])
        return (Path(folder) / SYNC_SOURCE.name).read_text(encoding="utf-8")


def formatted(source: str) -> str:
    """`source` as `ruff format` leaves it, with this repository's settings."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and ruff
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(SYNC_SOURCE), "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"ruff format failed on the generated client:\n{done.stderr}")
    return done.stdout


def generated() -> str:
    """What `_sync.py` must hold, given `_async.py`."""
    body = without_docstring(ASYNC_SOURCE.read_text(encoding="utf-8"))
    return formatted(SYNC_DOCSTRING + unasynced(body))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if _sync.py is not current")
    args = parser.parse_args(argv)
    wanted = generated()
    name = SYNC_SOURCE.relative_to(ROOT)
    if args.check:
        if SYNC_SOURCE.read_text(encoding="utf-8") != wanted:
            sys.stderr.write(
                f"{name} is not what {ASYNC_SOURCE.name} generates: "
                "run .venv/bin/python tools/generate_sync_client.py\n"
            )
            return 1
        return 0
    SYNC_SOURCE.write_text(wanted, encoding="utf-8")
    sys.stdout.write(f"wrote {name}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
