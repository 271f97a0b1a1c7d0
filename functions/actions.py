"""Canonical action routes: camelCase JSON in (single or `items`), the Outcome out."""

from __future__ import annotations

import azure.functions as func

from shared.errors import NotFound
from shared.routes import CANONICAL_REMOVE, CANONICAL_UNLINK
from shared.web import serve_action, serve_refusal

bp = func.Blueprint()


@bp.route(route="actions/unlink-ticket", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def unlink_ticket(req: func.HttpRequest) -> func.HttpResponse:
    return await serve_action(req, CANONICAL_UNLINK)


@bp.route(
    route="actions/remove-linked-incidents", methods=["POST"], auth_level=func.AuthLevel.FUNCTION
)
async def remove_linked_incidents(req: func.HttpRequest) -> func.HttpResponse:
    return await serve_action(req, CANONICAL_REMOVE)


@bp.route(route="actions/{action}", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def unknown_action(req: func.HttpRequest) -> func.HttpResponse:
    action = req.route_params.get("action", "")
    known = "unlink-ticket, remove-linked-incidents"
    return await serve_refusal(
        req,
        NotFound(
            f"unknown action {action[:64]!r}; known actions: {known}",
            errors={"action": [f"must be one of: {known}"]},
        ),
    )
