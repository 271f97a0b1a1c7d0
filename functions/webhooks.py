"""ContraForce webhooks: verified, then queued; the sender gets a fast 2xx."""

from __future__ import annotations

import azure.functions as func

from shared.errors import InvalidPayload
from shared.intake import DRY_RUN, Incoming, dry_run_requested, query_of
from shared.web import serve_refusal, serve_webhook

bp = func.Blueprint()


@bp.route(route="webhooks/contraforce", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def contraforce_webhook(req: func.HttpRequest) -> func.HttpResponse:
    """A delivery's query is part of the contract: an unknown parameter is a 400 naming it, and
    `?dryRun=true` is refused (400) before anything is verified or queued. A delivery is
    ContraForce's, not a caller's try-out: a dry run of the command it maps to is the canonical
    route's `?dryRun=true` with the same incident."""
    try:
        dry_run = dry_run_requested_of(req.url)
    except InvalidPayload as exc:
        return await serve_refusal(req, exc)
    if dry_run:
        return await serve_refusal(
            req,
            InvalidPayload(
                f"{DRY_RUN} is not offered on the webhook route: a delivery is acted on or "
                "refused; try the command with POST actions/unlink-ticket?dryRun=true",
                errors={DRY_RUN: ["not offered on webhooks/contraforce"]},
            ),
        )
    return await serve_webhook(req)


def dry_run_requested_of(url: str) -> bool:
    """`shared.intake.dry_run_requested` on a URL's query (unknown parameters are a 400)."""
    return dry_run_requested(Incoming(b"", None, {}, query_of(url)))
