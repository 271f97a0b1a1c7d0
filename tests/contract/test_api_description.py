"""The API description: valid OpenAPI 3.1 and Swagger 2.0, and exactly the registered routes."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

import pytest
from jsonschema_rs import Draft4Validator, Draft202012Validator
from openapi_spec_validator import validate

from incident_link_api.base import PRINTABLE_PATTERN
from shared.errors import NotConfigured
from shared.openapi import ROUTES, openapi
from shared.swagger import swagger
from tests.conftest import Sandboxes
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
    """Connector docs: operations carry `summary` (x-ms-summary is for parameters and schema
    properties), https://learn.microsoft.com/connectors/custom-connectors/openapi-extensions"""
    operations = [op for ops in swagger()["paths"].values() for op in ops.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids)) == len(ROUTES)
    assert all(op["summary"] for op in operations)
    assert not [op["operationId"] for op in operations if "x-ms-summary" in op]
    assert all(p["x-ms-summary"] for op in operations for p in op["parameters"])


def test_swagger_declares_the_async_202_with_location_on_action_routes() -> None:
    unlink = swagger()["paths"]["/actions/unlink-ticket"]["post"]
    assert set(unlink["responses"]["202"]["headers"]) == {"Location", "Retry-After"}
    assert unlink["x-ms-long-running-operation"] is True


ACTION_PATHS = (
    "/contraforce/workspaces/{workspaceId}/tickets/unlink",
    "/d3/Command/RemoveLinkedIncidents",
    "/actions/unlink-ticket",
    "/actions/remove-linked-incidents",
)


@pytest.mark.parametrize("path", [*ACTION_PATHS, "/operations/{operationId}"])
def test_both_documents_declare_the_inferred_header_on_success_answers(path: str) -> None:
    method = "get" if path.startswith("/operations") else "post"
    for document in (openapi(), swagger()):
        ok = document["paths"][path][method]["responses"]["200"]
        assert "X-ILA-Outcome-Inferred" in ok["headers"]


def test_the_documents_name_the_unknown_outcome_and_its_inferred_counterpart() -> None:
    schemas = openapi()["components"]["schemas"]
    assert "unknown" in schemas["ItemStatus"]["enum"]
    assert "unknown" in schemas["OutcomeStatus"]["enum"]
    assert schemas["ItemResult"]["properties"]["inferred"]["type"] == "boolean"
    unlink = openapi()["paths"]["/actions/unlink-ticket"]["post"]["responses"]
    assert "OUTCOME_UNKNOWN" in unlink["503"]["description"]


@pytest.mark.parametrize("path", ACTION_PATHS[:2])
def test_drop_in_routes_document_202_only_for_respond_async_and_409_for_a_running_repeat(
    path: str,
) -> None:
    responses = openapi()["paths"][path]["post"]["responses"]
    assert responses["202"]["description"] == "Accepted (Prefer: respond-async)"
    assert "OPERATION_IN_PROGRESS" in responses["409"]["description"]


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


# ---- what Logic Apps and the app itself need from the Swagger document (issue 13) -----------


def _swagger_validator(schema: dict[str, Any]) -> Draft4Validator:
    """A draft-4 validator (Swagger 2.0's schema dialect) that resolves #/definitions/..."""
    return Draft4Validator({**schema, "definitions": swagger()["definitions"]})


def _body_schema(path: str) -> dict[str, Any]:
    operation = swagger()["paths"][path]["post"]
    body = next(p for p in operation["parameters"] if p["in"] == "body")
    schema: dict[str, Any] = body["schema"]
    return schema


BULK_UNLINK = {
    "items": [
        {"workspaceId": "0f4d6c3e-8a51-4b5e-9d0a-6a3f1c2b7e90", "incident": {"number": "1001"}},
        {"workspaceId": "0f4d6c3e-8a51-4b5e-9d0a-6a3f1c2b7e90", "incident": {"id": "inc-7"}},
    ]
}
BULK_REMOVE = {
    "items": [
        {"sourceIncident": "20231025-130", "linkedIncidents": ["20231025-131"]},
        {"sourceIncident": "20231025-140", "linkedIncidents": ["20231025-141", "20231025-142"]},
    ]
}


