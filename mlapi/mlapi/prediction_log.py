"""The prediction log: every prediction and its feedback, in one SQLite file shared by workers.

Durability: a prediction is answered only once the transaction holding it has committed, one
transaction per request. In WAL mode a commit is a write to the log file, so a killed process
or container loses nothing it answered; ``sync="full"`` adds an fsync per commit, so that a
crash of the machine does not either. Writing in the background would answer a little sooner,
but a crash would then lose answered predictions.

A request is written as one row, its validated feature values and results as JSON arrays
(each serialised in one call rather than record by record), plus one small row per prediction
that finds it by id. Prediction ids are time-ordered (UUID version 7), and
a request's ids are sorted, so those rows are appended at the end of their index, in order,
instead of being scattered over it.

Several processes open the same file: WAL lets readers run beside the one writer, and writers
wait for each other (``BUSY_TIMEOUT_SECONDS``) rather than fail. Within a process, one
connection is shared behind a lock.
"""

import os
import sqlite3
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal
from uuid import UUID

import numpy as np
import orjson

from yield_model.columns import FEATURE_COLUMNS
from yield_model.features import FloatArray
from yield_model.predict import PredictionResult

FeedbackStatus = Literal["recorded", "unknown", "duplicate"]

#: The schema this code writes; a file written by a newer one is refused.
SCHEMA_VERSION: Final = 1
#: How long a writer waits for another process's transaction before giving up.
BUSY_TIMEOUT_SECONDS: Final = 10.0
#: Predictions (or feedbacks) deleted per transaction by ``prune``: writers wait little.
PRUNE_CHUNK: Final = 5000
_ID_BYTES: Final = 16
#: The bits of a UUID version 7 that are random: rand_a and rand_b.
_RANDOM_BITS: Final = 0xFFF << 64 | (1 << 62) - 1
_YIELDS: Final = np.dtype("<f8")

_SCHEMA: Final = (
    # ids: the prediction ids, 16 bytes each; predictions: little-endian float64 yields;
    # sample_ids, warnings: JSON arrays; inputs: the validated feature values as
    # {"columns": [...], "rows": [[...], ...]} (an earlier version stored the request body
    # {"inputs": [...]}). All in input order.
    # predictions: where each prediction id's request row is, and its position there.
    """CREATE TABLE IF NOT EXISTS requests (
        seq INTEGER PRIMARY KEY,
        created_at REAL NOT NULL,
        model_version TEXT NOT NULL,
        records INTEGER NOT NULL,
        ids BLOB NOT NULL,
        predictions BLOB NOT NULL,
        sample_ids TEXT NOT NULL,
        warnings TEXT NOT NULL,
        inputs TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS predictions (
        id BLOB PRIMARY KEY,
        request INTEGER NOT NULL,
        position INTEGER NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS feedback (
        seq INTEGER PRIMARY KEY,
        prediction_id BLOB NOT NULL UNIQUE,
        received_at REAL NOT NULL,
        actual_yield REAL NOT NULL,
        model_version TEXT NOT NULL,
        predicted_yield REAL NOT NULL
    )""",
)


# The positions 0 .. count - 1 as blocks of 32 (a recursion step per position took a third of
# the time of inserting the row), in ascending order: the rows are appended to the index.
_BLOCK: Final = 32
_INDEX_PREDICTIONS: Final = (
    "WITH RECURSIVE offsets(i) AS (VALUES "
    + ", ".join(f"({offset})" for offset in range(_BLOCK))
    + f"), blocks(b) AS (SELECT 0 UNION ALL SELECT b + {_BLOCK} FROM blocks"
    f" WHERE b + {_BLOCK} < :count)"
    " INSERT INTO predictions (id, request, position)"
    f" SELECT substr(:keys, {_ID_BYTES} * (b + i) + 1, {_ID_BYTES}), :request, b + i"
    " FROM blocks CROSS JOIN offsets WHERE b + i < :count"
)

# A request of one record: making the 32 offsets would be a third of its index write.
_INDEX_PREDICTION: Final = (
    "INSERT INTO predictions (id, request, position) VALUES (:keys, :request, 0)"
)


def _stored_records(stored: str) -> list[dict[str, Any]]:
    """The records of a logged request, blanks left out.

    Stored as ``{"columns": [...], "rows": [[...], ...]}``; an earlier version stored the
    request body ``{"inputs": [...]}`` or the records' JSON array.
    """
    value = orjson.loads(stored)
    if isinstance(value, dict) and "columns" in value:
        columns = value["columns"]
        return [
            {c: v for c, v in zip(columns, row, strict=True) if v is not None}
            for row in value["rows"]
        ]
    records: list[dict[str, Any]] = value["inputs"] if isinstance(value, dict) else value
    return records


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


