"""What every prediction log backend stores and answers: the interface and its values.

One row per prediction: its id, time, model version, sample id, the validated record's cells
(a JSON array, in the order of ``yield_model.columns.FEATURE_COLUMNS``), predicted yield and
warnings. One row per feedback, keyed by prediction id: the first value stands.
"""

import os
import struct
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple
from uuid import UUID

import numpy as np
import orjson

from yield_model.columns import FEATURE_COLUMNS
from yield_model.features import FloatArray
from yield_model.predict import PredictionResult

FeedbackStatus = Literal["recorded", "unknown", "duplicate"]

#: Predictions (or feedbacks) deleted per transaction by ``prune``: writers wait little.
PRUNE_CHUNK: Final = 5000
#: How long a writer waits for the log (a lock, a connection) before giving up.
BUSY_TIMEOUT_SECONDS: Final = 10.0
_ID_BYTES: Final = 16
#: The bits of a UUID version 7 that are random: rand_a and rand_b.
_RANDOM_BITS: Final = 0xFFF << 64 | (1 << 62) - 1


class PredictionLogError(Exception):
    """The prediction log cannot be read or written; the message says why."""


def new_prediction_ids(count: int) -> list[UUID]:
    """``count`` new prediction ids: UUID version 7, the time in ms followed by 74 random bits.

    The ids of one call share their time and are in ascending order, as UUIDs sort.
    """
    # RFC 9562: 48 bits of Unix time in ms, version 7, 12 random bits, variant 0b10, 62 random.
    prefix = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76 | 0b10 << 62
    random = struct.iter_unpack(">QQ", os.urandom(_ID_BYTES * count))
    values = sorted([(high << 64 | low) & _RANDOM_BITS | prefix for high, low in random])
    return [UUID(int=value) for value in values]


@dataclass(frozen=True)
class FeedbackEntry:
    """The measured yield of a logged prediction."""

    actual_yield: float
    received_at: float


@dataclass(frozen=True)
class PredictionEntry:
    """One logged prediction: its record, its output, and its feedback if any."""

    prediction_id: UUID
    created_at: float
    model_version: str
    sample_id: str | None
    inputs: dict[str, Any]
    predicted_yield: float
    warnings: list[str]
    feedback: FeedbackEntry | None


@dataclass(frozen=True)
class FeedbackOutcome:
    """What became of one feedback item; ``actual_yield`` is the value on record, if any."""

    prediction_id: UUID
    status: FeedbackStatus
    model_version: str | None = None
    predicted_yield: float | None = None
    actual_yield: float | None = None


@dataclass(frozen=True)
class Window:
    """The latest predictions of one model: records and predicted yields, oldest first."""

    inputs: list[Any]
    predictions: FloatArray


class StoredPrediction(NamedTuple):
    """A prediction row as both backends store it; ``record`` and ``warnings`` are JSON."""

    prediction_id: UUID
    created_at: float
    model_version: str
    sample_id: str | None
    record: bytes
    predicted_yield: float
    warnings: bytes


class StoredFeedback(NamedTuple):
    """A feedback row as both backends store it."""

    prediction_id: UUID
    received_at: float
    actual_yield: float
    model_version: str
    predicted_yield: float


def stored_predictions(
    ids: Sequence[UUID], result: PredictionResult, created_at: float
) -> list[StoredPrediction]:
    """The rows of one request's predictions; refuses a request without one id per record."""
    count = len(ids)
    if not len(result.cells) == len(result.predictions) == len(result.warnings) == count > 0:
        raise ValueError("ids, records and predictions must have one entry each")
    version = result.model_version
    dumps = orjson.dumps
    return [
        StoredPrediction(i, created_at, version, sample, dumps(cells), value, dumps(warnings))
        for i, sample, cells, value, warnings in zip(
            ids,
            result.sample_ids,
            result.cells.tolist(),
            np.asarray(result.predictions, dtype=np.float64).tolist(),
            result.warnings,
            strict=True,
        )
    ]


