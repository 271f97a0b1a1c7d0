"""The route families: what each kind of route parses, how it renders, how its problems look.

One object per family, so a handler names its family once (`serve_action(req, D3_MIRROR)`)
and the route kind an operation records is the family's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from incident_link_api.outcome import Outcome
from shared import intake, rendering
from shared.intake import Parser
from shared.rendering import ProblemStyle, Rendered

RouteKind = Literal["canonical", "contraforce_mirror", "d3_mirror", "webhook"]


@dataclass(frozen=True)
class RouteFamily:
    kind: RouteKind
    parse: Parser
    render: Callable[[Outcome], Rendered]
    problem_style: ProblemStyle = "problem"


CANONICAL_UNLINK = RouteFamily("canonical", intake.canonical_unlink, rendering.canonical)
CANONICAL_REMOVE = RouteFamily("canonical", intake.canonical_remove, rendering.canonical)
CONTRAFORCE_MIRROR = RouteFamily(
    "contraforce_mirror", intake.contraforce_mirror, rendering.contraforce_mirror
)
D3_MIRROR = RouteFamily("d3_mirror", intake.d3_mirror, rendering.d3_mirror, "d3")
