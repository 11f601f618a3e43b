"""mlapi-serve as it runs in production: real processes, real sockets, several workers."""

import json
import os
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from conftest import RunningServer

from app.serve import StartupError, prepare_multiproc_dir
from yield_model.schemas import EXAMPLE_RECORD

READY_TIMEOUT_SECONDS = 180
PREDICT_2XX = {"handler": "/api/v1/predict", "method": "POST", "status": "2xx"}
PREDICT_4XX = {**PREDICT_2XX, "status": "4xx"}
V = {"model_version": "0.1.0"}


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
        return httpx.post(f"{server.url}/api/v1/predict", json=body, timeout=120).status_code

    def rejected(_: int) -> int:
        body = {"inputs": [{"A1": "not a number"}]}
        return httpx.post(f"{server.url}/api/v1/predict", json=body, timeout=120).status_code

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
            {"model_name": "yield-model", "model_version": "0.1.0", "api_version": "0.1.0"}
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
        headers={"X-Request-ID": "plant-a.17"},
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
    assert line["model_version"] == "0.1.0"
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
        ("truncated", "does not match its card's sha256"),
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


@pytest.mark.parametrize(
    ("name", "value"),
    [("port", "70000"), ("workers", "0"), ("max_records", "0"), ("log_format", "xml"),
     ("log_level", "loud"), ("multiproc_dir", "relative/dir"), ("max_body_bytes", "10"),
     ("log_record_values", "maybe")],
)  # fmt: skip
def test_an_invalid_setting_stops_the_start_naming_it(
    run_serve: Callable[..., Any], name: str, value: str
) -> None:
    result = run_serve(**{name: value})
    assert result.returncode == 2
    assert f"MLAPI_{name.upper()}:" in result.stderr
    assert repr(value) in result.stderr


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
