"""Operational routes: health and the API description (OpenAPI 3.1 and Swagger 2.0)."""

from __future__ import annotations

import azure.functions as func

from shared.health import health_answer
from shared.web import answer_with

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    return await answer_with(req, health_answer)


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    from shared.openapi import openapi  # noqa: PLC0415 - built on first request, not at cold start

    return await answer_with(req, openapi)


@bp.route(route="swagger.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def swagger_document(req: func.HttpRequest) -> func.HttpResponse:
    from shared.openapi import swagger  # noqa: PLC0415 - built on first request, not at cold start

    return await answer_with(req, swagger)
