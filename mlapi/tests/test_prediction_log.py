"""The prediction log on its own: what it keeps, what it gives back, what it deletes."""

import os
import pickle
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psycopg
import pytest
import stack_tools
from fastapi.testclient import TestClient
from mlapi_support import AUTH, Postgres, PostgresContainer

from mlapi.main import create_app
from mlapi.prediction_log import (
    FeedbackOutcome,
    PredictionLog,
    PredictionLogError,
    new_prediction_ids,
    open_prediction_log,
    sqlite_path,
)
from mlapi.prediction_log import sqlite as sqlite_backend
from mlapi.prediction_log.postgres import SCHEMA_VERSION as POSTGRES_SCHEMA
from mlapi.prediction_log.sqlite import SCHEMA_VERSION as SQLITE_SCHEMA
from mlapi.prediction_log.sqlite import SqliteLog
from mlapi.settings import Settings
from yield_model.columns import FEATURE_COLUMNS
from yield_model.predict import PredictionResult, records_to_cells
from yield_model.schemas import EXAMPLE_RECORD, validate_records

DAY = 86_400.0
T0 = 1_800_000_000.0  # a fixed clock for the tests: 2027-01-15


@pytest.fixture
def log(log_url: str) -> Iterator[PredictionLog]:
    """An empty log, once per backend."""
    opened = open_prediction_log(log_url)
    yield opened
    opened.close()


def write(
    log: PredictionLog, yields: list[float], at: float = T0, version: str = "0.1.0"
) -> list[uuid.UUID]:
    """Log one request of len(yields) records, sample ids s0, s1, ...; returns their ids."""
    inputs: list[Any] = [
        {**EXAMPLE_RECORD, "sample_id": f"s{i}", "A6": 30 + i} for i in range(len(yields))
    ]
    warnings = [[f"warning {i}"] if i % 2 else [] for i in range(len(yields))]
    ids = new_prediction_ids(len(yields))
    log.record(ids, result(inputs, yields, warnings, version), at)
    return ids


def result(
    inputs: list[Any], yields: list[float], warnings: list[list[str]], version: str = "0.1.0"
) -> PredictionResult:
    """What the model package returns for these records, with these yields and warnings."""
    records = validate_records(inputs) if inputs else []
    ids = [None if r.sample_id is None else str(r.sample_id) for r in records]
    return PredictionResult(
        version, records, records_to_cells(records), ids, yields, warnings, {}, {}
    )


def test_a_logged_prediction_comes_back_as_it_was_sent(log: PredictionLog) -> None:
    # Given a request of three records
    ids = write(log, [0.91, 0.92, 0.93])
    # When
    second = log.get(ids[1])
    # Then
    assert second is not None
    assert (second.prediction_id, second.created_at, second.model_version) == (ids[1], T0, "0.1.0")
    assert second.sample_id == "s1"
    sent = {**EXAMPLE_RECORD, "A6": 31}
    assert second.inputs == {k: v for k, v in sent.items() if v is not None and k != "sample_id"}
    assert (second.predicted_yield, second.warnings, second.feedback) == (0.92, ["warning 1"], None)
    assert log.get(uuid.uuid4()) is None


def test_a_request_goes_in_whole_or_not_at_all(log: PredictionLog) -> None:
    # Given a logged prediction
    (taken,) = write(log, [0.9])
    inputs: list[Any] = [EXAMPLE_RECORD] * 3
    # When a request of three has its id as its last one
    ids = [*new_prediction_ids(2), taken]
    with pytest.raises(PredictionLogError, match="cannot record the predictions"):
        log.record(ids, result(inputs, [0.1, 0.2, 0.3], [[]] * 3), T0)
    # Then none of the three is on record: one transaction
    assert [log.get(i) for i in ids[:2]] == [None, None]
    assert log.counts()["predictions"] == 1


