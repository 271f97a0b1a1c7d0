"""Operational routes: health."""

from __future__ import annotations

import azure.functions as func

from shared.health import health_answer
from shared.web import invocation_for, to_http

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    return to_http(health_answer(), invocation_for(req), instance="/api/health")
