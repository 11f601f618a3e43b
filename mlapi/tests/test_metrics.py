"""Metrics: exact increments per request, the right names and labels, nothing double counted."""

import math
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mlapi_support import API_VERSION, MODEL_VERSION, Scrape

from mlapi import metrics
from yield_model.columns import FEATURE_COLUMNS

V = {"model_version": MODEL_VERSION}
PREDICT_2XX = {"handler": "/api/v1/predict", "method": "POST", "status": "2xx"}
PREDICT_4XX = {**PREDICT_2XX, "status": "4xx"}


def test_a_prediction_request_moves_each_model_metric_by_its_exact_amount(
    client: TestClient, scrape: Callable[[], Scrape], record: dict[str, Any]
) -> None:
    count = 7
    # Given records that each lack A2, A7, A8 and B11; the last one has an unreadable A20
    records = [record] * (count - 1) + [{**record, "A20": "6:00-6x"}]
    before = scrape()
    # When
    response = client.post("/api/v1/predict", json={"inputs": records})
    after = scrape()
    # Then
    yields = [p["predicted_yield"] for p in response.json()["predictions"]]

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta("mlapi_predictions_total", **V) == count
    assert delta("mlapi_prediction_records_count", **V) == 1
    assert delta("mlapi_prediction_records_sum", **V) == count
    assert delta("mlapi_prediction_records_bucket", **V, le="2.0") == 0
    assert delta("mlapi_prediction_records_bucket", **V, le="10.0") == 1
    assert delta("mlapi_model_inference_seconds_count", **V) == 1
    assert delta("mlapi_predicted_yield_ratio_count", **V) == count
    assert delta("mlapi_predicted_yield_ratio_sum", **V) == pytest.approx(sum(yields), abs=1e-9)
    for bound in metrics.YIELD_BUCKETS:
        expected = sum(y <= bound for y in yields)
        assert delta("mlapi_predicted_yield_ratio_bucket", **V, le=str(bound)) == expected
    for feature in FEATURE_COLUMNS:
        absent = count if feature in {"A2", "A7", "A8", "B11"} else 0
        unparseable = 1 if feature == "A20" else 0
        assert delta("mlapi_inputs_missing_total", **V, feature=feature, reason="absent") == absent
        assert (
            delta("mlapi_inputs_missing_total", **V, feature=feature, reason="unparseable")
            == unparseable
        )
    assert delta("mlapi_prediction_log_write_seconds_count") == 1
    assert delta("http_requests_total", **PREDICT_2XX) == 1
    assert (
        delta("http_request_duration_seconds_count", handler="/api/v1/predict", method="POST") == 1
    )
    assert delta("http_request_size_bytes_count", handler="/api/v1/predict") == 1


def test_a_rejected_request_counts_as_4xx_and_predicts_nothing(
    client: TestClient, scrape: Callable[[], Scrape]
) -> None:
    before = scrape()
    client.post("/api/v1/predict", json={"inputs": [{"A1": False}]})
    after = scrape()
    assert (
        after.value("http_requests_total", **PREDICT_4XX)
        - before.value("http_requests_total", **PREDICT_4XX)
        == 1
    )
    assert after.value("mlapi_predictions_total", **V) == before.value(
        "mlapi_predictions_total", **V
    )


def test_health_and_metrics_stay_out_of_request_metrics(
    client: TestClient, scrape: Callable[[], Scrape]
) -> None:
    for _ in range(3):
        client.get("/api/v1/health")
        client.get("/metrics")
    handlers = {labels["handler"] for labels in scrape().series("http_requests_total")}
    assert "/api/v1/health" not in handlers
    assert "/metrics" not in handlers


def test_unknown_paths_are_grouped_not_one_series_each(
    client: TestClient, scrape: Callable[[], Scrape]
) -> None:
    for path in ("/a", "/b", "/c/d"):
        client.get(path)
    handlers = {labels["handler"] for labels in scrape().series("http_requests_total")}
    assert "none" in handlers
    assert not {"/a", "/b", "/c/d"} & handlers


def test_model_info_is_one_series_at_one(scrape: Callable[[], Scrape]) -> None:
    current = scrape()
    assert current.series("mlapi_model_info") == [
        {"model_name": "yield-model", "model_version": MODEL_VERSION, "api_version": API_VERSION}
    ]
    assert current.value("mlapi_model_info", **current.series("mlapi_model_info")[0]) == 1


