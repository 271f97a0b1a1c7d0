"""The models accept every sample in the vendor documents and send exactly their field names."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml

from incident_link_api.commands import RemoveLinkedIncidents, UnlinkTicket
from incident_link_api.contraforce import (
    ApiProblemDetails,
    ApiResponseOfboolean,
    IncidentReference,
    IncidentSource,
    UnlinkServiceTicketRequest,
)
from incident_link_api.d3 import D3CommandResponse, D3ErrorBody, RemoveLinkedIncidentsEnvelope
from shared.clients.d3 import envelope_for

SPEC = yaml.safe_load(
    (Path(__file__).parents[1] / "data" / "contraforce-unlink-ticket.openapi.yaml").read_text()
)
SCHEMAS: dict[str, Any] = SPEC["components"]["schemas"]


def test_incident_source_has_exactly_the_six_vendor_values() -> None:
    assert [s.value for s in IncidentSource] == SCHEMAS["IncidentSource"]["enum"]


@pytest.mark.parametrize(
    ("model", "schema"),
    [
        (IncidentReference, "IncidentReference"),
        (UnlinkServiceTicketRequest, "UnlinkServiceTicketRequest"),
        (ApiResponseOfboolean, "ApiResponseOfboolean"),
        (ApiProblemDetails, "ApiProblemDetails"),
    ],
)
def test_contraforce_models_have_exactly_the_vendor_field_names(model: Any, schema: str) -> None:
    wire_names = {field.alias or name for name, field in model.model_fields.items()}
    assert wire_names == set(SCHEMAS[schema]["properties"])


def test_unlink_request_serializes_to_the_vendor_field_names() -> None:
    command = UnlinkTicket(
        workspace_id=UUID("7b2d8c1e-0f4a-4c5e-9a51-2d1f0e6b9c3a"),
        incident=IncidentReference.model_validate(
            {
                "id": "inc-1",
                "source": "Sentinel",
                "workspaceId": "7b2d8c1e-0f4a-4c5e-9a51-2d1f0e6b9c3a",
                "number": "42",
            }
        ),
    )
    body = UnlinkServiceTicketRequest(incident=command.incident).model_dump(
        by_alias=True, mode="json"
    )
    assert body == {
        "incident": {
            "id": "inc-1",
            "source": "Sentinel",
            "workspaceId": "7b2d8c1e-0f4a-4c5e-9a51-2d1f0e6b9c3a",
            "number": "42",
        }
    }


def test_unlink_request_accepts_all_fields_null_as_the_schema_allows() -> None:
    body = UnlinkServiceTicketRequest.model_validate(
        {"incident": {"id": None, "source": None, "workspaceId": None, "number": None}}
    )
    assert body.incident == IncidentReference()


@pytest.mark.parametrize("status", [404, "404", "-1", None])
def test_problem_details_status_may_be_an_integer_or_a_numeric_string(status: object) -> None:
    problem = ApiProblemDetails.model_validate({"status": status, "code": "NOT_FOUND"})
    assert problem.status == (int(status) if status is not None else None)  # type: ignore[call-overload]


def test_problem_details_status_rejects_a_non_numeric_string() -> None:
    with pytest.raises(ValueError, match="numeric string"):
        ApiProblemDetails.model_validate({"status": "four hundred"})


def test_problem_details_keeps_code_request_id_and_field_errors() -> None:
    problem = ApiProblemDetails.model_validate(
        {
            "type": None,
            "title": "Validation failed",
            "status": 400,
            "detail": "One or more fields are invalid",
            "instance": "/api/v2/workspaces/x/tickets/unlink",
            "code": "VALIDATION_ERROR",
            "requestId": "req-1",
            "timestamp": "2026-11-23T10:00:00Z",
            "target": None,
            "errors": {"incident.source": ["not a known source"], "": ["object-level"]},
        }
    )
    assert (problem.code, problem.request_id) == ("VALIDATION_ERROR", "req-1")
    assert problem.errors == {"incident.source": ["not a known source"], "": ["object-level"]}


def test_success_envelope_parses_data_and_meta() -> None:
    reply = ApiResponseOfboolean.model_validate(
        {"data": True, "meta": {"requestId": "r-1", "timestamp": "2026-11-23T10:00:00Z"}}
    )
    assert reply.data is True
    assert reply.meta is not None
    assert reply.meta.request_id == "r-1"


def test_d3_body_sample_parses_and_round_trips_with_d3_field_names(
    d3_samples: dict[str, Any],
) -> None:
    envelope = RemoveLinkedIncidentsEnvelope.model_validate(d3_samples["request"])
    assert envelope.model_dump(by_alias=True) == d3_samples["request"]


def test_d3_envelope_we_send_is_exactly_the_seed_sample(d3_samples: dict[str, Any]) -> None:
    command = RemoveLinkedIncidents(
        site="Security Operations",
        username="Admin",
        source_incident="20231025-130",
        linked_incidents=("20210127-198", "20210127-197"),
    )
    assert envelope_for(command).model_dump(by_alias=True, mode="json") == d3_samples["request"]


def test_d3_partially_successful_sample_parses_each_error_item(
    d3_samples: dict[str, Any],
) -> None:
    reply = D3CommandResponse.model_validate(d3_samples["response_200"])
    assert reply.error == ""
    assert reply.return_data is not None
    assert reply.return_data.status == "Partially Successful"
    assert reply.return_data.error_data is not None
    assert [(e.incident_number, e.error_message) for e in reply.return_data.error_data] == [
        ("20210127-198", "The source incident is not linked to this incident.")
    ]
    assert reply.model_dump(by_alias=True, mode="json") == d3_samples["response_200"]


@pytest.mark.parametrize("sample", ["response_401", "response_429", "response_500"])
def test_d3_error_samples_parse(d3_samples: dict[str, Any], sample: str) -> None:
    body = D3ErrorBody.model_validate(d3_samples[sample])
    assert body.error == d3_samples[sample]["Error"]
