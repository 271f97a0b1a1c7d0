"""Drop-in mirror of D3 SOAR's RemoveLinkedIncidents command: D3's envelope and rendering."""

from __future__ import annotations

import azure.functions as func

from shared.routes import D3_MIRROR
from shared.web import serve_action

bp = func.Blueprint()


@bp.route(
    route="d3/Command/RemoveLinkedIncidents",
    methods=["POST"],
    auth_level=func.AuthLevel.FUNCTION,
)
async def d3_remove_linked_incidents(req: func.HttpRequest) -> func.HttpResponse:
    return await serve_action(req, D3_MIRROR)
