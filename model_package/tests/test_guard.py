"""The out-of-range guard: what training never saw is treated as missing, and said so."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from yield_model.columns import FEATURE_COLUMNS, NUMERIC_COLUMNS, TARGET_COLUMN
from yield_model.config import TrainingConfig
from yield_model.data import load_dataset
from yield_model.guard import OutOfRangeGuard, describe_range
from yield_model.pipeline import build_pipeline
from yield_model.predict import TrainedModel
from yield_model.schemas import EXAMPLE_RECORD

REAL_TRAINING_FILE = Path(__file__).parents[3] / "shared/data/jinnan_round1_train_20181227.csv"


@parametrize_with_checks([OutOfRangeGuard()])  # type: ignore[misc]
def test_sklearn_estimator_contract(estimator, check) -> None:  # type: ignore[no-untyped-def]
    check(estimator)


def _bits(values: object) -> list[int]:
    return np.asarray(values, dtype=np.float64).view(np.int64).tolist()  # type: ignore[no-any-return]


def test_values_beyond_the_widened_range_become_missing() -> None:
    # Given B14 trained on 40-460 (width 420: accepted -170 to 670) and a constant column
    X = np.array([[40.0, 5.0, 1.0], [460.0, 5.0, 2.0], [400.0, 5.0, np.nan]])
    guard = OutOfRangeGuard(features=["B14", "A2"], columns=["B14", "A2", "other"]).fit(X)
    assert guard.ranges() == {
        "B14": (40.0, 460.0, -170.0, 670.0),
        "A2": (5.0, 5.0, -math.inf, math.inf),
    }
    # When values at, just beyond and far beyond the limits arrive
    rows = np.array(
        [[670.0, 9.0, 99.0], [np.nextafter(670.0, 1000.0), 5.0, 0.0], [785.0, 1e9, np.nan],
         [-170.0, -1e9, 0.0], [-170.5, 5.0, 0.0], [np.nan, np.nan, 0.0]]
    )  # fmt: skip
    out = guard.transform(rows)
    # Then only the guarded column's values beyond its limits are missing
    assert np.isnan(out[:, 0]).tolist() == [False, True, True, False, True, True]
    assert _bits(out[:, 1:]) == _bits(rows[:, 1:])  # a constant column is not guarded
    report = guard.report(rows)
    assert report.out_of_range == {"B14": 3, "A2": 0}
    assert report.warnings[2] == [
        "B14: 785 is outside the training range 40-460, treated as missing"
    ]
    assert report.warnings[4] == [
        "B14: -170.5 is outside the training range 40-460, treated as missing"
    ]
    assert report.warnings[0] == report.warnings[3] == report.warnings[5] == []


def test_a_range_below_zero_is_written_with_to() -> None:
    assert describe_range(-5.0, 3.5) == "-5 to 3.5"
    assert describe_range(0.0, 1200.0) == "0-1200"


def test_a_column_never_seen_has_no_range_and_is_not_guarded() -> None:
    X = np.array([[np.nan, 1.0], [np.nan, 2.0]])
    guard = OutOfRangeGuard(columns=["A2", "A3"]).fit(X)
    assert guard.ranges() == {"A3": (1.0, 2.0, 0.5, 2.5)}
    assert guard.report(np.array([[1e9, 2.5]])).out_of_range == {"A2": 0, "A3": 0}


def test_widening_must_not_be_negative_and_guarded_columns_must_exist() -> None:
    with pytest.raises(ValueError, match="widen must be at least 0"):
        OutOfRangeGuard(widen=-0.1).fit(np.zeros((2, 1)))
    with pytest.raises(ValueError, match="guarded columns not in the input: B15"):
        OutOfRangeGuard(features=["B15"], columns=["B14"]).fit(np.zeros((2, 1)))


def test_the_card_records_the_training_range_of_every_numeric_input(
    trained_model: TrainedModel, train_csv: Path
) -> None:
    frame = load_dataset(train_csv).frame
    fitted = frame[frame[TARGET_COLUMN] > 0.87]
    ranges = trained_model.card.input_ranges
    parsed = trained_model.pipeline[0].transform(fitted[list(FEATURE_COLUMNS)])
    names = list(trained_model.pipeline[0].get_feature_names_out())
    for column in NUMERIC_COLUMNS:
        values = parsed[:, names.index(column)]
        values = values[~np.isnan(values)]
        if not len(values):
            assert column not in ranges
            continue
        found = ranges[column]
        assert (found.minimum, found.maximum) == (values.min(), values.max())
        width = values.max() - values.min()
        if width:
            assert (found.lowest, found.highest) == (
                values.min() - 0.5 * width,
                values.max() + 0.5 * width,
            )
        else:
            assert found.lowest is found.highest is None
    assert not set(ranges) - set(NUMERIC_COLUMNS)


def test_an_impossible_value_predicts_as_missing_and_is_named(
    trained_model: TrainedModel,
) -> None:
    # Given the plant's typo: B14 = 785 against a training range of about 40-460
    B14 = trained_model.card.input_ranges["B14"]
    assert B14.highest is not None
    typo = {**EXAMPLE_RECORD, "B14": 785}
    missing = {**EXAMPLE_RECORD, "B14": None}
    edge = {**EXAMPLE_RECORD, "B14": B14.highest}
    # When the three are predicted together and the typo alone
    result = trained_model.predict([typo, missing, edge])
    alone = trained_model.predict([typo])
    # Then the typo predicts exactly as a missing B14, with a warning naming the range;
    # the highest accepted value is read as it is
    assert _bits(result.predictions[0]) == _bits(result.predictions[1])
    assert _bits(alone.predictions) == _bits(result.predictions[:1])
    known = describe_range(B14.minimum, B14.maximum)
    assert result.warnings[0] == [
        f"B14: 785 is outside the training range {known}, treated as missing"
    ]
    assert result.warnings[1] == result.warnings[2] == []
    assert result.out_of_range["B14"] == 1
    assert sum(result.out_of_range.values()) == 1
    assert result.absent["B14"] == 1  # the missing one; the typo was present
    assert result.predictions[2] != result.predictions[1]


def test_guard_warnings_follow_the_parsers(trained_model: TrainedModel) -> None:
    record = {**EXAMPLE_RECORD, "A9": "700", "A6": 1e6, "B14": 1e6}
    (warnings,) = trained_model.predict([record]).warnings
    assert warnings[0].startswith("A9: read ")
    assert [w.split(":")[0] for w in warnings[1:]] == ["A6", "B14"]
    assert all("is outside the training range" in w for w in warnings[1:])


@pytest.mark.skipif(not REAL_TRAINING_FILE.exists(), reason="the published training file")
def test_the_plants_typo_is_named_by_a_model_of_the_plants_data(
    trained_model: TrainedModel,
) -> None:
    # Given the packaged pipeline fitted on the plant's training rows
    data = load_dataset(REAL_TRAINING_FILE).frame
    fitted = data[data[TARGET_COLUMN] > 0.87]
    pipeline = build_pipeline(TrainingConfig()).fit(
        fitted[list(FEATURE_COLUMNS)], fitted[TARGET_COLUMN]
    )
    assert pipeline.named_steps["guard"].ranges()["B14"] == (40.0, 460.0, -170.0, 670.0)
    model = TrainedModel(pipeline, trained_model.card)
    assert model.engine == "compiled"
    # When a batch of the plant arrives with B14 = 785, as one of competition test A did
    record = {k: v for k, v in fitted[list(FEATURE_COLUMNS)].iloc[0].items() if pd.notna(v)}
    result = model.predict([{**record, "B14": 785}, {**record, "B14": None}])
    # Then it is named, and predicted as if B14 were missing
    assert result.warnings[0][-1] == (
        "B14: 785 is outside the training range 40-460, treated as missing"
    )
    assert _bits(result.predictions[0]) == _bits(result.predictions[1])
