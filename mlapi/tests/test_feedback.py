"""Feedback and the prediction log over HTTP: round trip, accuracy metrics, error cases."""

import gzip
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import orjson
import pytest
from fastapi.testclient import TestClient
from mlapi_support import AUTH, BACKENDS, MODEL_VERSION, Postgres, Scrape, new_log_url

from mlapi import metrics
from mlapi.main import create_app
from mlapi.prediction_log import PredictionLogError
from mlapi.settings import Settings

V = {"model_version": MODEL_VERSION}
JSON = {"content-type": "application/json"}
UNKNOWN = "0b9e1f3e-2a8b-4c55-9d0e-3b0f7a4e2c11"


def predict(client: TestClient, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    response = client.post("/api/v1/predict", json={"inputs": list(records)})
    assert response.status_code == 200, response.text
    predictions: list[dict[str, Any]] = response.json()["predictions"]
    return predictions


def send(client: TestClient, *items: tuple[str, float]) -> list[dict[str, Any]]:
    feedback = [{"prediction_id": i, "actual_yield": y} for i, y in items]
    response = client.post("/api/v1/feedback", json={"feedback": feedback})
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


@pytest.fixture(scope="module", params=BACKENDS)
def logged(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """A client of an app with a prediction log of its own, once per backend."""
    url = new_log_url(request, request.param, tmp_path_factory.mktemp("log"))
    with TestClient(create_app(Settings(prediction_log_url=url)), headers=AUTH) as client:
        yield client


def test_feedback_round_trip(
    logged: TestClient, scrape: Callable[[], Scrape], record: dict[str, Any]
) -> None:
    client = logged
    # Given three predictions
    quirky = {**record, "sample_id": "b", "A20": "6:00-6x"}
    a, b, c = predict(client, [record, quirky, {**record, "sample_id": "c", "A6": 80}])
    before = scrape()
    # When their measured yields come back, one twice, with one id never logged
    answer = send(
        client,
        (a["prediction_id"], 0.9),
        (b["prediction_id"], 0.95),
        (UNKNOWN, 0.9),
        (a["prediction_id"], 0.1),
    )
    # Then each item says what became of it; a second value is refused, the first stands
    assert answer == [
        {"prediction_id": a["prediction_id"], "status": "recorded", "actual_yield": 0.9},
        {"prediction_id": b["prediction_id"], "status": "recorded", "actual_yield": 0.95},
        {"prediction_id": UNKNOWN, "status": "unknown", "actual_yield": None},
        {"prediction_id": a["prediction_id"], "status": "duplicate", "actual_yield": 0.9},
    ]
    # And the logged prediction has its inputs, its answer and its feedback
    logged = client.get(f"/api/v1/predictions/{b['prediction_id']}")
    assert logged.status_code == 200
    body = logged.json()
    received = datetime.fromisoformat(body["feedback"].pop("received_at"))
    created = datetime.fromisoformat(body.pop("created_at"))
    assert created <= received
    assert body == {
        "prediction_id": b["prediction_id"],
        "model_version": MODEL_VERSION,
        "sample_id": "b",
        "inputs": {k: v for k, v in quirky.items() if v is not None and k != "sample_id"},
        "predicted_yield": b["predicted_yield"],
        "warnings": b["warnings"],
        "feedback": {
            "actual_yield": 0.95,
            "absolute_error": abs(b["predicted_yield"] - 0.95),
        },
    }
    assert client.get(f"/api/v1/predictions/{c['prediction_id']}").json()["feedback"] is None
    # And the accuracy metrics moved by exactly the two recorded values
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    errors = [abs(a["predicted_yield"] - 0.9), abs(b["predicted_yield"] - 0.95)]
    assert delta("mlapi_feedback_total", **V) == 2
    assert delta("mlapi_feedback_rejected_total", reason="unknown") == 1
    assert delta("mlapi_feedback_rejected_total", reason="duplicate") == 1
    assert delta("mlapi_prediction_absolute_error_ratio_count", **V) == 2
    assert delta("mlapi_prediction_absolute_error_ratio_sum", **V) == pytest.approx(
        sum(errors), abs=1e-12
    )
    for bound in metrics.ERROR_BUCKETS:
        expected = sum(e <= bound for e in errors)
        assert delta("mlapi_prediction_absolute_error_ratio_bucket", **V, le=str(bound)) == expected
    assert delta("mlapi_prediction_squared_error_ratio_count", **V) == 2
    assert delta("mlapi_prediction_squared_error_ratio_sum", **V) == pytest.approx(
        sum(e**2 for e in errors), abs=1e-12
    )


def test_yields_at_the_bounds_are_accepted(client: TestClient, record: dict[str, Any]) -> None:
    first, second = predict(client, [record, record])
    results = send(client, (first["prediction_id"], 0), (second["prediction_id"], 1.5))
    assert [r["status"] for r in results] == ["recorded", "recorded"]


def test_an_unknown_prediction_is_404_with_the_error_body(client: TestClient) -> None:
    response = client.get(f"/api/v1/predictions/{UNKNOWN}")
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert detail["code"] == "prediction_not_found"
    assert UNKNOWN in detail["message"]


def test_a_malformed_prediction_id_is_422(client: TestClient) -> None:
    response = client.get("/api/v1/predictions/not-a-uuid")
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail["code"] == "invalid_request"
    assert [e["field"] for e in detail["errors"]] == ["path.prediction_id"]


class Bad(NamedTuple):
    """A feedback body, its status, error code and the (index, field) pairs named."""

    body: bytes
    status: int
    code: str
    where: Sequence[tuple[int | None, str | None]] = ()
    headers: dict[str, str] = JSON


def _items(*items: dict[str, Any]) -> bytes:
    return orjson.dumps({"feedback": list(items)})


def _item(actual: Any) -> dict[str, Any]:
    return {"prediction_id": UNKNOWN, "actual_yield": actual}


INVALID = "invalid_input"
BAD_FEEDBACK = {
    "yield as text": Bad(_items(_item("0.92")), 422, INVALID, [(0, "actual_yield")]),
    "yield as boolean": Bad(_items(_item(True)), 422, INVALID, [(0, "actual_yield")]),
    "yield null": Bad(_items(_item(None)), 422, INVALID, [(0, "actual_yield")]),
    "NaN": Bad(
        b'{"feedback": [{"prediction_id": "%s", "actual_yield": NaN}]}' % UNKNOWN.encode(),
        422,
        INVALID,
        [(0, "actual_yield")],
    ),
    "above 1.5": Bad(_items(_item(0.9), _item(1.51)), 422, INVALID, [(1, "actual_yield")]),
    "negative": Bad(_items(_item(-0.01)), 422, INVALID, [(0, "actual_yield")]),
    "no yield": Bad(_items({"prediction_id": UNKNOWN}), 422, INVALID, [(0, "actual_yield")]),
    "not a uuid": Bad(
        _items({"prediction_id": "sample_1", "actual_yield": 0.9}),
        422,
        INVALID,
        [(0, "prediction_id")],
    ),
    "unknown field in an item": Bad(
        _items({**_item(0.9), "note": "lab"}), 422, INVALID, [(0, "note")]
    ),
    "two bad items: validation stops at the first": Bad(
        _items(_item(2), _item(0.9), _item("x")), 422, INVALID, [(0, "actual_yield")]
    ),
    "empty list": Bad(_items(), 422, INVALID, [(None, "feedback")]),
    "feedback not a list": Bad(b'{"feedback": {}}', 422, INVALID, [(None, "feedback")]),
    "body a list": Bad(b"[]", 422, INVALID, [(None, None)]),
    "unknown top-level field": Bad(
        b'{"feedback": [], "x": 1}', 422, INVALID, [(None, "feedback"), (None, "x")]
    ),
    "truncated json": Bad(b'{"feedback": [', 400, "malformed_json"),
    "empty body": Bad(b"", 400, "malformed_json"),
    "text/plain": Bad(_items(_item(0.9)), 415, "unsupported_media_type", [], {"a": "b"}),
    "gzip": Bad(
        gzip.compress(_items(_item(0.9))),
        415,
        "unsupported_content_encoding",
        [],
        {**JSON, "content-encoding": "gzip"},
    ),
}


@pytest.mark.parametrize("bad", BAD_FEEDBACK.values(), ids=BAD_FEEDBACK.keys())
def test_bad_feedback_gets_its_status_and_the_item_index(client: TestClient, bad: Bad) -> None:
    response = client.post("/api/v1/feedback", content=bad.body, headers=bad.headers)
    assert response.status_code == bad.status, response.text
    detail = response.json()["detail"]
    assert detail["code"] == bad.code
    assert [(e["index"], e["field"]) for e in detail["errors"]] == list(bad.where)


@pytest.fixture(scope="module")
def three_items_client() -> Iterator[TestClient]:
    """A client of an app accepting 3 records (or feedback items) per request."""
    with TestClient(create_app(Settings(max_records=3)), headers=AUTH) as client:
        yield client


@pytest.mark.parametrize(
    "items",
    [
        [_item(0.9)] * 4,
        # more empty items than 3 items could hold values (each would be a 422 if parsed)
        [{}] * 9,
    ],
    ids=["4 items", "9 empty items"],
)
def test_more_feedback_than_the_record_limit_is_413_before_it_is_parsed(
    three_items_client: TestClient, items: list[dict[str, Any]]
) -> None:
    response = three_items_client.post("/api/v1/feedback", content=_items(*items), headers=JSON)
    # refused from its structure: 413 naming the list, not a 422 per item
    assert response.status_code == 413
    detail = response.json()["detail"]
    assert detail["code"] == "too_many_records"
    assert detail["message"] == (
        "the body holds more JSON values than 3 feedback items can; at most 3 feedback items "
        "are accepted"
    )
    assert [(e["index"], e["field"]) for e in detail["errors"]] == [(None, "feedback")]


def test_three_feedback_items_of_the_longest_form_pass_the_structure_check(
    three_items_client: TestClient,
) -> None:
    # Every key of every item, and commas and braces inside the strings: not structure
    items = [{"prediction_id": str(uuid.uuid4()), "actual_yield": 0.9} for _ in range(3)]
    body = orjson.dumps({"feedback": items})
    assert b"{,:[" not in body
    response = three_items_client.post("/api/v1/feedback", content=body, headers=JSON)
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == ["unknown"] * 3


class BrokenLog:
    """A prediction log whose disk has failed."""

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise PredictionLogError("cannot record the predictions: disk I/O error")

    record = add_feedback = get = check_writable = _fail


@pytest.fixture
def broken_log_client() -> Iterator[TestClient]:
    """A client of an app whose prediction log cannot be written."""
    with TestClient(create_app(Settings()), headers=AUTH) as client:
        client.app_state["prediction_log"] = BrokenLog()  # what the lifespan opened, replaced
        yield client


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/predict", {"inputs": [{}]}),
        ("POST", "/api/v1/feedback", {"feedback": [_item(0.9)]}),
        ("GET", f"/api/v1/predictions/{UNKNOWN}", None),
    ],
)
def test_no_answer_without_the_log_503_not_a_500(
    broken_log_client: TestClient,
    scrape: Callable[[], Scrape],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    # Given a log that fails; when a request needs it
    before = scrape().value("mlapi_predictions_total", **V)
    response = broken_log_client.request(method, path, json=body)
    # Then nothing is answered that is not on record, and the caller is told to retry
    assert response.status_code == 503
    assert response.json()["detail"]["code"] == "prediction_log_unavailable"
    assert "disk" not in response.text  # the cause goes to the service log, not the caller
    assert scrape().value("mlapi_predictions_total", **V) == before


def test_prediction_ids_are_found_in_the_log(logged: TestClient, record: dict[str, Any]) -> None:
    client = logged
    predictions = predict(client, [record] * 5)
    for prediction in predictions:
        found = client.get(f"/api/v1/predictions/{prediction['prediction_id']}").json()
        assert found["predicted_yield"] == prediction["predicted_yield"]
        assert uuid.UUID(found["prediction_id"]).version == 7


@pytest.mark.parametrize(
    ("body", "a6"),
    [
        (b'{"inputs": [{"sample_id": "x1", "A6": 38.5, "A2": NaN}]}', 38.5),  # lenient
        (b'{\n  "inputs": [ {"sample_id": "x1", "A6": 38.5, "A2": null} ]\n}', 38.5),  # strict
    ],
)
def test_the_log_returns_the_record_s_values_whatever_the_json(
    logged: TestClient, body: bytes, a6: float
) -> None:
    client = logged
    answer = client.post(
        "/api/v1/predict", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 200
    (prediction,) = answer.json()["predictions"]
    found = client.get(f"/api/v1/predictions/{prediction['prediction_id']}").json()
    assert found["inputs"] == {"A6": a6}  # blanks left out, NaN or null
    assert found["sample_id"] == "x1"


def test_health_is_503_with_the_reason_when_the_log_cannot_be_written(
    broken_log_client: TestClient,
) -> None:
    # Given a log that fails: health says so, so that Docker or ECS replaces the container
    response = broken_log_client.get("/api/v1/health")
    assert response.status_code == 503
    assert response.json()["detail"] == {
        "code": "prediction_log_unavailable",
        "message": "the prediction log: cannot record the predictions: disk I/O error",
        "errors": [],
    }


def test_health_is_503_on_a_postgresql_log_that_only_reads(
    postgres_server: Postgres, record: dict[str, Any]
) -> None:
    # Given a service whose database has become read-only (a standby, say)
    url = postgres_server.new_database()
    read_only = url + "&options=-c%20default_transaction_read_only%3Don"
    with TestClient(create_app(Settings(prediction_log_url=url)), headers=AUTH) as client:
        assert client.get("/api/v1/health").status_code == 200
    with TestClient(create_app(Settings(prediction_log_url=read_only)), headers=AUTH) as client:
        # Then health and predict answer 503, health naming the cause
        health = client.get("/api/v1/health")
        assert health.status_code == 503
        assert "read-only transaction" in health.json()["detail"]["message"]
        assert client.post("/api/v1/predict", json={"inputs": [record]}).status_code == 503
