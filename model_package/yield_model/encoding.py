"""Target encoding of the low-cardinality inputs, with rare values pooled.

Many inputs take a handful of values (a recipe's amounts, a temperature set point). The mean
yield of the batches with each value is a feature trees can split on at once, but a mean over
two or three batches is mostly noise: values seen fewer than ``min_count`` times in training,
and values never seen, are pooled into one category first. Values are the parsed numbers, so
``70``, ``'70'``, ``70.0`` and Excel's ``1900/3/10 0:00`` are one value. The encoding itself
is scikit-learn's ``TargetEncoder``, whose ``fit_transform`` encodes each training row with
means from the other folds, so the trees do not learn from their own targets.
"""

from typing import Any, Final

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import KFold
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import TargetEncoder
from sklearn.utils.validation import check_is_fitted, validate_data

from yield_model.features import FloatArray, column_names

#: The category rare and unseen values share: no parsed value is this low.
POOLED: Final = float(np.finfo(np.float64).min)


class RareValuePooling(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Keep the columns with 2 to ``max_values`` distinct training values, each value seen
    fewer than ``min_count`` times (or never) replaced by ``POOLED``; NaN stays missing.

    Learned: ``columns_`` (input positions of the kept columns) and ``frequent_`` (per kept
    column, the sorted values seen at least ``min_count`` times).
    """

    def __init__(self, max_values: int = 10, min_count: int = 5) -> None:
        self.max_values = max_values
        self.min_count = min_count

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def fit(self, X: Any, y: Any = None) -> "RareValuePooling":
        X = validate_data(self, X, ensure_all_finite="allow-nan", reset=True)
        if self.max_values < 2 or self.min_count < 1:
            raise ValueError("max_values must be at least 2 and min_count at least 1")
        columns: list[int] = []
        frequent: list[FloatArray] = []
        for j in range(X.shape[1]):
            column = np.asarray(X[:, j], dtype=np.float64)
            values, counts = np.unique(column[~np.isnan(column)], return_counts=True)
            if 2 <= len(values) <= self.max_values:
                columns.append(j)
                frequent.append(values[counts >= self.min_count])
        self.columns_ = np.asarray(columns, dtype=np.intp)
        self.frequent_ = frequent
        return self

    def transform(self, X: Any) -> FloatArray:
        """The kept columns, rare and unseen values pooled."""
        check_is_fitted(self, "columns_")
        X = validate_data(self, X, ensure_all_finite="allow-nan", reset=False)
        kept = np.asarray(X[:, self.columns_], dtype=np.float64)
        for k, values in enumerate(self.frequent_):
            column = kept[:, k]
            common = np.isin(column, values) | np.isnan(column)
            kept[:, k] = np.where(common, column, POOLED)
        return kept

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.object_]:
        """Names of the kept columns."""
        check_is_fitted(self, "columns_")
        names = column_names(self, self.n_features_in_, input_features)
        return np.asarray(names, dtype=object)[self.columns_]


def with_target_encoding(seed: int, max_values: int = 10, min_count: int = 5) -> FeatureUnion:
    """Every input column, then the target encodings of the low-cardinality ones."""
    encoded = make_pipeline(
        RareValuePooling(max_values=max_values, min_count=min_count),
        TargetEncoder(target_type="continuous", cv=KFold(5, shuffle=True, random_state=seed)),
    )
    return FeatureUnion([("inputs", "passthrough"), ("encoded", encoded)])
