"""Alias kept for scripts and runbooks: `python -m shared.cli ARGS` runs `ila ARGS`.

The operator's command is `ila` (package `ila/`, installed with the project, not deployed to
Azure); e.g. `python -m shared.cli replay-poison` is `ila replay-poison`.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    from ila.app import main as ila  # noqa: PLC0415 - the CLI is not part of the deployed app

    return ila(argv)


if __name__ == "__main__":
    raise SystemExit(main())
