"""Drift: the population stability index against the card's reference bins."""

import math

import numpy as np
import pandas as pd
import pytest

from yield_model import datasets
from yield_model.card import FeatureReference, feature_reference
from yield_model.columns import FEATURE_COLUMNS
from yield_model.drift import (
    PREDICTED_YIELD,
    PSI_ACT,
    PSI_WATCH,
    SHARE_FLOOR,
    bin_shares,
    drift_scores,
    engineered_features,
    population_stability_index,
    window_drift,
)
from yield_model.predict import TrainedModel

THIRDS = FeatureReference(edges=[1.0, 2.0], proportions=[0.25, 0.5, 0.25], missing_share=0.0)


def records_of(frame: pd.DataFrame) -> list[dict[str, object]]:
    """A generated file's rows as the API receives them: raw cells, None for blanks."""
    cells = frame[list(FEATURE_COLUMNS)].astype(object)
    return cells.where(cells.notna(), None).to_dict("records")  # type: ignore[return-value]


def test_psi_is_the_formula_over_the_reference_bins_and_a_missing_bin() -> None:
    # Given values in each bin: 1.0 sits on an edge, so in the lower bin, as in training
    values = [1.0, 1.5, 2.0, 2.5, math.nan]
    # When
    expected, actual = bin_shares(THIRDS, values)
    psi = population_stability_index(THIRDS, values)
    # Then
    assert expected.tolist() == [0.25, 0.5, 0.25, 0.0]
    assert actual.tolist() == [0.2, 0.4, 0.2, 0.2]
    by_hand = (
        (0.2 - 0.25) * math.log(0.2 / 0.25)
        + (0.4 - 0.5) * math.log(0.4 / 0.5)
        + (0.2 - 0.25) * math.log(0.2 / 0.25)
        # the missing bin, empty in training, counts at the floor share
        + (0.2 - SHARE_FLOOR) * math.log(0.2 / SHARE_FLOOR)
    )
    assert psi == pytest.approx(by_hand, rel=1e-12)


def test_a_window_distributed_as_in_training_has_zero_psi() -> None:
    assert population_stability_index(THIRDS, [0.0, 1.5, 1.7, 3.0]) == 0.0


def test_training_values_fall_into_the_bins_with_the_proportions_the_card_records() -> None:
    # Given a feature with ties, values on the edges and missing values, as real columns have
    rng = np.random.default_rng(4)
    values = rng.choice([20.0, 25.0, 30.0, 31.0, 35.5, 40.0, math.nan], size=997)
    # When the card's reference is built from them and they are binned against it
    reference = feature_reference(values, n_bins=10)
    expected, actual = bin_shares(reference, values)
    # Then every value lands in the bin it was counted in at training time
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-15)
    assert population_stability_index(reference, values) == pytest.approx(0.0, abs=1e-15)


def test_missing_values_count_as_their_own_bin() -> None:
    half_missing = FeatureReference(edges=[1.0], proportions=[0.5, 0.5], missing_share=0.5)
    # a window with no value missing: the missing bin drops from 0.5 to the floor
    psi = population_stability_index(half_missing, [0.0, 0.0, 5.0, 5.0])
    by_hand = 2 * (0.5 - 0.25) * math.log(0.5 / 0.25) + (SHARE_FLOOR - 0.5) * math.log(
        SHARE_FLOOR / 0.5
    )
    assert psi == pytest.approx(by_hand, rel=1e-12)


def test_a_feature_always_missing_in_training_drifts_when_it_shows_up() -> None:
    never = FeatureReference(edges=[], proportions=[], missing_share=1.0)
    assert population_stability_index(never, [math.nan] * 3) == 0.0
    # half the window is known (training: never), half missing (training: always)
    by_hand = (0.5 - SHARE_FLOOR) * math.log(0.5 / SHARE_FLOOR) + (0.5 - 1) * math.log(0.5 / 1)
    assert population_stability_index(never, [1.0, math.nan]) == pytest.approx(by_hand, rel=1e-12)