def test_prediction_ids_are_unique_time_ordered_uuid7() -> None:
    ids = new_prediction_ids(10_000)
    assert len(set(ids)) == 10_000
    assert {i.version for i in ids} == {7}
    assert {i.variant for i in ids} == {uuid.RFC_4122}
    later = new_prediction_ids(1)[0]
    # the first 48 bits are the time in ms: a later id never sorts before an earlier one's ms
    assert later.int >> 80 >= max(i.int >> 80 for i in ids)
    assert new_prediction_ids(0) == []


def test_prediction_ids_have_the_rfc_9562_version_7_layout() -> None:
    # Given the clock in ms before and after a batch is made
    before = time.time_ns() // 1_000_000
    ids = new_prediction_ids(10_000)
    after = time.time_ns() // 1_000_000
    # Then: unix_ts_ms (48 bits), ver 0b0111 (4), rand_a (12), var 0b10 (2), rand_b (62)
    for prediction_id in ids:
        bits = f"{prediction_id.int:0128b}"
        assert before <= int(bits[:48], 2) <= after
        assert (bits[48:52], bits[64:66]) == ("0111", "10")
    # And each of the 74 random bits is 0 in some ids and 1 in others (chance of a false
    # failure: 74 / 2**9999)
    seen_set = seen_clear = 0
    for prediction_id in ids:
        seen_set |= prediction_id.int
        seen_clear |= ~prediction_id.int
    random_bits = [*range(64, 76), *range(62)]
    assert all(seen_set >> bit & seen_clear >> bit & 1 for bit in random_bits)


def test_prediction_ids_are_plain_uuids_sorted_within_a_batch() -> None:
    ids = new_prediction_ids(5_000)
    # in input order they ascend, as UUIDs, as strings and as the bytes SQLite compares
    assert ids == sorted(ids)
    assert [str(i) for i in ids] == sorted(str(i) for i in ids)
    assert [i.bytes for i in ids] == sorted(i.bytes for i in ids)
    # and they are UUIDs like any other: equal, hashed, printed and pickled as such
    first = ids[0]
    twin = uuid.UUID(str(first))
    assert (first == twin, hash(first) == hash(twin), first.is_safe) == (
        True,
        True,
        uuid.SafeUUID.unknown,
    )
    assert pickle.loads(pickle.dumps(first)) == first
    assert uuid.UUID(bytes=first.bytes) == first


def test_prediction_ids_are_unique_and_ordered_across_many_calls() -> None:
    # Given batches of 1, 7 and 100 ids, made one after the other
    batches = [new_prediction_ids(size) for _ in range(300) for size in (1, 7, 100)]
    every = [i for batch in batches for i in batch]
    assert len(set(every)) == len(every) == 300 * 108
    # Then a batch's time is never earlier than the one before it
    times = [batch[0].int >> 80 for batch in batches]
    assert times == sorted(times)
    assert all(len({i.int >> 80 for i in batch}) == 1 for batch in batches)


