"""Drop-in mirror of ContraForce's unlink route: the vendor's request and answer shapes."""

from __future__ import annotations

import azure.functions as func

from shared import answers, intake
from shared.web import respond

bp = func.Blueprint()


@bp.route(
    route="contraforce/workspaces/{workspaceId}/tickets/unlink",
    methods=["POST"],
    auth_level=func.AuthLevel.FUNCTION,
)
async def contraforce_unlink_ticket(req: func.HttpRequest) -> func.HttpResponse:
    return await respond(
        req,
        parse=intake.contraforce_mirror,
        render=answers.contraforce_mirror,
        route="contraforce_mirror",
    )
