"""Drop-in mirror of ContraForce's unlink route: the vendor's request and answer shapes."""

from __future__ import annotations

import azure.functions as func

from shared import intake, rendering
from shared.web import serve_action

bp = func.Blueprint()


@bp.route(
    route="contraforce/workspaces/{workspaceId}/tickets/unlink",
    methods=["POST"],
    auth_level=func.AuthLevel.FUNCTION,
)
async def contraforce_unlink_ticket(req: func.HttpRequest) -> func.HttpResponse:
    return await serve_action(
        req,
        parse=intake.contraforce_mirror,
        render=rendering.contraforce_mirror,
        route="contraforce_mirror",
    )
