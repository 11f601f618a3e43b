"""The compiled steps: the same numbers as scikit-learn's steps, bit for bit, or not used."""

import logging
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from yield_model import compiled
from yield_model.columns import FEATURE_COLUMNS, TARGET_COLUMN
from yield_model.config import TrainingConfig
from yield_model.data import load_dataset
from yield_model.pipeline import build_pipeline
from yield_model.predict import COMPILED_MAX_ROWS, TrainedModel, records_to_frame
from yield_model.schemas import validate_records

REAL_TRAINING_FILE = Path(__file__).parents[3] / "shared/data/jinnan_round1_train_20181227.csv"


def _parsed(model: TrainedModel, frame: pd.DataFrame) -> np.ndarray:
    parsed: np.ndarray = model.pipeline[0].transform(frame)
    return parsed


def _training_frame(path: Path) -> tuple[pd.DataFrame, pd.Series]:
    data = load_dataset(path).frame
    return data[list(FEATURE_COLUMNS)], data[TARGET_COLUMN]


def _n_parsed(model: TrainedModel) -> int:
    return len(model.pipeline[0].get_feature_names_out())


def test_the_packaged_kind_of_model_predicts_with_the_compiled_steps(
    trained_model: TrainedModel,
) -> None:
    assert trained_model.engine == "compiled"


def test_compiled_steps_equal_scikit_learn_on_every_row_of_a_file(
    trained_model: TrainedModel, test_csv: tuple[Path, Path]
) -> None:
    frame = pd.read_csv(test_csv[0], encoding="gb18030")
    parsed = _parsed(trained_model, frame)
    tail = compiled.compile_tail(trained_model.pipeline[1:])
    assert tail is not None
    expected = trained_model.pipeline[1:].predict(parsed)
    assert tail(parsed).view(np.int64).tolist() == expected.view(np.int64).tolist()
    # A row alone, as a request of one record sends it.
    for row in range(0, len(parsed), 37):
        assert tail(parsed[row : row + 1]).view(np.int64)[0] == expected.view(np.int64)[row]


@pytest.mark.skipif(not REAL_TRAINING_FILE.exists(), reason="the published training file")
def test_compiled_steps_equal_scikit_learn_for_a_model_of_the_plants_data() -> None:
    frame, y = _training_frame(REAL_TRAINING_FILE)
    pipeline = build_pipeline(TrainingConfig()).fit(frame, y)
    parsed = pipeline[0].transform(frame)
    missing_more = parsed.copy()
    missing_more[np.random.default_rng(3).random(parsed.shape) < 0.3] = np.nan
    tail = compiled.verified_tail(pipeline[1:], parsed.shape[1])
    assert tail is not None
    for rows in (parsed, missing_more):
        assert np.array_equal(tail(rows), pipeline[1:].predict(rows))


@pytest.mark.parametrize("n", [COMPILED_MAX_ROWS, COMPILED_MAX_ROWS + 1])
def test_batches_on_either_side_of_the_compiled_limit_predict_alike(
    trained_model: TrainedModel, test_csv: tuple[Path, Path], n: int
) -> None:
    frame = pd.read_csv(test_csv[0], encoding="gb18030")
    rows = frame[list(FEATURE_COLUMNS)].iloc[np.arange(n) % len(frame)]
    records = [{k: v for k, v in r.items() if pd.notna(v)} for r in rows.to_dict("records")]
    expected = trained_model.pipeline.predict(records_to_frame(validate_records(records)))
    got = trained_model.predict(records).predictions
    assert np.asarray(got).view(np.int64).tolist() == expected.view(np.int64).tolist()


