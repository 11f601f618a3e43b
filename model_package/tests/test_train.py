"""Training: reproducibility, the yield filter, the model card, accuracy, the command line."""

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from yield_model import __version__, datasets
from yield_model.columns import (
    FEATURE_COLUMNS,
    ID_COLUMN,
    TARGET_COLUMN,
    TIME_POINT_COLUMNS,
    TIME_RANGE_COLUMNS,
)
from yield_model.config import TrainingConfig, card_file_name, model_file_name
from yield_model.data import load_answers, load_dataset
from yield_model.drift import PREDICTED_YIELD
from yield_model.parsing import parse_number, parse_time_point, parse_time_range
from yield_model.predict import TrainedModel
from yield_model.train import main, train


def test_same_data_and_seed_give_identical_predictions(train_csv: Path) -> None:
    dataset = load_dataset(train_csv)
    # Cross-validation is left out: test_cross_validation_is_in_the_card covers it.
    first, card1 = train(dataset, TrainingConfig(cv_folds=None))
    second, card2 = train(dataset, TrainingConfig(cv_folds=None))
    X = dataset.frame[list(FEATURE_COLUMNS)]
    assert np.array_equal(first.predict(X), second.predict(X))
    assert card1.metrics == card2.metrics
    other, _ = train(dataset, TrainingConfig(seed=7, cv_folds=None))
    assert not np.array_equal(first.predict(X), other.predict(X))


def test_yield_filter_drops_only_implausible_training_rows(train_csv: Path) -> None:
    dataset = load_dataset(train_csv)
    y = dataset.frame[TARGET_COLUMN]
    _, card = train(dataset, TrainingConfig(min_yield=0.87, cv_folds=None))
    assert card.data.rows_read == len(y) == 1396
    assert card.data.rows_dropped_by_yield_filter == int((y <= 0.87).sum()) > 0
    assert card.data.rows_used_for_training == int((y > 0.87).sum())
    _, kept_all = train(dataset, TrainingConfig(min_yield=None, cv_folds=None))
    assert kept_all.data.rows_dropped_by_yield_filter == 0


def _status(column: str, raw: str) -> str:
    if column in TIME_POINT_COLUMNS:
        return parse_time_point(raw).status
    if column in TIME_RANGE_COLUMNS:
        return parse_time_range(raw).status
    return parse_number(raw).status


def test_model_card_describes_the_model(trained_model: TrainedModel, train_csv: Path) -> None:
    card = trained_model.card
    assert card.version == __version__
    assert card.name == "yield-model"
    assert card.data.sha256 == hashlib.sha256(train_csv.read_bytes()).hexdigest()
    assert card.data.encoding == "gb18030"
    assert card.regressor == "VotingRegressor(GradientBoostingRegressor, ExtraTreesRegressor)"
    assert card.regressor_params["gbr__learning_rate"] == 0.05
    assert card.regressor_params["et__min_samples_leaf"] == 3
    cv = card.cross_validation
    assert cv is not None
    assert card.description.startswith(
        "Predicts a batch's yield with the average of gradient boosting"
    )
    assert f"5-fold CV half-MSE on {card.data.source}: {cv.half_mse_mean:.7f}" in card.description
    assert card.description.endswith("treated as missing and named in the prediction's warnings.")
    m = card.metrics
    assert m.half_mse == pytest.approx(m.mse / 2)
    assert m.rows == card.data.holdout_rows == math.ceil(1396 * 0.2)
    # Training never drops a row for a quirk; the card counts what was read as missing.
    for column, raw in datasets.QUIRKS:
        if _status(column, raw) != "ok":  # 24:00 and numeric outliers are legal values
            quality = card.input_quality
            assert quality.unparseable[column] + quality.repaired[column] >= 1, (column, raw)
    # Drift is watched on the inputs as parsed and the step durations, which the model's
    # features are (near-constant ones dropped) but for the amount ratio derived from them.
    ratio = "B14_per_A1_A3_A4_A19_B1_B12"
    assert card.model_features[-1] == ratio
    assert set(card.model_features) - set(card.reference) == {ratio}
    for name in [*card.model_features[:-1], PREDICTED_YIELD]:
        ref = card.reference[name]
        if ref.proportions:
            assert sum(ref.proportions) == pytest.approx(1.0)
            assert len(ref.proportions) == len(ref.edges) + 1
            assert ref.edges == sorted(ref.edges)


