"""The out-of-range guard: values far outside what training saw are treated as missing.

Trees cannot extrapolate: a B14 of 785 where training spans 40-460 is read as 460, and the
prediction looks as sure as any other. ``OutOfRangeGuard`` learns each guarded column's
training range and, at prediction time, turns a value beyond that range widened by
``widen`` times its width on each side into NaN, which the model treats as a missing value.
A column with a single training value has no width to widen and is not guarded.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from yield_model.features import FloatArray, NamedColumnsMixin, column_names


@dataclass
class RangeReport:
    """Values a batch held outside the training ranges: per-row warnings, per-column counts."""

    warnings: list[list[str]]
    out_of_range: dict[str, int]


def _number(value: float) -> str:
    return f"{value:.10g}"


def describe_range(minimum: float, maximum: float) -> str:
    """A training range as the warnings write it: ``40-460``, or ``-5 to 3``."""
    separator = "-" if minimum >= 0 else " to "
    return f"{_number(minimum)}{separator}{_number(maximum)}"


class OutOfRangeGuard(NamedColumnsMixin, TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Treat values far outside a column's training range as missing.

    ``features`` names the guarded columns (by default every column); ``columns`` names the
    input columns when the input carries no names, as for ``StepDurations``. A guarded
    column accepts values in ``[minimum - widen * width, maximum + widen * width]``, where
    ``width = maximum - minimum`` of its training values; missing values stay missing.
    Learned: ``guarded_`` (input positions), ``minimum_``, ``maximum_``, ``low_``, ``high_``
    (one per guarded column; a column with fewer than two distinct values gets infinite
    limits).
    """

    def __init__(
        self,
        features: Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
        widen: float = 0.5,
    ) -> None:
        self.features = features
        self.columns = columns
        self.widen = widen

    def fit(self, X: Any, y: Any = None) -> "OutOfRangeGuard":
        X = validate_data(self, X, ensure_all_finite="allow-nan", reset=True)
        if not self.widen >= 0:
            raise ValueError(f"widen must be at least 0, got {self.widen!r}")
        names = self._input_names(X.shape[1])
        wanted = names if self.features is None else [str(f) for f in self.features]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise ValueError(f"guarded columns not in the input: {', '.join(unknown)}")
        self.guarded_ = np.asarray([names.index(f) for f in wanted], dtype=np.intp)
        self.guarded_names_ = np.asarray(wanted, dtype=object)
        values = np.asarray(X[:, self.guarded_], dtype=np.float64)
        known = ~np.isnan(values)
        some = known.any(axis=0)
        self.minimum_ = np.where(some, np.min(np.where(known, values, np.inf), axis=0), np.nan)
        self.maximum_ = np.where(some, np.max(np.where(known, values, -np.inf), axis=0), np.nan)
        width = self.maximum_ - self.minimum_
        spread = some & (width > 0)
        self.low_ = np.where(spread, self.minimum_ - self.widen * width, -np.inf)
        self.high_ = np.where(spread, self.maximum_ + self.widen * width, np.inf)
        return self

    def outside(self, X: FloatArray) -> npt.NDArray[np.bool_]:
        """Which guarded values of a float array of the fitted width are out of range; a
        row per row of ``X``, a column per guarded column. Missing values never are."""
        values = X[:, self.guarded_]
        out: npt.NDArray[np.bool_] = (values < self.low_) | (values > self.high_)
        return out

    def apply(self, X: FloatArray) -> FloatArray:
        """``transform`` for a float array of the fitted width, which it does not check."""
        outside = self.outside(X)
        if not outside.any():
            return X
        guarded = X.copy()
        rows, at = np.nonzero(outside)
        guarded[rows, self.guarded_[at]] = np.nan
        return guarded

    def transform(self, X: Any) -> FloatArray:
        """The input with every out-of-range value of a guarded column made NaN."""
        check_is_fitted(self, "guarded_")
        X = validate_data(self, X, ensure_all_finite="allow-nan", reset=False)
        return self.apply(np.asarray(X, dtype=np.float64))

    def report(self, X: FloatArray) -> RangeReport:
        """Per-row warnings naming each out-of-range value, and the counts per column."""
        check_is_fitted(self, "guarded_")
        outside = self.outside(X)
        names = [str(n) for n in self.guarded_names_]
        counts = outside.sum(axis=0).tolist()
        warnings: list[list[str]] = [[] for _ in range(X.shape[0])]
        for row, at in zip(*(a.tolist() for a in np.nonzero(outside)), strict=True):
            value = float(X[row, self.guarded_[at]])
            known = describe_range(float(self.minimum_[at]), float(self.maximum_[at]))
            warnings[row].append(
                f"{names[at]}: {_number(value)} is outside the training range {known}, "
                "treated as missing"
            )
        return RangeReport(warnings=warnings, out_of_range=dict(zip(names, counts, strict=True)))

    def ranges(self) -> dict[str, tuple[float, float, float, float]]:
        """Per guarded column with training values: minimum, maximum, and the accepted
        lowest and highest values (infinite for a column that is not guarded)."""
        check_is_fitted(self, "guarded_")
        found = zip(
            self.guarded_names_, self.minimum_, self.maximum_, self.low_, self.high_, strict=True
        )
        return {
            str(name): (float(lo), float(hi), float(low), float(high))
            for name, lo, hi, low, high in found
            if not np.isnan(lo)
        }

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.object_]:
        """The input's names: the guard changes values, not columns."""
        check_is_fitted(self, "guarded_")
        names = (
            column_names(self, self.n_features_in_, input_features)
            if input_features is not None
            else self._input_names(self.n_features_in_)
        )
        return np.asarray(names, dtype=object)
