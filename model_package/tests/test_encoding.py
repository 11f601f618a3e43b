"""Target encoding with rare values pooled: one value however it is written, rare ones shared."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from yield_model.encoding import POOLED, RareValuePooling, with_target_encoding
from yield_model.pipeline import build_pipeline
from yield_model.predict import records_to_frame
from yield_model.schemas import validate_records


@parametrize_with_checks([RareValuePooling(max_values=30, min_count=1)])  # type: ignore[misc]
def test_sklearn_estimator_contract(estimator, check) -> None:  # type: ignore[no-untyped-def]
    check(estimator)


def test_rare_and_unseen_values_share_one_category() -> None:
    # Given a column of 3 values (one seen twice), a column of 12 and a constant one
    low = [1.0] * 6 + [2.0] * 6 + [3.0] * 2
    X = np.column_stack([low, np.arange(14.0) % 12, np.full(14, 7.0)])
    pooling = RareValuePooling(max_values=10, min_count=5).fit(X)
    # Then only the first column is kept, and its frequent values are 1 and 2
    assert pooling.columns_.tolist() == [0]
    assert pooling.frequent_[0].tolist() == [1.0, 2.0]
    out = pooling.transform(np.array([[1.0, 0, 7], [3.0, 0, 7], [9.0, 0, 7], [np.nan, 0, 7]]))
    assert out[:3, 0].tolist() == [1.0, POOLED, POOLED]
    assert np.isnan(out[3, 0])


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_values must be at least 2"):
        RareValuePooling(max_values=1).fit(np.zeros((3, 1)))


def test_a25_encodes_alike_as_text_number_or_excel_date() -> None:
    # Given A25 as the training file writes it ('70'), as other files do (70.0) and as an
    # Excel artefact ('1900/3/10 0:00'), parsed as the pipeline parses it

    parser = build_pipeline()[0]
    rng = np.random.default_rng(0)
    values = ["70", "80", "70", "80"] * 10
    records = [{"A25": v, "A6": float(rng.normal(30, 5))} for v in values]
    y = np.array([0.93 if v == "70" else 0.90 for v in values]) + rng.normal(0, 0.001, 40)
    parsed = parser.fit(records_to_frame(validate_records(records))).transform(
        records_to_frame(validate_records(records))
    )
    a25 = list(parser.get_feature_names_out()).index("A25")
    union = with_target_encoding(seed=0, max_values=10, min_count=5).fit(parsed, y)
    asked = records_to_frame(validate_records([{"A25": v} for v in ("70", 70.0, "1900/3/10 0:00")]))
    encoded = union.transform(parser.transform(asked))
    # Then the three are one value, with one encoding near the yield of its batches
    assert encoded[:, a25].tolist() == [70.0, 70.0, 70.0]
    assert encoded[0, -1] == encoded[1, -1] == encoded[2, -1]
    assert encoded[0, -1] == pytest.approx(0.93, abs=0.002)