def test_cross_validation_is_in_the_card(trained_model: TrainedModel, train_csv: Path) -> None:
    cv = trained_model.card.cross_validation
    assert cv is not None
    assert (cv.folds, cv.seed, len(cv.fold_half_mse)) == (5, 42, 5)
    assert cv.half_mse_mean == pytest.approx(float(np.mean(cv.fold_half_mse)), rel=1e-12)
    assert cv.half_mse_sd == pytest.approx(float(np.std(cv.fold_half_mse, ddof=1)), rel=1e-12)
    y = load_dataset(train_csv).frame[TARGET_COLUMN].to_numpy(float)
    assert cv.scored_rows == int((y > 0.87).sum())
    # Failed batches are in the every-row score and not in the scored one: far worse there.
    assert cv.all_rows_half_mse_mean > cv.half_mse_mean
    # Within the noise, as the holdout: the generator's noise is the floor.
    noise_half_mse = datasets.NOISE_SD**2 / 2
    assert 0.6 * noise_half_mse <= cv.half_mse_mean <= 1.6 * noise_half_mse


def test_accuracy_on_generated_test_data_is_within_the_noise(
    trained_model: TrainedModel,
) -> None:
    # Fresh batches from the generator (the test seed), predicted through the public API.
    data = datasets.generate(2000, seed=datasets.TEST_SEED)
    records = data.frame.drop(columns=[ID_COLUMN, TARGET_COLUMN])
    records = records.replace({np.nan: None}).to_dict(orient="records")
    predictions = np.asarray(trained_model.predict(records).predictions)
    observed = data.frame[TARGET_COLUMN].to_numpy(float)
    # Stalled batches (clean yield below 0.87) are dropped from training, as published
    # solutions do, so the model is judged on the others: there, no model can beat the noise,
    # and the sample half-MSE of pure noise over ~2,000 rows has a relative SD of
    # sqrt(2/2000) ~ 0.03. A model within 1.6x the noise leaves little of the signal unlearned
    # (a linear model scores ~2.6x, the training mean ~5.6x).
    normal = data.clean_yield >= 0.87
    half_mse = float(np.mean((predictions[normal] - observed[normal]) ** 2) / 2)
    noise_half_mse = datasets.NOISE_SD**2 / 2
    assert 0.6 * noise_half_mse <= half_mse <= 1.6 * noise_half_mse


def test_generated_test_file_scores_against_its_answers(
    trained_model: TrainedModel, test_csv: tuple[Path, Path]
) -> None:
    data, answers = test_csv
    frame = load_dataset(data, require_target=False).frame
    records = frame.drop(columns=[ID_COLUMN]).replace({np.nan: None}).to_dict(orient="records")
    predictions = trained_model.predict(records).predictions
    truth = load_answers(answers).to_numpy()
    assert len(predictions) == len(truth) == datasets.TEST_ROWS
    # Stalled batches (clean yield below 0.87) are dropped from training and cannot be
    # predicted; the file has one or two of them (1 % of 150 rows), each of which alone would
    # outweigh the rest. The model is judged on the others, as on fresh batches above.
    normal = datasets.generate(datasets.TEST_ROWS, datasets.TEST_SEED).clean_yield >= 0.87
    errors = (np.asarray(predictions) - truth)[normal]
    half_mse = float(np.mean(errors**2) / 2)
    baseline = float(np.mean((truth[normal] - truth[normal].mean()) ** 2) / 2)
    noise_half_mse = datasets.NOISE_SD**2 / 2
    assert half_mse <= noise_half_mse + 0.35 * (baseline - noise_half_mse)


def test_cli_trains_and_saves_into_a_folder(
    train_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--data", str(train_csv), "--output-dir", str(tmp_path)]) == 0
    card = json.loads((tmp_path / card_file_name()).read_text())
    model = tmp_path / model_file_name()
    assert card["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert card["version"] == __version__
    assert card["cross_validation"]["folds"] == 5
    assert "5-fold CV half-MSE" in capsys.readouterr().out
    assert card["data"]["origin"] == "file"
    assert card["data"]["source"] == str(train_csv)


def test_cli_on_generated_data_says_so_in_the_card(train_csv: Path, tmp_path: Path) -> None:
    # Given no data file: training draws the default generated file itself
    assert main(["--generated", "--cv-folds", "none", "--output-dir", str(tmp_path)]) == 0
    card = json.loads((tmp_path / card_file_name()).read_text())
    # Then the card says the data was generated, and it was the file `datasets train` writes
    assert card["data"]["origin"] == "generated"
    assert card["data"]["source"] == "generated by yield_model.datasets: 1396 rows, seed 0"
    assert card["data"]["sha256"] == hashlib.sha256(train_csv.read_bytes()).hexdigest()
    assert card["data"]["rows_read"] == datasets.TRAIN_ROWS


def test_cli_takes_a_file_or_generated_data_never_both_nor_neither(
    train_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["--generated", "--data", str(train_csv)], []):
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        assert stopped.value.code == 2
        assert "--data" in capsys.readouterr().err


def test_cli_reports_bad_data_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--data", str(tmp_path / "none.csv"), "--output-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith("error: no data file at")
    assert main(["--data", "x.csv", "--regressor", "svm"]) == 2
    assert "invalid training settings" in capsys.readouterr().err
