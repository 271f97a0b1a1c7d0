"""Operation status, for callers that got a 202 + Location (Logic Apps polls it).

Two routes read an operation: `operations/{id}` for operators (function key: `ila status`, the
client), and `operations/{id}/status` for the caller that got the 202. The second is anonymous at
the host, because Logic Apps polls `Location` without re-sending an `x-functions-key` header; the
app answers it only for a valid, unexpired signed link (shared/status_links.py).
"""

from __future__ import annotations

import azure.functions as func

from shared.web import serve_operation, serve_operation_status

bp = func.Blueprint()


@bp.route(route="operations/{operationId}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def get_operation(req: func.HttpRequest) -> func.HttpResponse:
    return await serve_operation(req)


@bp.route(
    route="operations/{operationId}/status", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS
)
async def get_operation_status(req: func.HttpRequest) -> func.HttpResponse:
    return await serve_operation_status(req)