@pytest.mark.parametrize(
    ("regressor", "amount_ratio"), [("gbr", True), ("et", False), ("rf", True)]
)
def test_each_kind_of_tree_ensemble_compiles_bit_for_bit(
    trained_model: TrainedModel, train_csv: Path, regressor: str, amount_ratio: bool
) -> None:
    frame, y = _training_frame(train_csv)
    config = TrainingConfig(regressor=regressor, amount_ratio=amount_ratio)  # type: ignore[arg-type]
    pipeline = build_pipeline(config).fit(frame, y)
    model = TrainedModel(pipeline, trained_model.card)
    assert model.engine == "compiled"
    parsed = pipeline[0].transform(frame)
    parsed[np.random.default_rng(5).random(parsed.shape) < 0.2] = np.nan
    tail = compiled.compile_tail(pipeline[1:])
    assert tail is not None
    assert (
        tail(parsed).view(np.int64).tolist() == pipeline[1:].predict(parsed).view(np.int64).tolist()
    )


def test_the_average_is_scikit_learns_for_one_row_and_for_many(
    trained_model: TrainedModel,
) -> None:
    # The packaged kind: a vote of boosting and extremely randomised trees.
    vote = trained_model.pipeline[-1][-1]
    assert [type(e).__name__ for e in vote.estimators_] == [
        "GradientBoostingRegressor",
        "ExtraTreesRegressor",
    ]
    tail = compiled.compile_tail(trained_model.pipeline[1:])
    assert tail is not None
    rows = compiled._probe_rows(trained_model.pipeline[1:], _n_parsed(trained_model))
    expected = trained_model.pipeline[1:].predict(rows)
    assert tail(rows).view(np.int64).tolist() == expected.view(np.int64).tolist()
    for row in range(0, len(rows), 61):
        assert tail(rows[row : row + 1]).view(np.int64)[0] == expected.view(np.int64)[row]


def test_forests_on_several_jobs_and_weighted_votes_are_not_compiled(
    trained_model: TrainedModel,
) -> None:
    # Threads add a forest's trees in the order they finish; a weighted vote is not built.
    steps = trained_model.pipeline[1:]
    vote = steps[-1][-1]
    parallel = clone_fitted(steps)
    parallel[-1][-1].estimators_[1].set_params(n_jobs=2)
    assert compiled.compile_tail(parallel) is None
    weighted = clone_fitted(steps)
    weighted[-1][-1].set_params(weights=[0.4, 0.6])
    assert compiled.compile_tail(weighted) is None
    assert vote.estimators_[1].n_jobs == 1


def clone_fitted(steps: object) -> object:
    """A deep copy of fitted steps, to change a parameter without touching the model."""
    return pickle.loads(pickle.dumps(steps))


def test_other_regressors_predict_with_scikit_learn_alone(
    trained_model: TrainedModel, train_csv: Path
) -> None:
    frame, y = _training_frame(train_csv)
    pipeline = build_pipeline(TrainingConfig(regressor="ridge")).fit(frame, y)
    assert compiled.compile_tail(pipeline[1:]) is None
    encoded = build_pipeline(TrainingConfig(target_encoding=True)).fit(frame, y)
    assert compiled.compile_tail(encoded[1:]) is None
    model = TrainedModel(pipeline, trained_model.card)
    assert model.engine == "scikit-learn"
    rows = frame.head(3).to_dict("records")
    records = [{k: v for k, v in r.items() if pd.notna(v)} for r in rows]
    expected = pipeline.predict(records_to_frame(validate_records(records)))
    assert model.predict(records).predictions == expected.tolist()


def test_compiled_steps_that_disagree_with_scikit_learn_are_not_used(
    trained_model: TrainedModel, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = compiled.compile_tail

    def off_by_one_ulp(steps: object) -> compiled.Tail | None:
        tail = real(steps)  # type: ignore[arg-type]
        assert tail is not None
        return lambda X: np.nextafter(tail(X), np.inf)

    monkeypatch.setattr(compiled, "compile_tail", off_by_one_ulp)
    with caplog.at_level(logging.WARNING, logger="yield_model.compiled"):
        assert compiled.verified_tail(trained_model.pipeline[1:], _n_parsed(trained_model)) is None
    assert "differ from scikit-learn's" in caplog.text
