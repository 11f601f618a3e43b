"""The request path's shortcuts give exactly what scikit-learn and pydantic give.

Prediction skips the pipeline's frames and checks (``CompiledPipeline``), walks the trees as
arrays, and validates plain JSON values without pydantic's per-field calls. None of that may
change a prediction by a single bit, a warning, a count or an error.
"""

import math
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingRegressor
from test_parsing import (
    CLEAN_RANGES,
    EXCEL_SERIALS,
    MISSING_VALUES,
    NUMBERS,
    POINTS,
    QUIRKY_RANGES,
)

from yield_model.columns import FEATURE_COLUMNS, NUMERIC_COLUMNS, TIME_COLUMNS
from yield_model.config import TrainingConfig
from yield_model.data import load_dataset
from yield_model.datasets import QUIRKS
from yield_model.errors import InvalidInputError
from yield_model.features import ProcessLogParser, StepDurations
from yield_model.pipeline import CompiledPipeline, compile_pipeline
from yield_model.predict import TrainedModel, records_to_frame
from yield_model.schemas import (
    _RECORDS,
    EXAMPLE_RECORD,
    Record,
    RecordBatch,
    _fast_records,
    _problem,
    sample_ids,
    validate_records,
)
from yield_model.train import train


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
    result = model.predict(records)
    validated = validate_records(records)
    expected = model.pipeline.predict(records_to_frame(validated))
    assert _bits(result.predictions) == _bits(expected)
    _, report = model.pipeline[0].transform_with_report(records_to_frame(validated))
    assert result.warnings == report.warnings
    assert result.absent == report.absent
    assert result.unparseable == report.unparseable


# ---------------------------------------------------------------------------- predictions


def test_the_trained_gbr_pipeline_is_compiled(trained_model: TrainedModel) -> None:
    assert isinstance(trained_model._compiled, CompiledPipeline)


@pytest.mark.parametrize("which", ["train", "test"])
def test_predictions_equal_the_pipeline_bit_for_bit_on_whole_files(
    trained_model: TrainedModel, train_csv: Path, test_csv: tuple[Path, Path], which: str
) -> None:
    # Every quirk of the published files is in these rows; the batch is predicted by
    # scikit-learn's own tree loop, single rows by the array walk.
    records = _file_records(train_csv if which == "train" else test_csv[0])
    _assert_same_as_pipeline(trained_model, records)
    for record in records[:40]:
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
                record[column] = rng.choice(["nan", " ", "-0", "1e3", "\x1c7.5 ", "1900/3/10 0:00"])
            else:
                record[column] = f"{rng.normal(300, 200):.3f}"
        records.append(record)
    return records


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 15, 16, 17, 63, 64, 65, 300])
def test_predictions_equal_the_pipeline_on_random_records(
    trained_model: TrainedModel, n: int
) -> None:
    # 64 rows is where the array walk hands over to scikit-learn's loop; below 16 rows cells
    # are parsed one by one, below 5 the regressor's input is computed row by row.
    rng = np.random.default_rng(n)
    _assert_same_as_pipeline(trained_model, _random_records(rng, n))


def test_tree_walk_equals_scikit_learn_at_the_thresholds(trained_model: TrainedModel) -> None:
    # Values exactly at a threshold, and one float32 step either side: where a walk that
    # compares in the wrong precision would go the other way.
    assert trained_model._compiled is not None
    trees = trained_model._compiled.trees
    regressor: GradientBoostingRegressor = trained_model.pipeline[-1][-1]
    rng = np.random.default_rng(7)
    internal = trees.children[2 * np.arange(len(trees.feature))] != np.arange(len(trees.feature))
    thresholds = trees.threshold[internal].astype(np.float32)
    for rows in (1, 2, 5, 15, 16, 17, 64):
        X = rng.choice(thresholds, size=(rows, trees.n_features)).astype(np.float32)
        X += rng.choice([-1, 0, 1], size=X.shape) * np.spacing(X)
        expected = regressor._raw_predict(X)[:, 0]
        assert _bits(trees.predict(np.ascontiguousarray(X))) == _bits(expected)


