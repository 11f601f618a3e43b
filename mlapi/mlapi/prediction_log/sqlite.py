"""The prediction log in one SQLite file, shared by the workers of one host.

Durability: a prediction is answered only once the transaction holding it has committed, one
transaction per request. In WAL mode a commit is a write to the log file, so a killed process
or container loses nothing it answered; ``sync="full"`` adds an fsync per commit, so that a
crash of the machine does not either.

Several processes open the same file: WAL lets readers run beside the one writer, and writers
wait for each other (``BUSY_TIMEOUT_SECONDS``) rather than fail. Within a process, one
connection is shared behind a lock; every read is fetched whole before the lock is released,
so no cursor keeps a snapshot open behind another writer's back.
"""

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Literal
from uuid import UUID

import numpy as np
import orjson

from mlapi.prediction_log.base import (
    BUSY_TIMEOUT_SECONDS,
    PRUNE_CHUNK,
    FeedbackEntry,
    FeedbackOutcome,
    PredictionEntry,
    PredictionLog,
    PredictionLogError,
    StoredFeedback,
    StoredPrediction,
    Window,
    feedback_pairs,
    record_values,
    window,
)
from yield_model.columns import FEATURE_COLUMNS
from yield_model.errors import InvalidInputError
from yield_model.features import FloatArray
from yield_model.predict import records_to_cells
from yield_model.schemas import validate_records

logger = logging.getLogger("mlapi.prediction_log")

_ID_BYTES: Final = 16
_V1_YIELDS: Final = np.dtype("<f8")
#: Requests of a version 1 file converted per read during the migration to version 2.
_MIGRATION_BATCH: Final = 500


def _v1_tables(db: sqlite3.Connection) -> None:
    """Version 1: a row per request, its results as JSON arrays; a row per id to find it."""
    db.execute(
        """CREATE TABLE requests (
            seq INTEGER PRIMARY KEY,
            created_at REAL NOT NULL,
            model_version TEXT NOT NULL,
            records INTEGER NOT NULL,
            ids BLOB NOT NULL,
            predictions BLOB NOT NULL,
            sample_ids TEXT NOT NULL,
            warnings TEXT NOT NULL,
            inputs TEXT NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE predictions (
            id BLOB PRIMARY KEY,
            request INTEGER NOT NULL,
            position INTEGER NOT NULL
        ) WITHOUT ROWID"""
    )
    db.execute(
        """CREATE TABLE feedback (
            seq INTEGER PRIMARY KEY,
            prediction_id BLOB NOT NULL UNIQUE,
            received_at REAL NOT NULL,
            actual_yield REAL NOT NULL,
            model_version TEXT NOT NULL,
            predicted_yield REAL NOT NULL
        )"""
    )


def _v1_cells(inputs: str) -> list[list[Any]]:
    """The records' cells of a version 1 request: validated cells, or the request body."""
    value = orjson.loads(inputs)
    if isinstance(value, dict) and "columns" in value:
        columns = value["columns"]
        return [
            [dict(zip(columns, row, strict=True)).get(c) for c in FEATURE_COLUMNS]
            for row in value["rows"]
        ]
    sent: list[Any] = value["inputs"] if isinstance(value, dict) else value
    try:
        cells: list[list[Any]] = records_to_cells(validate_records(sent)).tolist()
    except InvalidInputError:  # validated by an older service: keep what can be read
        cells = [[record.get(c) for c in FEATURE_COLUMNS] for record in sent]
    return cells


