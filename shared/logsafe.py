"""Untrusted text made safe to show: in a log line, in a problem's members.

A field name from a caller's JSON, an upstream's `meta.requestId` or problem `code`, a header:
any of them may hold a line break (a forged log line after it), an ANSI escape (a terminal
rewritten), or 200 KB. `clip` shows such text on one line of at most `limit` characters: every
character that is not printable escaped as `repr` escapes it (`\\n`, `\\x1b`, `\\u2028`), and
a text longer than that cut, with the length of the whole at the end:

    >>> clip("x\\n2026-12-07 ERROR forged")
    'x\\\\n2026-12-07 ERROR forged'
    >>> clip("a" * 500, limit=20)
    'aaaaaaaa…(500 chars)'

Text that is printable and short comes back unchanged, so ordinary names read as they are, and
clipping twice changes nothing (a backslash is kept as it is: an escape shown by `clip` is
text, never a line break).
"""

from __future__ import annotations

from typing import Final

LIMIT: Final = 200


def _escaped(char: str) -> str:
    return char if char.isprintable() else repr(char)[1:-1]  # \n, \x1b, \u2028


def clip(value: object, limit: int = LIMIT) -> str:
    """`value` as one printable line of at most `limit` characters."""
    text = value if isinstance(value, str) else str(value)
    shown: list[str] = []
    size = 0
    for char in text:
        piece = _escaped(char)
        if size + len(piece) > limit:
            return _cut(shown, limit, total=len(text))
        shown.append(piece)
        size += len(piece)
    return "".join(shown)


def _cut(shown: list[str], limit: int, *, total: int) -> str:
    """The first pieces of `shown` that fit beside the marker, then the marker."""
    marker = f"…({total} chars)"
    kept: list[str] = []
    size = 0
    for piece in shown:
        if size + len(piece) > limit - len(marker):
            break
        kept.append(piece)
        size += len(piece)
    return "".join(kept) + marker
