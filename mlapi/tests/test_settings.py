"""Settings: defaults, environment overrides, and refusal of unsafe values."""

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.settings import Settings, describe_settings_error, get_settings


def test_defaults() -> None:
    settings = Settings()
    assert (settings.host, settings.port) == ("0.0.0.0", 8001)
    assert settings.workers >= 1
    assert settings.max_records == 10_000
    assert (settings.log_level, settings.log_format) == ("info", "json")
    assert settings.log_record_values is False
    assert settings.model_path is None


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
        ("predict_threads", 0),
    ],
)  # fmt: skip
def test_unsafe_values_are_refused(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as error:
        Settings(**{field: value})
    assert describe_settings_error(error.value).startswith(f"MLAPI_{field.upper()}: ")


def test_get_settings_reads_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    get_settings.cache_clear()
    monkeypatch.setenv("MLAPI_PORT", "9001")
    first = get_settings()
    monkeypatch.setenv("MLAPI_PORT", "9002")
    assert get_settings() is first
    assert first.port == 9001
    get_settings.cache_clear()
