"""ContraForce webhooks: verified, then queued; the sender gets a fast 2xx."""

from __future__ import annotations

import azure.functions as func

from shared.web import serve_webhook

bp = func.Blueprint()


@bp.route(route="webhooks/contraforce", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def contraforce_webhook(req: func.HttpRequest) -> func.HttpResponse:
    return await serve_webhook(req)