@pytest.mark.parametrize("values", [[], [[1.0, 2.0]]], ids=["empty", "two-dimensional"])
def test_a_window_must_be_a_non_empty_list_of_values(values: list[list[float]]) -> None:
    with pytest.raises(ValueError, match="non-empty one-dimensional"):
        bin_shares(THIRDS, values)


def test_a_reference_with_mismatched_bins_is_refused() -> None:
    broken = FeatureReference(edges=[1.0], proportions=[1.0], missing_share=0.0)
    with pytest.raises(ValueError, match="1 edges but 1 proportions"):
        bin_shares(broken, [1.0])


def test_drift_scores_every_column_and_refuses_one_without_reference() -> None:
    scores = drift_scores({"a": THIRDS, "b": THIRDS}, {"a": [0.0, 1.5, 1.7, 3.0]})
    assert scores == {"a": 0.0}
    with pytest.raises(KeyError, match="no reference for c"):
        drift_scores({"a": THIRDS}, {"a": [1.0], "c": [1.0]})


def test_engineered_features_are_the_columns_the_card_references(
    trained_model: TrainedModel,
) -> None:
    records = records_of(datasets.generate(50, seed=9).frame)
    features = engineered_features(trained_model, records)
    assert [*features, PREDICTED_YIELD] == list(trained_model.card.reference)
    assert all(len(column) == 50 for column in features.values())


# Window size for the generator tests. With n window values, m = 1396 training values (the
# reference) and k <= 11 bins, the PSI of an unmoved feature is about chi2(k - 1) * (1/n + 1/m);
# its 1 - 0.001/66 quantile (all 66 references at once, at odds of 1 in 1000) is 0.049 for
# n = 2000, well under PSI_WATCH. A shift of a bin or more moves much of the mass: PSI > PSI_ACT.
WINDOW = 2000
# Engineered features that the shifted variant moves: A6 by 10 degrees, B14 by -30, B4's
# duration by half an hour. The steps after B4 start half an hour later: their clock times move
# too (the plant's batches start at set hours, so their clock times are far from uniform), as
# does total_hours, the sum of every step's duration; the predicted yield follows the inputs.
SHIFTED = {"A6", "B14", "B4_duration"}
FOLLOWING = set(datasets.SHIFTED_CLOCKS)
DERIVED = {"total_hours", PREDICTED_YIELD}


@pytest.fixture(scope="module")
def generated_drift(trained_model: TrainedModel) -> dict[bool, dict[str, float]]:
    """PSI of every reference over a fresh generated window, plain and shifted (same seed)."""
    scores = {}
    for shifted in (False, True):
        frame = datasets.generate(WINDOW, seed=3, shifted=shifted).frame
        records = records_of(frame)
        predictions = trained_model.predict(records).predictions
        scores[shifted] = window_drift(trained_model, records, predictions)
    return scores


def test_generated_data_like_the_training_data_shows_no_drift(
    generated_drift: dict[bool, dict[str, float]],
) -> None:
    plain = generated_drift[False]
    assert max(plain.values()) < PSI_WATCH, sorted(plain.items(), key=lambda kv: -kv[1])[:3]


def test_the_shifted_variant_moves_the_shifted_features_past_the_act_threshold_only(
    trained_model: TrainedModel, generated_drift: dict[bool, dict[str, float]]
) -> None:
    shifted = generated_drift[True]
    assert set(shifted) == set(trained_model.card.reference)
    assert {name.split("_")[0] for name in SHIFTED} == set(datasets.SHIFTED_FEATURES)
    moved = {name: psi for name, psi in shifted.items() if name in SHIFTED | FOLLOWING}
    assert len(moved) == 8
    assert all(psi > PSI_ACT for psi in moved.values()), moved
    unmoved = {
        name: psi for name, psi in shifted.items() if name not in SHIFTED | FOLLOWING | DERIVED
    }
    assert len(unmoved) == len(shifted) - 10
    assert max(unmoved.values()) < PSI_WATCH, sorted(unmoved.items(), key=lambda kv: -kv[1])[:3]
