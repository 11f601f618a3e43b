"""The model card: what a trained model is, what it was trained on, and how good it is."""

from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from yield_model.data import Origin


class HoldoutMetrics(BaseModel):
    """Errors on rows the model did not see; half_mse is the competition's metric."""

    half_mse: float
    mse: float
    mae: float
    r2: float
    rows: int
    mean_baseline_half_mse: float = Field(
        description="half-MSE of predicting the training mean, for scale"
    )


class CrossValidation(BaseModel):
    """K-fold cross-validation on the training file: the half-MSE of each fold, each fold
    predicted by a pipeline fitted on the others' rows that pass the yield filter, and
    scored on its own rows that pass it (``yield_model.evaluation``)."""

    folds: int
    seed: int = Field(description="seed of the shuffled split")
    fold_half_mse: list[float]
    half_mse_mean: float
    half_mse_sd: float = Field(description="sample standard deviation over the folds")
    all_rows_half_mse_mean: float = Field(
        description="mean over the folds of the half-MSE on every row, failed batches included"
    )
    scored_rows: int = Field(description="rows that pass the yield filter, over all folds")


class InputRange(BaseModel):
    """A numeric input's training range, and the values the model accepts: beyond
    ``lowest``..``highest`` (the range widened by ``TrainingConfig.range_widening`` of its
    width on each side) a value is treated as missing and named in the warnings. None: the
    column had a single training value, so no range to widen, and is not guarded."""

    minimum: float
    maximum: float
    lowest: float | None
    highest: float | None


class DataSummary(BaseModel):
    """The training data: where it came from, its sha256 and what was kept."""

    origin: Origin = Field(
        description="'generated': drawn by yield_model.datasets in the training run (python -m "
        "yield_model.train --generated), never the plant's; 'file': read from source, a file "
        "or S3 object. A release publishes only a model of origin 'file'."
    )
    source: str
    sha256: str
    encoding: str
    rows_read: int
    rows_used_for_training: int
    rows_dropped_by_yield_filter: int
    holdout_rows: int


class FeatureReference(BaseModel):
    """A feature's distribution at training time, as quantile bins, for drift monitoring.

    ``edges`` are the interior bin edges; bin i holds values in (edges[i-1], edges[i]],
    the first bin everything up to edges[0] and the last everything above edges[-1].
    ``proportions`` are the shares of non-missing values per bin.
    """

    edges: list[float]
    proportions: list[float]
    missing_share: float


class InputQuality(BaseModel):
    """Per input column: values treated as missing or repaired while training."""

    absent: dict[str, int]
    unparseable: dict[str, int]
    repaired: dict[str, int]


class ModelCard(BaseModel):
    """Everything the service and the monitoring need to know about a trained model."""

    model_config = ConfigDict(protected_namespaces=())

    name: str
    version: str
    description: str = Field(
        default="",
        description="what the model is, how good it is and what it refuses to believe",
    )
    trained_at: datetime
    sklearn_version: str
    python_version: str
    regressor: str
    regressor_params: dict[str, Any]
    training_config: dict[str, Any]
    data: DataSummary
    metrics: HoldoutMetrics
    cross_validation: CrossValidation | None = Field(
        default=None, description="k-fold CV on the training file; None if not run"
    )
    input_features: list[str]
    model_features: list[str]
    input_quality: InputQuality
    reference: dict[str, FeatureReference]
    input_ranges: dict[str, InputRange] = Field(
        default_factory=dict, description="the training range of each guarded input"
    )
    model_sha256: str | None = Field(
        default=None, description="sha256 of the saved pipeline file, checked at load"
    )


def holdout_metrics(
    y_true: npt.NDArray[np.float64], y_pred: npt.NDArray[np.float64], train_mean: float
) -> HoldoutMetrics:
    """Competition half-MSE, MSE, MAE and R² of predictions on a holdout."""
    errors = y_pred - y_true
    mse = float(np.mean(errors**2))
    variance = float(np.mean((y_true - y_true.mean()) ** 2))
    return HoldoutMetrics(
        half_mse=mse / 2,
        mse=mse,
        mae=float(np.mean(np.abs(errors))),
        r2=1 - mse / variance if variance > 0 else 0.0,
        rows=len(y_true),
        mean_baseline_half_mse=float(np.mean((y_true - train_mean) ** 2)) / 2,
    )


def feature_reference(values: npt.NDArray[np.float64], n_bins: int) -> FeatureReference:
    """Quantile bins of one feature's training values."""
    known = values[~np.isnan(values)]
    missing_share = 1 - len(known) / len(values) if len(values) else 0.0
    if not len(known):
        return FeatureReference(edges=[], proportions=[], missing_share=missing_share)
    quantiles = np.quantile(known, np.linspace(0, 1, n_bins + 1)[1:-1])
    edges = np.unique(quantiles)
    counts = np.bincount(np.searchsorted(edges, known, side="left"), minlength=len(edges) + 1)
    return FeatureReference(
        edges=[float(e) for e in edges],
        proportions=[float(c) for c in counts / len(known)],
        missing_share=float(missing_share),
    )


def reference_statistics(features: pd.DataFrame, n_bins: int) -> dict[str, FeatureReference]:
    """Quantile-bin references for every column of a numeric frame."""
    return {
        str(name): feature_reference(features[name].to_numpy(np.float64), n_bins)
        for name in features.columns
    }
