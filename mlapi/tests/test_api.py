"""Every endpoint, given a loaded model (and one without)."""

import importlib.metadata
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mlapi_support import AUTH, MODEL_VERSION

from mlapi import __version__
from mlapi.main import create_app
from mlapi.schemas import PredictionResults
from mlapi.settings import Settings
from yield_model.predict import load_model
from yield_model.schemas import EXAMPLE_RECORD


def test_health_names_the_api_and_model(client: TestClient) -> None:
    # When
    response = client.get("/api/v1/health")
    # Then
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "api_version": __version__,
        "model_name": "yield-model",
        "model_version": MODEL_VERSION,
    }


def test_health_is_503_until_the_model_is_loaded(unready_client: TestClient) -> None:
    response = unready_client.get("/api/v1/health")
    assert response.status_code == 503
    assert response.json()["detail"]["code"] == "not_ready"


def test_predict_is_503_until_the_model_is_loaded(
    unready_client: TestClient, record: dict[str, Any]
) -> None:
    response = unready_client.post("/api/v1/predict", json={"inputs": [record]})
    assert response.status_code == 503
    assert response.json()["detail"]["code"] == "not_ready"


def test_model_card_is_the_served_models(client: TestClient) -> None:
    # Given the card of the packaged model
    card = load_model().card.model_dump(mode="json")
    # When
    response = client.get("/api/v1/model")
    # Then
    assert response.status_code == 200
    assert response.json() == card
    assert response.json()["version"] == MODEL_VERSION
    assert len(response.json()["data"]["sha256"]) == 64


def test_predict_matches_the_model_package(client: TestClient, record: dict[str, Any]) -> None:
    # Given two records, the second with a quirk the parser repairs and one it cannot read
    quirky = {**record, "sample_id": None, "A5": "1900/1/9 7:00", "A20": "6:00-6x"}
    expected = load_model().predict([record, quirky])
    # When
    sent_ms = time.time_ns() // 1_000_000
    response = client.post("/api/v1/predict", json={"inputs": [record, quirky]})
    answered_ms = time.time_ns() // 1_000_000
    # Then the answer is the package's, record by record, in order
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == MODEL_VERSION
    assert [p["predicted_yield"] for p in body["predictions"]] == expected.predictions
    assert [p["warnings"] for p in body["predictions"]] == expected.warnings
    assert [p["sample_id"] for p in body["predictions"]] == ["sample_1528", None]
    assert any(w.startswith("A20: ") for w in body["predictions"][1]["warnings"])
    ids = [uuid.UUID(p["prediction_id"]) for p in body["predictions"]]
    assert len(set(ids)) == 2
    # time-ordered ids (UUID version 7): the first 48 bits are the time in ms
    assert {i.version for i in ids} == {7}
    assert {i.variant for i in ids} == {uuid.RFC_4122}
    assert all(sent_ms <= i.int >> 80 <= answered_ms for i in ids)
    # And the body is exactly what the documented schema describes
    assert PredictionResults.model_validate_json(response.content).model_dump(mode="json") == body


def test_predict_accepts_the_chinese_sample_id_column(
    client: TestClient, record: dict[str, Any]
) -> None:
    del record["sample_id"]
    record["样本id"] = "sample_7"
    response = client.post("/api/v1/predict", json={"inputs": [record]})
    assert response.status_code == 200
    assert response.json()["predictions"][0]["sample_id"] == "sample_7"


def test_predict_accepts_exactly_the_record_limit(client: TestClient) -> None:
    # Given 10,000 records, the default limit, all values absent
    response = client.post("/api/v1/predict", json={"inputs": [{}] * 10_000})
    # Then all are predicted
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 10_000


def test_request_id_is_echoed_or_made(client: TestClient) -> None:
    given = client.get("/api/v1/health", headers={"X-Request-ID": "plant-42.batch:7"})
    made = client.get("/api/v1/health")
    unsafe = client.get("/api/v1/health", headers={"X-Request-ID": "a b\tc"})
    assert given.headers["X-Request-ID"] == "plant-42.batch:7"
    assert len(made.headers["X-Request-ID"]) == 32
    assert unsafe.headers["X-Request-ID"] not in {"a b\tc", made.headers["X-Request-ID"]}


