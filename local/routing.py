"""Route templates for the local host: literal segments and ``{name}`` parameters.

Every route the app declares is made of literal segments and whole-segment ``{name}``
parameters, so that is the grammar served here; a template with anything else (constraints,
optional or catch-all parameters, text and a parameter in one segment) is refused at start-up
rather than matched differently from Azure. A template is compiled with starlette's
:func:`~starlette.routing.compile_path` and matched as the Functions host matches it:

* against the request path split on ``/`` and percent-decoded per segment, so an encoded
  ``%2F`` stays inside its segment and one trailing slash is ignored;
* literals case-insensitively, parameter values in the request's spelling.

:attr:`RouteTemplate.precedence` orders templates the way ASP.NET does when several match:
segment by segment, a literal before a parameter; smaller tuples are tried first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import unquote, unquote_to_bytes

from starlette.routing import compile_path

__all__ = ["RouteTemplate", "RouteTemplateError", "split_path"]

_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_LITERAL = re.compile(r"[^{}?]+")
_LITERAL_PRECEDENCE, _PARAMETER_PRECEDENCE = 0, 1


class RouteTemplateError(ValueError):
    """A route template outside the grammar the local host serves."""


def _precedence(segment: str, template: str) -> int:
    if _PARAMETER.fullmatch(segment):
        return _PARAMETER_PRECEDENCE
    if _LITERAL.fullmatch(segment):
        return _LITERAL_PRECEDENCE
    raise RouteTemplateError(
        f"route {template!r}: segment {segment!r} is neither a literal nor a whole {{name}}"
        " parameter, the only forms the local host serves"
    )


def _one_segment(decoded: str) -> str:
    """A decoded segment with its own ``%`` and ``/`` escaped, so no match can cross it."""
    return decoded.replace("%", "%25").replace("/", "%2F")


class RouteTemplate:
    """One compiled route template; immutable once built."""

    __slots__ = ("_regex", "precedence", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        stripped = text.strip("/")
        segments = stripped.split("/") if stripped else []
        if "" in segments:
            raise RouteTemplateError(f"route {text!r} has an empty segment ('//')")
        self.precedence: tuple[int, ...] = tuple(_precedence(s, text) for s in segments)
        names = [name.casefold() for name in _PARAMETER.findall(stripped)]
        if len(set(names)) != len(names):
            raise RouteTemplateError(f"route {text!r} repeats a parameter name")
        regex, _, _ = compile_path("/" + stripped)
        self._regex = re.compile(regex.pattern, re.IGNORECASE)

    def __repr__(self) -> str:
        return f"RouteTemplate({self.text!r})"

    def match(self, segments: Sequence[str]) -> dict[str, str] | None:
        """Route values for a split, decoded path, or ``None`` when the template does not fit."""
        found = self._regex.match("/" + "/".join(_one_segment(s) for s in segments))
        if found is None:
            return None
        return {name: unquote(value) for name, value in found.groupdict().items()}


def split_path(raw_path: bytes) -> list[str]:
    """``b"/api/a%20b/c/"`` → ``["api", "a b", "c"]``: one trailing slash ignored, as ASP.NET does.

    Each segment is percent-decoded on its own, so an encoded ``%2F`` stays inside its segment.
    """
    path = raw_path.split(b"?", 1)[0]
    path = path.removeprefix(b"/")
    path = path.removesuffix(b"/")
    if not path:
        return []
    return [unquote_to_bytes(part).decode("utf-8", "replace") for part in path.split(b"/")]
