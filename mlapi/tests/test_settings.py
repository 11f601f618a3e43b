"""Settings: read from MLAPI_* variables; unsafe values refused, naming the variable."""

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mlapi.settings import Settings, describe_settings_error


def test_one_worker_per_cpu_this_process_may_use() -> None:
    # a container's cpuset, not the host's core count
    assert Settings().workers == len(os.sched_getaffinity(0))


def test_the_prediction_log_defaults_to_the_users_data_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The tests point every app at their own log; here, the default as a user would get it
    monkeypatch.delenv("MLAPI_PREDICTION_LOG_URL")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Settings().prediction_log_url == f"sqlite://{tmp_path}/xdg/mlapi/predictions.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Settings().prediction_log_url == f"sqlite://{tmp_path}/.local/share/mlapi/predictions.db"


@pytest.mark.parametrize(
    "url",
    ["sqlite:///var/lib/mlapi/predictions.db", "sqlite:////var/lib/mlapi/predictions.db",
     "postgresql://mlapi:secret@db.internal:5432/mlapi", "postgres://mlapi@db/mlapi",
     "postgresql:///mlapi?host=/run/postgresql"],
)  # fmt: skip
def test_the_prediction_log_url_names_a_sqlite_file_or_a_postgresql_database(url: str) -> None:
    assert Settings(prediction_log_url=url).prediction_log_url == url


@pytest.mark.parametrize(
    ("url", "message"),
    [("sqlite://predictions.db", "must be sqlite:///ABSOLUTE/PATH"),
     ("sqlite:///var/lib/mlapi/", "must be sqlite:///ABSOLUTE/PATH"),
     ("mysql://root@db/mlapi", "must start with sqlite:/// or postgresql://"),
     ("/var/lib/mlapi/predictions.db", "must start with sqlite:/// or postgresql://"),
     ("postgresql://mlapi:secret@db/mlapi?sslmode", "not a valid PostgreSQL connection URL")],
)  # fmt: skip
def test_a_bad_prediction_log_url_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, url: str, message: str
) -> None:
    monkeypatch.setenv("MLAPI_PREDICTION_LOG_URL", url)
    with pytest.raises(ValidationError) as error:
        Settings()
    described = describe_settings_error(error.value)
    assert described.startswith("MLAPI_PREDICTION_LOG_URL: ")
    assert message in described
    assert url not in described  # it may hold a password


def test_the_replaced_log_path_setting_is_refused_naming_its_successor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Ignored, it would start an empty log somewhere else
    monkeypatch.setenv("MLAPI_PREDICTION_LOG_PATH", "/var/lib/mlapi/predictions.db")
    with pytest.raises(ValidationError) as error:
        Settings()
    assert "MLAPI_PREDICTION_LOG_URL=sqlite:///var/lib/mlapi/predictions.db" in (
        describe_settings_error(error.value)
    )


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
        ("predict_threads", 0), ("prediction_log_url", "predictions.db"),
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


def test_a_worker_holds_two_largest_bodies_at_once_unless_told_and_never_less_than_one() -> None:
    assert Settings(max_body_bytes=5000).body_bytes_in_flight == 10_000
    assert Settings(max_body_bytes=5000, max_body_bytes_in_flight=7000).body_bytes_in_flight == (
        7000
    )
    with pytest.raises(ValidationError) as error:
        Settings(max_body_bytes=5000, max_body_bytes_in_flight=4000)
    (line,) = describe_settings_error(error.value).splitlines()
    assert line.startswith("MLAPI_MAX_BODY_BYTES_IN_FLIGHT: ")
    assert line.endswith("must be at least MLAPI_MAX_BODY_BYTES (5000), or no body fits (got 4000)")


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


def test_variables_without_the_prefix_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("WORKERS", "0")  # would be refused if it were read
    assert Settings().port == Settings.model_fields["port"].default


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MLAPI_PORT", "eighty"), ("MLAPI_PORT", "70000"), ("MLAPI_WORKERS", "1.5"),
        ("MLAPI_LOG_RECORD_VALUES", "maybe"), ("MLAPI_LOG_LEVEL", "loud"),
        ("MLAPI_MULTIPROC_DIR", "relative/dir"), ("MLAPI_MAE_ALERT_THRESHOLD", "-1"),
    ],
)  # fmt: skip
def test_a_bad_environment_value_is_refused_naming_the_variable_and_the_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as error:
        Settings()
    (line,) = describe_settings_error(error.value).splitlines()
    assert line.startswith(f"{variable}: ")
    assert line.endswith(f"(got {value!r})")


def test_every_bad_value_gets_its_own_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLAPI_PORT", "0")
    monkeypatch.setenv("MLAPI_LOG_FORMAT", "xml")
    monkeypatch.setenv("MLAPI_PREDICT_THREADS", "none")
    with pytest.raises(ValidationError) as error:
        Settings()
    lines = describe_settings_error(error.value).splitlines()
    assert sorted(line.split(":", 1)[0] for line in lines) == [
        "MLAPI_LOG_FORMAT",
        "MLAPI_PORT",
        "MLAPI_PREDICT_THREADS",
    ]
