"""The prediction log in PostgreSQL, shared by every worker of every host.

Each process keeps a small pool of autocommit connections (psycopg_pool). A request's
predictions go in as one statement (an INSERT for one, a COPY for more), which PostgreSQL
commits as one transaction before the answer is sent. The schema is migrated at start under
an advisory lock, so that of processes starting at once one migrates and the others wait; the
monitoring job is elected by another advisory lock, held by a connection of its own and
released by the server when that process dies.
"""

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

import orjson
import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

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
from yield_model.features import FloatArray

logger = logging.getLogger("mlapi.prediction_log")

#: Advisory lock keys: one for migrations, one for the monitoring job ("mlapi" + 1 or 2).
MIGRATION_LOCK: Final = 0x6D6C617069_01
MONITOR_LOCK: Final = 0x6D6C617069_02
#: Seconds to wait for a new connection to be made.
CONNECT_TIMEOUT_SECONDS: Final = 5

#: The schema versions in order, each a list of statements run in one transaction.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        # record: the validated cells in FEATURE_COLUMNS order; warnings: a JSON array.
        """CREATE TABLE predictions (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id uuid NOT NULL UNIQUE,
            created_at timestamptz NOT NULL,
            model_version text NOT NULL,
            sample_id text,
            record json NOT NULL,
            predicted_yield double precision NOT NULL,
            warnings json NOT NULL
        )""",
        "CREATE INDEX predictions_by_model ON predictions (model_version, seq)",
        # model_version and predicted_yield are copies: accuracy outlives retention of the
        # prediction, and reads one table.
        """CREATE TABLE feedback (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            prediction_id uuid NOT NULL UNIQUE,
            received_at timestamptz NOT NULL,
            actual_yield double precision NOT NULL,
            model_version text NOT NULL,
            predicted_yield double precision NOT NULL
        )""",
        "CREATE INDEX feedback_by_model ON feedback (model_version, seq)",
        "CREATE TABLE log_health (id integer PRIMARY KEY, checked_at timestamptz NOT NULL)",
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)

_COLUMNS: Final = "id, created_at, model_version, sample_id, record, predicted_yield, warnings"
_INSERT_ONE: Final = (
    f"INSERT INTO predictions ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s::json, %s, %s::json)"
)
_COPY: Final = f"COPY predictions ({_COLUMNS}) FROM STDIN"
_FEEDBACK: Final = (
    "WITH p AS (SELECT model_version, predicted_yield FROM predictions WHERE id = %(id)s),"
    " inserted AS (INSERT INTO feedback (prediction_id, received_at, actual_yield,"
    " model_version, predicted_yield) SELECT %(id)s, %(at)s, %(actual)s, model_version,"
    " predicted_yield FROM p ON CONFLICT (prediction_id) DO NOTHING RETURNING 1)"
    " SELECT model_version, predicted_yield, EXISTS (SELECT FROM inserted) FROM p"
)


