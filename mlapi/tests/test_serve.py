"""mlapi-serve as it runs in production: real processes, real sockets, several workers."""

import hashlib
import json
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import orjson
import pytest
from mlapi_support import (
    API_VERSION,
    AUTH,
    MODEL_VERSION,
    Postgres,
    RunningServer,
    generated_records,
)

from mlapi.serve import StartupError, check_model, prepare_multiproc_dir
from mlapi.settings import Settings
from yield_model.drift import window_drift
from yield_model.persistence import default_model_path
from yield_model.predict import load_model
from yield_model.schemas import EXAMPLE_RECORD

READY_TIMEOUT_SECONDS = 180
PREDICT_2XX = {"handler": "/api/v1/predict", "method": "POST", "status": "2xx"}
PREDICT_4XX = {**PREDICT_2XX, "status": "4xx"}
V = {"model_version": MODEL_VERSION}


def _wait_for_ready_workers(server: RunningServer, count: int) -> None:
    """Wait until ``count`` workers have loaded the model since the start."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while server.output().count("Application startup complete") < count:
        assert time.monotonic() < deadline, f"{count} workers not ready:\n{server.output()}"
        time.sleep(0.2)


def _log_lines(server: RunningServer) -> list[dict[str, Any]]:
    lines = []
    for line in server.output().splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"a log line is not JSON: {line!r}")
    return lines


def _send(server: RunningServer, sizes: list[int], bad: int) -> None:
    """POST one request per size (that many records) and ``bad`` rejected ones, 8 at a time.

    Each request opens its own connection, so the kernel spreads them over the workers.
    """

    def good(size: int) -> int:
        body = {"inputs": [EXAMPLE_RECORD] * size}
        return httpx.post(
            f"{server.url}/api/v1/predict", headers=AUTH, json=body, timeout=120
        ).status_code

    def rejected(_: int) -> int:
        body = {"inputs": [{"A1": True}]}
        return httpx.post(
            f"{server.url}/api/v1/predict", headers=AUTH, json=body, timeout=120
        ).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(good, sizes)) + list(pool.map(rejected, range(bad)))
        list(pool.map(lambda _: httpx.get(f"{server.url}/api/v1/health"), range(10)))
    assert statuses == [200] * len(sizes) + [422] * bad


def test_two_workers_report_exactly_what_was_sent(
    start_server: Callable[..., RunningServer],
) -> None:
    # Given a server with two workers, both ready
    server = start_server(workers="2")
    _wait_for_ready_workers(server, 2)
    sizes = [1 + i % 3 for i in range(60)]
    # When 60 good requests (120 records) and 7 bad ones are sent, with health checks between
    _send(server, sizes, bad=7)
    # Then /metrics, whichever worker answers it, counts exactly that over both workers
    for _ in range(3):
        scrape = server.scrape()
        assert scrape.value("http_requests_total", **PREDICT_2XX) == 60
        assert scrape.value("http_requests_total", **PREDICT_4XX) == 7
        assert scrape.value("mlapi_predictions_total", **V) == sum(sizes) == 120
        assert scrape.value("mlapi_prediction_records_count", **V) == 60
        assert scrape.value("mlapi_predicted_yield_ratio_count", **V) == 120
        assert scrape.value("mlapi_inputs_missing_total", **V, feature="A2", reason="absent") == 120
        assert not [s for s in scrape.series("http_requests_total") if "health" in s["handler"]]
        assert scrape.series("mlapi_model_info") == [
            {
                "model_name": "yield-model",
                "model_version": MODEL_VERSION,
                "api_version": API_VERSION,
            }
        ]
    # And both workers did serve predictions (else the sum above proves nothing)
    pids = {line["pid"] for line in _log_lines(server) if line.get("route") == "/api/v1/predict"}
    assert len(pids) == 2


def test_counts_of_a_killed_worker_survive_its_replacement(
    start_server: Callable[..., RunningServer],
) -> None:
    # Given a two-worker server that has answered 30 requests
    server = start_server(workers="2")
    _wait_for_ready_workers(server, 2)
    _send(server, [2] * 30, bad=0)
    # When a worker dies and gunicorn replaces it, and 20 more requests are answered
    victim = server.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    _wait_for_ready_workers(server, 3)
    assert victim not in server.worker_pids()
    _send(server, [1] * 20, bad=0)
    # Then nothing was lost or counted twice
    scrape = server.scrape()
    assert scrape.value("http_requests_total", **PREDICT_2XX) == 50
    assert scrape.value("mlapi_predictions_total", **V) == 80
    assert scrape.value("mlapi_model_info", **scrape.series("mlapi_model_info")[0]) == 1


def test_each_request_is_one_json_log_line_without_record_values(
    start_server: Callable[..., RunningServer],
) -> None:
    server = start_server(workers="1")
    record = {**EXAMPLE_RECORD, "sample_id": "secret-sample-77"}
    response = httpx.post(
        f"{server.url}/api/v1/predict",
        json={"inputs": [record, record]},
        headers={**AUTH, "X-Request-ID": "plant-a.17"},
        timeout=120,
    )
    assert response.headers["X-Request-ID"] == "plant-a.17"
    time.sleep(0.5)  # the line is written after the response is sent
    lines = [line for line in _log_lines(server) if line.get("request_id") == "plant-a.17"]
    assert len(lines) == 1
    line = lines[0]
    assert line["route"] == "/api/v1/predict"
    assert line["status"] == 200
    assert line["record_count"] == 2
    assert line["model_version"] == MODEL_VERSION
    assert line["duration_ms"] > 0
    assert "record_values" not in line
    assert "secret-sample-77" not in server.output()


def test_sigterm_lets_the_request_in_flight_finish(
    start_server: Callable[..., RunningServer],
) -> None:
    # Given a request whose body is half sent
    server = start_server(workers="1")
    body = orjson.dumps({"inputs": [EXAMPLE_RECORD] * 5})
    head = (
        "POST /api/v1/predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Authorization: {AUTH['Authorization']}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(head + body[:100])
        time.sleep(2)  # let the worker read the headers: the request is now in flight
        # When the service is told to stop, and the body completes
        server.process.send_signal(signal.SIGTERM)
        time.sleep(1)
        sock.sendall(body[100:])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    # Then the request is answered and the service exits cleanly
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert len(orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["predictions"]) == 5
    assert server.process.wait(timeout=60) == 0


@pytest.mark.parametrize(
    ("breakage", "cause"),
    [
        ("truncated", "not loaded (unpickling runs code)"),
        ("replaced, its card rewritten to match", "not loaded (unpickling runs code)"),
        ("no card", "no model card"),
        ("missing", "no trained model"),
    ],
)
def test_a_broken_model_stops_the_start_naming_the_cause(
    run_serve: Callable[..., Any], packaged_model_copy: Path, breakage: str, cause: str
) -> None:
    # Given a model file that cannot be served
    model = packaged_model_copy
    if breakage == "truncated":
        model.write_bytes(model.read_bytes()[:1000])
    elif breakage.startswith("replaced"):
        model.write_bytes(b"not the packaged model")
        card = next(model.parent.glob("*.card.json"))
        fields = json.loads(card.read_text())
        fields["model_sha256"] = hashlib.sha256(model.read_bytes()).hexdigest()
        card.write_text(json.dumps(fields))
    elif breakage == "no card":
        next(model.parent.glob("*.card.json")).unlink()
    else:
        model.unlink()
    # When the service starts with it
    result = run_serve(model_path=str(model), workers="2")
    # Then it exits non-zero saying why, before any worker starts
    assert result.returncode == 1
    assert "mlapi-serve: cannot start: the model cannot be loaded:" in result.stderr
    assert cause in result.stderr
    assert "Booting worker" not in result.stdout


def test_a_model_other_than_the_one_expected_stops_the_start(
    run_serve: Callable[..., Any],
) -> None:
    # Given the packaged model, and MLAPI_MODEL_SHA256 naming another model (a task definition
    # of another release than the image's)
    expected = hashlib.sha256(b"the release's model").hexdigest()
    # When the service starts
    result = run_serve(model_sha256=expected, workers="2")
    # Then it exits non-zero before any worker starts, naming both sha256s: the container
    # never becomes healthy, and ECS's circuit breaker rolls the deployment back
    assert result.returncode == 1
    assert "mlapi-serve: cannot start: the model cannot be loaded:" in result.stderr
    actual = hashlib.sha256(default_model_path().read_bytes()).hexdigest()
    assert f"has sha256 {actual}, not {expected} (the sha256 given)" in result.stderr
    assert "Booting worker" not in result.stdout


@pytest.mark.parametrize(
    ("name", "value"),
    [("port", "70000"), ("workers", "0"), ("max_records", "0"), ("log_format", "xml"),
     ("log_level", "loud"), ("multiproc_dir", "relative/dir"), ("max_body_bytes", "10"),
     ("log_record_values", "maybe"), ("prediction_log_pool_size", "0"),
     ("prediction_log_sync", "sometimes"), ("drift_min_records", "5000"),
     ("monitor_interval_seconds", "0"), ("mae_alert_threshold", "0"),
     ("model_sha256", "not-a-sha256")],
)  # fmt: skip
def test_an_invalid_setting_stops_the_start_naming_it(
    run_serve: Callable[..., Any], name: str, value: str
) -> None:
    result = run_serve(**{name: value})
    assert result.returncode == 2
    assert f"MLAPI_{name.upper()}:" in result.stderr
    assert repr(value) in result.stderr


def test_another_model_is_served_only_with_its_sha256_set(
    packaged_model_copy: Path, tmp_path: Path
) -> None:
    # Given a valid model other than the packaged one, with a truthful card beside it
    joblib.dump(load_model().pipeline, packaged_model_copy, compress=0)
    sha256 = hashlib.sha256(packaged_model_copy.read_bytes()).hexdigest()
    card = next(packaged_model_copy.parent.glob("*.card.json"))
    fields = json.loads(card.read_text())
    fields["model_sha256"] = sha256
    card.write_text(json.dumps(fields))
    # Then MLAPI_MODEL_PATH alone does not load it, and with MLAPI_MODEL_SHA256 it does
    with pytest.raises(StartupError, match="MLAPI_MODEL_SHA256"):
        check_model(Settings(model_path=packaged_model_copy))
    check_model(Settings(model_path=packaged_model_copy, model_sha256=sha256))
    with pytest.raises(StartupError, match="the sha256 given"):
        check_model(Settings(model_path=packaged_model_copy, model_sha256="0" * 64))


def test_a_metrics_dir_with_foreign_files_stops_the_start(
    run_serve: Callable[..., Any], tmp_path: Path
) -> None:
    directory = tmp_path / "not-metrics"
    directory.mkdir()
    (directory / "notes.txt").write_text("keep me")
    result = run_serve(multiproc_dir=str(directory))
    assert result.returncode == 1
    assert "notes.txt" in result.stderr
    assert (directory / "notes.txt").read_text() == "keep me"


def test_prepare_multiproc_dir_empties_old_metric_files(tmp_path: Path) -> None:
    # Given a previous run's metric files
    directory = tmp_path / "metrics"
    directory.mkdir()
    for name in ("counter_11.db", "histogram_11.db", "gauge_max_12.db"):
        (directory / name).write_bytes(b"old")
    # When
    prepare_multiproc_dir(directory)
    # Then
    assert list(directory.iterdir()) == []


def test_prepare_multiproc_dir_creates_it(tmp_path: Path) -> None:
    prepare_multiproc_dir(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()


def test_prepare_multiproc_dir_leaves_foreign_files_alone(tmp_path: Path) -> None:
    (tmp_path / "counter_1.db").write_bytes(b"")
    (tmp_path / "subdir").mkdir()
    with pytest.raises(StartupError, match="subdir"):
        prepare_multiproc_dir(tmp_path)
    assert (tmp_path / "counter_1.db").exists()


def test_an_unusable_prediction_log_path_stops_the_start(
    run_serve: Callable[..., Any], tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    result = run_serve(prediction_log_url=f"sqlite://{tmp_path / 'a-file' / 'predictions.db'}")
    assert result.returncode == 1
    assert "mlapi-serve: cannot start: cannot open the prediction log" in result.stderr
    assert "MLAPI_PREDICTION_LOG_URL" in result.stderr
    assert "Booting worker" not in result.stdout


def _wait_for(condition: Callable[[], bool], what: str, server: RunningServer) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"{what} not seen:\n{server.output()[-3000:]}"
        time.sleep(0.5)


def _post(server: RunningServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    # A connection of its own, so that the kernel spreads requests over the workers.
    response = httpx.post(f"{server.url}{path}", headers=AUTH, json=body, timeout=120)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_two_workers_export_drift_and_accuracy_once_from_every_workers_data(
    start_server: Callable[..., RunningServer],
) -> None:
    # Given two workers and a monitoring job every second
    server = start_server(
        workers="2",
        monitor_interval_seconds="1",
        drift_window="1000",
        drift_min_records="100",
        accuracy_window="1000",
        mae_alert_threshold="0.03",
    )
    _wait_for_ready_workers(server, 2)
    model = load_model()
    records = generated_records(300, seed=21)
    # When 300 records are predicted in 30 requests, and 40 of them get their measured yield
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda i: _post(server, "/api/v1/predict", {"inputs": records[i : i + 10]}),
                range(0, 300, 10),
            )
        )
        predictions = [p for answer in answers for p in answer["predictions"]]
        actual = {
            p["prediction_id"]: round(0.85 + 0.003 * i, 4)
            for i, p in enumerate(predictions[::5][:40])
        }
        items = [{"prediction_id": k, "actual_yield": v} for k, v in actual.items()]
        list(
            pool.map(
                lambda i: _post(server, "/api/v1/feedback", {"feedback": items[i : i + 2]}),
                range(0, 40, 2),
            )
        )
    lines = _log_lines(server)
    for route in ("/api/v1/predict", "/api/v1/feedback"):
        assert len({line["pid"] for line in lines if line.get("route") == route}) == 2, route
    # Then, once the job has run on all of it
    _wait_for(
        lambda: (
            server.scrape().value("mlapi_recent_feedback_records", **V) == 40
            and server.scrape().value("mlapi_drift_window_records", **V) == 300
        ),
        "the monitoring job's numbers",
        server,
    )
    # every drift and accuracy metric is one series, whichever worker answers /metrics,
    yields = np.array([p["predicted_yield"] for p in predictions])
    expected_drift = window_drift(model, records, yields)
    by_id = {p["prediction_id"]: p["predicted_yield"] for p in predictions}
    errors = np.array([by_id[k] - v for k, v in actual.items()])
    for _ in range(4):
        scrape = server.scrape()
        drift = scrape.series("mlapi_input_drift_psi")
        assert sorted(s["feature"] for s in drift) == sorted(
            set(expected_drift) - {"predicted_yield"}
        )
        assert {frozenset(s) for s in drift} == {frozenset({"model_version", "feature"})}
        # computed from both workers' records, exactly as the package computes it
        for labels in drift:
            assert scrape.value("mlapi_input_drift_psi", **labels) == pytest.approx(
                expected_drift[labels["feature"]], rel=1e-9
            )
        for name in (
            "mlapi_predicted_yield_drift_psi",
            "mlapi_recent_half_mse_ratio",
            "mlapi_recent_feedback_records",
            "mlapi_drift_window_records",
            "mlapi_monitor_last_run_timestamp_seconds",
        ):
            assert scrape.series(name) == [V], name
        assert scrape.series("mlapi_mae_alert_threshold_ratio") == [{}]
        assert scrape.value("mlapi_mae_alert_threshold_ratio") == 0.03
        assert scrape.value("mlapi_predicted_yield_drift_psi", **V) == pytest.approx(
            expected_drift["predicted_yield"], rel=1e-9
        )
        assert scrape.value("mlapi_recent_half_mse_ratio", **V) == pytest.approx(
            float(np.mean(errors**2) / 2), rel=1e-9
        )
        # and the feedback both workers received is counted once, summed over them
        assert scrape.value("mlapi_feedback_total", **V) == 40
        assert scrape.value("mlapi_prediction_absolute_error_ratio_count", **V) == 40
        assert scrape.value("mlapi_prediction_absolute_error_ratio_sum", **V) == pytest.approx(
            float(np.abs(errors).sum()), rel=1e-9
        )
        assert scrape.value("mlapi_prediction_squared_error_ratio_sum", **V) == pytest.approx(
            float((errors**2).sum()), rel=1e-9
        )
        assert scrape.value("mlapi_prediction_log_rows", table="predictions") == 300
    # And one process ran the job
    (leader,) = {line["pid"] for line in _log_lines(server) if line.get("job") == "monitor"}

    # When that worker dies, another takes the job over: still one series each, same values
    os.kill(leader, signal.SIGKILL)
    _wait_for(
        lambda: (
            len({line["pid"] for line in _log_lines(server) if line.get("job") == "monitor"}) == 2
        ),
        "a new leader",
        server,
    )
    _wait_for(lambda: bool(server.scrape().series("mlapi_drift_window_records")), "drift", server)
    scrape = server.scrape()
    assert len(scrape.series("mlapi_input_drift_psi")) == len(expected_drift) - 1
    assert scrape.series("mlapi_recent_half_mse_ratio") == [V]
    assert scrape.value("mlapi_input_drift_psi", **V, feature="A6") == pytest.approx(
        expected_drift["A6"], rel=1e-9
    )
    assert scrape.value("mlapi_feedback_total", **V) == 40


def test_nothing_acknowledged_is_lost_when_the_service_is_killed(
    start_server: Callable[..., RunningServer],
) -> None:
    # Given a two-worker service under a steady stream of predictions and feedback
    server = start_server(workers="2")
    _wait_for_ready_workers(server, 2)
    acknowledged: dict[str, float] = {}
    fed_back: dict[str, float] = {}
    stop = threading.Event()

    def client(seed: int) -> None:
        record = {**EXAMPLE_RECORD, "sample_id": f"client-{seed}"}
        while not stop.is_set():
            try:
                answer = httpx.post(
                    f"{server.url}/api/v1/predict",
                    headers=AUTH,
                    json={"inputs": [record] * 3},
                    timeout=30,
                )
                if answer.status_code != 200:
                    continue
                predictions = answer.json()["predictions"]
                acknowledged.update({p["prediction_id"]: p["predicted_yield"] for p in predictions})
                first = predictions[0]["prediction_id"]
                feedback = {"feedback": [{"prediction_id": first, "actual_yield": 0.9}]}
                answer = httpx.post(
                    f"{server.url}/api/v1/feedback", headers=AUTH, json=feedback, timeout=30
                )
                if (
                    answer.status_code == 200
                    and answer.json()["results"][0]["status"] == "recorded"
                ):
                    fed_back[first] = 0.9
            except httpx.TransportError:
                pass  # in flight when the service died: not acknowledged

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    _wait_for(lambda: len(fed_back) >= 60, "60 acknowledged feedbacks", server)
    # When every process of the service is killed at once, requests in flight
    victims = [server.process.pid, *server.worker_pids()]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    server.process.wait(timeout=60)
    stop.set()
    for thread in threads:
        thread.join()
    # And the service is started again on the same prediction log
    restarted = start_server(workers="1")
    # Then every acknowledged prediction and feedback is there
    assert len(acknowledged) >= 180
    for prediction_id, predicted in acknowledged.items():
        found = httpx.get(
            f"{restarted.url}/api/v1/predictions/{prediction_id}", headers=AUTH, timeout=30
        )
        assert found.status_code == 200, prediction_id
        body = found.json()
        assert body["predicted_yield"] == predicted
        if prediction_id in fed_back:
            assert body["feedback"]["actual_yield"] == fed_back[prediction_id]


def test_instances_sharing_a_postgresql_log_answer_for_each_other_and_monitor_once(
    start_server: Callable[..., RunningServer], postgres_server: Postgres, tmp_path: Path
) -> None:
    # Given two instances of the service, as two hosts run them, on one PostgreSQL log
    url = postgres_server.new_database()
    servers = [
        start_server(
            workers="1",
            prediction_log_url=url,
            multiproc_dir=str(tmp_path / f"metrics-{i}"),
            monitor_interval_seconds="1",
            drift_window="100",
            drift_min_records="10",
        )
        for i in range(2)
    ]
    first, second = servers
    # When predictions are made on the first, and their feedback sent to the second
    records = generated_records(40, seed=5)
    predictions = _post(first, "/api/v1/predict", {"inputs": records})["predictions"]
    items = [{"prediction_id": p["prediction_id"], "actual_yield": 0.9} for p in predictions]
    answer = _post(second, "/api/v1/feedback", {"feedback": items})
    # Then the second finds every one: recorded, and each can be read from either instance
    assert [r["status"] for r in answer["results"]] == ["recorded"] * 40
    for prediction in predictions[::7]:
        for server in servers:
            found = httpx.get(
                f"{server.url}/api/v1/predictions/{prediction['prediction_id']}", headers=AUTH
            )
            assert found.status_code == 200
            assert found.json()["predicted_yield"] == prediction["predicted_yield"]
            assert found.json()["feedback"]["actual_yield"] == 0.9
    # And exactly one instance runs the monitoring job and exports its gauges, computed
    # from what was predicted
    _wait_for(
        lambda: any(s.scrape().value("mlapi_drift_window_records", **V) == 40 for s in servers),
        "the monitoring job's numbers",
        first,
    )
    time.sleep(2)  # two more intervals: an instance that also ran the job would show it now
    exporting = [s for s in servers if s.scrape().series("mlapi_drift_window_records")]
    assert len(exporting) == 1
    expected = window_drift(load_model(), records, [p["predicted_yield"] for p in predictions])
    assert exporting[0].scrape().value("mlapi_input_drift_psi", **V, feature="A6") == (
        pytest.approx(expected["A6"], rel=1e-9)
    )
    assert exporting[0].scrape().value("mlapi_recent_feedback_records", **V) == 40


def test_three_instances_on_one_postgresql_log_lose_nothing_and_agree(
    start_server: Callable[..., RunningServer], postgres_server: Postgres, tmp_path: Path
) -> None:
    # Given three instances of two workers each, as three tasks run them, on one PostgreSQL log
    url = postgres_server.new_database()
    servers = [
        start_server(
            workers="2",
            prediction_log_url=url,
            multiproc_dir=str(tmp_path / f"metrics-{i}"),
            monitor_interval_seconds="1",
            drift_window="20000",
            drift_min_records="10",
        )
        for i in range(3)
    ]
    for server in servers:
        _wait_for_ready_workers(server, 2)
    rng = np.random.default_rng(13)
    records = generated_records(50, seed=13)

    # When 10,000 predictions are spread over them by the client, 50 a request
    def predict_on(k: int) -> list[dict[str, Any]]:
        body = {"inputs": [{**r, "sample_id": f"s{k}-{j}"} for j, r in enumerate(records)]}
        return _post(servers[k % 3], "/api/v1/predict", body)["predictions"]

    with ThreadPoolExecutor(6) as pool:
        batches = list(pool.map(predict_on, rng.permutation(200).tolist()))
    predicted = {p["prediction_id"]: p["predicted_yield"] for batch in batches for p in batch}
    assert len(predicted) == 10_000
    # And feedback for every one is sent to a random instance, 100 items a request
    ids = list(predicted)
    measured = {i: round(float(rng.uniform(0.85, 1.0)), 4) for i in ids}

    def feed_back(start: int) -> list[str]:
        items = [
            {"prediction_id": i, "actual_yield": measured[i]} for i in ids[start : start + 100]
        ]
        server = servers[int(rng.integers(3))]
        return [
            r["status"] for r in _post(server, "/api/v1/feedback", {"feedback": items})["results"]
        ]

    with ThreadPoolExecutor(6) as pool:
        statuses = [s for chunk in pool.map(feed_back, range(0, 10_000, 100)) for s in chunk]
    # Then every one is recorded: none unknown, none lost
    assert statuses == ["recorded"] * 10_000
    # And any instance answers a GET of any prediction, with its feedback
    for prediction_id in ids[::500]:
        for server in servers:
            found = httpx.get(
                f"{server.url}/api/v1/predictions/{prediction_id}", headers=AUTH, timeout=30
            )
            assert found.status_code == 200
            assert found.json()["predicted_yield"] == predicted[prediction_id]
            assert found.json()["feedback"]["actual_yield"] == measured[prediction_id]

    # When 100 clients send different feedback for one new prediction at once
    (fresh,) = _post(servers[0], "/api/v1/predict", {"inputs": records[:1]})["predictions"]

    def compete(k: int) -> str:
        body = {
            "feedback": [{"prediction_id": fresh["prediction_id"], "actual_yield": 0.5 + k / 1000}]
        }
        answer = httpx.post(
            f"{servers[k % 3].url}/api/v1/feedback", headers=AUTH, json=body, timeout=60
        )
        assert answer.status_code == 200, answer.text
        status: str = answer.json()["results"][0]["status"]
        return status

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(compete, range(100)))
    # Then exactly one is recorded
    assert sorted(set(outcomes)) == ["duplicate", "recorded"]
    assert outcomes.count("recorded") == 1

    # And exactly one instance exports the drift gauges, equal to a recomputation over the rows
    _wait_for(
        lambda: any(s.scrape().value("mlapi_drift_window_records", **V) == 10_001 for s in servers),
        "the monitoring job over every prediction",
        servers[0],
    )
    time.sleep(2)
    exporting = [s for s in servers if s.scrape().series("mlapi_drift_window_records")]
    assert len(exporting) == 1
    # (drift compares distributions: the order of the window's rows does not matter)
    window = [*(records * 200), records[0]]
    expected = window_drift(load_model(), window, [*predicted.values(), fresh["predicted_yield"]])
    assert exporting[0].scrape().value("mlapi_input_drift_psi", **V, feature="A6") == (
        pytest.approx(expected["A6"], rel=1e-9)
    )
    assert exporting[0].scrape().value("mlapi_predicted_yield_drift_psi", **V) == (
        pytest.approx(expected["predicted_yield"], rel=1e-9)
    )

    # When one instance is killed with SIGKILL while the clients keep predicting
    acknowledged: dict[str, float] = {}
    stop = threading.Event()

    def client(seed: int) -> None:
        while not stop.is_set():
            server = servers[seed % 3]
            try:
                answer = httpx.post(
                    f"{server.url}/api/v1/predict",
                    headers=AUTH,
                    json={"inputs": records[:5]},
                    timeout=30,
                )
            except httpx.TransportError:
                continue  # in flight when the instance died: not acknowledged
            if answer.status_code == 200:
                acknowledged.update(
                    {p["prediction_id"]: p["predicted_yield"] for p in answer.json()["predictions"]}
                )

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    _wait_for(lambda: len(acknowledged) >= 300, "300 acknowledged predictions", servers[2])
    victim = servers[2]
    for pid in [victim.process.pid, *victim.worker_pids()]:
        os.kill(pid, signal.SIGKILL)
    victim.process.wait(timeout=60)
    time.sleep(1)
    stop.set()
    for thread in threads:
        thread.join()
    # Then every acknowledged prediction is in the log, read from a surviving instance
    for prediction_id, value in acknowledged.items():
        found = httpx.get(
            f"{servers[1].url}/api/v1/predictions/{prediction_id}", headers=AUTH, timeout=30
        )
        assert found.status_code == 200, prediction_id
        assert found.json()["predicted_yield"] == value


def test_two_instances_with_the_default_metrics_dir_keep_their_own_counts(
    start_server: Callable[..., RunningServer],
) -> None:
    # Given two instances on one host, neither told where its metric files go (empty: unset)
    first = start_server(workers="1", multiproc_dir="")
    second = start_server(workers="1", multiproc_dir="")
    # When each answers its own number of predictions
    for server, count in ((first, 3), (second, 1)):
        for _ in range(count):
            response = httpx.post(
                f"{server.url}/api/v1/predict", headers=AUTH, json={"inputs": [EXAMPLE_RECORD]}
            )
            assert response.status_code == 200, response.text
    # Then each reports its own, the first's not wiped by the second's start
    assert first.scrape().value("mlapi_predictions_total", **V) == 3
    assert second.scrape().value("mlapi_predictions_total", **V) == 1
    # And each directory is its own, removed when its instance stops
    directories = [
        Path(tempfile.gettempdir()) / f"mlapi-metrics-{s.process.pid}" for s in (first, second)
    ]
    assert all(directory.is_dir() for directory in directories)
    first.process.terminate()
    first.process.wait(timeout=60)
    assert not directories[0].exists()
    assert directories[1].is_dir()


def test_a_worker_that_cannot_open_the_log_starts_answers_503_and_the_service_stays_up(
    start_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    # Given a serving instance whose log file is then replaced by one that is no database
    server = start_server(workers="1")
    log = tmp_path / "data" / "predictions.db"
    for path in (log, log.with_name(log.name + "-wal"), log.with_name(log.name + "-shm")):
        path.unlink(missing_ok=True)
    log.write_bytes(b"not a database\n" * 1000)
    # When its worker dies and gunicorn starts another, which cannot open the log
    os.kill(server.worker_pids()[0], signal.SIGKILL)
    _wait_for_ready_workers(server, 2)
    # Then the new worker answers: health says why it is not ready, predictions need the log
    health = httpx.get(f"{server.url}/api/v1/health", timeout=30)
    assert health.status_code == 503
    assert health.json()["detail"]["code"] == "prediction_log_unavailable"
    assert "could not be opened" in health.json()["detail"]["message"]
    predict = httpx.post(
        f"{server.url}/api/v1/predict", headers=AUTH, json={"inputs": [EXAMPLE_RECORD]}, timeout=30
    )
    assert predict.status_code == 503
    assert predict.json()["detail"]["code"] == "prediction_log_unavailable"
    assert httpx.get(f"{server.url}/api/v1/model", headers=AUTH, timeout=30).status_code == 200
    # And the service is still up, its worker the same one (not failing to boot in a loop)
    time.sleep(2)
    assert server.process.poll() is None
    assert server.output().count("Application startup complete") == 2
