"""Drift: how far recent inputs and predictions have moved from the training data.

The model card keeps, per engineered feature and for the predicted yield, the training
distribution as quantile bins (``FeatureReference``). A window of recent values is put into the
same bins, plus one bin for missing values, and compared by the population stability index::

    PSI = sum over bins of (actual - expected) * ln(actual / expected)

where ``expected`` and ``actual`` are the shares of the training values and of the window in
each bin. Shares below ``SHARE_FLOOR`` are raised to it, so that a bin empty on one side gives a
large but finite PSI. Usual reading: below ``PSI_WATCH`` (0.1) no real change, up to
``PSI_ACT`` (0.25) a change to watch, above it a shift to act on.

For small differences PSI is close to the chi-square distance ``sum (a - e)^2 / e``, so with
a window of n values against a reference of m, a feature that has not moved at all still
shows a PSI of about ``chi2(bins - 1) * (1/n + 1/m)``: 0.024 on average, and under 0.076 in
999 windows of 1000, for 10 bins, n = 500 and m = 1396 (the default training file). Much
smaller windows read as drift that is not there.
"""

from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from yield_model.card import FeatureReference
from yield_model.features import FloatArray
from yield_model.pipeline import engineered_frame
from yield_model.predict import TrainedModel, records_to_frame
from yield_model.schemas import Record, validate_records

PSI_WATCH: Final = 0.1
PSI_ACT: Final = 0.25
SHARE_FLOOR: Final = 1e-4
#: The card's reference entry for the model's output (written by ``yield_model.train``).
PREDICTED_YIELD: Final = "predicted_yield"


def bin_shares(reference: FeatureReference, values: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Expected (training) and actual (``values``) shares per bin, the missing bin last.

    Bins are the reference's: bin i holds values in (edges[i-1], edges[i]]; NaN is missing.
    """
    window = np.asarray(values, dtype=np.float64)
    if window.ndim != 1 or not len(window):
        raise ValueError("values must be a non-empty one-dimensional sequence")
    if reference.proportions:
        proportions = np.asarray(reference.proportions, dtype=np.float64)
        if len(proportions) != len(reference.edges) + 1:
            raise ValueError(
                f"reference has {len(reference.edges)} edges but {len(proportions)} proportions"
            )
    else:
        # Always missing in training: no value bins; one empty bin stands for every value.
        proportions = np.zeros(1)
    expected = np.append(proportions * (1 - reference.missing_share), reference.missing_share)
    missing = np.isnan(window)
    known = window[~missing]
    bins = np.searchsorted(np.asarray(reference.edges, dtype=np.float64), known, side="left")
    counts = np.bincount(bins, minlength=len(proportions)).astype(np.float64)
    actual = np.append(counts, missing.sum()) / len(window)
    return expected, actual


def population_stability_index(
    reference: FeatureReference, values: npt.ArrayLike, floor: float = SHARE_FLOOR
) -> float:
    """PSI of a window of one feature's values against its training reference."""
    expected, actual = bin_shares(reference, values)
    expected = np.maximum(expected, floor)
    actual = np.maximum(actual, floor)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def drift_scores(
    reference: Mapping[str, FeatureReference], window: Mapping[str, npt.ArrayLike]
) -> dict[str, float]:
    """PSI per column of ``window``; every column must have a reference."""
    unknown = sorted(set(window) - set(reference))
    if unknown:
        raise KeyError(f"no reference for {', '.join(unknown)}")
    return {name: population_stability_index(reference[name], window[name]) for name in window}


def engineered_features(
    model: TrainedModel, records: Sequence[Record | Mapping[str, Any]]
) -> dict[str, FloatArray]:
    """The engineered features the card's references describe, computed for ``records``.

    They are the output of the pipeline's parsing and step-duration stages, before the
    near-constant columns are dropped: the frame the references were computed from.
    """
    frame = engineered_frame(model.pipeline, records_to_frame(validate_records(records)))
    return {str(name): frame[name].to_numpy(np.float64) for name in frame.columns}


def window_drift(
    model: TrainedModel,
    records: Sequence[Record | Mapping[str, Any]],
    predictions: npt.ArrayLike,
) -> dict[str, float]:
    """PSI of every engineered feature, and of the predicted yield, over a window of records.

    ``predictions`` are the model's predictions for ``records``, in the same order.
    """
    window: dict[str, npt.ArrayLike] = dict(engineered_features(model, records))
    window[PREDICTED_YIELD] = predictions
    return drift_scores(model.card.reference, window)
