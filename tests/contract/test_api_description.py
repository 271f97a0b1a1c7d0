"""The API description: valid OpenAPI 3.1 and Swagger 2.0, and exactly the registered routes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openapi_spec_validator import validate

from shared.openapi import ROUTES, openapi, swagger
from tests.functions.conftest import call, registered


@pytest.mark.parametrize("document", [openapi, swagger], ids=["openapi-3.1", "swagger-2.0"])
def test_document_is_valid(document: Any) -> None:
    validate(document())


def _registered_http_routes() -> set[tuple[str, str, str]]:
    found = set()
    for function in registered().values():
        for binding in json.loads(function.get_function_json())["bindings"]:
            if binding["type"] == "httpTrigger":
                for method in binding["methods"]:
                    found.add(
                        (method.lower(), f"/{binding['route']}", binding["authLevel"].lower())
                    )
    return found


def test_every_registered_route_is_documented_and_nothing_else() -> None:
    documented = {
        (method, path, "anonymous" if op["security"] == [] else "function")
        for path, operations in openapi()["paths"].items()
        for method, op in operations.items()
    }
    assert documented == _registered_http_routes()


def test_swagger_operations_have_unique_ids_and_titles_for_logic_apps() -> None:
    operations = [op for ops in swagger()["paths"].values() for op in ops.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids)) == len(ROUTES)
    assert all(op["x-ms-summary"] for op in operations)
    assert all(p["x-ms-summary"] for op in operations for p in op["parameters"])


def test_swagger_declares_the_async_202_with_location_on_action_routes() -> None:
    unlink = swagger()["paths"]["/actions/unlink-ticket"]["post"]
    assert set(unlink["responses"]["202"]["headers"]) == {"Location", "Retry-After"}
    assert unlink["x-ms-long-running-operation"] is True


def test_swagger_has_no_json_schema_2020_keywords() -> None:
    text = json.dumps(swagger())
    assert '"anyOf"' not in text
    assert '"oneOf"' not in text
    assert '"const"' not in text
    assert "#/components/" not in text


async def test_documents_are_served_anonymously() -> None:
    for name, path, version_key in (
        ("openapi_document", "openapi.json", "openapi"),
        ("swagger_document", "swagger.json", "swagger"),
    ):
        reply = await call(name, path, method="GET")
        assert reply.status == 200
        assert version_key in reply.body
