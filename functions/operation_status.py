"""Operation status, for callers that got a 202 + Location (Logic Apps polls it)."""

from __future__ import annotations

import azure.functions as func

from shared.web import serve_operation

bp = func.Blueprint()


@bp.route(route="operations/{operationId}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def get_operation(req: func.HttpRequest) -> func.HttpResponse:
    return await serve_operation(req)
