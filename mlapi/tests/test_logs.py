"""Request logs: one line per request with its id, route, status, timing and record count."""

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mlapi_support import AUTH, MODEL_VERSION
from pythonjsonlogger.orjson import OrjsonFormatter

from mlapi.logs import logging_config
from mlapi.main import create_app
from mlapi.settings import Settings


def _request_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "mlapi.request"]


def test_one_line_per_request_with_what_happened(
    client: TestClient, caplog: pytest.LogCaptureFixture, record: dict[str, Any]
) -> None:
    caplog.set_level(logging.INFO, logger="mlapi.request")
    client.post("/api/v1/predict", json={"inputs": [record] * 3}, headers={"X-Request-ID": "req-1"})
    (line,) = _request_lines(caplog)
    assert line.request_id == "req-1"  # type: ignore[attr-defined]
    assert line.method == "POST"  # type: ignore[attr-defined]
    assert line.route == "/api/v1/predict"  # type: ignore[attr-defined]
    assert line.status == 200  # type: ignore[attr-defined]
    assert line.record_count == 3  # type: ignore[attr-defined]
    assert line.model_version == MODEL_VERSION  # type: ignore[attr-defined]
    assert line.api_key == "tests"  # type: ignore[attr-defined]  # the key's name, not the key
    assert line.duration_ms > 0  # type: ignore[attr-defined]
    assert not hasattr(line, "record_values")


def test_rejected_and_unknown_requests_are_logged_too(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlapi.request")
    client.post("/api/v1/predict", content=b"{", headers={"content-type": "application/json"})
    client.get("/nowhere")
    bad, unknown = _request_lines(caplog)
    assert (bad.status, bad.route) == (400, "/api/v1/predict")  # type: ignore[attr-defined]
    assert (unknown.status, unknown.route) == (404, None)  # type: ignore[attr-defined]
    assert unknown.path == "/nowhere"  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def logging_values_client() -> Iterator[TestClient]:
    """A client of an app whose settings ask for record values in the logs."""
    with TestClient(create_app(Settings(log_record_values=True)), headers=AUTH) as client:
        yield client


def test_record_values_are_logged_only_when_asked(
    logging_values_client: TestClient, caplog: pytest.LogCaptureFixture, record: dict[str, Any]
) -> None:
    caplog.set_level(logging.INFO, logger="mlapi.request")
    logging_values_client.post("/api/v1/predict", json={"inputs": [record]})
    (line,) = _request_lines(caplog)
    assert line.record_values == [record]  # type: ignore[attr-defined]


def test_json_format_writes_one_json_object_per_line() -> None:
    # Given the formatter the JSON setting configures
    options = dict(logging_config(Settings(log_format="json"))["formatters"]["default"])
    assert options.pop("()") == "pythonjsonlogger.orjson.OrjsonFormatter"
    formatter = OrjsonFormatter(**options)
    record = logging.LogRecord("mlapi.request", logging.INFO, "f.py", 1, "GET / 200", (), None)
    record.__dict__.update(
        request_id="r1", status=200, color_message="\x1b[36mx", record_values=[{"A1": None}]
    )
    # When
    line = formatter.format(record)
    # Then
    assert "\n" not in line
    fields = json.loads(line)
    assert fields["level"] == "INFO"
    assert fields["logger"] == "mlapi.request"
    assert fields["message"] == "GET / 200"
    assert (fields["request_id"], fields["status"]) == ("r1", 200)
    assert fields["record_values"] == [{"A1": None}]
    assert "time" in fields
    assert "pid" in fields
    assert "color_message" not in fields


def test_text_format_and_level_follow_the_settings() -> None:
    config = logging_config(Settings(log_format="text", log_level="warning"))
    assert "()" not in config["formatters"]["default"]
    assert config["root"]["level"] == "WARNING"
    assert config["loggers"]["gunicorn.error"]["level"] == "WARNING"
