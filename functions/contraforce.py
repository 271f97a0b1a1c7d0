"""Drop-in mirror of ContraForce's unlink route: the vendor's request and answer shapes."""

from __future__ import annotations

import azure.functions as func

from shared.routes import CONTRAFORCE_MIRROR
from shared.web import serve_action

bp = func.Blueprint()


@bp.route(
    route="contraforce/workspaces/{workspaceId}/tickets/unlink",
    methods=["POST"],
    auth_level=func.AuthLevel.FUNCTION,
)
async def contraforce_unlink_ticket(req: func.HttpRequest) -> func.HttpResponse:
    return await serve_action(req, CONTRAFORCE_MIRROR)