def _random_stamps(rng: np.random.Generator, most: int) -> StepDurations:
    """StepDurations fitted on a random layout: up to ``most`` - 1 stamps in order, each a
    point or a start and duration pair, and one column that is no stamp."""
    names: list[str] = []
    stamps = [f"s{k}" for k in range(rng.integers(0, most))]
    for stamp in stamps:
        names += [f"{stamp}_start", f"{stamp}_duration"] if rng.random() < 0.5 else [stamp]
    names.append("other")
    return StepDurations(stamps=stamps).fit(pd.DataFrame(np.zeros((1, len(names))), columns=names))


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
                gaps[:, k - 1] = np.mod(start - last_end, 24.0)
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
            got = durations.add_durations(X)
            assert got.shape == expected.shape
            assert _bits(got.ravel()) == _bits(expected.ravel())


_MAX = float(np.finfo(np.float64).max)
#: Values where float arithmetic has its corners: NaN (with payloads and sign), infinities,
#: signed zeros, the largest and smallest floats, multiples of 24 and their neighbours.
_EDGE_VALUES = np.array(
    [
        math.nan, -math.nan, math.inf, -math.inf, 0.0, -0.0, _MAX, -_MAX, 1e308, -1e308,
        24.0, -24.0, 48.0, np.nextafter(24.0, 0.0), 5e-324, -5e-324, 1e-300, 1e17, -1e17, 12.0,
        *np.array([0x7FF8000000000001, 0xFFF8000000000123], dtype=np.uint64).view(np.float64),
    ]
)  # fmt: skip


