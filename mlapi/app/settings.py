"""The service's settings: one class, read from ``MLAPI_*`` variables, validated at start."""

import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "MLAPI_"
LogLevel = Literal["critical", "error", "warning", "info", "debug"]


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
        default=Path(tempfile.gettempdir()) / "mlapi-metrics",
        description="Directory of the workers' metric files; emptied at start.",
    )
    model_path: Path | None = Field(
        default=None, description="A model file to serve instead of the packaged one."
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

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

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
        shown = f" (got {given!r})" if isinstance(given, str | int | float) else ""
        lines.append(f"{name}: {problem['msg']}{shown}")
    return "\n".join(lines)
