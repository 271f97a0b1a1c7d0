"""ASP.NET Core route templates, as the Azure Functions host understands them.

A template such as ``items/{id:int}/files/{*rest}`` is parsed once into segments; a request
path, already split on ``/`` and percent-decoded per segment, is then matched against it.
Matching follows ASP.NET Core's template router:

* literals compare case-insensitively; parameter values keep the request's spelling;
* ``{name}`` matches one non-empty segment, ``{name?}`` may be absent, ``{name=value}`` has a
  default, ``{*rest}`` / ``{**rest}`` take every remaining segment (possibly none);
* inline constraints (``{id:int}``, ``{code:length(3):alpha}``, ``{x:regex(^a.+$)}``) must all
  accept the value;
* a segment may mix literals and parameters (``{name}.{ext?}``, ``v{major:int}``); it is matched
  from the right, each literal at its last occurrence, as ASP.NET does.

:attr:`RouteTemplate.precedence` orders templates as ASP.NET does when several match: one digit
per segment, literal (1) < complex segment (2) < constrained parameter (2) < parameter (3) <
constrained catch-all (4) < catch-all (5); smaller tuples are tried first.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

__all__ = [
    "RouteTemplate",
    "RouteTemplateError",
    "split_path",
]

Check = Callable[[str], bool]

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")
_DOUBLE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ALPHA = re.compile(r"[A-Za-z]+")
_HEX32 = r"[0-9A-Fa-f]{32}"
_DASHED = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_GUID = re.compile(rf"{_HEX32}|{_DASHED}|\{{{_DASHED}\}}|\({_DASHED}\)")
_PARAMETER_NAME = re.compile(r"[^{}/?*:=]+")


class RouteTemplateError(ValueError):
    """A route template the Functions host would refuse at start-up."""


# --------------------------------------------------------------------------- constraints


def _integer_in(bounds: tuple[int, int]) -> Check:
    low, high = bounds

    def check(value: str) -> bool:
        return _INTEGER.fullmatch(value) is not None and low <= int(value) <= high

    return check


def _as_long(value: str) -> int | None:
    if _INTEGER.fullmatch(value) is None:
        return None
    number = int(value)
    return number if _INT64[0] <= number <= _INT64[1] else None


def _is_datetime(value: str) -> bool:
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _int_args(name: str, args: str | None, count: int) -> list[int]:
    parts = [] if args is None else [part.strip() for part in args.split(",")]
    if len(parts) != count or not all(_INTEGER.fullmatch(part) for part in parts):
        raise RouteTemplateError(f"constraint {name!r} needs {count} integer argument(s)")
    return [int(part) for part in parts]


def _no_args(name: str, args: str | None, check: Check) -> Check:
    if args is not None:
        raise RouteTemplateError(f"constraint {name!r} takes no arguments")
    return check


def _length(args: str | None) -> Check:
    count = 0 if args is None else len(args.split(","))
    if count == 1:
        (exact,) = _int_args("length", args, 1)
        return lambda value: len(value) == exact
    low, high = _int_args("length", args, 2)
    return lambda value: low <= len(value) <= high


def _between(name: str, args: str | None) -> Check:
    if name == "range":
        low, high = _int_args(name, args, 2)
    elif name == "min":
        (low,), high = _int_args(name, args, 1), _INT64[1]
    else:
        low, (high,) = _INT64[0], _int_args(name, args, 1)

    def check(value: str) -> bool:
        number = _as_long(value)
        return number is not None and low <= number <= high

    return check


def _regex(args: str | None) -> Check:
    if not args:
        raise RouteTemplateError("constraint 'regex' needs a pattern")
    try:
        pattern = re.compile(args, re.IGNORECASE)
    except re.error as error:
        raise RouteTemplateError(f"constraint 'regex' has an invalid pattern: {error}") from error
    return lambda value: pattern.search(value) is not None


def _constraint(name: str, args: str | None) -> Check:
    kind = name.lower()
    simple: dict[str, Check] = {
        "int": _integer_in(_INT32),
        "long": _integer_in(_INT64),
        "bool": lambda value: value.lower() in {"true", "false"},
        "guid": lambda value: _GUID.fullmatch(value) is not None,
        "alpha": lambda value: _ALPHA.fullmatch(value) is not None,
        "decimal": lambda value: _DECIMAL.fullmatch(value) is not None,
        "double": lambda value: _DOUBLE.fullmatch(value) is not None,
        "float": lambda value: _DOUBLE.fullmatch(value) is not None,
        "datetime": _is_datetime,
        "required": bool,
    }
    if kind in simple:
        return _no_args(name, args, simple[kind])
    if kind == "minlength":
        (low,) = _int_args(kind, args, 1)
        return lambda value: len(value) >= low
    if kind == "maxlength":
        (high,) = _int_args(kind, args, 1)
        return lambda value: len(value) <= high
    if kind == "length":
        return _length(args)
    if kind in {"min", "max", "range"}:
        return _between(kind, args)
    if kind == "regex":
        return _regex(args)
    raise RouteTemplateError(f"unknown route constraint {name!r}")


# --------------------------------------------------------------------------- template model


@dataclass(frozen=True, slots=True)
class _Parameter:
    name: str
    optional: bool
    catch_all: bool
    default: str | None
    checks: tuple[Check, ...]

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.checks)


@dataclass(frozen=True, slots=True)
class _Literal:
    text: str


_Part = _Parameter | _Literal


@dataclass(frozen=True, slots=True)
class _Segment:
    parts: tuple[_Part, ...]

    @property
    def single_parameter(self) -> _Parameter | None:
        only = self.parts[0] if len(self.parts) == 1 else None
        return only if isinstance(only, _Parameter) else None

    @property
    def may_be_absent(self) -> bool:
        parameter = self.single_parameter
        return parameter is not None and (
            parameter.optional or parameter.catch_all or parameter.default is not None
        )

    def precedence_digit(self) -> int:
        if len(self.parts) > 1:
            return 2
        part = self.parts[0]
        if isinstance(part, _Literal):
            return 1
        digit = 5 if part.catch_all else 3
        return digit - 1 if part.checks else digit


def _read_parameter_text(segment: str, start: int) -> tuple[str, int]:
    """Text from ``start`` (just after ``{``) to its ``}``, with ``}}`` / ``{{`` unescaped."""
    chars: list[str] = []
    index = start
    while index < len(segment):
        char = segment[index]
        following = segment[index + 1] if index + 1 < len(segment) else ""
        if char in "{}" and following == char:
            chars.append(char)
            index += 2
        elif char == "}":
            return "".join(chars), index + 1
        elif char == "{":
            raise RouteTemplateError("unescaped '{' inside a route parameter")
        else:
            chars.append(char)
            index += 1
    raise RouteTemplateError("route parameter is missing its closing '}'")


def _split_constraints(text: str) -> Iterator[tuple[str, str | None]]:
    """``int:range(1,5):regex(a:b)`` → ``("int", None), ("range", "1,5"), ("regex", "a:b")``."""
    index = 0
    while index < len(text):
        name_end = index
        while name_end < len(text) and text[name_end] not in "(:":
            name_end += 1
        name = text[index:name_end]
        if not name:
            raise RouteTemplateError("empty route constraint")
        if name_end < len(text) and text[name_end] == "(":
            depth, cursor = 0, name_end
            while cursor < len(text):
                depth += {"(": 1, ")": -1}.get(text[cursor], 0)
                if depth == 0:
                    break
                cursor += 1
            if depth:
                raise RouteTemplateError(f"constraint {name!r} is missing its closing ')'")
            yield name, text[name_end + 1 : cursor]
            index = cursor + 1
        else:
            yield name, None
            index = name_end
        if index < len(text):
            if text[index] != ":":
                raise RouteTemplateError(f"unexpected text after constraint {name!r}")
            index += 1


def _parse_parameter(text: str) -> _Parameter:
    catch_all = text.startswith("*")
    body = text.lstrip("*")
    if catch_all and len(text) - len(body) > 2:
        raise RouteTemplateError(f"invalid catch-all parameter {{{text}}}")
    default: str | None = None
    optional = False
    name_match = _PARAMETER_NAME.match(body)
    if name_match is None:
        raise RouteTemplateError(f"route parameter {{{text}}} has no name")
    name, rest = name_match.group(), body[name_match.end() :]
    constraint_text = ""
    if rest.startswith(":"):
        # Constraints run to a trailing "?" or to the first "=" outside parentheses.
        depth, cursor = 0, 1
        while cursor < len(rest):
            char = rest[cursor]
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth == 0 and (char == "=" or (char == "?" and cursor == len(rest) - 1)):
                break
            cursor += 1
        constraint_text, rest = rest[1:cursor], rest[cursor:]
    if rest == "?":
        optional = True
    elif rest.startswith("="):
        default = rest[1:]
    elif rest:
        raise RouteTemplateError(f"invalid route parameter {{{text}}}")
    if optional and catch_all:
        raise RouteTemplateError(f"a catch-all parameter cannot be optional: {{{text}}}")
    checks = tuple(_constraint(*pair) for pair in _split_constraints(constraint_text))
    return _Parameter(name, optional, catch_all, default, checks)


def _parse_segment(segment: str) -> _Segment:
    if not segment:
        raise RouteTemplateError("route templates cannot contain empty segments ('//')")
    parts: list[_Part] = []
    literal: list[str] = []
    index = 0
    while index < len(segment):
        char = segment[index]
        following = segment[index + 1] if index + 1 < len(segment) else ""
        if char in "{}" and following == char:
            literal.append(char)
            index += 2
        elif char == "{":
            if literal:
                parts.append(_Literal("".join(literal)))
                literal = []
            text, index = _read_parameter_text(segment, index + 1)
            if parts and isinstance(parts[-1], _Parameter):
                raise RouteTemplateError(f"two parameters must be separated by text: {segment!r}")
            parts.append(_parse_parameter(text))
        elif char == "}":
            raise RouteTemplateError(f"unmatched '}}' in route segment {segment!r}")
        elif char == "?":
            raise RouteTemplateError(f"'?' is not allowed in a route literal: {segment!r}")
        else:
            literal.append(char)
            index += 1
    if literal:
        parts.append(_Literal("".join(literal)))
    if len(parts) > 1:
        _validate_complex(segment, parts)
    return _Segment(tuple(parts))


def _validate_complex(segment: str, parts: Sequence[_Part]) -> None:
    for position, part in enumerate(parts):
        if not isinstance(part, _Parameter):
            continue
        if part.catch_all:
            raise RouteTemplateError(f"a catch-all must be a whole segment: {segment!r}")
        if part.optional:
            previous = parts[position - 1] if position else None
            if position != len(parts) - 1 or previous != _Literal("."):
                raise RouteTemplateError(
                    f"an optional parameter inside a segment must be last, after '.': {segment!r}"
                )


def _fold(text: str) -> str:
    """Lower-case for case-insensitive search, unless that would move character offsets."""
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else text


def _match_complex(parts: Sequence[_Part], value: str) -> dict[str, str] | None:
    """Right-to-left match of a mixed segment, each literal at its last occurrence."""
    values: dict[str, str] = {}
    folded = _fold(value)
    end = len(value)
    pending: _Parameter | None = None
    for part in reversed(parts):
        if isinstance(part, _Parameter):
            pending = part
            continue
        literal = _fold(part.text)
        # A pending parameter needs at least one character between this literal and `end`.
        limit = end - 1 if pending is not None else end
        found = folded.rfind(literal, 0, limit)
        if found < 0 or (pending is None and found + len(literal) != end):
            return None
        if pending is not None:
            values[pending.name] = value[found + len(literal) : end]
            pending = None
        end = found
    if pending is not None:
        if end == 0:
            return None
        values[pending.name] = value[:end]
    elif end != 0:
        return None
    return values


def _match_segment(segment: _Segment, value: str) -> dict[str, str] | None:
    if not value:
        return None
    parameter = segment.single_parameter
    if parameter is not None:
        return {parameter.name: value}
    if len(segment.parts) == 1:
        literal = segment.parts[0]
        assert isinstance(literal, _Literal)  # noqa: S101 - narrowed by single_parameter
        return {} if literal.text.casefold() == value.casefold() else None
    values = _match_complex(segment.parts, value)
    last = segment.parts[-1]
    if values is None and isinstance(last, _Parameter) and last.optional:
        values = _match_complex(segment.parts[:-2], value)  # "{name}.{ext?}" without ".ext"
    return values


class RouteTemplate:
    """One parsed route template; immutable once built."""

    __slots__ = ("_parameters", "_segments", "precedence", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        stripped = text.strip("/")
        parts = stripped.split("/") if stripped else []
        self._segments = tuple(_parse_segment(part) for part in parts)
        parameters = [
            part
            for segment in self._segments
            for part in segment.parts
            if isinstance(part, _Parameter)
        ]
        names = [parameter.name.casefold() for parameter in parameters]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise RouteTemplateError(f"route parameter names repeat in {text!r}: {duplicates}")
        for position, segment in enumerate(self._segments[:-1]):
            parameter = segment.single_parameter
            if parameter is not None and (parameter.catch_all or parameter.optional):
                raise RouteTemplateError(
                    f"only the last segment of {text!r} may be optional or a catch-all"
                    f" (segment {position + 1})"
                )
        self._parameters: Mapping[str, _Parameter] = {p.name: p for p in parameters}
        self.precedence: tuple[int, ...] = tuple(s.precedence_digit() for s in self._segments)

    def __repr__(self) -> str:
        return f"RouteTemplate({self.text!r})"

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(self._parameters)

    def match(self, segments: Sequence[str]) -> dict[str, str] | None:
        """Route values for a split, decoded path, or ``None`` when the template does not fit.

        Absent optional parameters without a default are left out, as ASP.NET leaves them out
        of the route data the Functions host hands to the worker.
        """
        values: dict[str, str] = {}
        for position, segment in enumerate(self._segments):
            parameter = segment.single_parameter
            if parameter is not None and parameter.catch_all:
                rest = "/".join(segments[position:])
                if rest:
                    values[parameter.name] = rest
                return self._finish(values)
            if position >= len(segments):
                if not all(later.may_be_absent for later in self._segments[position:]):
                    return None
                return self._finish(values)
            found = _match_segment(segment, segments[position])
            if found is None:
                return None
            values.update(found)
        if len(segments) > len(self._segments):
            return None
        return self._finish(values)

    def _finish(self, values: dict[str, str]) -> dict[str, str] | None:
        for name, parameter in self._parameters.items():
            if name not in values and parameter.default is not None:
                values[name] = parameter.default
            if name in values and not parameter.accepts(values[name]):
                return None
        return values


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