def record_values(cells: bytes | str) -> dict[str, Any]:
    """A stored record's values by column, blanks left out."""
    return {
        c: v for c, v in zip(FEATURE_COLUMNS, orjson.loads(cells), strict=True) if v is not None
    }


class PredictionLog(ABC):
    """The log of predictions and feedback, as one process uses it; safe across threads.

    Every method that reads or writes raises ``PredictionLogError`` when the store cannot be
    reached or written.
    """

    #: Where the log is, without credentials: for messages.
    location: str

    @abstractmethod
    def close(self) -> None:
        """Release the connections (and the monitoring lock); the log cannot be used after."""

    def record(self, ids: Sequence[UUID], result: PredictionResult, created_at: float) -> None:
        """Write one request's predictions in one transaction; returns once it is committed."""
        self.insert_predictions(stored_predictions(ids, result, created_at))

    @abstractmethod
    def insert_predictions(self, rows: Sequence[StoredPrediction]) -> None:
        """Write prediction rows in one transaction, in one statement (or COPY)."""

    @abstractmethod
    def add_feedback(
        self, items: Sequence[tuple[UUID, float]], received_at: float
    ) -> list[FeedbackOutcome]:
        """Record measured yields in one transaction; a second value for a prediction is not."""

    @abstractmethod
    def get(self, prediction_id: UUID) -> PredictionEntry | None:
        """The logged prediction with this id, and its feedback; None if it is not logged."""

    @abstractmethod
    def recent_predictions(self, model_version: str, limit: int) -> Window:
        """The ``limit`` latest predictions of a model version."""

    @abstractmethod
    def recent_feedback(self, model_version: str, limit: int) -> tuple[FloatArray, FloatArray]:
        """Predicted and measured yields of the ``limit`` latest feedbacks on a model version,
        newest first."""

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """Rows of ``predictions`` and of ``feedback``."""

    @abstractmethod
    def prune(
        self, now: float, max_age_seconds: float, max_rows: int, chunk: int = PRUNE_CHUNK
    ) -> int:
        """Delete what is older than the age limit, or beyond the newest ``max_rows``
        predictions (and feedbacks), oldest first, ``chunk`` rows per transaction; returns
        the predictions and feedbacks deleted."""

    @abstractmethod
    def check_writable(self) -> None:
        """Write to the log and commit, as a prediction does; raises if that fails."""

    @abstractmethod
    def try_lead(self) -> bool:
        """Whether this log holds the monitoring lock, taking it if it is free; never waits.

        Held until ``resign`` or ``close``, or until the process dies.
        """

    @abstractmethod
    def resign(self) -> None:
        """Give up the monitoring lock, if held."""

    @abstractmethod
    def stored_predictions(self, after: int, limit: int) -> list[tuple[int, StoredPrediction]]:
        """Up to ``limit`` prediction rows, oldest first, after the position ``after``
        (0: from the start), each with its position."""

    @abstractmethod
    def stored_feedback(self, after: int, limit: int) -> list[tuple[int, StoredFeedback]]:
        """Up to ``limit`` feedback rows, oldest first, after the position ``after``."""

    @abstractmethod
    def insert_feedback(self, rows: Iterable[StoredFeedback]) -> int:
        """Write feedback rows as they are (a copy); those whose prediction has one already
        are left out. Returns the rows written."""


def window(rows: Sequence[tuple[bytes | str, float]]) -> Window:
    """The window of rows of (record JSON, predicted yield) read newest first."""
    return Window(
        inputs=[record_values(cells) for cells, _ in reversed(rows)],
        predictions=np.array([value for _, value in reversed(rows)], dtype=np.float64),
    )


def feedback_pairs(rows: Sequence[tuple[float, float]]) -> tuple[FloatArray, FloatArray]:
    """Predicted and measured yields as two arrays."""
    pairs = np.array(rows, dtype=np.float64).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]
