"""The feature transformers: estimator contract, every quirk, step durations, constants."""

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from yield_model.columns import FEATURE_COLUMNS, TIME_POINT_COLUMNS, TIME_RANGE_COLUMNS
from yield_model.data import load_dataset
from yield_model.datasets import QUIRKS
from yield_model.features import (
    AmountRatio,
    DropNearConstant,
    ProcessLogParser,
    StepDurations,
    step_duration_names,
)


@parametrize_with_checks(  # type: ignore[misc]
    [
        ProcessLogParser(),
        StepDurations(),
        AmountRatio(numerator="x0", denominators=("x0",)),
        DropNearConstant(),
    ]
)
def test_sklearn_estimator_contract(estimator, check) -> None:  # type: ignore[no-untyped-def]
    check(estimator)


def _parser(frame: pd.DataFrame) -> ProcessLogParser:
    return ProcessLogParser(TIME_POINT_COLUMNS, TIME_RANGE_COLUMNS).fit(frame)


@pytest.fixture(scope="module")
def raw_train(train_csv: Path) -> pd.DataFrame:
    return load_dataset(train_csv).frame[list(FEATURE_COLUMNS)]


def test_every_quirk_of_the_generated_file_is_repaired_or_reported(
    raw_train: pd.DataFrame,
) -> None:
    parser = _parser(raw_train)
    out, report = parser.transform_with_report(raw_train)
    names = list(parser.get_feature_names_out())
    assert out.shape == (len(raw_train), len(names))
    for column, raw in QUIRKS:
        rows = np.flatnonzero(raw_train[column].to_numpy() == raw)
        assert len(rows), (column, raw)
        for row in rows:
            said = [w for w in report.warnings[row] if w.startswith(f"{column}: ")]
            # A quirk is repaired ("read ... as"), treated as missing (said so), or, for a
            # legal if unusual form such as 24:00, read without a word; never an exception.
            assert len(said) <= 1, (column, raw, report.warnings[row])
            value = out[row, names.index(column if column in names else f"{column}_start")]
            if said and "treated as missing" in said[0]:
                if column not in TIME_RANGE_COLUMNS:
                    assert math.isnan(value)
            else:
                assert not math.isnan(value), (column, raw)


@pytest.mark.parametrize(
    ("column", "raw", "expected"),
    [
        ("A20", "6:00-6:30分", (6.0, 0.5)),
        ("A20", "23:00-0:30", (23.0, 1.5)),
        ("B4", "23:00-24:00", (23.0, 1.0)),
        ("B4", "24:00-1:00", (0.0, 1.0)),
        ("B9", "13；00-14:00", (13.0, 1.0)),
        ("B10", "14::30-15:30", (14.5, 1.0)),
        ("B11", '22"00-0:00', (22.0, 2.0)),
        ("A28", "21:30-23:0", (21.5, 1.5)),
        ("A28", "18:30-15:00", (18.5, math.nan)),
        ("A5", "1900/1/9 7:00", (7.0,)),
        ("A9", "700", (7.0,)),
        ("A5", ":30:00", (math.nan,)),
        ("A25", "1900/3/10 0:00", (70.0,)),
        ("A25", "75", (75.0,)),
    ],
)
def test_quirks_become_numbers_or_missing(
    raw_train: pd.DataFrame, column: str, raw: str, expected: tuple[float, ...]
) -> None:
    parser = _parser(raw_train)
    row = raw_train.iloc[:1].copy()
    row[column] = raw
    names = list(parser.get_feature_names_out())
    out = parser.transform(row)[0]
    got = (
        (out[names.index(f"{column}_start")], out[names.index(f"{column}_duration")])
        if column in TIME_RANGE_COLUMNS
        else (out[names.index(column)],)
    )
    np.testing.assert_allclose(got, expected, equal_nan=True)


def test_missing_counts_and_set_output(raw_train: pd.DataFrame) -> None:
    parser = _parser(raw_train).set_output(transform="pandas")
    frame = parser.transform(raw_train)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == list(parser.get_feature_names_out())
    _, report = parser.transform_with_report(raw_train)
    # Absent counts are exactly the empty cells of the file.
    assert report.absent == {c: int(raw_train[c].isna().sum()) for c in FEATURE_COLUMNS}


def test_time_columns_must_exist() -> None:
    with pytest.raises(ValueError, match="time columns not in the input: A5"):
        ProcessLogParser(time_points=["A5"]).fit(pd.DataFrame({"A6": ["1"]}))


