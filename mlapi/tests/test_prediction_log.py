"""The prediction log on its own: what it keeps, what it gives back, what it deletes."""

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
import pytest

from mlapi import prediction_log
from mlapi.prediction_log import PredictionLog, PredictionLogError, new_prediction_ids
from yield_model.predict import PredictionResult, records_to_cells
from yield_model.schemas import EXAMPLE_RECORD, validate_records

DAY = 86_400.0
T0 = 1_800_000_000.0  # a fixed clock for the tests: 2027-01-15


@pytest.fixture
def log(tmp_path: Path) -> Iterator[PredictionLog]:
    """An empty log in a new file."""
    opened = PredictionLog(tmp_path / "log" / "predictions.db")
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
    with sqlite3.connect(log.path) as db:
        rows = db.execute("SELECT id, position FROM predictions ORDER BY position").fetchall()
    assert rows == [(i.bytes, position) for position, i in enumerate(ids)]


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


def test_prune_deletes_whole_requests(log: PredictionLog) -> None:
    # Given requests of 3 and 4 records: keeping 5 rows means dropping the 3-record request
    old = write(log, [0.1, 0.2, 0.3])
    new = write(log, [0.4, 0.5, 0.6, 0.7])
    assert log.prune(T0, 365 * DAY, max_rows=5) == 3
    assert all(log.get(i) is None for i in old)
    assert all(log.get(i) is not None for i in new)


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


def test_prune_works_in_chunks(log: PredictionLog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prediction_log, "PRUNE_CHUNK", 4)
    for _ in range(5):
        write(log, [0.9, 0.9, 0.9], at=T0 - 100 * DAY)
    write(log, [0.9])
    assert log.prune(T0, 30 * DAY, max_rows=1000) == 15
    assert log.counts()["predictions"] == 1


def test_what_was_committed_is_there_when_the_file_is_opened_again(tmp_path: Path) -> None:
    path = tmp_path / "predictions.db"
    first = PredictionLog(path)
    ids = write(first, [0.9, 0.8])
    first.add_feedback([(ids[1], 0.85)], T0)
    first.close()
    again = PredictionLog(path, sync="full")
    entry = again.get(ids[1])
    assert entry is not None
    assert entry.feedback is not None
    assert (entry.predicted_yield, entry.feedback.actual_yield) == (0.8, 0.85)
    again.close()


def test_two_connections_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    # Given two logs on one file, as two worker processes have, each written by 3 threads
    path = tmp_path / "predictions.db"
    logs = [PredictionLog(path), PredictionLog(path)]
    written: list[uuid.UUID] = []

    def writer(log: PredictionLog) -> None:
        for _ in range(40):
            written.extend(write(log, [0.9, 0.91]))

    threads = [threading.Thread(target=writer, args=(log,)) for log in logs for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then every prediction is there, whichever connection reads
    assert len(written) == 2 * 3 * 40 * 2
    assert logs[0].counts()["predictions"] == len(written)
    assert all(logs[1].get(i) is not None for i in written)
    for log in logs:
        log.close()


def test_the_file_is_in_wal_mode_with_json_readable_by_sqlite(log: PredictionLog) -> None:
    write(log, [0.9, 0.8])
    with sqlite3.connect(log.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        # what an operator reading the file with sqlite3 gets
        assert db.execute(
            "SELECT typeof(inputs), json_extract(inputs, '$.columns[5]'),"
            " json_extract(inputs, '$.rows[1][5]'), json_array_length(sample_ids) FROM requests"
        ).fetchone() == ("text", "A6", 31, 2)
        assert db.execute("SELECT count(*), min(length(id)) FROM predictions").fetchone() == (2, 16)


def test_a_file_written_by_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "predictions.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={prediction_log.SCHEMA_VERSION + 1}")
    with pytest.raises(PredictionLogError, match="newer version of the service"):
        PredictionLog(path)


def test_a_path_that_cannot_be_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(PredictionLogError, match="cannot open the prediction log"):
        PredictionLog(tmp_path / "file" / "predictions.db")


def test_a_request_must_have_one_id_per_record(log: PredictionLog) -> None:
    with pytest.raises(ValueError, match="one entry each"):
        log.record(new_prediction_ids(2), result([EXAMPLE_RECORD], [0.9], [[]]), T0)
    with pytest.raises(ValueError, match="one entry each"):
        log.record([], result([], [], []), T0)
    assert np.array_equal(log.recent_predictions("0.1.0", 5).predictions, [])


def test_requests_an_earlier_version_stored_as_their_body_come_back(log: PredictionLog) -> None:
    # Given one request logged by an earlier version, which kept the body as received, and
    # one logged now, as its validated records
    inputs: list[Any] = [{**EXAMPLE_RECORD, "sample_id": f"b{i}", "A6": 40 + i} for i in range(3)]
    body = b'{ "inputs" :\n ' + orjson.dumps(inputs) + b" }"
    old_ids = new_prediction_ids(3)
    keys = b"".join(i.bytes for i in old_ids)
    with sqlite3.connect(log.path) as db:
        seq = db.execute(
            "INSERT INTO requests (created_at, model_version, records, ids, predictions,"
            " sample_ids, warnings, inputs) VALUES (?, '0.1.0', 3, ?, ?, ?, '[[],[],[]]', ?)",
            (T0, keys, np.array([0.91, 0.92, 0.93]).tobytes(), '["b0","b1","b2"]', body.decode()),
        ).lastrowid
        db.executemany(
            "INSERT INTO predictions (id, request, position) VALUES (?, ?, ?)",
            [(i.bytes, seq, k) for k, i in enumerate(old_ids)],
        )
    new_ids = write(log, [0.94, 0.95], at=T0 + 1)
    # When / Then: each record comes back, by id and in the monitoring window, in order
    entry = log.get(old_ids[2])
    assert entry is not None
    assert entry.inputs == inputs[2]
    second = log.get(new_ids[1])
    assert second is not None
    assert second.inputs["A6"] == 31
    window = log.recent_predictions("0.1.0", 4)
    assert [r["A6"] for r in window.inputs] == [41, 42, 30, 31]
    assert window.predictions.tolist() == [0.92, 0.93, 0.94, 0.95]