def _edge_rows(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Random floats of all magnitudes, a random share of them replaced by edge values."""
    X = rng.uniform(-50, 50, shape)
    if rng.random() < 0.5:
        X *= 10.0 ** rng.integers(-300, 300, shape)
    edge = rng.random(shape) < rng.random()
    X[edge] = rng.choice(_EDGE_VALUES, int(edge.sum()))
    return X


def test_durations_of_a_row_equal_the_array_version_to_the_bit() -> None:
    # Python's float % and numpy's mod both take C's fmod, then the divisor's sign; the total
    # is a left-to-right sum either way. Checked on the corners where they could part.
    rng = np.random.default_rng(17)
    with np.errstate(all="ignore"):
        for _ in range(1500):
            durations = _random_stamps(rng, 10)
            X = _edge_rows(rng, (int(rng.integers(1, 5)), durations.n_features_in_))
            rows = [row + durations.row_durations(row) for row in X.tolist()]
            assert _bits(np.array(rows).ravel()) == _bits(durations.add_durations(X).ravel())


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_row_by_row_regressor_input_equals_the_array_version(
    trained_model: TrainedModel, n: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled = trained_model._compiled
    assert compiled is not None
    rng = np.random.default_rng(n)
    n_columns = len(trained_model.pipeline[0].get_feature_names_out())
    with np.errstate(all="ignore"):
        for _ in range(100):
            parsed = _edge_rows(rng, (n, n_columns))
            row_by_row = compiled.predict(parsed)
            with monkeypatch.context() as patch:
                patch.setattr("yield_model.pipeline._ROW_BY_ROW_BELOW", 0)
                as_arrays = compiled.predict(parsed)
            assert _bits(row_by_row) == _bits(as_arrays)


def _quirky_cells(alone: bool) -> tuple[list[Any], list[Any]]:
    """Cells of every kind for number and time columns: the parsing tests' tables, the
    generated data's quirks, and what no record validates (ints, bools, huge text). With
    ``alone``, none on which the column-wise path raises for some columns only: an int beyond
    any float (pandas' conversion), a list (a column of lists of one reads as 2-D)."""
    numbers = [raw for raw, _ in NUMBERS] + [raw for raw, _ in EXCEL_SERIALS] + MISSING_VALUES
    numbers += [math.inf, -math.inf, 1e39, -3.5e38, "1e39", "inf", 2**60, True]
    numbers += [] if alone else [10**400, [1]]
    numbers += ["abc", "1_000", "３", " 1900/1/9 7:00 ", "1900-03-10 00:00:00", "x" * 150, -0.0]
    times = [raw for raw, *_ in POINTS + CLEAN_RANGES + QUIRKY_RANGES] + MISSING_VALUES
    times += [literal for _, literal in QUIRKS]
    times += ["abc", "25:00", "18:30-15:00", "1900/1/9 7:00", 700, 13.5, [1], "1" * 150]
    times += [np.str_("13:30:00"), math.inf]
    return numbers, times


def _quirky_columns(
    rng: np.random.Generator, parser: ProcessLogParser, n: int, alone: bool = False
) -> list[Sequence[Any] | np.ndarray]:
    """Raw columns as ``parse_columns`` may get them: tuples (records), object arrays
    (frames), float arrays (record batches), lists; plain floats and None in most number
    columns, anything in some. With ``alone``, cells each row parses alike alone or in the
    batch (see ``_quirky_cells``; NaN only without a payload, which the batch's block of
    plain columns keeps unless one holds a float beyond float32's range)."""
    numbers, times = _quirky_cells(alone)
    plain = [float(v) for v in rng.normal(100, 80, 20)] + [None, -0.0, 3.4e38]
    plain += [math.nan] if alone else [float(v) for v in _EDGE_VALUES if math.isnan(v)]
    beyond = rng.random() < 0.2  # a float beyond float32 sends every number column to the parser
    columns: list[Sequence[Any] | np.ndarray] = []
    for kind in parser.kinds_:
        mode = rng.random()
        if kind != "number":
            pool = times
        elif mode < 0.6:
            pool = plain + ([1e39] if beyond else [])
        elif mode < 0.8:
            pool = plain + [v for v in numbers if isinstance(v, str)]
        else:
            pool = numbers + plain
        cells = [pool[i] for i in rng.integers(len(pool), size=n)]
        container = rng.random()
        if kind == "number" and mode < 0.6 and container < 0.3:
            dtype = np.float64 if container < 0.2 else np.float32  # float32: not taken as is
            columns.append(np.array([math.nan if v is None else v for v in cells], dtype=dtype))
        elif container < 0.5:
            columns.append(tuple(cells))
        elif container < 0.8:
            column = np.empty(n, dtype=object)
            column[:] = cells
            columns.append(column)
        else:
            columns.append(cells)
    return columns


def _parse(parser: ProcessLogParser, columns: list[Any], n: int) -> Any:
    """The parser's output and report as bits and values, or the exception it raised."""
    try:
        out, report = parser.parse_columns(columns, n)
    except Exception as exc:  # on the cells _quirky_cells leaves out with ``alone``
        return type(exc), str(exc)
    return out.shape, _bits(out.ravel()), report, list(report.absent)


@pytest.mark.parametrize("n", [1, 2, 15])
def test_few_rows_parse_as_the_column_wise_path(
    trained_model: TrainedModel, n: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Below 16 rows cells are parsed one by one in Python; the column-wise path, taken for
    # any batch when its threshold is lowered, must give the same bits, counts and warnings.
    parser = trained_model.pipeline[0]
    rng = np.random.default_rng(n)
    with np.errstate(all="ignore"):
        for _ in range(60):
            columns = _quirky_columns(rng, parser, n)
            few = _parse(parser, columns, n)
            with monkeypatch.context() as patch:
                patch.setattr("yield_model.features._POSITIONS_FROM", 1)
                assert few == _parse(parser, columns, n)


@pytest.mark.parametrize("beyond", [np.float32, np.float64])
def test_the_block_of_plain_columns_is_decided_as_column_wise(
    trained_model: TrainedModel, beyond: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A NaN's payload survives in the block of plain columns, unless one of them holds an
    # infinity; a float32 array is no plain column, so its infinity does not count.
    parser = trained_model.pipeline[0]
    nan = float(_EDGE_VALUES[-1])
    columns: list[Any] = [(nan,) if kind == "number" else ("13:30",) for kind in parser.kinds_]
    columns[0] = np.array([math.inf], dtype=beyond)
    few = _parse(parser, columns, 1)
    monkeypatch.setattr("yield_model.features._POSITIONS_FROM", 1)
    assert few == _parse(parser, columns, 1)
    assert (_bits([nan])[0] in few[1]) is (beyond is np.float32)


@pytest.mark.parametrize("n", [16, 17])
def test_batches_parse_as_their_rows_one_by_one(trained_model: TrainedModel, n: int) -> None:
    # From 16 rows columns are parsed as arrays; each row alone takes the path cell by cell.
    parser = trained_model.pipeline[0]
    rng = np.random.default_rng(n)
    with np.errstate(all="ignore"):
        for _ in range(15):
            columns = _quirky_columns(rng, parser, n, alone=True)
            whole, report = parser.parse_columns(columns, n)
            rows = [parser.parse_columns([c[r : r + 1] for c in columns], 1) for r in range(n)]
            for row, (one, one_report) in enumerate(rows):
                assert _bits(one.ravel()) == _bits(whole[row])
                assert one_report.warnings == [report.warnings[row]]
            for counts in ("absent", "unparseable", "repaired"):
                summed = {
                    name: sum(getattr(one_report, counts)[name] for _, one_report in rows)
                    for name in getattr(report, counts)
                }
                assert summed == getattr(report, counts)


@pytest.mark.parametrize("cut", ["a short column", "a column too few"])
def test_malformed_columns_fail_as_in_the_column_wise_path(
    trained_model: TrainedModel, cut: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    parser = trained_model.pipeline[0]
    columns = _quirky_columns(np.random.default_rng(0), parser, 2)
    columns = [*columns[:-1], columns[-1][:1]] if cut == "a short column" else columns[:-1]
    with pytest.raises((ValueError, IndexError)) as few:
        parser.parse_columns(columns, 2)
    monkeypatch.setattr("yield_model.features._POSITIONS_FROM", 1)
    with pytest.raises((ValueError, IndexError)) as column_wise:
        parser.parse_columns(columns, 2)
    assert (type(few.value), str(few.value)) == (type(column_wise.value), str(column_wise.value))


def test_other_regressors_predict_through_scikit_learn(train_csv: Path) -> None:
    pipeline, card = train(load_dataset(train_csv), TrainingConfig(regressor="ridge"))
    assert compile_pipeline(pipeline) is None
    model = TrainedModel(pipeline, card)
    records = _file_records(train_csv)[:50]
    _assert_same_as_pipeline(model, records)


def test_a_compiled_pipeline_that_disagrees_is_not_used(
    trained_model: TrainedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    honest = CompiledPipeline.predict

    def off_by_a_bit(self: CompiledPipeline, parsed: np.ndarray) -> np.ndarray:
        return np.nextafter(honest(self, parsed), 2.0)

    monkeypatch.setattr(CompiledPipeline, "predict", off_by_a_bit)
    model = TrainedModel(trained_model.pipeline, trained_model.card)
    assert model._compiled is None
    _assert_same_as_pipeline(model, [dict(EXAMPLE_RECORD), {}])


# ---------------------------------------------------------------------------- validation


def _pydantic(records: list[Any]) -> list[Record]:
    return _RECORDS.validate_python(records)


def _same_records(got: Sequence[Record], expected: list[Record]) -> None:
    assert got == expected
    for a, b in zip(got, expected, strict=True):
        assert list(a.__dict__.items()) == list(b.__dict__.items())
        assert [type(v) for v in a.__dict__.values()] == [type(v) for v in b.__dict__.values()]
        assert a.model_fields_set == b.model_fields_set


def _value_variants() -> Iterator[tuple[str, Any]]:
    numbers = [
        None, 0, -0.0, 3, 2**60, 38.5, float("nan"), "38", " 38 ", "\x1c38\u3000", "1e3", "-0",
        "1_000", "nan", " NaN", "", "   ", "1900/3/10 0:00", " 1900/1/9 7:00 ", 3.4e38, "-3.4e38",
    ]  # fmt: skip
    times = [None, "13:30:00", " 13:30:00 ", "", "  ", "6:00-6:30分", "x" * 120]
    for column in ("A6", "A25", "B14"):
        for value in numbers:
            yield column, value
    for column in ("A5", "A20"):
        for value in times:
            yield column, value
    for value in (None, "sample_1", 1528, ""):
        yield "sample_id", value
        yield "样本id", value
    for value in (None, 0.92, "0.92"):
        yield "收率", value
        yield "observed_yield", value


@pytest.mark.parametrize("repeat", [1, 12])
def test_validation_equals_pydantic_for_every_plain_value(repeat: int) -> None:
    # 12 identical key sets take the field-by-field path, 1 the record-by-record one.
    for key, value in _value_variants():
        records = [{**EXAMPLE_RECORD, key: value} for _ in range(repeat)]
        if key == "样本id":
            for record in records:
                del record["sample_id"]
        assert _fast_records(records) is not None, (key, value)  # not left to pydantic
        _same_records(validate_records(records), _pydantic(records))


@pytest.mark.parametrize("n", [1, 5, 8, 40])
def test_validation_equals_pydantic_on_mixed_records(train_csv: Path, n: int) -> None:
    rng = np.random.default_rng(n)
    rows = _file_records(train_csv)[:n]
    _same_records(validate_records(rows), _pydantic(rows))
    mixed = _random_records(rng, n)
    _same_records(validate_records(mixed), _pydantic(mixed))


@pytest.mark.parametrize("repeat", [1, 12])
@pytest.mark.parametrize(
    "bad",
    [
        {"A6": "hot"},
        {"A6": "inf"},
        {"A6": 1e39},
        {"A6": 10**400},
        {"A6": True},
        {"A5": 13.5},
        {"A5": float("nan"), "A6": "x"},
        {"colour": "red"},
        {"sample_id": "a", "样本id": "b"},
        {"sample_id": 1.5},
        {"A20": ["18:30", "19:00"]},
    ],
)
def test_invalid_records_get_pydantic_s_errors(bad: dict[str, Any], repeat: int) -> None:
    records = [dict(EXAMPLE_RECORD) for _ in range(repeat)]
    records[-1] = {**records[-1], **bad}
    try:
        expected: Any = _pydantic(records)
    except Exception as exc:  # pydantic's error, or what its validators raise
        expected = exc
    if isinstance(expected, list):
        _same_records(validate_records(records), expected)
        return
    with pytest.raises((InvalidInputError, type(expected))) as caught:
        validate_records(records)
    if isinstance(caught.value, InvalidInputError):
        problems = [_problem(e) for e in expected.errors()]
        assert caught.value.problems == problems


def test_numeric_columns_parse_alike_as_floats_or_as_text(trained_model: TrainedModel) -> None:
    # Floats and None take one conversion for the block; text goes column by column.
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


# ---------------------------------------------------------------------------- record batches


def _batch(records: list[dict[str, Any]]) -> RecordBatch:
    batch = validate_records(records)
    assert isinstance(batch, RecordBatch)
    return batch


def test_a_batch_behaves_as_the_list_pydantic_builds(train_csv: Path) -> None:
    rows = _file_records(train_csv)[:30]
    batch, expected = _batch(rows), _pydantic(rows)
    assert len(batch) == 30
    assert batch == expected
    assert expected == batch
    assert batch != expected[:-1]
    assert batch.sample_ids == [r.sample_id for r in expected]
    # Indexing before any iteration builds the one record asked for.
    for index in (0, 7, 29, -1, -30):
        _same_records([batch[index]], [expected[index]])
    _same_records(batch[3:9], expected[3:9])
    with pytest.raises(IndexError):
        batch[30]
    _same_records(list(batch), expected)
    _same_records([batch[-2]], [expected[-2]])  # after iterating too
    assert validate_records(batch) is batch


@pytest.mark.parametrize("n", [8, 16, 300])
def test_batches_of_every_plain_value_equal_pydantic(trained_model: TrainedModel, n: int) -> None:
    # Every key a record may send (aliases included), with numeric strings, NaN, blanks,
    # Excel dates and JSON numbers mixed in one column.
    rng = np.random.default_rng(n)
    variants: dict[str, list[Any]] = {}
    for key, value in _value_variants():
        variants.setdefault(key, []).append(value)
    numbers = [v for k, vs in variants.items() if k == "A6" for v in vs]
    records = []
    for i in range(n):
        record = dict(EXAMPLE_RECORD)
        del record["sample_id"]
        record["样本id"] = f"s{i}" if i % 3 else None
        record["收率"] = [None, 0.92, "0.92", " 0.9 "][i % 4]
        for column in NUMERIC_COLUMNS:
            record[column] = numbers[rng.integers(len(numbers))]
        for column in TIME_COLUMNS:
            record[column] = variants["A5"][rng.integers(len(variants["A5"]))]
        records.append(record)
    batch = _batch(records)
    _same_records(batch, _pydantic(records))
    _assert_same_as_pipeline(trained_model, records)


def test_batches_of_json_numbers_equal_pydantic(trained_model: TrainedModel) -> None:
    rng = np.random.default_rng(11)
    records = [
        {**EXAMPLE_RECORD, "A6": float(rng.normal(30, 9)), "A1": int(rng.integers(0, 500))}
        for _ in range(20)
    ]
    records[3]["A6"] = float("nan")
    records[4]["A6"] = -0.0
    records[5]["A1"] = 2**60
    batch = _batch(records)
    assert isinstance(batch.column("A6"), np.ndarray)
    _same_records(batch, _pydantic(records))
    _assert_same_as_pipeline(trained_model, records)


def test_an_excel_date_in_a_numeric_column_stays_text() -> None:
    records = [dict(EXAMPLE_RECORD) for _ in range(10)]
    records[2]["A25"] = " 1900/3/10 0:00 "
    batch = _batch(records)
    assert batch[2].A25 == "1900/3/10 0:00"
    _same_records(batch, _pydantic(records))


def test_batches_with_mixed_key_sets_equal_pydantic(trained_model: TrainedModel) -> None:
    # Equal sizes, different keys: the table cannot be used, record by record can.
    records = [dict(EXAMPLE_RECORD) for _ in range(12)]
    records[5] = {k: v for k, v in records[5].items() if k != "A1"} | {"收率": 0.9}
    assert len(records[5]) == len(records[0])
    got = validate_records(records)
    assert not isinstance(got, RecordBatch)
    _same_records(got, _pydantic(records))
    _assert_same_as_pipeline(trained_model, records)


@pytest.mark.parametrize("column", ["A6", "A5", "sample_id"])
@pytest.mark.parametrize(
    "bad", [True, [1], "x" * 200, "hot", float("inf"), 1.5, 1e39, -(10**400), None, "38.5"]
)
def test_unusual_values_in_a_batch_get_pydantic_s_outcome(column: str, bad: Any) -> None:
    records = [dict(EXAMPLE_RECORD) for _ in range(12)]
    records[9] = {**records[9], column: bad}
    try:
        expected: Any = _pydantic(records)
    except Exception as exc:
        expected = exc
    if isinstance(expected, list):
        _same_records(validate_records(records), expected)
        return
    with pytest.raises(InvalidInputError) as caught:
        validate_records(records)
    assert caught.value.problems == [_problem(e) for e in expected.errors()]


def test_time_columns_parse_alike_through_the_known_cells(trained_model: TrainedModel) -> None:
    # Beyond _POSITIONS_FROM rows a time column is looked up among the cells parsed before;
    # below, cell by cell: both give the same numbers, counts and warnings.
    parser = trained_model.pipeline[0]
    rng = np.random.default_rng(5)
    records = _random_records(rng, 40)
    frame = records_to_frame(validate_records(records))
    columns = [frame[c].to_numpy(dtype=object) for c in frame.columns]
    whole, report = parser.parse_columns(columns, 40)
    for row in range(40):
        one, one_report = parser.parse_columns([c[row : row + 1] for c in columns], 1)
        assert _bits(one.ravel()) == _bits(whole[row])
        assert one_report.warnings == [report.warnings[row]]
    # A cell that cannot be kept (too long, not a string) sends its column cell by cell.
    columns[4] = columns[4].copy()
    columns[4][0], columns[4][1] = "1" * 150, 13.5
    whole, report = parser.parse_columns(columns, 40)
    assert report.warnings[0][0].startswith("A5: could not parse '1111")
    for row in range(40):
        one, one_report = parser.parse_columns([c[row : row + 1] for c in columns], 1)
        assert _bits(one.ravel()) == _bits(whole[row])
        assert one_report.warnings == [report.warnings[row]]


def test_concurrent_batches_predict_as_alone(trained_model: TrainedModel) -> None:
    # The known cells are shared by all threads: each request reads one consistent state.
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


@pytest.mark.parametrize("count", [1, 7, 8, 50])
def test_sample_ids_are_those_of_the_validated_records(count: int) -> None:
    raw = [{**EXAMPLE_RECORD, "sample_id": f"s{i}"} for i in range(count)]
    raw[-1]["sample_id"] = None
    records = validate_records(raw)
    assert (type(records) is RecordBatch) is (count >= 8)
    assert sample_ids(records) == [*(f"s{i}" for i in range(count - 1)), None]
    assert sample_ids(records) == [record.sample_id for record in list(records)]
    assert sample_ids(list(records)) == sample_ids(records)


@pytest.mark.parametrize("count", [1, 12])
def test_an_integer_beyond_any_float_is_an_input_error_naming_the_field(count: int) -> None:
    records = [dict(EXAMPLE_RECORD) for _ in range(count)]
    records[-1]["B14"] = 10**400
    with pytest.raises(InvalidInputError) as caught:
        validate_records(records)
    (problem,) = caught.value.problems
    assert (problem.index, problem.field) == (count - 1, "B14")
    assert "between -3.4e38 and 3.4e38" in problem.message