def test_step_durations_cross_midnight_and_skip_missing_stamps() -> None:
    frame = pd.DataFrame(
        {
            "A5": [22.0, 1.0],
            "A7": [np.nan, 2.0],
            "A20_start": [23.5, 3.0],
            "A20_duration": [1.0, 0.5],
            "B5": [1.0, 4.0],
        }
    )
    steps = StepDurations(stamps=["A5", "A7", "A20", "B5"]).set_output(transform="pandas")
    out = steps.fit_transform(frame)
    assert list(steps.get_feature_names_out()) == [
        *frame.columns, "A7_gap", "A20_gap", "B5_gap", "total_hours",
    ]  # fmt: skip
    # Row 0: A7 unknown, so A20 is measured from A5 (22:00 -> 23:30), B5 from A20's end
    # (0:30 -> 1:00); total 1.5 + 1.0 + 0.5 = 3 h.
    np.testing.assert_allclose(out.iloc[0, 5:].to_numpy(float), [np.nan, 1.5, 0.5, 3.0])
    np.testing.assert_allclose(out.iloc[1, 5:].to_numpy(float), [1.0, 1.0, 0.5, 3.0])


def test_a_step_that_starts_as_the_previous_one_ends_has_no_gap() -> None:
    # 0:10 for 70 minutes ends at 1:20, when B5 starts; in hours 1/6 + 7/6 is not exactly 4/3,
    # and the gap must not read as the 24 hours that wrapping a rounding error would give.
    frame = pd.DataFrame({"B4_start": [10 / 60], "B4_duration": [70 / 60], "B5": [80 / 60]})
    out = StepDurations(stamps=["B4", "B5"]).fit_transform(frame)
    assert out[0, 3] == 0.0
    assert out[0, 4] == pytest.approx(70 / 60, abs=1e-12)


def test_drop_near_constant_learns_which_columns_to_keep() -> None:
    n = 200
    frame = pd.DataFrame(
        {
            "constant": np.full(n, 0.2),
            "mostly_missing": np.r_[np.full(n - 1, np.nan), 125.0],
            "varied": np.arange(n, dtype=float),
            "two_values": np.r_[np.zeros(n // 2), np.ones(n // 2)],
        }
    )
    dropper = DropNearConstant(max_share=0.99).fit(frame)
    assert list(dropper.get_feature_names_out()) == ["varied", "two_values"]
    assert dropper.transform(frame).shape == (n, 2)
    with pytest.raises(ValueError, match="max_share"):
        DropNearConstant(max_share=0).fit(frame)


def test_a_parser_given_its_columns_reads_frames_by_name_and_arrays_in_order(
    raw_train: pd.DataFrame,
) -> None:
    # Given a parser told its columns, fitted on a frame
    parser = ProcessLogParser(TIME_POINT_COLUMNS, TIME_RANGE_COLUMNS, columns=FEATURE_COLUMNS)
    parser.fit(raw_train)
    rows = raw_train.iloc[:30]
    expected, report = parser.transform_with_report(rows)
    # When the same rows come with their columns shuffled and one more, or as plain cells
    shuffled = rows[list(reversed(FEATURE_COLUMNS))].assign(收率=0.9)
    cells = rows.to_numpy(dtype=object)
    # Then they parse alike, without scikit-learn's feature-name warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for same in (shuffled, cells):
            parsed, same_report = parser.transform_with_report(same)
            assert np.array_equal(parsed, expected, equal_nan=True)
            assert same_report == report
    assert not hasattr(parser, "feature_names_in_")
    with pytest.raises(ValueError, match="columns missing from the input: A5, B14"):
        parser.transform(rows.drop(columns=["A5", "B14"]))
    with pytest.raises(ValueError, match="X has 41 features, but ProcessLogParser is expecting 42"):
        parser.transform(cells[:, 1:])


def test_the_amount_ratio_is_what_came_out_per_what_went_in() -> None:
    columns = ["B14", "A1", "A3", "other"]
    ratio = AmountRatio(numerator="B14", denominators=("A1", "A3"), columns=columns)
    X = np.array(
        [[400.0, 300.0, 100.0, 1.0], [400.0, 300.0, np.nan, 1.0], [np.nan, 300.0, 100.0, 1.0],
         [400.0, 0.0, np.nan, 1.0], [400.0, -300.0, 100.0, 1.0]]
    )  # fmt: skip
    out = ratio.fit(X).transform(X)
    # A missing material counts as none; no ratio without a product or a positive total.
    assert np.array_equal(out[:, :4], X, equal_nan=True)
    assert out[:2, 4].tolist() == [1.0, 400.0 / 300.0]
    assert np.isnan(out[2:, 4]).all()
    assert list(ratio.get_feature_names_out()) == [*columns, "B14_per_A1_A3"]
    with pytest.raises(ValueError, match="ratio columns not in the input: B15"):
        AmountRatio(numerator="B15", denominators=("A1",), columns=columns).fit(X)


def test_duration_names_are_known_before_fitting() -> None:
    columns = ["A5", "A20_start", "A20_duration", "B14"]
    durations = StepDurations(stamps=["A5", "A20"], columns=columns).fit(np.zeros((1, 4)))
    expected = list(durations.get_feature_names_out())
    assert step_duration_names(columns, ["A5", "A20"]) == expected
    assert expected[-2:] == ["A20_gap", "total_hours"]