def test_every_missing_input_series_exists_from_the_start(scrape: Callable[[], Scrape]) -> None:
    series = scrape().series("mlapi_inputs_missing_total")
    assert len(series) == len(FEATURE_COLUMNS) * 2
    assert {s["reason"] for s in series} == {"absent", "unparseable"}


def test_every_guarded_input_has_an_out_of_range_series_from_the_start(
    client: TestClient, scrape: Callable[[], Scrape]
) -> None:
    ranges = client.get("/api/v1/model").json()["input_ranges"]
    guarded = {name for name, r in ranges.items() if r["highest"] is not None}
    assert "B14" in guarded
    series = scrape().series("mlapi_inputs_out_of_range_total")
    assert {s["feature"] for s in series} == guarded
    assert {s["model_version"] for s in series} == {MODEL_VERSION}


def test_values_outside_the_training_range_are_counted_and_named(
    client: TestClient, scrape: Callable[[], Scrape], record: dict[str, Any]
) -> None:
    # Given three records, two with the plant's typo B14 = 785 and one also with A6 = 1e6
    B14 = client.get("/api/v1/model").json()["input_ranges"]["B14"]
    records = [{**record, "B14": 785}, {**record, "B14": 785, "A6": 1e6}, record]
    before = scrape()
    # When
    response = client.post("/api/v1/predict", json={"inputs": records})
    after = scrape()
    # Then each is counted once, under its feature, and named in its record's warnings
    assert response.status_code == 200
    for feature, count in (("B14", 2), ("A6", 1), ("A5", 0)):
        name, labels = "mlapi_inputs_out_of_range_total", {**V, "feature": feature}
        assert after.value(name, **labels) - before.value(name, **labels) == count
    warnings = [p["warnings"] for p in response.json()["predictions"]]
    low, high = (f"{B14[k]:.10g}" for k in ("minimum", "maximum"))
    typo = f"B14: 785 is outside the training range {low}-{high}, treated as missing"
    assert warnings[0] == [typo]
    assert warnings[1][0].startswith("A6: 1000000 is outside the training range ")
    assert warnings[1][1] == typo
    assert warnings[2] == []


def test_accuracy_series_exist_from_the_start_and_the_threshold_is_the_setting(
    scrape: Callable[[], Scrape],
) -> None:
    current = scrape()
    assert current.series("mlapi_feedback_total") == [V]
    assert current.series("mlapi_prediction_absolute_error_ratio_count") == [V]
    assert current.series("mlapi_prediction_squared_error_ratio_count") == [V]
    rejected = current.series("mlapi_feedback_rejected_total")
    assert sorted(s["reason"] for s in rejected) == ["duplicate", "unknown"]
    assert current.series("mlapi_mae_alert_threshold_ratio") == [{}]
    assert current.value("mlapi_mae_alert_threshold_ratio") == 0.02


def test_predicted_yields_land_in_their_buckets_and_non_finite_ones_nowhere(
    scrape: Callable[[], Scrape],
) -> None:
    # Given yields on, between, below and above the bucket bounds, and three that are no yield
    version = {"model_version": "0.0.0-buckets"}  # a series of this test's own
    values = [0.1, 0.6, 0.61, 0.625, 0.9, 0.925, 0.93, 1.05, 1.2, 7.0, 0.875, 0.875]
    non_finite = [math.nan, math.inf, -math.inf]
    try:
        # When they are recorded as one request's predictions
        metrics.record_prediction(
            version["model_version"],
            values + non_finite,
            0.01,
            absent={},
            unparseable={},
            out_of_range={},
        )
        after = scrape()
        # Then /metrics counts each finite one in every bucket whose bound it does not exceed
        for bound in metrics.YIELD_BUCKETS:
            expected = sum(v <= bound for v in values)
            assert after.value("mlapi_predicted_yield_ratio_bucket", **version, le=str(bound)) == (
                expected
            ), bound
        assert after.value("mlapi_predicted_yield_ratio_bucket", **version, le="+Inf") == 12
        assert after.value("mlapi_predicted_yield_ratio_count", **version) == 12
        assert after.value("mlapi_predicted_yield_ratio_sum", **version) == pytest.approx(
            sum(values), abs=1e-12
        )
        # and every record, finite or not, as predicted
        assert after.value("mlapi_predictions_total", **version) == 15
    finally:
        for metric in (
            metrics.PREDICTIONS,
            metrics.INFERENCE_SECONDS,
            metrics.RECORDS_PER_REQUEST,
            metrics.PREDICTED_YIELD,
        ):
            metric.remove(version["model_version"])