@pytest.mark.parametrize(
    ("path", "bulk", "single"),
    [
        (
            "/actions/unlink-ticket",
            BULK_UNLINK,
            BULK_UNLINK["items"][0],
        ),
        (
            "/actions/remove-linked-incidents",
            BULK_REMOVE,
            BULK_REMOVE["items"][0],
        ),
    ],
)
async def test_swagger_bulk_and_single_bodies_validate_and_the_app_takes_both(
    sandbox: Sandboxes, path: str, bulk: dict[str, Any], single: dict[str, Any]
) -> None:
    """The designer validates the body against the schema: `{"items": [...]}` must pass (an
    allOf with the single form's required fields made it fail), and so must one item."""
    validator = _swagger_validator(_body_schema(path))
    assert list(validator.iter_errors(bulk)) == []
    assert list(validator.iter_errors(single)) == []
    name = "unlink_ticket" if "unlink" in path else "remove_linked_incidents"
    for body in (bulk, single):
        reply = await call(name, path.removeprefix("/"), body, params={"dryRun": "true"})
        assert reply.status == 200, reply.body


def test_swagger_bulk_schema_still_rejects_a_wrong_item() -> None:
    validator = _swagger_validator(_body_schema("/actions/remove-linked-incidents"))
    assert list(validator.iter_errors({"items": [{"sourceIncident": "x"}]}))
    assert list(validator.iter_errors({"items": []}))


def test_swagger_has_the_public_host_when_azure_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Swagger 2.0 `host`: App Service sets WEBSITE_HOSTNAME to the app's default host name."""
    monkeypatch.setenv("WEBSITE_HOSTNAME", "func-link-actions-abc123.azurewebsites.net")
    document = swagger()
    assert document["host"] == "func-link-actions-abc123.azurewebsites.net"
    assert document["basePath"] == "/api"
    assert document["schemes"] == ["https"]
    validate(document)


def test_swagger_without_a_known_host_leaves_host_out() -> None:
    """Locally there is no public host; Swagger 2.0 then means "the host serving this file"."""
    assert "host" not in swagger()


def test_a_host_name_that_is_not_one_fails_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_HOSTNAME", "evil.example/path?x=")
    with pytest.raises(NotConfigured):
        swagger()


def test_swagger_webhook_documents_202_with_location_and_200() -> None:
    responses = swagger()["paths"]["/webhooks/contraforce"]["post"]["responses"]
    assert set(responses["202"]["headers"]) == {"Location", "Retry-After"}
    assert responses["202"]["schema"] == {"$ref": "#/definitions/Outcome"}
    assert responses["200"]["schema"] == {"$ref": "#/definitions/WebhookAcknowledgement"}


@pytest.mark.parametrize("name", ["Prefer", "Idempotency-Key", "dryRun"])
def test_swagger_optional_knobs_are_advanced(name: str) -> None:
    for route in ROUTES:
        if not route.action:
            continue
        operation = swagger()["paths"][f"/{route.path}"][route.method]
        (parameter,) = [p for p in operation["parameters"] if p["name"] == name]
        assert parameter["x-ms-visibility"] == "advanced", route.operation_id
        assert parameter["required"] is False


def test_every_keyed_operation_documents_the_422_for_a_reused_key() -> None:
    for route in ROUTES:
        operation = openapi()["paths"][f"/{route.path}"][route.method]
        names = {p["name"] for p in operation["parameters"]}
        if "Idempotency-Key" in names:
            assert "IDEMPOTENCY_KEY_REUSED" in operation["responses"]["422"]["description"]


