"""Settings: defaults, environment overrides, and refusal of unsafe values."""

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mlapi.settings import Settings, describe_settings_error, get_settings


def test_defaults() -> None:
    settings = Settings()
    assert (settings.host, settings.port) == ("0.0.0.0", 8001)
    assert settings.workers >= 1
    assert settings.max_records == 10_000
    assert (settings.log_level, settings.log_format) == ("info", "json")
    assert settings.log_record_values is False
    assert settings.model_path is None


def test_monitoring_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The tests point every app at their own log; here, the default as a user would get it
    monkeypatch.delenv("MLAPI_PREDICTION_LOG_PATH")
    monkeypatch.delenv("MLAPI_MONITOR_INTERVAL_SECONDS")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    settings = Settings()
    assert settings.prediction_log_path == tmp_path / "mlapi" / "predictions.db"
    assert settings.prediction_log_sync == "normal"
    assert (settings.prediction_log_max_rows, settings.prediction_log_max_age_days) == (
        1_000_000,
        90,
    )
    assert settings.monitor_interval_seconds == 60
    assert (settings.drift_window, settings.drift_min_records) == (1000, 500)
    assert (settings.accuracy_window, settings.mae_alert_threshold) == (100, 0.02)
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Settings().prediction_log_path == tmp_path / ".local/share/mlapi/predictions.db"


def test_environment_overrides_with_the_mlapi_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLAPI_PORT", "9000")
    monkeypatch.setenv("MLAPI_WORKERS", "3")
    monkeypatch.setenv("MLAPI_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("MLAPI_LOG_FORMAT", "Text")
    monkeypatch.setenv("MLAPI_LOG_RECORD_VALUES", "true")
    monkeypatch.setenv("MLAPI_MODEL_PATH", "/models/m.joblib")
    monkeypatch.setenv("MLAPI_MAX_RECORDS", "")  # empty means unset
    settings = Settings()
    assert (settings.port, settings.workers) == (9000, 3)
    assert (settings.log_level, settings.log_format) == ("warning", "text")
    assert settings.log_record_values is True
    assert settings.model_path == Path("/models/m.joblib")
    assert settings.max_records == 10_000


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("port", 0), ("port", 65536), ("workers", 0), ("max_records", 0),
        ("max_body_bytes", 100), ("log_level", "verbose"), ("log_format", "xml"),
        ("multiproc_dir", "metrics"), ("multiproc_dir", "/"), ("graceful_timeout", 0),
        ("predict_threads", 0), ("prediction_log_path", "predictions.db"),
        ("prediction_log_sync", "off"), ("prediction_log_max_rows", 999),
        ("prediction_log_max_age_days", 0), ("monitor_interval_seconds", 0.5),
        ("drift_window", 9), ("drift_min_records", 9), ("accuracy_window", 0),
        ("mae_alert_threshold", 0), ("mae_alert_threshold", 1.6),
    ],
)  # fmt: skip
def test_unsafe_values_are_refused(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as error:
        Settings(**{field: value})
    assert describe_settings_error(error.value).startswith(f"MLAPI_{field.upper()}: ")


@pytest.mark.parametrize(
    ("given", "refused", "reason"),
    [
        ({"drift_window": 400}, "drift_min_records", "must not exceed MLAPI_DRIFT_WINDOW (400)"),
        (
            {"drift_window": 5000, "drift_min_records": 100},
            "prediction_log_max_rows",
            "must be at least MLAPI_DRIFT_WINDOW (5000)",
        ),
        (
            {"accuracy_window": 3000, "prediction_log_max_rows": 2000},
            "prediction_log_max_rows",
            "must be at least MLAPI_ACCURACY_WINDOW (3000)",
        ),
    ],
)
def test_windows_must_fit_what_the_log_keeps(
    given: dict[str, Any], refused: str, reason: str
) -> None:
    values = {"prediction_log_max_rows": 1000, **given}
    with pytest.raises(ValidationError) as error:
        Settings(**values)
    (line,) = describe_settings_error(error.value).splitlines()
    assert line.startswith(f"MLAPI_{refused.upper()}: ")
    assert reason in line


def test_get_settings_reads_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    get_settings.cache_clear()
    monkeypatch.setenv("MLAPI_PORT", "9001")
    first = get_settings()
    monkeypatch.setenv("MLAPI_PORT", "9002")
    assert get_settings() is first
    assert first.port == 9001
    get_settings.cache_clear()
