"""The Swagger 2.0 form of the API description, converted from `shared.openapi`'s OpenAPI 3.1:
what Logic Apps custom connectors and Power Automate import. Schemas lose what 2.0 lacks
(`oneOf`, `const`, `prefixItems`, null in `type`; `x-nullable` says it instead), and a bulk
body becomes one object with the single form's fields and `items`."""

from __future__ import annotations

from functools import cache
from typing import Any

from shared.config import get_settings
from shared.openapi import ROUTES, TITLE, VERSION, Route, openapi
from shared.problems import PROBLEM_JSON
from shared.rendering import JSON

_DROP = {"examples", "$schema", "prefixItems", "unevaluatedProperties", "discriminator", "const"}


def _swagger_schema(schema: Any) -> Any:
    """JSON Schema 2020-12 (as pydantic emits it) → the Swagger 2.0 subset."""
    if isinstance(schema, list):
        return [_swagger_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$ref":
            result[key] = value.replace("#/components/schemas/", "#/definitions/")
        elif key in {"anyOf", "oneOf"}:
            options = [o for o in value if o != {"type": "null"}]
            if len(options) < len(value):
                result["x-nullable"] = True
            if len(options) == 1:
                result.update(_swagger_schema(options[0]))
        elif key == "const":
            result["enum"] = [value]
        elif key == "type" and isinstance(value, list):
            kinds = [kind for kind in value if kind != "null"]
            result["type"] = kinds[0] if kinds else "string"
            if "null" in value:
                result["x-nullable"] = True
        elif key in {"exclusiveMinimum", "exclusiveMaximum"} and not isinstance(value, bool):
            result[key.replace("exclusiveM", "m")] = value
            result[key] = True
        elif (key == "default" and value is None) or key in _DROP:
            continue
        else:
            result[key] = _swagger_schema(value)
    if "$ref" in result and len(result) > 1:  # Swagger 2.0 ignores siblings of $ref
        return {"$ref": result["$ref"]}
    return result


def _swagger_parameter(parameter: dict[str, Any]) -> dict[str, Any]:
    converted = {k: v for k, v in parameter.items() if k != "schema"}
    converted.update(_swagger_schema(parameter["schema"]))
    converted["x-ms-summary"] = parameter["name"]
    return converted


def _swagger_body(route: Route, definitions: dict[str, Any]) -> dict[str, Any]:
    if len(route.body) == 1:
        schema: dict[str, Any] = {"$ref": f"#/definitions/{route.body[0]}"}
    else:  # Swagger 2.0 has no oneOf: one object with the single form's fields and `items`
        single = route.body[0]
        fields = definitions[single].get("properties", {})
        schema = {
            "type": "object",
            "description": f"Either the fields of {single} (one action), or only `items`: a "
            f"list of {single} (bulk).",
            "properties": {
                **fields,
                "items": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"$ref": f"#/definitions/{single}"},
                },
            },
        }
    return {
        "name": "body",
        "in": "body",
        "required": True,
        "schema": schema,
        "x-ms-summary": "Body",
    }


def _swagger_operation(
    route: Route, operation: dict[str, Any], definitions: dict[str, Any]
) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, response in operation["responses"].items():
        content = next(iter(response.get("content", {}).values()), None)
        converted: dict[str, Any] = {"description": response["description"]}
        if content is not None:
            converted["schema"] = _swagger_schema(content["schema"])
        if "headers" in response:
            converted["headers"] = {
                name: {"description": h["description"], **h["schema"]}
                for name, h in response["headers"].items()
            }
        responses[status] = converted
    parameters = [_swagger_parameter(p) for p in operation["parameters"]]
    if route.body:
        parameters.append(_swagger_body(route, definitions))
    result: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "description": route.description,
        "consumes": [JSON] if route.body else [],
        "produces": [JSON, PROBLEM_JSON],
        "parameters": parameters,
        "responses": responses,
        "security": operation["security"],
    }
    if route.action:
        result["x-ms-long-running-operation"] = True
    return result


def swagger() -> dict[str, Any]:
    """Swagger 2.0 for every registered route, with `host` when the app knows its own."""
    return swagger_for(get_settings().website_hostname)


@cache
def swagger_for(host: str | None) -> dict[str, Any]:
    """Swagger 2.0 served from `host` (Azure sets WEBSITE_HOSTNAME; without it, no `host`, and
    a reader takes the host the document came from, as Swagger 2.0 specifies)."""
    spec = openapi()
    definitions = {
        name: _swagger_schema(schema) for name, schema in spec["components"]["schemas"].items()
    }
    paths: dict[str, Any] = {}
    for route in ROUTES:
        operation = spec["paths"][f"/{route.path}"][route.method]
        paths.setdefault(f"/{route.path}", {})[route.method] = _swagger_operation(
            route, operation, definitions
        )
    return {
        "swagger": "2.0",
        "info": {"title": TITLE, "version": VERSION},
        **({"host": host} if host else {}),
        "basePath": "/api",
        "schemes": ["https"],
        "consumes": [JSON],
        "produces": [JSON, PROBLEM_JSON],
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {
            "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
            "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
        },
    }