def test_root_points_to_the_docs(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/docs"
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize(
    ("page", "kinds"), [("/docs", {"js", "css", "png"}), ("/redoc", {"js", "png"})]
)
def test_the_docs_load_their_assets_from_the_service_not_from_a_cdn(
    client: TestClient, page: str, kinds: set[str]
) -> None:
    # A plant network may have no internet: every script, style and icon comes from here.
    html = client.get(page).text
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", html)
    assert {asset.rsplit(".", 1)[1] for asset in assets} == kinds
    for asset in assets:
        assert asset.startswith("/"), asset  # no other host
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 1000


def test_openapi_documents_the_predict_body_with_an_example(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    body = document["paths"]["/api/v1/predict"]["post"]["requestBody"]
    schemas = document["components"]["schemas"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PredictionRequest"
    }
    inputs = schemas["PredictionRequest"]
    assert inputs["properties"]["inputs"]["items"] == {"$ref": "#/components/schemas/Record"}
    assert inputs["examples"] == [{"inputs": [EXAMPLE_RECORD]}]
    assert schemas["Record"]["additionalProperties"] is False
    assert set(document["paths"]) == {
        "/api/v1/health",
        "/api/v1/model",
        "/api/v1/predict",
        "/api/v1/feedback",
        "/api/v1/predictions/{prediction_id}",
    }


def test_metrics_endpoint_serves_prometheus_text(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE mlapi_predictions_total counter" in response.text


def test_a_bug_is_a_500_with_the_error_body_not_a_traceback(
    record: dict[str, Any], clean_env: None
) -> None:
    # Given a model whose predict fails unexpectedly
    class BrokenModel:
        name, version = "yield-model", MODEL_VERSION

        def predict_json(self, body: bytes, max_records: int) -> None:
            raise RuntimeError("boom")

    app = create_app(Settings())
    # When
    with TestClient(app, raise_server_exceptions=False, headers=AUTH) as client:
        client.app_state["model"] = BrokenModel()  # what the lifespan loaded, replaced
        response = client.post("/api/v1/predict", json={"inputs": [record]})
    # Then
    assert response.status_code == 500
    assert response.json() == {
        "detail": {
            "code": "internal_error",
            "message": "the service failed to answer; see its logs",
            "errors": [],
        }
    }
    assert "boom" not in response.text


def test_a_worker_computes_at_most_predict_threads_requests_at_once(
    record: dict[str, Any], clean_env: None
) -> None:
    # Given a model that counts the predictions running at once; two must meet at a barrier
    running, most = 0, 0
    lock = threading.Lock()
    two_at_once = threading.Barrier(2, timeout=60)
    model = load_model()

    class CountingModel:
        name, version = model.name, model.version

        def predict_json(self, body: bytes, max_records: int) -> Any:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            try:
                two_at_once.wait()
                return model.predict_json(body, max_records)
            finally:
                with lock:
                    running -= 1

    app = create_app(Settings(predict_threads=2))
    # When six requests arrive together
    body = {"inputs": [record] * 3}
    with TestClient(app, headers=AUTH) as client, ThreadPoolExecutor(6) as pool:
        client.app_state["model"] = CountingModel()
        answers = list(pool.map(lambda _: client.post("/api/v1/predict", json=body), range(6)))
    # Then all are answered, two at a time
    assert [a.status_code for a in answers] == [200] * 6
    assert most == 2


def test_health_answers_while_predictions_are_being_computed(
    record: dict[str, Any], clean_env: None
) -> None:
    # Given a model whose predictions block until released, as a slow disk or model would
    model = load_model()
    release = threading.Event()
    started = threading.Event()

    class SlowModel:
        name, version, card = model.name, model.version, model.card

        def predict_json(self, body: bytes, max_records: int) -> Any:
            started.set()
            assert release.wait(60)
            return model.predict_json(body, max_records)

    with (
        TestClient(create_app(Settings(predict_threads=2)), headers=AUTH) as client,
        ThreadPoolExecutor(2) as pool,
    ):
        client.app_state["model"] = SlowModel()
        # When two one-record predictions are in progress
        waiting = [pool.submit(client.post, "/api/v1/predict", json={"inputs": [record]})]
        waiting.append(pool.submit(client.post, "/api/v1/predict", json={"inputs": [record]}))
        assert started.wait(60)
        # Then the event loop still answers other requests
        health = client.get("/api/v1/health")
        card = client.get("/api/v1/model")
        release.set()
        answers = [future.result(timeout=60) for future in waiting]
    assert (health.status_code, card.status_code) == (200, 200)
    assert [a.status_code for a in answers] == [200, 200]


def test_the_installed_service_is_one_package_named_mlapi() -> None:
    # A generic top-level name (app, utils) would collide with any other wheel that has one.
    files = importlib.metadata.files("mlapi") or []
    modules = {f.parts[0] for f in files if f.suffix == ".py"}
    if all(m.startswith("__editable__") for m in modules):
        pytest.skip("an editable install lists no package files (tox installs the package)")
    assert modules == {"mlapi"}, modules
    commands = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")}
    assert commands["mlapi-serve"] == "mlapi.serve:main"
