"""The one prediction path: what ``TrainedModel.predict`` and ``predict_json`` give is what
scikit-learn's ``pipeline.predict`` and the parser give, bit for bit, for any input."""

import json
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sklearn

from yield_model.columns import FEATURE_COLUMNS, NUMERIC_COLUMNS, TIME_COLUMNS
from yield_model.datasets import QUIRKS
from yield_model.errors import InvalidInputError, MalformedRequestError, TooManyRecordsError
from yield_model.features import StepDurations
from yield_model.predict import TrainedModel, records_to_frame
from yield_model.schemas import EXAMPLE_RECORD, max_request_tokens, validate_records


def _file_records(path: Path) -> list[dict[str, Any]]:
    """Rows as text, blanks as null: how the published files reach the API."""
    frame = pd.read_csv(path, dtype=str, encoding="gb18030", keep_default_na=False)
    return [
        {str(k): (v if v != "" else None) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def _bits(values: Any) -> list[int]:
    return np.asarray(values, dtype=np.float64).view(np.int64).tolist()  # type: ignore[no-any-return]


def _assert_same_as_pipeline(model: TrainedModel, records: list[dict[str, Any]]) -> None:
    frame = records_to_frame(validate_records(records))
    expected = model.pipeline.predict(frame)
    parsed, report = model.pipeline[0].transform_with_report(frame)
    # The parser's warnings, then the guard's about values outside the training ranges.
    ranges = model.pipeline.named_steps["guard"].report(parsed)
    warnings = [[*p, *g] for p, g in zip(report.warnings, ranges.warnings, strict=True)]
    body = json.dumps({"inputs": records}).encode()
    for result in (model.predict(records), model.predict_json(body)):
        assert _bits(result.predictions) == _bits(expected)
        assert result.warnings == warnings
        assert result.absent == report.absent
        assert result.unparseable == report.unparseable
        assert result.out_of_range == ranges.out_of_range


@pytest.mark.parametrize("which", ["train", "test"])
def test_predictions_equal_the_pipeline_bit_for_bit_on_whole_files(
    trained_model: TrainedModel, train_csv: Path, test_csv: tuple[Path, Path], which: str
) -> None:
    # Every quirk of the published files is in these rows.
    records = _file_records(train_csv if which == "train" else test_csv[0])
    _assert_same_as_pipeline(trained_model, records)
    for record in records[:20]:
        _assert_same_as_pipeline(trained_model, [record])


_QUIRK_VALUES: dict[str, list[str]] = {}
for _column, _raw in QUIRKS:
    _QUIRK_VALUES.setdefault(_column, []).append(_raw)


def _random_records(rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    """Records of every kind of value the schema accepts, in random mixtures."""
    times = ["13:30:00", "0:00:00", "24:00", "21:00-21:30", "23:00-0:30", "18:30-15:00", "  "]
    records = []
    for _ in range(n):
        record: dict[str, Any] = {}
        for column in FEATURE_COLUMNS:
            draw = rng.random()
            if draw < 0.15:
                continue  # not sent
            if draw < 0.25:
                record[column] = None
            elif column in TIME_COLUMNS:
                pool = times + _QUIRK_VALUES.get(column, [])
                record[column] = str(pool[rng.integers(len(pool))])
            elif draw < 0.45:
                record[column] = float(rng.normal(100, 80))
            elif draw < 0.55:
                record[column] = int(rng.integers(-5, 1200))
            elif draw < 0.6:
                record[column] = str(
                    rng.choice(["nan", " ", "-0", "1e3", "\x1c7.5 ", "1900/3/10 0:00", "hot"])
                )
            elif draw < 0.62:
                record[column] = float(rng.choice([1e39, -1e300]))
            else:
                record[column] = f"{rng.normal(300, 200):.3f}"
        records.append(record)
    return records


@pytest.mark.parametrize("n", [1, 2, 5, 16, 17, 64, 65, 300])
def test_predictions_equal_the_pipeline_on_random_records(
    trained_model: TrainedModel, n: int
) -> None:
    rng = np.random.default_rng(n)
    _assert_same_as_pipeline(trained_model, _random_records(rng, n))


def test_numeric_columns_parse_alike_as_floats_or_as_text(trained_model: TrainedModel) -> None:
    # A column of plain numbers is converted in one call; one with text, cell by cell.
    parser = trained_model.pipeline[0]
    rows = [dict(EXAMPLE_RECORD), {"A6": 12.5, "B14": None}, {"A25": "1900/3/10 0:00"}]
    as_floats = records_to_frame(validate_records(rows))
    as_text = as_floats.copy()
    for column in NUMERIC_COLUMNS:
        as_text[column] = [
            v if v is None or isinstance(v, str) else repr(v) for v in as_floats[column]
        ]
    out_floats, report_floats = parser.transform_with_report(as_floats)
    out_text, report_text = parser.transform_with_report(as_text)
    assert _bits(out_floats.ravel()) == _bits(out_text.ravel())
    assert report_floats == report_text
    assert report_floats.warnings[2] == [
        "A25: read '1900/3/10 0:00' as 70 (an Excel date artefact)"
    ]
    assert math.isnan(out_floats[1, list(parser.get_feature_names_out()).index("B14")])


def test_concurrent_batches_predict_as_alone(trained_model: TrainedModel) -> None:
    batches = [_random_records(np.random.default_rng(100 + k), 50) for k in range(6)]
    expected = [trained_model.predict(b).predictions for b in batches]
    got: dict[int, list[float]] = {}

    def run(k: int) -> None:
        for _ in range(5):
            got[k] = trained_model.predict(batches[k]).predictions

    threads = [threading.Thread(target=run, args=(k,)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [_bits(got[k]) for k in range(6)] == [_bits(e) for e in expected]


def test_the_result_carries_sample_ids_as_text_and_the_validated_records(
    trained_model: TrainedModel,
) -> None:
    raw = [{**EXAMPLE_RECORD, "sample_id": f"s{i}"} for i in range(3)]
    raw[1]["sample_id"] = 1528
    raw[2].pop("sample_id")
    raw[2]["样本id"] = "sample_9"
    result = trained_model.predict_json(_json({"inputs": raw}))
    assert result.sample_ids == ["s0", "1528", "sample_9"]
    assert [r.A6 for r in result.records] == [38.0, 38.0, 38.0]
    assert result.records == validate_records(raw)


def test_a_body_that_is_not_json_or_has_too_many_records_is_refused(
    trained_model: TrainedModel,
) -> None:
    with pytest.raises(MalformedRequestError, match="not valid JSON"):
        trained_model.predict_json(b'{"inputs": [')
    with pytest.raises(MalformedRequestError):
        trained_model.predict_json(b"")
    sparse = _json({"inputs": [{"A6": 38}] * 3})
    with pytest.raises(TooManyRecordsError, match="3 records sent; at most 2 are accepted"):
        trained_model.predict_json(sparse, max_records=2)
    full = _json({"inputs": [EXAMPLE_RECORD] * 3})
    assert len(trained_model.predict_json(full, max_records=3).predictions) == 3


def test_a_body_with_more_structure_than_the_records_allowed_is_refused_unparsed(
    trained_model: TrainedModel,
) -> None:
    # Given 3 complete records, more keys and values than 2 records can hold
    full = _json({"inputs": [EXAMPLE_RECORD] * 3})
    # and 1 record whose text holds more commas, brackets and colons than 1 record can
    in_strings = _json({"inputs": [{**EXAMPLE_RECORD, "A20": "{[,:]}" * 16}]})
    assert sum(in_strings.count(c) for c in (b"{", b"[", b",", b":")) > max_request_tokens(1)
    # Then the first is refused before it is parsed, naming the limit; the second is not
    with pytest.raises(TooManyRecordsError, match="more JSON values than 2 records of at most"):
        trained_model.predict_json(full, max_records=2)
    assert len(trained_model.predict_json(in_strings, max_records=1).predictions) == 1


def test_nan_in_a_body_is_missing_as_pandas_writes_it(trained_model: TrainedModel) -> None:
    # json.dumps of a frame with blank cells writes NaN, which strict JSON has not.
    with_nan = b'{"inputs": [{"A6": NaN, "B14": 400}]}'
    with_null = b'{"inputs": [{"A6": null, "B14": 400}]}'
    assert trained_model.predict_json(with_nan).predictions == (
        trained_model.predict_json(with_null).predictions
    )


def test_a_number_in_a_time_column_predicts_as_its_text(trained_model: TrainedModel) -> None:
    # A client that turns CSV cells into numbers sends 700 for the published cell "700".
    as_text = [{**EXAMPLE_RECORD, "A9": "700", "B5": "2300"}]
    for number in (700, 700.0):
        as_number = [{**EXAMPLE_RECORD, "A9": number, "B5": 2300}]
        _assert_same_as_pipeline(trained_model, as_number)
        result = trained_model.predict_json(_json({"inputs": as_number}))
        assert result.warnings == [["A9: read 700 as 7:00", "B5: read 2300 as 23:00"]]
        assert _bits(result.predictions) == _bits(trained_model.predict(as_text).predictions)
    odd = trained_model.predict_json(_json({"inputs": [{**EXAMPLE_RECORD, "A9": 7.5}]}))
    assert odd.warnings == [
        ["A9: could not parse 7.5 (a number in a time column is read as HMM digits, 700 for "
         "7:00), treated as missing"]
    ]  # fmt: skip


def test_digits_python_would_read_as_38_are_missing_with_the_reason(
    trained_model: TrainedModel,
) -> None:
    records = [{**EXAMPLE_RECORD, "A6": raw} for raw in ("３８", "٣٨", "3_8")]
    _assert_same_as_pipeline(trained_model, records)
    result = trained_model.predict(records)
    missing = trained_model.predict([{**EXAMPLE_RECORD, "A6": None}])
    assert _bits(result.predictions) == _bits(missing.predictions * 3)
    assert result.warnings == [
        ["A6: could not parse '３８' ('３' (fullwidth digit three) is not an ASCII digit; only "
         "0-9 are read), treated as missing"],
        ["A6: could not parse '٣٨' ('٣' (arabic-indic digit three) is not an ASCII digit; only "
         "0-9 are read), treated as missing"],
        ["A6: could not parse '3_8' ('_' is not read as a digit separator), treated as missing"],
    ]  # fmt: skip


def test_an_integer_beyond_any_float_is_refused_in_python_and_missing_in_json(
    trained_model: TrainedModel,
) -> None:
    # JSON readers turn such a number into an infinity, which the parser reports; a Python
    # int has no float value at all.
    records = [dict(EXAMPLE_RECORD), {**EXAMPLE_RECORD, "B14": 10**400}]
    with pytest.raises(InvalidInputError) as caught:
        trained_model.predict(records)
    (problem,) = caught.value.problems
    assert (problem.index, problem.field) == (1, "B14")
    assert problem.message == "too large: an integer beyond any floating-point number"
    result = trained_model.predict_json(b'{"inputs": [{"B14": 1' + b"0" * 400 + b"}]}")
    assert result.unparseable["B14"] == 1
    assert result.warnings == [
        ["B14: could not parse inf (not a finite number), treated as missing"]
    ]


def test_invalid_records_are_refused_with_index_and_field(trained_model: TrainedModel) -> None:
    def problems(*records: dict[str, Any]) -> dict[tuple[int | None, str | None], str]:
        with pytest.raises(InvalidInputError) as caught:
            trained_model.predict_json(_json({"inputs": list(records)}))
        return {(p.index, p.field): p.message for p in caught.value.problems}

    # Validation stops at the first invalid record: its problems only
    assert problems({"A6": True}, {"A5": [13], "colour": 1}, {"B4": "x" * 101}) == {
        (0, "A6"): "expected a number, a numeric string or null, got a boolean",
    }
    assert problems({}, {"A5": [13], "colour": 1}, {"B4": "x" * 101}) == {
        (1, "A5"): "expected a time string such as '13:30:00' or '21:00-21:30', or null, "
        "got an array",
        (1, "colour"): "unknown field",
    }
    assert problems({}, {}, {"B4": "x" * 101}) == {(2, "B4"): "too long: at most 100 characters"}


def _random_stamps(rng: np.random.Generator, most: int) -> StepDurations:
    """StepDurations fitted on a random layout: up to ``most`` - 1 stamps in order, each a
    point or a start and duration pair, and one column that is no stamp."""
    names: list[str] = []
    stamps = [f"s{k}" for k in range(rng.integers(0, most))]
    for stamp in stamps:
        names += [f"{stamp}_start", f"{stamp}_duration"] if rng.random() < 0.5 else [stamp]
    names.append("other")
    return StepDurations(stamps=stamps, columns=names).fit(np.zeros((1, len(names))))


def test_durations_equal_the_step_by_step_definition() -> None:
    # The definition, stamp after stamp; the transformer computes all stamps at once.
    def step_by_step(plan: list[tuple[str, int, int | None]], X: np.ndarray) -> np.ndarray:
        n_rows = X.shape[0]
        gaps = np.full((n_rows, max(len(plan) - 1, 0)), np.nan)
        total = np.zeros(n_rows)
        first_start = np.full(n_rows, np.nan)
        last_end = np.full(n_rows, np.nan)
        for k, (_, start_col, duration_col) in enumerate(plan):
            start = X[:, start_col]
            duration = X[:, duration_col] if duration_col is not None else np.zeros(n_rows)
            if k:
                # to the second: two equal clock times never differ by a day
                seconds = np.round((start - last_end) * 3600)
                gaps[:, k - 1] = np.mod(seconds / 3600, 24.0)
            known = ~np.isnan(start)
            step = np.where(known, np.nan_to_num(gaps[:, k - 1]) if k else 0.0, 0.0)
            total += step + np.where(known, np.nan_to_num(duration), 0.0)
            first_start = np.where(np.isnan(first_start) & known, start, first_start)
            end = np.mod(start + np.nan_to_num(duration), 24.0)
            last_end = np.where(known, end, last_end)
        total[np.isnan(first_start)] = np.nan
        return np.hstack([X, gaps, total[:, None]])

    rng = np.random.default_rng(3)
    with np.errstate(all="ignore"):
        for _ in range(200):
            durations = _random_stamps(rng, 9)
            X = rng.uniform(-30, 30, (rng.integers(1, 40), durations.n_features_in_))
            for value, share in ((np.nan, 0.4), (np.inf, 0.03), (-np.inf, 0.03), (-0.0, 0.05)):
                X[rng.random(X.shape) < share] = value
            expected = step_by_step(durations.plan_, X)
            with sklearn.config_context(assume_finite=True):  # the parser gives no infinity
                got = durations.transform(X)
            assert got.shape == expected.shape
            assert _bits(got.ravel()) == _bits(expected.ravel())


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()
