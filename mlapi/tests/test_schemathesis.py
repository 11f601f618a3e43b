"""One contract: the app's OpenAPI document says exactly what it accepts.

Schemathesis generates requests from the document, positive (schema-valid, which must be
accepted) and negative (schema-invalid, which must be refused with a 4xx), for every route,
and runs every check it has on each answer. A table of the bodies that once disagreed checks
the same promise directly: valid under the document's JSON Schema if and only if answered 200.
"""

import json
from collections import Counter
from typing import Any

import jsonschema
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from mlapi_support import AUTH

from mlapi.main import create_app
from mlapi.settings import Settings

# Loaded at collection; schemathesis starts the app's lifespan before the first request.
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(Settings()))

#: (operation, generation mode) of every generated case, for the check that both modes ran.
GENERATED: Counter[tuple[str, str]] = Counter()


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests_get_documented_answers(case: schemathesis.Case[Any]) -> None:
    assert case.meta is not None
    GENERATED[(case.operation.label, str(case.meta.generation.mode))] += 1
    # Every check, positive and negative conformance too, with a key of every scope.
    response = case.call_and_validate(headers=AUTH)
    assert response.status_code != 503, "the model should be loaded for these requests"


def test_valid_and_invalid_requests_were_generated_for_every_route() -> None:
    # Runs after the generated tests (file order): if they did not run, there is nothing to say.
    if not GENERATED:
        pytest.skip("the generated tests did not run")
    routes = {label for label, _ in GENERATED}
    assert routes == {
        "GET /api/v1/health",
        "GET /api/v1/model",
        "POST /api/v1/predict",
        "POST /api/v1/feedback",
        "GET /api/v1/predictions/{prediction_id}",
    }
    for route in ("POST /api/v1/predict", "POST /api/v1/feedback"):
        assert GENERATED[(route, "positive")], route
        assert GENERATED[(route, "negative")], route


def _request_schema(document: dict[str, Any], name: str) -> jsonschema.protocols.Validator:
    """A validator of one request body schema of the document, formats checked."""
    root = {**document["components"]["schemas"][name], "components": document["components"]}
    validator = jsonschema.Draft202012Validator
    return validator(root, format_checker=validator.FORMAT_CHECKER)


UUID = "6f1c1f3e-2a8b-4c55-9d0e-3b0f7a4e2c11"

#: Bodies where the document and the validators once disagreed, or easily could.
PREDICT_BODIES = {
    "integer sample_id": {"sample_id": 1528},
    "whole-number sample_id 1.0": {"sample_id": 1.0},
    "sample_id 1.5": {"sample_id": 1.5},
    "boolean sample_id": {"sample_id": True},
    "published id name": {"样本id": "sample_1"},
    "both id names": {"样本id": "sample_1", "sample_id": "sample_1"},
    "both yield names": {"收率": 0.9, "observed_yield": 0.9},
    "beyond float32": {"A6": 1e39},
    "non-numeric text in a number": {"A6": "hot"},
    "full-width digits": {"A6": "３８"},
    "Arabic-Indic digits": {"A6": "٣٨"},
    "underscore": {"A6": "3_8"},
    "number in a time column": {"A9": 700},
    "100 characters": {"A5": "x" * 100},
    "101 characters": {"A5": "x" * 101},
    "100 astral characters": {"A5": "😀" * 100},
    "a list in a time column": {"A5": ["13:30"]},
    "an unknown field": {"C1": 1},
}
FEEDBACK_ITEMS = {
    "canonical id": {"prediction_id": UUID, "actual_yield": 0.9},
    "upper-case id": {"prediction_id": UUID.upper(), "actual_yield": 1},
    "id without hyphens": {"prediction_id": UUID.replace("-", ""), "actual_yield": 0.9},
    "id in braces": {"prediction_id": "{" + UUID + "}", "actual_yield": 0.9},
    "urn id": {"prediction_id": "urn:uuid:" + UUID, "actual_yield": 0.9},
    "yield above 1.5": {"prediction_id": UUID, "actual_yield": 1.6},
    "yield as text": {"prediction_id": UUID, "actual_yield": "0.9"},
}


@pytest.mark.parametrize("record", PREDICT_BODIES.values(), ids=PREDICT_BODIES.keys())
def test_a_record_is_accepted_exactly_when_the_document_allows_it(
    client: TestClient, record: dict[str, Any]
) -> None:
    body = {"inputs": [record]}
    valid = _request_schema(client.get("/openapi.json").json(), "PredictionRequest").is_valid(body)
    response = client.post("/api/v1/predict", content=json.dumps(body), headers=_JSON)
    assert (response.status_code == 200) == valid, response.text
    if not valid:
        assert response.status_code == 422
        (error,) = response.json()["detail"]["errors"]
        assert error["index"] == 0
        assert error["field"] in record


@pytest.mark.parametrize("item", FEEDBACK_ITEMS.values(), ids=FEEDBACK_ITEMS.keys())
def test_a_feedback_item_is_accepted_exactly_when_the_document_allows_it(
    client: TestClient, item: dict[str, Any]
) -> None:
    body = {"feedback": [item]}
    valid = _request_schema(client.get("/openapi.json").json(), "FeedbackRequest").is_valid(body)
    response = client.post("/api/v1/feedback", content=json.dumps(body), headers=_JSON)
    assert (response.status_code == 200) == valid, response.text
    if not valid:
        assert response.status_code == 422
        (error,) = response.json()["detail"]["errors"]
        assert (error["index"], error["field"]) in {(0, "prediction_id"), (0, "actual_yield")}


@pytest.mark.parametrize("text", [UUID.replace("-", ""), "{" + UUID + "}", "urn:uuid:" + UUID])
def test_a_prediction_id_path_not_in_the_documented_form_is_422(
    client: TestClient, text: str
) -> None:
    response = client.get(f"/api/v1/predictions/{text}")
    assert response.status_code == 422
    (error,) = response.json()["detail"]["errors"]
    assert error["field"] == "path.prediction_id"
    assert "8-4-4-4-12 hex digits" in error["message"]


_JSON = {"content-type": "application/json"}
