"""Operational routes: health and the API description (OpenAPI 3.1 and Swagger 2.0)."""

from __future__ import annotations

import azure.functions as func

from shared.health import health_answer
from shared.web import serve_document

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    return await serve_document(req, health_answer)


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    from shared.openapi import openapi_answer  # noqa: PLC0415 - built on first request

    return await serve_document(req, openapi_answer)


@bp.route(route="swagger.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def swagger_document(req: func.HttpRequest) -> func.HttpResponse:
    from shared.openapi import swagger_answer  # noqa: PLC0415 - built on first request

    return await serve_document(req, swagger_answer)
