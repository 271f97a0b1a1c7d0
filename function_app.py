"""The only entry point: the FunctionApp and its blueprints. No I/O, no settings at import."""

import azure.functions as func

from functions import actions, contraforce, d3, operations, ops, webhooks, worker

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for blueprint in (
    contraforce.bp,
    d3.bp,
    actions.bp,
    webhooks.bp,
    operations.bp,
    worker.bp,
    ops.bp,
):
    app.register_functions(blueprint)