def _v2_one_row_per_prediction(db: sqlite3.Connection) -> None:
    """Version 2: one row per prediction, its record's cells as a JSON array."""
    db.execute("ALTER TABLE predictions RENAME TO v1_predictions")
    db.execute(
        # record: the validated cells in FEATURE_COLUMNS order; warnings: a JSON array.
        """CREATE TABLE predictions (
            seq INTEGER PRIMARY KEY,
            id BLOB NOT NULL UNIQUE,
            created_at REAL NOT NULL,
            model_version TEXT NOT NULL,
            sample_id TEXT,
            record TEXT NOT NULL,
            predicted_yield REAL NOT NULL,
            warnings TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX predictions_by_model ON predictions (model_version, seq)")
    db.execute("CREATE INDEX feedback_by_model ON feedback (model_version, seq)")
    db.execute("CREATE TABLE log_health (id INTEGER PRIMARY KEY, checked_at REAL NOT NULL)")
    after = 0
    while requests := db.execute(
        "SELECT seq, created_at, model_version, ids, predictions, sample_ids, warnings, inputs"
        " FROM requests WHERE seq > ? ORDER BY seq LIMIT ?",
        (after, _MIGRATION_BATCH),
    ).fetchall():
        rows: list[tuple[Any, ...]] = []
        for seq, created, version, ids, yields, sample_ids, warnings, inputs in requests:
            rows.extend(
                (
                    ids[i * _ID_BYTES : (i + 1) * _ID_BYTES],
                    created,
                    version,
                    sample,
                    orjson.dumps(cells),
                    value,
                    orjson.dumps(warn),
                )
                for i, (sample, cells, value, warn) in enumerate(
                    zip(
                        orjson.loads(sample_ids),
                        _v1_cells(inputs),
                        np.frombuffer(yields, dtype=_V1_YIELDS).tolist(),
                        orjson.loads(warnings),
                        strict=True,
                    )
                )
            )
            after = seq
        db.executemany(_INSERT_PREDICTION, rows)
    db.execute("DROP TABLE v1_predictions")
    db.execute("DROP TABLE requests")


#: The schema versions in order, each made from the one before.
MIGRATIONS: Final[tuple[Callable[[sqlite3.Connection], None], ...]] = (
    _v1_tables,
    _v2_one_row_per_prediction,
)
SCHEMA_VERSION: Final = len(MIGRATIONS)

_INSERT_PREDICTION: Final = (
    # JSON goes in as bytes and is stored as TEXT: no decoding in Python.
    "INSERT INTO predictions (id, created_at, model_version, sample_id, record,"
    " predicted_yield, warnings) VALUES (?, ?, ?, ?, CAST(? AS TEXT), ?, CAST(? AS TEXT))"
)


@contextmanager
def _errors(action: str) -> Iterator[None]:
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise PredictionLogError(f"cannot {action}: {exc}") from exc


def lock_path(log_path: Path) -> Path:
    """The file whose lock elects the process that runs the monitoring job, beside the log."""
    return log_path.with_name(log_path.name + ".monitor-lock")


class SqliteLog(PredictionLog):
    """The SQLite file of logged predictions and feedback, as one process uses it."""

    def __init__(self, path: Path, sync: Literal["normal", "full"] = "normal") -> None:
        self.path = path
        self.location = f"sqlite://{path}"
        self._lock = threading.Lock()
        self._lead_fd: int | None = None
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
        # BEGIN IMMEDIATE: of processes opening the file at once, one migrates, the others
        # wait for it and then find nothing to do.
        with self._transaction() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_version"
                " (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
            )
            (recorded,) = db.execute("SELECT max(version) FROM schema_version").fetchone()
            # A file of version 1 predates the table: its version is in user_version.
            version = recorded or db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"it was written by a newer version of the service (schema {version})"
                )
            for number in range(version + 1, SCHEMA_VERSION + 1):
                logger.info("migrating the prediction log %s to schema %d", self.path, number)
                MIGRATIONS[number - 1](db)
            applied = [(n, time.time()) for n in range(1, SCHEMA_VERSION + 1)]
            db.executemany("INSERT OR IGNORE INTO schema_version VALUES (?, ?)", applied)
            # What an older service reads, to refuse a file it does not know.
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

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
        self.resign()
        with self._lock:
            self._db.close()

    def insert_predictions(self, rows: Sequence[StoredPrediction]) -> None:
        # One statement, stepped once per row inside SQLite: no round trip to make per row.
        bound = [(r[0].bytes, *r[1:]) for r in rows]
        with self._lock, _errors("record the predictions"), self._transaction() as db:
            db.executemany(_INSERT_PREDICTION, bound)

    def add_feedback(
        self, items: Sequence[tuple[UUID, float]], received_at: float
    ) -> list[FeedbackOutcome]:
        outcomes = []
        with self._lock, _errors("record the feedback"), self._transaction() as db:
            for prediction_id, actual in items:
                key = prediction_id.bytes
                found = db.execute(
                    "SELECT model_version, predicted_yield FROM predictions WHERE id = ?", (key,)
                ).fetchone()
                if found is None:
                    outcomes.append(FeedbackOutcome(prediction_id, "unknown"))
                    continue
                version, predicted = found
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
        with self._lock, _errors("read the prediction log"):
            row = self._db.execute(
                "SELECT p.created_at, p.model_version, p.sample_id, p.record, p.predicted_yield,"
                " p.warnings, f.actual_yield, f.received_at"
                " FROM predictions AS p LEFT JOIN feedback AS f ON f.prediction_id = p.id"
                " WHERE p.id = ?",
                (prediction_id.bytes,),
            ).fetchone()
        if row is None:
            return None
        created, version, sample_id, record, predicted, warnings, actual, received = row
        return PredictionEntry(
            prediction_id=prediction_id,
            created_at=created,
            model_version=version,
            sample_id=sample_id,
            inputs=record_values(record),
            predicted_yield=predicted,
            warnings=orjson.loads(warnings),
            feedback=None if actual is None else FeedbackEntry(actual, received),
        )

    def recent_predictions(self, model_version: str, limit: int) -> Window:
        with self._lock, _errors("read the prediction log"):
            rows = self._db.execute(
                "SELECT record, predicted_yield FROM predictions WHERE model_version = ?"
                " ORDER BY seq DESC LIMIT ?",
                (model_version, limit),
            ).fetchall()
        # Decoded once the lock is free: a predict of this process waits for no parsing.
        return window(rows)

    def recent_feedback(self, model_version: str, limit: int) -> tuple[FloatArray, FloatArray]:
        with self._lock, _errors("read the prediction log"):
            rows = self._db.execute(
                "SELECT predicted_yield, actual_yield FROM feedback WHERE model_version = ?"
                " ORDER BY seq DESC LIMIT ?",
                (model_version, limit),
            ).fetchall()
        return feedback_pairs(rows)

    def counts(self) -> dict[str, int]:
        with self._lock, _errors("read the prediction log"):
            return {
                table: self._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("predictions", "feedback")
            }

    def prune(
        self, now: float, max_age_seconds: float, max_rows: int, chunk: int = PRUNE_CHUNK
    ) -> int:
        cutoff = now - max_age_seconds
        deleted = 0
        for table, created in (("predictions", "created_at"), ("feedback", "received_at")):
            oldest = f"SELECT seq FROM {table} ORDER BY seq LIMIT ?"
            with self._lock, _errors("prune the prediction log"):
                excess = self._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] - max_rows
            while excess > 0:  # beyond the newest max_rows: the oldest go
                gone = self._delete(
                    f"DELETE FROM {table} WHERE seq IN ({oldest})", min(excess, chunk)
                )
                deleted, excess = deleted + gone, excess - gone
            # Too old: of the oldest chunk, those before the cutoff; again while all of it was.
            by_age = f"DELETE FROM {table} WHERE seq IN ({oldest}) AND {created} < ?"
            while (gone := self._delete(by_age, chunk, cutoff)) > 0:
                deleted += gone
                if gone < chunk:
                    break
        return deleted

    def _delete(self, statement: str, *params: float) -> int:
        with self._lock, _errors("prune the prediction log"), self._transaction() as db:
            return db.execute(statement, params).rowcount

    def check_writable(self) -> None:
        with self._lock, _errors("write the prediction log"), self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO log_health VALUES (1, ?)", (time.time(),))

    def try_lead(self) -> bool:
        if self._lead_fd is not None:
            return True
        with _errors("take the monitoring lock"):
            fd = os.open(lock_path(self.path), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lead_fd = fd
        return True

    def resign(self) -> None:
        if self._lead_fd is not None:
            os.close(self._lead_fd)  # releases the lock
            self._lead_fd = None

    def stored_predictions(self, after: int, limit: int) -> list[tuple[int, StoredPrediction]]:
        with self._lock, _errors("read the prediction log"):
            rows = self._db.execute(
                "SELECT seq, id, created_at, model_version, sample_id, record, predicted_yield,"
                " warnings FROM predictions WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return [
            (
                seq,
                StoredPrediction(
                    UUID(bytes=key),
                    created,
                    version,
                    sample,
                    record.encode(),
                    value,
                    warnings.encode(),
                ),
            )
            for seq, key, created, version, sample, record, value, warnings in rows
        ]

    def stored_feedback(self, after: int, limit: int) -> list[tuple[int, StoredFeedback]]:
        with self._lock, _errors("read the prediction log"):
            rows = self._db.execute(
                "SELECT seq, prediction_id, received_at, actual_yield, model_version,"
                " predicted_yield FROM feedback WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return [(seq, StoredFeedback(UUID(bytes=key), *rest)) for seq, key, *rest in rows]

    def insert_feedback(self, rows: Iterable[StoredFeedback]) -> int:
        bound = [(r[0].bytes, *r[1:]) for r in rows]
        with self._lock, _errors("record the feedback"), self._transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT INTO feedback (prediction_id, received_at, actual_yield, model_version,"
                " predicted_yield) VALUES (?, ?, ?, ?, ?) ON CONFLICT (prediction_id) DO NOTHING",
                bound,
            )
            return db.total_changes - before
