"""Reading an upstream's 2xx leniently: strict where the decision needs a member, and nowhere else.

An upstream's success answer is parsed into its vendor model (`incident_link_api`). When the
whole document does not fit the model, `salvaged` keeps each member that fits on its own and
drops the rest (a `meta.requestId` sent as a number is no reason to doubt `data: true`); only a
member the decision reads (`needed`) must fit, else the answer is `Unreadable` and the send
loop treats it as an ambiguous send (`shared.clients.http`). A body that is not a JSON object
(HTML, empty, invalid UTF-8) is `Unreadable` too. Messages name members, never their values.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class Unreadable(Exception):
    """A 2xx its client cannot read: not a JSON object, or a member the decision needs is
    missing or mistyped. The message says which, never what the body held."""


def json_object(content: bytes) -> dict[str, Any]:
    """`content` as a JSON object, or `Unreadable`."""
    try:
        document = json.loads(content)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise Unreadable("not JSON") from exc
    if not isinstance(document, dict):
        raise Unreadable("not a JSON object")
    return document


def salvaged(model: type[M], document: Mapping[str, Any], *, needed: Collection[str] = ()) -> M:
    """`model` of the members of `document` that are valid alone; a member in `needed` (by its
    wire name) that is not makes the answer `Unreadable`."""
    kept: dict[str, Any] = {}
    for name, value in document.items():
        try:
            model.model_validate({name: value})
        except ValidationError as exc:
            if name in needed:
                raise Unreadable(f"member {name!r} is not the documented type") from exc
            continue
        kept[name] = value
    try:
        return model.model_validate(kept)
    except ValidationError as exc:  # members valid alone, not together: none such today
        raise Unreadable("members are not the documented shape together") from exc