def _yield_at(yields: bytes, position: int) -> float:
    """The predicted yield at ``position`` of a request's ``predictions`` column."""
    return float(np.frombuffer(yields, dtype=_YIELDS)[position])


@contextmanager
def _errors(action: str) -> Iterator[None]:
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise PredictionLogError(f"cannot {action}: {exc}") from exc


class PredictionLog:
    """The SQLite file of logged predictions and feedback, as one process uses it."""

    def __init__(self, path: Path, sync: Literal["normal", "full"] = "normal") -> None:
        self.path = path
        self._lock = threading.Lock()
        with _errors(f"open the prediction log {path}"):
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
            try:
                self._prepare(sync)
            except BaseException:
                self._db.close()
                raise

    def _prepare(self, sync: str) -> None:
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise sqlite3.OperationalError(f"the file system does not allow WAL mode ({mode})")
        self._db.execute(f"PRAGMA synchronous={sync.upper()}")
        with self._transaction():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"it was written by a newer version of the service (schema {version})"
                )
            for statement in _SCHEMA:
                self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taking the write lock at once (no upgrade deadlocks)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the file; the log cannot be used afterwards."""
        with self._lock:
            self._db.close()

    def record(self, ids: Sequence[UUID], result: PredictionResult, created_at: float) -> None:
        """Write one request's predictions in one transaction; returns once it is committed."""
        count = len(ids)
        if not len(result.cells) == len(result.predictions) == count > 0:
            raise ValueError("ids, records and predictions must have one entry each")
        keys = b"".join([prediction_id.bytes for prediction_id in ids])
        request = (
            created_at,
            result.model_version,
            count,
            keys,
            np.asarray(result.predictions, dtype=_YIELDS).tobytes(),
            orjson.dumps(result.sample_ids),
            orjson.dumps(result.warnings),
            orjson.dumps({"columns": FEATURE_COLUMNS, "rows": result.cells.tolist()}),
        )
        with self._lock, _errors("record the predictions"), self._transaction() as db:
            # JSON goes in as bytes and is stored as TEXT: no decoding in Python.
            seq = db.execute(
                "INSERT INTO requests (created_at, model_version, records, ids, predictions,"
                " sample_ids, warnings, inputs) VALUES (?, ?, ?, ?, ?,"
                " CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT))",
                request,
            ).lastrowid
            # One index row per prediction, cut from the ids inside SQLite rather than bound
            # row by row from Python.
            index = _INDEX_PREDICTIONS if count > 1 else _INDEX_PREDICTION
            db.execute(index, {"count": count, "keys": keys, "request": seq})

    def add_feedback(
        self, items: Sequence[tuple[UUID, float]], received_at: float
    ) -> list[FeedbackOutcome]:
        """Record measured yields in one transaction; a second value for a prediction is not."""
        outcomes = []
        with self._lock, _errors("record the feedback"), self._transaction() as db:
            for prediction_id, actual in items:
                key = prediction_id.bytes
                found = db.execute(
                    "SELECT r.model_version, r.predictions, p.position FROM predictions AS p"
                    " JOIN requests AS r ON r.seq = p.request WHERE p.id = ?",
                    (key,),
                ).fetchone()
                if found is None:
                    outcomes.append(FeedbackOutcome(prediction_id, "unknown"))
                    continue
                version, yields, position = found
                predicted = _yield_at(yields, position)
                inserted = db.execute(
                    "INSERT INTO feedback (prediction_id, received_at, actual_yield,"
                    " model_version, predicted_yield) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (prediction_id) DO NOTHING",
                    (key, received_at, actual, version, predicted),
                ).rowcount
                if inserted:
                    outcome = FeedbackOutcome(prediction_id, "recorded", version, predicted, actual)
                else:
                    (on_record,) = db.execute(
                        "SELECT actual_yield FROM feedback WHERE prediction_id = ?", (key,)
                    ).fetchone()
                    outcome = FeedbackOutcome(
                        prediction_id, "duplicate", version, predicted, on_record
                    )
                outcomes.append(outcome)
        return outcomes

    def get(self, prediction_id: UUID) -> PredictionEntry | None:
        """The logged prediction with this id, and its feedback; None if it is not logged."""
        with self._lock, _errors("read the prediction log"):
            row = self._db.execute(
                "SELECT r.created_at, r.model_version, r.sample_ids, r.inputs, r.warnings,"
                " p.position, r.predictions, f.actual_yield, f.received_at"
                " FROM predictions AS p JOIN requests AS r ON r.seq = p.request"
                " LEFT JOIN feedback AS f ON f.prediction_id = p.id WHERE p.id = ?",
                (prediction_id.bytes,),
            ).fetchone()
        if row is None:
            return None
        created, version, sample_ids, inputs, warnings, position, yields, actual, received = row
        return PredictionEntry(
            prediction_id=prediction_id,
            created_at=created,
            model_version=version,
            sample_id=orjson.loads(sample_ids)[position],
            inputs=_stored_records(inputs)[position],
            predicted_yield=_yield_at(yields, position),
            warnings=orjson.loads(warnings)[position],
            feedback=None if actual is None else FeedbackEntry(actual, received),
        )

    def recent_predictions(self, model_version: str, limit: int) -> Window:
        """The ``limit`` latest predictions of a model version."""
        stored: list[tuple[str, bytes]] = []
        kept = 0
        with self._lock, _errors("read the prediction log"):
            rows = self._db.execute(
                "SELECT inputs, predictions, records FROM requests WHERE model_version = ?"
                " ORDER BY seq DESC",
                (model_version,),
            )
            for request_inputs, request_yields, count in rows:
                if kept >= limit:
                    break
                stored.append((request_inputs, request_yields))
                kept += count
            rows.close()
        # Decoded once the lock is free: a predict of this process waits for no parsing.
        inputs: list[list[Any]] = []
        yields: list[FloatArray] = []
        kept = 0
        for request_inputs, request_yields in stored:
            # the newest request first; of the oldest one read, its latest records
            wanted = limit - kept
            inputs.append(_stored_records(request_inputs)[-wanted:])
            yields.append(np.frombuffer(request_yields, dtype=_YIELDS)[-wanted:])
            kept += len(inputs[-1])
        return Window(
            inputs=[record for request in reversed(inputs) for record in request],
            predictions=np.concatenate([np.empty(0), *reversed(yields)]),
        )

    def recent_feedback(self, model_version: str, limit: int) -> tuple[FloatArray, FloatArray]:
        """Predicted and measured yields of the ``limit`` latest feedbacks on a model version."""
        with self._lock, _errors("read the prediction log"):
            rows = self._db.execute(
                "SELECT predicted_yield, actual_yield FROM feedback WHERE model_version = ?"
                " ORDER BY seq DESC LIMIT ?",
                (model_version, limit),
            ).fetchall()
        pairs = np.array(rows, dtype=np.float64).reshape(-1, 2)
        return pairs[:, 0], pairs[:, 1]

    def counts(self) -> dict[str, int]:
        """Rows of ``predictions`` and of ``feedback``."""
        with self._lock, _errors("read the prediction log"):
            return {
                table: self._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("predictions", "feedback")
            }

    def prune(self, now: float, max_age_seconds: float, max_rows: int) -> int:
        """Delete what is older than the age limit, or beyond the newest ``max_rows``
        predictions (and feedbacks); returns the predictions and feedbacks deleted.

        Deletes the oldest first, in chunks of ``PRUNE_CHUNK`` rows, between which the
        writers run.
        """
        cutoff = now - max_age_seconds
        deleted = 0
        for table in ("requests", "feedback"):
            counted = "predictions" if table == "requests" else "feedback"
            with self._lock, _errors("prune the prediction log"):
                total = self._db.execute(f"SELECT count(*) FROM {counted}").fetchone()[0]
            excess = total - max_rows
            while gone := self._prune_chunk(table, cutoff, excess):
                deleted += gone
                excess -= gone
        return deleted

    def _prune_chunk(self, table: str, cutoff: float, excess: int) -> int:
        """Delete the oldest rows that are too old or in excess, up to about a chunk."""
        if table == "requests":
            oldest = "SELECT seq, created_at, records FROM requests ORDER BY seq LIMIT 500"
        else:
            oldest = "SELECT seq, received_at, 1 FROM feedback ORDER BY seq LIMIT 500"
        with self._lock, _errors("prune the prediction log"), self._transaction() as db:
            last, count = None, 0
            for seq, created, rows in db.execute(oldest).fetchall():
                if count >= PRUNE_CHUNK or (created >= cutoff and count >= excess):
                    break
                last, count = seq, count + rows
            if last is None:
                return 0
            if table == "requests":
                ids = db.execute("SELECT ids FROM requests WHERE seq <= ?", (last,)).fetchall()
                keys = b"".join(request_ids for (request_ids,) in ids)
                db.executemany(
                    "DELETE FROM predictions WHERE id = ?",
                    [(keys[i : i + _ID_BYTES],) for i in range(0, len(keys), _ID_BYTES)],
                )
            db.execute(f"DELETE FROM {table} WHERE seq <= ?", (last,))
        return count