def test_403_is_documented_on_every_route_an_entra_caller_can_reach() -> None:
    for route in ROUTES:
        operation = openapi()["paths"][f"/{route.path}"][route.method]
        if route.auth == "function":
            assert "403" in operation["responses"], route.operation_id
        else:
            assert "403" not in operation["responses"], route.operation_id


@pytest.mark.parametrize("document", [openapi, swagger], ids=["openapi-3.1", "swagger-2.0"])
def test_an_incident_is_documented_as_id_or_number(document: Any) -> None:
    schemas = document().get("definitions") or document()["components"]["schemas"]
    for name in ("IncidentInput", "IncidentReference"):
        assert "`id` or `number`" in schemas[name]["description"]


def test_openapi_incident_schema_refuses_what_the_app_refuses() -> None:
    text = json.dumps(openapi()["components"]["schemas"]).replace(
        "#/components/schemas/", "#/$defs/"
    )
    schemas = json.loads(text)

    def valid(name: str, instance: Any) -> bool:
        return Draft202012Validator({**schemas[name], "$defs": schemas}).is_valid(instance)

    assert not valid("IncidentInput", {})
    assert not valid("IncidentInput", {"id": None, "number": None})
    assert not valid("IncidentInput", {"number": "   "})
    assert valid("IncidentInput", {"number": " 1001 "})
    assert valid("IncidentInput", {"id": None, "number": "1001"})
    assert not valid("UnlinkServiceTicketRequest", {"incident": None})
    assert not valid("UnlinkServiceTicketRequest", {})
    assert valid("UnlinkServiceTicketRequest", {"incident": {"id": "inc-1", "source": "Sentinel"}})


async def test_the_app_refuses_what_the_document_now_excludes(sandbox: Sandboxes) -> None:
    workspace = "0f4d6c3e-8a51-4b5e-9d0a-6a3f1c2b7e90"
    path = f"contraforce/workspaces/{workspace}/tickets/unlink"
    for body in (
        {"incident": None},
        {"incident": {"source": "Sentinel"}},
        {"incident": {"id": " "}},
    ):
        reply = await call(
            "contraforce_unlink_ticket", path, body, route_params={"workspaceId": workspace}
        )
        assert reply.status == 400, (body, reply.body)


@pytest.mark.parametrize(
    ("name", "path"), [("openapi_document", "openapi.json"), ("swagger_document", "swagger.json")]
)
async def test_documents_answer_any_origin_for_browser_designers(name: str, path: str) -> None:
    """Logic Apps "HTTP + Swagger": the Swagger file must have CORS enabled
    (https://learn.microsoft.com/azure/connectors/connectors-native-http-swagger). The app sends
    the header; infra/main.bicep leaves platform CORS off (tests/infra: never both)."""
    reply = await call(name, path, method="GET", headers={"Origin": "https://portal.azure.com"})
    assert reply.status == 200
    assert reply.headers["access-control-allow-origin"] == "*"


async def test_action_routes_do_not_send_cors_headers(sandbox: Sandboxes) -> None:
    reply = await call(
        "unlink_ticket",
        "actions/unlink-ticket",
        BULK_UNLINK["items"][0],
        params={"dryRun": "true"},
        headers={"Origin": "https://portal.azure.com"},
    )
    assert reply.status == 200
    assert not [h for h in reply.headers if h.startswith("access-control-")]


def test_the_documented_identifier_pattern_refuses_exactly_the_characters_the_app_refuses() -> None:
    """Every Basic Multilingual Plane character: the document's pattern and the models agree
    (Cc, Cf, Zl and Zp refused), so a schema-valid identifier is one the app accepts."""
    pattern = re.compile(PRINTABLE_PATTERN)
    disagree = [
        f"U+{code:04X}"
        for code in range(0x10000)
        if not 0xD800 <= code <= 0xDFFF
        and (pattern.match(chr(code)) is None)
        != (unicodedata.category(chr(code)) in {"Cc", "Cf", "Zl", "Zp"})
    ]
    assert disagree == []
