"""The service's settings: one class, read from ``MLAPI_*`` variables, validated at start."""

import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlapi.keys import KeyFileError, load_keys, read_keys

ENV_PREFIX = "MLAPI_"
#: Variables whose values are never shown in messages.
SECRET_VARIABLES = frozenset({f"{ENV_PREFIX}PREDICTION_LOG_URL", f"{ENV_PREFIX}API_KEYS"})
LogLevel = Literal["critical", "error", "warning", "info", "debug"]


def _default_prediction_log_url() -> str:
    # A file in the user's data directory (XDG), so that a local run keeps its log across
    # restarts; the image points this at its volume, a deployment at PostgreSQL.
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return f"sqlite://{Path(data_home) / 'mlapi' / 'predictions.db'}"


def _default_multiproc_dir() -> Path:
    # Named by the process that reads the settings, mlapi-serve's (the workers inherit its
    # settings): two instances on one host never share, and so never wipe, each other's.
    return Path(tempfile.gettempdir()) / f"mlapi-metrics-{os.getpid()}"


def _cpu_count() -> int:
    # The CPUs this process may run on: a container's cpuset, not the host's core count.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class Settings(BaseSettings):
    """Everything the service can be told through the environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="ignore", frozen=True
    )

    host: str = Field(default="0.0.0.0", min_length=1, description="Address to listen on.")
    port: int = Field(default=8001, ge=1, le=65535, description="Port to listen on.")
    workers: int = Field(
        default_factory=_cpu_count, ge=1, le=64, description="Worker processes (CPU count)."
    )
    max_records: int = Field(
        default=10_000, ge=1, le=1_000_000, description="Records accepted in one request."
    )
    max_body_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        le=1024**3,
        description="Largest request body accepted, in bytes.",
    )
    log_level: LogLevel = "info"
    log_format: Literal["json", "text"] = "json"
    log_record_values: bool = Field(
        default=False, description="Log the records of each prediction request (off: privacy)."
    )
    multiproc_dir: Path = Field(
        default_factory=_default_multiproc_dir,
        description="Directory of the workers' metric files; emptied at start. By default one "
        "of this instance's own, removed when it stops.",
    )
    model_path: Path | None = Field(
        default=None, description="A model file to serve instead of the packaged one."
    )
    model_sha256: str | None = Field(
        default=None,
        pattern="^[0-9a-fA-F]{64}$",
        description="The sha256 the model file must have to be loaded (it is a pickle, which "
        "runs code); by default the packaged model's, as the installed yield-model records it.",
    )
    predict_threads: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Prediction requests a worker computes at once; more wait their turn, "
        "which bounds memory under load.",
    )
    graceful_timeout: int = Field(
        # Docker waits 10 s after SIGTERM before it kills: finish within that by default.
        default=8,
        ge=1,
        le=600,
        description="Seconds in-flight requests get to finish after SIGTERM.",
    )

    auth: Literal["keys", "disabled"] = Field(
        default="keys",
        description="keys: every route but health needs an API key of MLAPI_API_KEYS_FILE; "
        "disabled: none does, for local development only.",
    )
    api_keys: str | None = Field(
        default=None,
        description="The key file's content itself, for where a secret arrives as a variable "
        "(ECS); instead of MLAPI_API_KEYS_FILE.",
    )
    api_keys_file: Path | None = Field(
        default=None,
        # Checked when absent too: without keys the service refuses to start.
        validate_default=True,
        description="The API keys' file: one line per key, SCOPES sha256:HASH [NAME] "
        "(python -m mlapi.keys new prints one).",
    )

    # HTTP limits (issue 14): how long a client may hold a connection or a worker.
    keepalive_seconds: int = Field(
        default=5,
        ge=1,
        le=600,
        description="Seconds an idle keep-alive connection is kept open between requests.",
    )
    max_body_bytes_in_flight: int | None = Field(
        default=None,
        ge=1024,
        le=16 * 1024**3,
        description="Request body bytes a worker holds at once, across requests (twice "
        "MLAPI_MAX_BODY_BYTES by default); a body beyond it is answered 503, retry shortly.",
    )
    body_read_timeout_seconds: float = Field(
        default=30,
        gt=0,
        le=3600,
        description="Seconds a client has to send a request body; slower gets a 408.",
    )
    # Well above the connections one client or balancer holds, so that slow connections,
    # which uvicorn cannot time out before their headers end, must be many to refuse probes.
    max_connections: int = Field(
        default=4096,
        ge=1,
        le=100_000,
        description="Connections (and requests) a worker serves at once; a request beyond "
        "them gets a 503 at once rather than a queue.",
    )

    prediction_log_url: str = Field(
        default_factory=_default_prediction_log_url,
        description="The prediction log: sqlite:///ABSOLUTE/PATH (a file, created with its "
        "directory, shared by the workers of one host) or postgresql://USER:PASSWORD@HOST/DB "
        "(shared by every host).",
    )
    prediction_log_path: Path | None = Field(
        default=None, description="Replaced by MLAPI_PREDICTION_LOG_URL; refused when set."
    )
    prediction_log_pool_size: int = Field(
        default=4,
        ge=1,
        le=100,
        description="PostgreSQL connections a worker keeps open at most.",
    )
    prediction_log_sync: Literal["normal", "full"] = Field(
        default="normal",
        description="normal: a committed prediction survives a crash of the service or "
        "container; full: also a crash of the machine (an fsync per commit).",
    )
    monitor_interval_seconds: float = Field(
        default=60,
        ge=1,
        le=86_400,
        description="Seconds between two runs of the monitoring job (retention, drift, "
        "recent accuracy), which one process of the service runs.",
    )
    drift_window: int = Field(
        default=1000,
        ge=10,
        le=100_000,
        description="Most recent predictions whose inputs are compared with the training data.",
    )
    drift_min_records: int = Field(
        default=500,
        ge=10,
        le=100_000,
        description="Fewer predictions than this in the window: no drift is reported (too noisy).",
    )
    accuracy_window: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="Most recent feedbacks the half-MSE gauge is computed over.",
    )
    mae_alert_threshold: float = Field(
        default=0.02,
        gt=0,
        le=1.5,
        description="Mean absolute error above which the MAE alert fires; exported as a metric.",
    )
    prediction_log_max_rows: int = Field(
        default=1_000_000,
        ge=1000,
        le=1_000_000_000,
        description="Predictions (and feedbacks) kept; the oldest beyond it are deleted.",
    )
    prediction_log_max_age_days: float = Field(
        default=90,
        gt=0,
        le=36_500,
        description="Predictions and feedbacks older than this are deleted.",
    )

    @field_validator("log_level", "log_format", "auth", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("api_keys")
    @classmethod
    def _keys_text(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        if info.data.get("auth") == "disabled":
            raise ValueError("is set, and MLAPI_AUTH=disabled: unset one of them")
        try:
            read_keys(value, "MLAPI_API_KEYS")
        except KeyFileError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("api_keys_file")
    @classmethod
    def _keys_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        # Read here, so that a bad file stops the start with the line at fault; the app
        # reads it again when it is built.
        if "api_keys" not in info.data:  # refused already, with its own message
            return value
        given = info.data["api_keys"] is not None
        if info.data.get("auth") == "disabled":
            if value is not None:
                raise ValueError("is set, and MLAPI_AUTH=disabled: unset one of them")
            return value
        if value is not None and given:
            raise ValueError("is set, and MLAPI_API_KEYS too: set only one of them")
        if value is None and not given:
            raise ValueError(
                "is required (or MLAPI_API_KEYS, the file's content): no API key, no service "
                "(python -m mlapi.keys new makes one); for local development only, "
                "MLAPI_AUTH=disabled serves without keys"
            )
        if value is not None:
            try:
                load_keys(value)
            except KeyFileError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("max_body_bytes_in_flight")
    @classmethod
    def _room_for_a_body(cls, value: int | None, info: ValidationInfo) -> int | None:
        body = info.data.get("max_body_bytes")
        if value is not None and body is not None and value < body:
            raise ValueError(f"must be at least MLAPI_MAX_BODY_BYTES ({body}), or no body fits")
        return value

    @property
    def body_bytes_in_flight(self) -> int:
        """The request body bytes a worker holds at once."""
        if self.max_body_bytes_in_flight is not None:
            return self.max_body_bytes_in_flight
        return 2 * self.max_body_bytes

    @field_validator("multiproc_dir")
    @classmethod
    def _absolute_dir(cls, value: Path) -> Path:
        # The directory is emptied at start: a relative path would depend on where the
        # service happens to be started from.
        if not value.is_absolute():
            raise ValueError("must be an absolute path")
        if value == Path(value.anchor):
            raise ValueError("must not be a filesystem root")
        return value

    @field_validator("prediction_log_url")
    @classmethod
    def _log_url(cls, value: str) -> str:
        if value.startswith("sqlite://"):
            if not value.startswith("sqlite:///") or value.endswith("/"):
                raise ValueError("must be sqlite:///ABSOLUTE/PATH/OF/THE/FILE")
        elif value.startswith(("postgresql://", "postgres://")):
            try:
                conninfo_to_dict(value)
            except psycopg.ProgrammingError:
                raise ValueError("is not a valid PostgreSQL connection URL") from None
        else:
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("prediction_log_path")
    @classmethod
    def _replaced(cls, value: Path | None) -> Path | None:
        # Ignored, it would start an empty log elsewhere and look like lost predictions.
        if value is not None:
            raise ValueError(f"is replaced by MLAPI_PREDICTION_LOG_URL=sqlite://{value}")
        return value

    @field_validator("drift_min_records")
    @classmethod
    def _fits_the_window(cls, value: int, info: ValidationInfo) -> int:
        window = info.data.get("drift_window")
        if window is not None and value > window:
            raise ValueError(f"must not exceed MLAPI_DRIFT_WINDOW ({window})")
        return value

    @field_validator("prediction_log_max_rows")
    @classmethod
    def _holds_the_windows(cls, value: int, info: ValidationInfo) -> int:
        # The monitoring windows are read from the log: it must keep at least that much.
        for name in ("drift_window", "accuracy_window"):
            window = info.data.get(name)
            if window is not None and value < window:
                raise ValueError(f"must be at least MLAPI_{name.upper()} ({window})")
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once from the environment."""
    return Settings()


def describe_settings_error(error: ValidationError) -> str:
    """One line per bad setting, named by its environment variable."""
    lines = []
    for problem in error.errors():
        name = ENV_PREFIX + "_".join(str(part) for part in problem["loc"]).upper()
        given = problem.get("input")
        # A URL may hold a password: never echoed.
        shown = f" (got {given!r})" if isinstance(given, str | int | float) else ""
        if name in SECRET_VARIABLES:
            shown = ""
        lines.append(f"{name}: {problem['msg']}{shown}")
    return "\n".join(lines)
