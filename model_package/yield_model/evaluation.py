"""Cross-validation: how well a training configuration predicts batches it did not see.

The competition's metric is the half mean squared error. Each of ``folds`` folds (shuffled,
seeded by the configuration's seed) is predicted by a pipeline fitted on the other folds'
rows that pass the configuration's yield filter, exactly as training fits; the score of a
fold is taken on its rows that pass the filter too (a yield at or below 0.87 is a failed
batch, which no recipe predicts), and also reported over all its rows.
"""

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline

from yield_model.card import CrossValidation
from yield_model.config import TrainingConfig
from yield_model.pipeline import build_pipeline

FloatArray = npt.NDArray[np.float64]


def plausible(y: FloatArray, config: TrainingConfig) -> npt.NDArray[np.bool_]:
    """The rows whose yield passes the configuration's filter (all, without one)."""
    keep = np.ones(len(y), dtype=bool)
    if config.min_yield is not None:
        keep &= y > config.min_yield
    if config.max_yield is not None:
        keep &= y <= config.max_yield
    return keep


def _half_mse(errors: FloatArray) -> float:
    return float(np.mean(errors**2)) / 2


def cross_validate(
    X: pd.DataFrame,
    y: FloatArray,
    config: TrainingConfig,
    folds: int,
    build: Callable[[TrainingConfig], Pipeline] = build_pipeline,
) -> CrossValidation:
    """The ``CrossValidation`` of ``config`` on the raw feature frame ``X`` and yields ``y``;
    ``build`` makes the unfitted pipeline (benchmarks compare other pipelines with it)."""
    keep = plausible(y, config)
    scored, every = [], []
    splits = KFold(n_splits=folds, shuffle=True, random_state=config.seed).split(X)
    for train_rows, test_rows in splits:
        fit_rows = train_rows[keep[train_rows]]
        pipeline = build(config).fit(X.iloc[fit_rows], y[fit_rows])
        errors = np.asarray(pipeline.predict(X.iloc[test_rows]), np.float64) - y[test_rows]
        scored.append(_half_mse(errors[keep[test_rows]]))
        every.append(_half_mse(errors))
    return CrossValidation(
        folds=folds,
        seed=config.seed,
        fold_half_mse=scored,
        half_mse_mean=float(np.mean(scored)),
        half_mse_sd=float(np.std(scored, ddof=1)),
        all_rows_half_mse_mean=float(np.mean(every)),
        scored_rows=int(keep.sum()),
    )