@pytest.mark.parametrize("size", [1, 2, 31, 32, 33, 64, 1_000, 1_025])
def test_every_id_of_a_request_finds_its_own_record(log: PredictionLog, size: int) -> None:
    # Given a request of `size` records, whose index rows are written in blocks of 32
    ids = write(log, [i / size for i in range(size)])
    # Then the index has one row per id, in order, and ids at the ends of blocks lead to
    # their own records
    positions = sorted({0, 1, 31, 32, 33, size // 2, size - 2, size - 1} & set(range(size)))
    entries = [log.get(ids[i]) for i in positions]
    assert [(e.sample_id, e.predicted_yield) for e in entries if e is not None] == [
        (f"s{i}", i / size) for i in positions
    ]
    # And the rows are one per record, in input order
    rows = log.stored_predictions(0, size + 1)
    assert [row.prediction_id for _, row in rows] == ids


def test_ids_made_elsewhere_in_any_order_are_logged_too(log: PredictionLog) -> None:
    # Given version 4 ids, unordered, for a request of 40 records
    ids = [uuid.uuid4() for _ in range(40)]
    inputs: list[Any] = [{**EXAMPLE_RECORD, "sample_id": f"s{i}"} for i in range(40)]
    # When
    log.record(ids, result(inputs, [i / 40 for i in range(40)], [[]] * 40), T0)
    # Then
    found = [log.get(i) for i in ids]
    assert [e.sample_id if e else None for e in found] == [f"s{i}" for i in range(40)]


def test_feedback_is_recorded_once_and_unknown_ids_are_said_so(log: PredictionLog) -> None:
    # Given two logged predictions
    first, second = write(log, [0.9, 0.95])
    unknown = uuid.uuid4()
    # When feedback comes for both, twice for the first, and for an id never logged
    outcomes = log.add_feedback([(first, 0.92), (unknown, 0.9), (first, 0.5)], T0 + 60)
    again = log.add_feedback([(second, 0.97), (second, 0.1)], T0 + 120)
    # Then each item says what became of it, and the first value stands
    assert [(o.prediction_id, o.status, o.actual_yield) for o in outcomes] == [
        (first, "recorded", 0.92),
        (unknown, "unknown", None),
        (first, "duplicate", 0.92),
    ]
    assert [(o.status, o.model_version, o.predicted_yield) for o in again] == [
        ("recorded", "0.1.0", 0.95),
        ("duplicate", "0.1.0", 0.95),
    ]
    entry = log.get(first)
    assert entry is not None
    assert entry.feedback is not None
    assert (entry.feedback.actual_yield, entry.feedback.received_at) == (0.92, T0 + 60)


def test_recent_predictions_are_the_latest_of_a_model_oldest_first(log: PredictionLog) -> None:
    # Given requests of 3, 2 (another model) and 4 records
    write(log, [0.1, 0.2, 0.3])
    write(log, [0.8, 0.9], version="0.2.0")
    write(log, [0.4, 0.5, 0.6, 0.7])
    # When the latest 6 of model 0.1.0 are asked for
    window = log.recent_predictions("0.1.0", 6)
    # Then: the last 2 of the first request, then all 4 of the last, in input order
    assert window.predictions.tolist() == [0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    assert [r["A6"] for r in window.inputs] == [31, 32, 30, 31, 32, 33]
    assert log.recent_predictions("0.2.0", 100).predictions.tolist() == [0.8, 0.9]
    empty = log.recent_predictions("9.9.9", 10)
    assert (empty.inputs, empty.predictions.tolist()) == ([], [])


def test_recent_feedback_is_the_latest_received_of_a_model(log: PredictionLog) -> None:
    ids = write(log, [0.90, 0.91, 0.92, 0.93])
    other = write(log, [0.5], version="0.2.0")
    log.add_feedback([(ids[2], 0.82), (ids[0], 0.80), (other[0], 0.6)], T0)
    log.add_feedback([(ids[3], 0.83)], T0 + 1)
    predicted, actual = log.recent_feedback("0.1.0", 2)
    # newest first
    assert (predicted.tolist(), actual.tolist()) == ([0.93, 0.90], [0.83, 0.80])
    assert log.recent_feedback("0.3.0", 2)[0].tolist() == []


def test_prune_keeps_the_newest_rows_up_to_the_limit(log: PredictionLog) -> None:
    # Given 12 single-record requests, each with feedback
    ids = [write(log, [0.9])[0] for _ in range(12)]
    log.add_feedback([(i, 0.9) for i in ids], T0)
    # When at most 5 rows may stay
    deleted = log.prune(T0, 365 * DAY, max_rows=5)
    # Then the 7 oldest predictions and the 7 oldest feedbacks went
    assert deleted == 14
    assert log.counts() == {"predictions": 5, "feedback": 5}
    assert [log.get(i) is not None for i in ids] == [False] * 7 + [True] * 5
    assert log.recent_predictions("0.1.0", 100).predictions.size == 5
    # And feedback for a deleted prediction finds nothing to attach to
    assert log.add_feedback([(ids[0], 0.9)], T0)[0].status == "unknown"


def test_prune_deletes_the_excess_rows_exactly(log: PredictionLog) -> None:
    # Given requests of 3 and 4 records: keeping 5 rows means dropping the 2 oldest
    old = write(log, [0.1, 0.2, 0.3])
    new = write(log, [0.4, 0.5, 0.6, 0.7])
    assert log.prune(T0, 365 * DAY, max_rows=5) == 2
    assert [log.get(i) is not None for i in old + new] == [False, False] + [True] * 5


def test_prune_deletes_what_is_older_than_the_age_limit(log: PredictionLog) -> None:
    # Given predictions 40, 20 and 1 days old, feedback received 35 and 2 days ago
    aged = [write(log, [0.9, 0.9], at=T0 - days * DAY) for days in (40, 20, 1)]
    log.add_feedback([(aged[0][0], 0.9)], T0 - 35 * DAY)
    log.add_feedback([(aged[1][0], 0.9)], T0 - 2 * DAY)
    # When nothing older than 30 days may stay
    deleted = log.prune(T0, 30 * DAY, max_rows=1000)
    # Then
    assert deleted == 3
    assert log.counts() == {"predictions": 4, "feedback": 1}
    assert log.get(aged[0][1]) is None
    assert log.get(aged[1][0]) is not None


@pytest.mark.parametrize(("old", "chunk"), [(15, 4), (16, 4), (3, 4), (4, 1)])
def test_prune_works_in_chunks(log: PredictionLog, old: int, chunk: int) -> None:
    # Given `old` predictions past the age limit, then a recent one
    for _ in range(old):
        write(log, [0.9], at=T0 - 100 * DAY)
    write(log, [0.9])
    # Then the old ones go, `chunk` at a time, and the recent one stays
    assert log.prune(T0, 30 * DAY, max_rows=1000, chunk=chunk) == old
    assert log.counts()["predictions"] == 1
    # And by rows, too
    write(log, [0.9] * 9)
    assert log.prune(T0, 30 * DAY, max_rows=1, chunk=chunk) == 9
    assert log.counts()["predictions"] == 1


def test_what_was_committed_is_there_when_the_log_is_opened_again(log_url: str) -> None:
    first = open_prediction_log(log_url)
    ids = write(first, [0.9, 0.8])
    first.add_feedback([(ids[1], 0.85)], T0)
    first.close()
    again = open_prediction_log(log_url, sync="full")
    entry = again.get(ids[1])
    assert entry is not None
    assert entry.feedback is not None
    assert (entry.predicted_yield, entry.feedback.actual_yield) == (0.8, 0.85)
    again.close()


def test_two_processes_writing_at_once_lose_nothing(log_url: str) -> None:
    # Given two logs on one store, as two worker processes have, each written by 3 threads
    logs = [open_prediction_log(log_url), open_prediction_log(log_url)]
    written: list[uuid.UUID] = []

    def writer(log: PredictionLog) -> None:
        for _ in range(40):
            written.extend(write(log, [0.9, 0.91]))

    threads = [threading.Thread(target=writer, args=(log,)) for log in logs for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then every prediction is there, whichever process reads
    assert len(written) == 2 * 3 * 40 * 2
    assert logs[0].counts()["predictions"] == len(written)
    assert all(logs[1].get(i) is not None for i in written)
    for log in logs:
        log.close()


def test_of_many_different_feedbacks_at_once_for_one_prediction_the_first_stands(
    log_url: str,
) -> None:
    # Given a prediction, and 10 processes of 10 threads each
    logs = [open_prediction_log(log_url, pool_size=10) for _ in range(10)]
    (target,) = write(logs[0], [0.9])
    start = threading.Barrier(100)
    outcomes: list[FeedbackOutcome] = []

    def send(log: PredictionLog, value: float) -> None:
        start.wait()
        outcomes.extend(log.add_feedback([(target, value)], T0))

    # When each thread sends its own value, all at once
    values = [round(0.5 + i / 200, 3) for i in range(100)]
    threads = [threading.Thread(target=send, args=(logs[i % 10], v)) for i, v in enumerate(values)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then exactly one is recorded, and every other one is told that value stands
    recorded = [o for o in outcomes if o.status == "recorded"]
    assert len(outcomes) == 100
    assert len(recorded) == 1
    stood = recorded[0].actual_yield
    assert {(o.status, o.actual_yield) for o in outcomes if o is not recorded[0]} == {
        ("duplicate", stood)
    }
    entry = logs[5].get(target)
    assert entry is not None
    assert entry.feedback is not None
    assert entry.feedback.actual_yield == stood
    for log in logs:
        log.close()


def test_processes_opening_a_new_log_at_once_migrate_it_once(log_url: str) -> None:
    # Given 6 processes opening the same new log at the same moment
    start = threading.Barrier(6)
    opened: list[PredictionLog] = []
    failed: list[BaseException] = []

    def open_it() -> None:
        start.wait()
        try:
            opened.append(open_prediction_log(log_url))
        except BaseException as exc:  # the test says which
            failed.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then every one opened it, each schema version was applied once, and it works
    assert failed == []
    assert _schema_versions(log_url) == list(range(1, _schema_version(log_url) + 1))
    ids = write(opened[0], [0.9])
    assert all(log.get(ids[0]) is not None for log in opened)
    for log in opened:
        log.close()


def _schema_version(log_url: str) -> int:
    return SQLITE_SCHEMA if sqlite_path(log_url) else POSTGRES_SCHEMA


def _schema_versions(log_url: str) -> list[int]:
    query = "SELECT version FROM schema_version ORDER BY version"
    path = sqlite_path(log_url)
    if path is not None:
        with sqlite3.connect(path) as db:
            return [v for (v,) in db.execute(query)]
    with psycopg.connect(log_url) as connection:
        return [v for (v,) in connection.execute(query)]


def test_a_log_written_by_a_newer_schema_is_refused(log_url: str) -> None:
    # Given a log whose schema a newer service has moved on
    open_prediction_log(log_url).close()
    newer = _schema_version(log_url) + 1
    statement = f"INSERT INTO schema_version (version, applied_at) VALUES ({newer}, 0)"
    path = sqlite_path(log_url)
    if path is not None:
        with sqlite3.connect(path) as db:
            db.execute(statement)
    else:
        with psycopg.connect(log_url) as connection:
            connection.execute(statement.replace(", 0)", ", now())").encode())
    # Then this service refuses it rather than write what the newer one would misread
    with pytest.raises(PredictionLogError, match="newer version of the service"):
        open_prediction_log(log_url)


def test_the_log_can_be_written_says_the_check(log: PredictionLog) -> None:
    log.check_writable()
    log.check_writable()


def test_a_postgresql_log_that_cannot_be_written_fails_the_check(
    postgres_server: Postgres,
) -> None:
    # Given a log opened on a connection that may only read (a standby, say)
    url = postgres_server.new_database()
    open_prediction_log(url).close()
    read_only = open_prediction_log(url + "&options=-c%20default_transaction_read_only%3Don")
    # Then the check fails, naming the cause, and so does a prediction
    with pytest.raises(PredictionLogError, match="read-only transaction"):
        read_only.check_writable()
    with pytest.raises(PredictionLogError, match="cannot record the predictions"):
        write(read_only, [0.9])
    read_only.close()


def test_a_postgresql_log_on_the_stacks_postgres_image_keeps_predictions() -> None:
    # Given the tests' server from the stack's postgres image, as where PostgreSQL is not
    # installed (even where it is)
    if not stack_tools.docker_works():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true, but no Docker engine answers to run PostgreSQL from its image")
        pytest.skip("no Docker engine answers to run PostgreSQL from its image")
    server = PostgresContainer(stack_tools.image(stack_tools.PG_CTL))
    server.start()
    try:
        # When a log on a new database of it records a request
        log = open_prediction_log(server.new_database())
        write(log, [0.91, 0.92])
        # Then the predictions come back, from the major version the stack runs
        assert list(log.recent_predictions("0.1.0", 5).predictions) == [0.91, 0.92]
        log.close()
        with psycopg.connect(server.url()) as connection:
            (version,) = connection.execute("SHOW server_version").fetchone() or ("",)
        major = stack_tools.compose_image("postgres").split(":")[1].split("-")[0]
        assert str(version).split(".")[0] == major
    finally:
        server.stop()


def test_a_postgresql_server_that_cannot_be_reached_is_refused(tmp_path: Path) -> None:
    url = f"postgresql://postgres@/log?host={tmp_path}"
    with pytest.raises(PredictionLogError, match="cannot open the prediction log") as error:
        open_prediction_log(url)
    assert "No such file or directory" in str(error.value)


def test_a_url_of_another_kind_is_refused() -> None:
    with pytest.raises(PredictionLogError, match="must start with sqlite:/// or postgresql://"):
        open_prediction_log("mysql://localhost/log")


def test_a_request_must_have_one_id_per_record(log: PredictionLog) -> None:
    with pytest.raises(ValueError, match="one entry each"):
        log.record(new_prediction_ids(2), result([EXAMPLE_RECORD], [0.9], [[]]), T0)
    with pytest.raises(ValueError, match="one entry each"):
        log.record([], result([], [], []), T0)
    assert np.array_equal(log.recent_predictions("0.1.0", 5).predictions, [])


def test_only_one_log_holds_the_monitoring_lock_until_it_lets_go(log_url: str) -> None:
    # Given two logs on one store, as two processes have
    first, second = open_prediction_log(log_url), open_prediction_log(log_url)
    # Then one takes the lock, keeps it, and the other cannot have it
    assert first.try_lead()
    assert first.try_lead()
    assert not second.try_lead()
    # And when the first lets go, the other takes it
    first.resign()
    assert second.try_lead()
    assert not first.try_lead()
    # And closing lets go too
    second.close()
    assert first.try_lead()
    first.close()


# -- SQLite only: the file, and files written by earlier versions --------------------------


@pytest.fixture
def sqlite_log(tmp_path: Path) -> Iterator[SqliteLog]:
    """An empty SQLite log."""
    opened = SqliteLog(tmp_path / "predictions.db")
    yield opened
    opened.close()


def test_the_file_is_in_wal_mode_with_json_readable_by_sqlite(sqlite_log: SqliteLog) -> None:
    write(sqlite_log, [0.9, 0.8])
    with sqlite3.connect(sqlite_log.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        # what an operator reading the file with sqlite3 gets: a row per prediction
        assert db.execute(
            "SELECT typeof(record), json_extract(record, '$[5]'), sample_id,"
            " json_array_length(warnings), length(id) FROM predictions ORDER BY seq"
        ).fetchall() == [("text", 30, "s0", 0, 16), ("text", 31, "s1", 1, 16)]


def test_a_path_that_cannot_be_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(PredictionLogError, match="cannot open the prediction log"):
        open_prediction_log(f"sqlite://{tmp_path / 'file' / 'predictions.db'}")


def test_a_file_of_schema_1_is_migrated_with_every_prediction_and_feedback(
    tmp_path: Path,
) -> None:
    # Given a file as the previous release wrote it: a request kept as its body, one as its
    # validated cells, and a feedback
    path = tmp_path / "predictions.db"
    inputs: list[Any] = [{**EXAMPLE_RECORD, "sample_id": f"b{i}", "A6": 40 + i} for i in range(3)]
    body = b'{ "inputs" :\n ' + orjson.dumps(inputs) + b" }"
    cells = {
        "columns": list(FEATURE_COLUMNS),
        "rows": records_to_cells(validate_records(inputs[:2])).tolist(),
    }
    old_ids, new_ids = new_prediction_ids(3), new_prediction_ids(2)
    with sqlite3.connect(path) as db:
        sqlite_backend.MIGRATIONS[0](db)
        db.execute("PRAGMA user_version=1")
        for ids, stored, yields, at in (
            (old_ids, body.decode(), [0.91, 0.92, 0.93], T0),
            (new_ids, orjson.dumps(cells).decode(), [0.94, 0.95], T0 + 1),
        ):
            seq = db.execute(
                "INSERT INTO requests (created_at, model_version, records, ids, predictions,"
                " sample_ids, warnings, inputs) VALUES (?, '0.1.0', ?, ?, ?, ?, ?, ?)",
                (
                    at,
                    len(ids),
                    b"".join(i.bytes for i in ids),
                    np.array(yields).tobytes(),
                    orjson.dumps([f"b{k}" for k in range(len(ids))]).decode(),
                    orjson.dumps([[f"w{k}"] for k in range(len(ids))]).decode(),
                    stored,
                ),
            ).lastrowid
            db.executemany(
                "INSERT INTO predictions (id, request, position) VALUES (?, ?, ?)",
                [(i.bytes, seq, k) for k, i in enumerate(ids)],
            )
        db.execute(
            "INSERT INTO feedback (prediction_id, received_at, actual_yield, model_version,"
            " predicted_yield) VALUES (?, ?, 0.9, '0.1.0', 0.92)",
            (old_ids[1].bytes, T0 + 5),
        )
    # When this version opens it
    log = SqliteLog(path)
    # Then each record comes back, by id and in the monitoring window, in order
    entry = log.get(old_ids[2])
    assert entry is not None
    assert (entry.inputs, entry.sample_id, entry.warnings) == (
        {k: v for k, v in inputs[2].items() if v is not None and k != "sample_id"},
        "b2",
        ["w2"],
    )
    second = log.get(new_ids[1])
    assert second is not None
    assert (second.inputs["A6"], second.predicted_yield, second.created_at) == (41, 0.95, T0 + 1)
    window = log.recent_predictions("0.1.0", 4)
    assert [r["A6"] for r in window.inputs] == [41, 42, 40, 41]
    assert window.predictions.tolist() == [0.92, 0.93, 0.94, 0.95]
    fed_back = log.get(old_ids[1])
    assert fed_back is not None
    assert fed_back.feedback is not None
    assert (fed_back.feedback.actual_yield, fed_back.feedback.received_at) == (0.9, T0 + 5)
    assert log.counts() == {"predictions": 5, "feedback": 1}
    log.close()
    # And the file says it is of this schema, to this version and to the previous one
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (sqlite_backend.SCHEMA_VERSION,)
        tables = {
            name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    assert tables == {"predictions", "feedback", "schema_version", "log_health"}


def test_the_log_keeps_the_validated_records_whatever_the_body_around_them(
    log_url: str,
) -> None:
    # Given the API on this backend
    record = {**EXAMPLE_RECORD, "A5": " 13:30:00 "}
    plain = orjson.dumps({"inputs": [record]})
    padded = b'{"inputs":' + b" " * 1_000_000 + plain[len(b'{"inputs":') :]
    with TestClient(create_app(Settings(prediction_log_url=log_url)), headers=AUTH) as client:
        # When the same record is sent plain and padded with a megabyte of whitespace
        for body in (plain, padded):
            answer = client.post(
                "/api/v1/predict", content=body, headers={"Content-Type": "application/json"}
            )
            assert answer.status_code == 200, answer.text
        # And a record with a string beyond the validated length
        huge = orjson.dumps({"inputs": [{**record, "sample_id": "x" * 1_000_000}]})
        answer = client.post(
            "/api/v1/predict", content=huge, headers={"Content-Type": "application/json"}
        )
    # Then the padding is not kept: both rows hold the same validated cells, a few hundred bytes
    assert answer.status_code == 422
    assert answer.json()["detail"]["errors"] == [
        {"index": 0, "field": "sample_id", "message": "too long: at most 100 characters"}
    ]
    log = open_prediction_log(log_url)
    try:
        rows = [row for _, row in log.stored_predictions(0, 10)]
    finally:
        log.close()
    assert len(rows) == 2
    assert rows[0].record == rows[1].record
    assert len(rows[0].record) < 1_000
