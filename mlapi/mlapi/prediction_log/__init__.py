"""The prediction log: every prediction and its feedback, in SQLite or PostgreSQL.

``open_prediction_log`` opens the one ``MLAPI_PREDICTION_LOG_URL`` names: ``sqlite:///PATH``
(a file shared by the workers of one host) or ``postgresql://...`` (shared by every host).
Both store the same rows and answer the same calls (``base.PredictionLog``).
"""

from pathlib import Path
from typing import Literal

from mlapi.prediction_log.base import (
    FeedbackEntry,
    FeedbackOutcome,
    PredictionEntry,
    PredictionLog,
    PredictionLogError,
    Window,
    new_prediction_ids,
)
from mlapi.prediction_log.postgres import PostgresLog
from mlapi.prediction_log.sqlite import SqliteLog

__all__ = [
    "FeedbackEntry",
    "FeedbackOutcome",
    "PredictionEntry",
    "PredictionLog",
    "PredictionLogError",
    "Window",
    "new_prediction_ids",
    "open_prediction_log",
    "sqlite_path",
]

SQLITE_SCHEME = "sqlite://"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL (three or four slashes: PATH is absolute), or
    None for another scheme."""
    if not url.startswith(SQLITE_SCHEME):
        return None
    return Path("/" + url.removeprefix(SQLITE_SCHEME).lstrip("/"))


def open_prediction_log(
    url: str, sync: Literal["normal", "full"] = "normal", pool_size: int = 4
) -> PredictionLog:
    """Open (and create or migrate) the log at ``url``; ``sync`` applies to SQLite, and
    ``pool_size``, the connections kept at most, to PostgreSQL."""
    path = sqlite_path(url)
    if path is not None:
        return SqliteLog(path, sync)
    if url.startswith(POSTGRES_SCHEMES):
        return PostgresLog(url, pool_size)
    raise PredictionLogError("the prediction log URL must start with sqlite:/// or postgresql://")
