"""The monitoring job: drift and recent accuracy from the log, retention, one leader."""

import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from mlapi_support import AUTH, MODEL_VERSION, Scrape, generated_records

from mlapi.main import create_app
from mlapi.monitor import Monitor
from mlapi.prediction_log import open_prediction_log
from mlapi.settings import Settings
from yield_model import datasets
from yield_model.drift import PREDICTED_YIELD, PSI_ACT, PSI_WATCH, window_drift
from yield_model.predict import TrainedModel, load_model

V = {"model_version": MODEL_VERSION}
# 2000 records per window: an unmoved feature's PSI stays under 0.05 (yield_model.drift, and
# model_package/tests/test_drift.py for the derivation); the shifted ones exceed PSI_ACT.
WINDOW = 2000
SHIFTED = {"A6", "B14", "B4_duration"}  # what datasets' shifted variant moves
# The sum of all step durations, B4's among them, and the clock times of the steps after B4,
# which start later (model_package/tests/test_drift.py asserts that they move).
DERIVED = {"total_hours", *datasets.SHIFTED_CLOCKS}
SEED = 3  # not the training file's (0): fresh batches


@pytest.fixture(scope="module")
def model() -> TrainedModel:
    """The packaged model."""
    return load_model()


@pytest.fixture
def monitored(log_url: str) -> Iterator[TestClient]:
    """A client of an app with a log of its own (once per backend), 2000-record drift window,
    3-feedback accuracy."""
    settings = Settings(
        prediction_log_url=log_url,
        drift_window=WINDOW,
        drift_min_records=1000,
        accuracy_window=3,
        monitor_interval_seconds=86_400,
    )
    with TestClient(create_app(settings), headers=AUTH) as client:
        yield client


def run(client: TestClient) -> Any:
    monitor: Monitor = client.app.state.monitor  # type: ignore[attr-defined]
    return monitor.run_once()


def predict(client: TestClient, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = client.post("/api/v1/predict", json={"inputs": records})
    assert response.status_code == 200, response.text
    predictions: list[dict[str, Any]] = response.json()["predictions"]
    return predictions


def drift_gauges(scrape: Scrape) -> dict[str, float]:
    values = {
        labels["feature"]: scrape.value("mlapi_input_drift_psi", **labels)
        for labels in scrape.series("mlapi_input_drift_psi")
        if labels["model_version"] == MODEL_VERSION
    }
    values[PREDICTED_YIELD] = scrape.value("mlapi_predicted_yield_drift_psi", **V)
    return values


def test_shifted_inputs_raise_the_drift_of_the_shifted_features_only(
    monitored: TestClient, scrape: Callable[[], Scrape], model: TrainedModel
) -> None:
    # Given a full window of records like the training data
    plain = generated_records(WINDOW, SEED)
    predict(monitored, plain[:700])
    predict(monitored, plain[700:])
    # When the job runs
    first = run(monitored)
    calm = drift_gauges(scrape())
    # Then no feature has moved, and the exported values are the package's for that window
    assert first.drift_window == WINDOW
    assert set(calm) == set(model.card.reference)
    assert max(calm.values()) < PSI_WATCH
    assert scrape().value("mlapi_drift_window_records", **V) == WINDOW

    # When the shifted variant of the same batches comes in and fills the window
    shifted = generated_records(WINDOW, SEED, shifted=True)
    predictions = predict(monitored, shifted)
    run(monitored)
    moved = drift_gauges(scrape())
    # Then the shifted features are past the act threshold, every other one under watch
    assert all(moved[name] > PSI_ACT for name in SHIFTED), {n: moved[n] for n in SHIFTED}
    others = {n: v for n, v in moved.items() if n not in SHIFTED | DERIVED | {PREDICTED_YIELD}}
    assert max(others.values()) < PSI_WATCH
    yields = [p["predicted_yield"] for p in predictions]
    expected = window_drift(model, shifted, yields)
    assert moved == pytest.approx(expected, rel=1e-12)


def test_no_drift_is_reported_below_the_minimum_window(
    monitored: TestClient, scrape: Callable[[], Scrape]
) -> None:
    window_before = scrape().value("mlapi_drift_window_records", **V)
    predict(monitored, generated_records(999, SEED, shifted=True))
    result = run(monitored)
    assert (result.drift_window, result.drift) == (999, None)
    assert scrape().value("mlapi_drift_window_records", **V) == window_before


def test_recent_half_mse_is_over_the_latest_feedbacks(
    monitored: TestClient, scrape: Callable[[], Scrape], record: dict[str, Any]
) -> None:
    # Given four predictions whose yields come back in two requests
    predictions = predict(monitored, [record, {**record, "A6": 50}, {**record, "B14": 350}] * 2)
    ids = [p["prediction_id"] for p in predictions]
    yields = np.array([p["predicted_yield"] for p in predictions])
    actual = np.array([0.90, 0.92, 0.94, 0.96])
    for group in ([0, 1], [2, 3]):
        feedback = [{"prediction_id": ids[i], "actual_yield": actual[i]} for i in group]
        assert monitored.post("/api/v1/feedback", json={"feedback": feedback}).status_code == 200
    # When the job runs
    started = time.time()
    result = run(monitored)
    # Then the gauge is half the MSE of the latest 3 (the accuracy window)
    expected = float(np.mean((yields[1:4] - actual[1:4]) ** 2) / 2)
    assert result.half_mse == pytest.approx(expected, rel=1e-12)
    current = scrape()
    assert current.value("mlapi_recent_half_mse_ratio", **V) == pytest.approx(expected, rel=1e-12)
    assert current.value("mlapi_recent_feedback_records", **V) == 3
    assert started <= current.value("mlapi_monitor_last_run_timestamp_seconds", **V) <= time.time()


def test_the_job_applies_retention_and_reports_the_rows(
    log_url: str, scrape: Callable[[], Scrape], model: TrainedModel, record: dict[str, Any]
) -> None:
    settings = Settings(
        prediction_log_url=log_url,
        prediction_log_max_rows=1000,
        drift_window=10,
        drift_min_records=10,
        accuracy_window=1,
    )
    with TestClient(create_app(settings), headers=AUTH) as client:
        for size in (600, 300, 200):
            predict(client, [record] * size)
        result = run(client)
    # the oldest 100 of 1100 go
    assert result.pruned == 100
    assert scrape().value("mlapi_prediction_log_rows", table="predictions") == 1000


def test_one_process_leads_and_another_takes_over_when_it_stops(
    log_url: str, model: TrainedModel
) -> None:
    # Given two monitors on one log, as two workers have
    settings = Settings(prediction_log_url=log_url)
    logs = [open_prediction_log(log_url) for _ in range(2)]
    first, second = (Monitor(log, model, settings) for log in logs)
    # Then one leads
    assert first.leads()
    assert first.leads()
    assert not second.leads()
    # And when it stops, the other takes over
    first.stop()
    assert second.leads()
    second.stop()
    for log in logs:
        log.close()
