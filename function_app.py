"""The only entry point: the FunctionApp and its blueprints. No I/O, no settings at import."""

import logging

import azure.functions as func

from functions import (
    actions,
    contraforce,
    d3,
    operation_status,
    service_info,
    webhooks,
    worker,
)

# The Azure SDK logs every storage request at INFO, httpx every request with its whole URL:
# keep Application Insights for our own lines (one per upstream attempt, one per retry).
logging.getLogger("azure").setLevel(logging.WARNING)
logging.getLogger("httpx").setLevel(logging.WARNING)
# stamina's own "stamina.retry_scheduled" line says nothing useful; shared.clients.http logs ours.
logging.getLogger("stamina").setLevel(logging.ERROR)

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for blueprint in (
    contraforce.bp,
    d3.bp,
    actions.bp,
    webhooks.bp,
    operation_status.bp,
    worker.bp,
    service_info.bp,
):
    app.register_functions(blueprint)
