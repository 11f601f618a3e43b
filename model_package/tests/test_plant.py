"""The generator against the plant: its tables are the published training file's counts, its
default file's features are distributed as the file's, and the plant's rows raise no drift
alert on the default model (trained on generated data)."""

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from yield_model import plant
from yield_model.card import reference_statistics
from yield_model.columns import FEATURE_COLUMNS
from yield_model.config import TrainingConfig
from yield_model.data import load_dataset
from yield_model.drift import PREDICTED_YIELD, PSI_ACT, PSI_WATCH, drift_scores, window_drift
from yield_model.pipeline import build_pipeline, engineered_steps
from yield_model.predict import TrainedModel

SCRIPT = Path(__file__).parents[2] / "scripts/plant_tables.py"


def engineered(path: Path) -> pd.DataFrame:
    """A file's engineered features, as the drift references describe them."""
    frame = load_dataset(path).frame[list(FEATURE_COLUMNS)]
    steps = engineered_steps(build_pipeline()).fit(frame)
    return pd.DataFrame(steps.transform(frame), columns=steps.get_feature_names_out())


@pytest.fixture(scope="module")
def script() -> ModuleType:
    """scripts/plant_tables.py, which writes yield_model.plant."""
    spec = importlib.util.spec_from_file_location("plant_tables", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def plant_features(plant_training_file: Path) -> pd.DataFrame:
    """The published training file's engineered features."""
    return engineered(plant_training_file)


def test_the_tables_are_what_the_script_counts_in_the_published_file(
    script: ModuleType, plant_training_file: Path
) -> None:
    written = script.render(script.count_tables(plant_training_file), plant_training_file.name)
    assert written == Path(plant.__file__).read_text(encoding="utf-8")


def test_the_tables_cover_every_batch_of_the_published_file() -> None:
    # Every route's batches add up to the file's; the numbers' counts too, but for the cells
    # left out (blank, or a quirk value the generator writes itself: B14 40 twice, A22 and
    # B1 3.5 once each, DATA.md).
    assert sum(plant.ROUTE_BATCHES.values()) == plant.BATCHES == 1396
    assert sum(n for _, n in plant.RECIPES) == plant.BATCHES
    for route, batches in plant.ROUTE_BATCHES.items():
        assert sum(n for _, n in plant.START_CLOCK[route]) == batches
        assert plant.A7_BATCHES[route] <= batches
    left_out = {"B14": 2, "A22": 1, "B1": 1 + 10, "A21": 3, "A23": 3, "B2": 2, "B3": 2}
    left_out |= {"A8": 1247, "B8": 1, "B12": 1, "B13": 1}
    for column in plant.NUMBERS[next(iter(plant.ROUTE_BATCHES))]:
        counted = sum(n for per_route in plant.NUMBERS.values() for _, n in per_route[column])
        assert counted == plant.BATCHES - left_out.get(column, 0), column
    # A route's batches all have a value of every number column but A8, which only step A7 has
    for route, batches in plant.ROUTE_BATCHES.items():
        for column, table in plant.NUMBERS[route].items():
            counted = sum(n for _, n in table)
            if column == "A8":
                assert counted == plant.A7_BATCHES[route], route
            else:
                assert batches - left_out.get(column, 0) <= counted <= batches, (route, column)


def test_a_default_generated_file_has_the_plants_distribution_of_every_feature(
    plant_features: pd.DataFrame, train_csv: Path
) -> None:
    # Given the published file's features binned as a model's drift references are
    reference = reference_statistics(plant_features, TrainingConfig().reference_bins)
    # When the default generated file is scored against them
    generated = engineered(train_csv)
    assert list(generated.columns) == list(plant_features.columns)
    window = {str(c): generated[c].to_numpy(np.float64) for c in generated.columns}
    scores = drift_scores(reference, window)
    # Then no feature has moved: the PSI of every one is under the watch threshold
    assert len(scores) == 64
    assert max(scores.values()) < PSI_WATCH, sorted(scores.items(), key=lambda kv: -kv[1])[:3]


def test_the_plants_rows_raise_no_drift_alert_on_the_default_model(
    plant_training_file: Path, trained_model: TrainedModel
) -> None:
    # Given the default model, trained on generated data, with its drift references
    frame = load_dataset(plant_training_file).frame[list(FEATURE_COLUMNS)]
    records = [
        {str(name): None if pd.isna(cell) else cell for name, cell in row.items()}
        for row in frame.to_dict("records")
    ]
    # When the plant's rows come in as one window
    predictions = trained_model.predict(records).predictions
    scores = window_drift(trained_model, records, predictions)
    features = {name: psi for name, psi in scores.items() if name != PREDICTED_YIELD}
    # Then no feature reads as a shift to act on, nor does the predicted yield
    assert len(features) == 64
    assert max(features.values()) < PSI_ACT, sorted(features.items(), key=lambda kv: -kv[1])[:3]
    assert scores[PREDICTED_YIELD] < PSI_ACT