def public_location(url: str) -> str:
    """The URL without its password or other parameters: for messages."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(an invalid URL)"
    user = f"{params['user']}@" if params.get("user") else ""
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{user}{params.get('host', '')}{port}/{params.get('dbname', '')}"


@contextmanager
def _errors(action: str) -> Iterator[None]:
    try:
        yield
    except (psycopg.Error, OSError) as exc:
        raise PredictionLogError(f"cannot {action}: {exc}") from exc


def _time(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def migrate(connection: psycopg.Connection[Any]) -> None:
    """Bring the schema to ``SCHEMA_VERSION``; refuse one written by a newer service."""
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        row = connection.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
        version = 0
        if row and row[0]:
            row = connection.execute("SELECT max(version) FROM schema_version").fetchone()
            version = row[0] if row and row[0] else 0
        if version > SCHEMA_VERSION:
            raise PredictionLogError(
                f"the prediction log was written by a newer version of the service "
                f"(schema {version})"
            )
        if version == 0:
            connection.execute(
                "CREATE TABLE schema_version"
                " (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
        for number in range(version + 1, SCHEMA_VERSION + 1):
            logger.info("migrating the prediction log to schema %d", number)
            for statement in MIGRATIONS[number - 1]:
                connection.execute(statement.encode())
            connection.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))


class PostgresLog(PredictionLog):
    """The PostgreSQL database of logged predictions and feedback, as one process uses it."""

    def __init__(self, url: str, pool_size: int = 4) -> None:
        self.location = public_location(url)
        self._url = url
        self._options: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "application_name": "mlapi",
        }
        self._leader: psycopg.Connection[Any] | None = None
        # A connection of its own first: it says why when the server cannot be reached.
        with (
            _errors(f"open the prediction log {self.location}"),
            psycopg.connect(url, **self._options) as connection,
        ):
            migrate(connection)
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url,
            kwargs=self._options,
            min_size=1,
            max_size=pool_size,
            timeout=BUSY_TIMEOUT_SECONDS,
            name="mlapi-prediction-log",
            open=False,
        )
        self._pool.open()

    def close(self) -> None:
        self.resign()
        self._pool.close()

    def insert_predictions(self, rows: Sequence[StoredPrediction]) -> None:
        if not rows:
            return
        created = _time(rows[0].created_at)
        with _errors("record the predictions"), self._pool.connection() as connection:
            if len(rows) == 1:
                (row,) = rows
                connection.execute(
                    _INSERT_ONE,
                    (
                        row[0],
                        _time(row[1]),
                        row[2],
                        row[3],
                        row[4].decode(),
                        row[5],
                        row[6].decode(),
                    ),
                )
                return
            with connection.cursor() as cursor, cursor.copy(_COPY) as copy:
                for r in rows:
                    at = created if r[1] == rows[0].created_at else _time(r[1])
                    copy.write_row((r[0], at, r[2], r[3], r[4].decode(), r[5], r[6].decode()))

    def add_feedback(
        self, items: Sequence[tuple[UUID, float]], received_at: float
    ) -> list[FeedbackOutcome]:
        outcomes = []
        at = _time(received_at)
        with (
            _errors("record the feedback"),
            self._pool.connection() as connection,
            connection.transaction(),
        ):
            for prediction_id, actual in items:
                found = connection.execute(
                    _FEEDBACK, {"id": prediction_id, "at": at, "actual": actual}
                ).fetchone()
                if found is None:
                    outcomes.append(FeedbackOutcome(prediction_id, "unknown"))
                    continue
                version, predicted, inserted = found
                if inserted:
                    outcome = FeedbackOutcome(prediction_id, "recorded", version, predicted, actual)
                else:
                    # Read in a statement of its own: it sees a value committed by another
                    # transaction while this one waited on it.
                    (on_record,) = connection.execute(
                        "SELECT actual_yield FROM feedback WHERE prediction_id = %s",
                        (prediction_id,),
                    ).fetchone() or (None,)
                    outcome = FeedbackOutcome(
                        prediction_id, "duplicate", version, predicted, on_record
                    )
                outcomes.append(outcome)
        return outcomes

    def get(self, prediction_id: UUID) -> PredictionEntry | None:
        with _errors("read the prediction log"), self._pool.connection() as connection:
            row = connection.execute(
                "SELECT p.created_at, p.model_version, p.sample_id, p.record::text,"
                " p.predicted_yield, p.warnings::text, f.actual_yield, f.received_at"
                " FROM predictions AS p LEFT JOIN feedback AS f ON f.prediction_id = p.id"
                " WHERE p.id = %s",
                (prediction_id,),
            ).fetchone()
        if row is None:
            return None
        created, version, sample_id, record, predicted, warnings, actual, received = row
        return PredictionEntry(
            prediction_id=prediction_id,
            created_at=created.timestamp(),
            model_version=version,
            sample_id=sample_id,
            inputs=record_values(record),
            predicted_yield=predicted,
            warnings=orjson.loads(warnings),
            feedback=None if actual is None else FeedbackEntry(actual, received.timestamp()),
        )

    def recent_predictions(self, model_version: str, limit: int) -> Window:
        with _errors("read the prediction log"), self._pool.connection() as connection:
            rows = connection.execute(
                "SELECT record::text, predicted_yield FROM predictions WHERE model_version = %s"
                " ORDER BY seq DESC LIMIT %s",
                (model_version, limit),
            ).fetchall()
        return window(rows)

    def recent_feedback(self, model_version: str, limit: int) -> tuple[FloatArray, FloatArray]:
        with _errors("read the prediction log"), self._pool.connection() as connection:
            rows = connection.execute(
                "SELECT predicted_yield, actual_yield FROM feedback WHERE model_version = %s"
                " ORDER BY seq DESC LIMIT %s",
                (model_version, limit),
            ).fetchall()
        return feedback_pairs(rows)

    def counts(self) -> dict[str, int]:
        with _errors("read the prediction log"), self._pool.connection() as connection:
            row = connection.execute(
                "SELECT (SELECT count(*) FROM predictions), (SELECT count(*) FROM feedback)"
            ).fetchone()
        assert row is not None
        return {"predictions": row[0], "feedback": row[1]}

    def prune(
        self, now: float, max_age_seconds: float, max_rows: int, chunk: int = PRUNE_CHUNK
    ) -> int:
        cutoff = _time(now - max_age_seconds)
        deleted = 0
        for table, created in (("predictions", "created_at"), ("feedback", "received_at")):
            oldest = f"SELECT seq FROM {table} ORDER BY seq LIMIT %s"
            excess = self.counts()[table] - max_rows
            while excess > 0:  # beyond the newest max_rows: the oldest go
                gone = self._delete(
                    f"DELETE FROM {table} WHERE seq IN ({oldest})", min(excess, chunk)
                )
                deleted, excess = deleted + gone, excess - gone
            # Too old: of the oldest chunk, those before the cutoff; again while all of it was.
            by_age = f"DELETE FROM {table} WHERE seq IN ({oldest}) AND {created} < %s"
            while (gone := self._delete(by_age, chunk, cutoff)) > 0:
                deleted += gone
                if gone < chunk:
                    break
        return deleted

    def _delete(self, statement: str, *params: Any) -> int:
        with _errors("prune the prediction log"), self._pool.connection() as connection:
            return connection.execute(statement.encode(), params).rowcount

    def check_writable(self) -> None:
        with _errors("write the prediction log"), self._pool.connection() as connection:
            connection.execute(
                "INSERT INTO log_health VALUES (1, now())"
                " ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at"
            )

    def try_lead(self) -> bool:
        if self._leader is not None:
            try:
                self._leader.execute("SELECT")
                return True
            except psycopg.Error:  # the session, and with it the lock, is gone
                logger.warning("lost the monitoring lock: its connection broke")
                self.resign()
        with _errors("take the monitoring lock"):
            connection = psycopg.connect(self._url, **self._options)
            try:
                row = connection.execute(
                    "SELECT pg_try_advisory_lock(%s)", (MONITOR_LOCK,)
                ).fetchone()
            except BaseException:
                connection.close()
                raise
        if row is None or not row[0]:
            connection.close()
            return False
        self._leader = connection
        return True

    def resign(self) -> None:
        if self._leader is not None:
            self._leader.close()  # the session ends, and the server releases the lock
            self._leader = None

    def stored_predictions(self, after: int, limit: int) -> list[tuple[int, StoredPrediction]]:
        with _errors("read the prediction log"), self._pool.connection() as connection:
            rows = connection.execute(
                "SELECT seq, id, created_at, model_version, sample_id, record::text,"
                " predicted_yield, warnings::text FROM predictions WHERE seq > %s"
                " ORDER BY seq LIMIT %s",
                (after, limit),
            ).fetchall()
        return [
            (
                seq,
                StoredPrediction(
                    key, at.timestamp(), version, sample, record.encode(), value, warnings.encode()
                ),
            )
            for seq, key, at, version, sample, record, value, warnings in rows
        ]

    def stored_feedback(self, after: int, limit: int) -> list[tuple[int, StoredFeedback]]:
        with _errors("read the prediction log"), self._pool.connection() as connection:
            rows = connection.execute(
                "SELECT seq, prediction_id, received_at, actual_yield, model_version,"
                " predicted_yield FROM feedback WHERE seq > %s ORDER BY seq LIMIT %s",
                (after, limit),
            ).fetchall()
        return [
            (seq, StoredFeedback(key, at.timestamp(), actual, version, predicted))
            for seq, key, at, actual, version, predicted in rows
        ]

    def insert_feedback(self, rows: Iterable[StoredFeedback]) -> int:
        columns = list(zip(*rows, strict=True)) or [()] * 5
        ids, received, actual, versions, predicted = columns
        with _errors("record the feedback"), self._pool.connection() as connection:
            return connection.execute(
                "INSERT INTO feedback (prediction_id, received_at, actual_yield, model_version,"
                " predicted_yield) SELECT * FROM unnest(%s::uuid[], %s::timestamptz[],"
                " %s::float8[], %s::text[], %s::float8[])"
                " ON CONFLICT (prediction_id) DO NOTHING",
                (
                    list(ids),
                    [_time(t) for t in received],
                    list(actual),
                    list(versions),
                    list(predicted),
                ),
            ).rowcount
