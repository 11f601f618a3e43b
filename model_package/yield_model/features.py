"""Feature engineering: scikit-learn transformers from raw process-log cells to numbers.

``ProcessLogParser`` turns every raw cell into numbers (time points into hours, ranges into
start and duration), ``StepDurations`` adds the time each process step took, and
``DropNearConstant`` removes columns that carry no information. Each follows the estimator
contract: ``__init__`` only stores its arguments, learned state ends in ``_``.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from yield_model.parsing import (
    FLOAT32_MAX,
    Status,
    describe,
    parse_number,
    parse_time_point,
    parse_time_range,
)

FloatArray = npt.NDArray[np.float64]


@dataclass
class ParseReport:
    """What parsing did to a batch of rows: per-row warnings and per-column counts."""

    warnings: list[list[str]]
    absent: dict[str, int] = field(default_factory=dict)
    unparseable: dict[str, int] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)


def _column_names(estimator: BaseEstimator, n_features: int) -> list[str]:
    names = getattr(estimator, "feature_names_in_", None)
    return [str(n) for n in names] if names is not None else [f"x{i}" for i in range(n_features)]


def _parse_column(
    values: npt.NDArray[Any], parse: Callable[[object], Any]
) -> tuple[list[Any], npt.NDArray[np.int8]]:
    """Parse one column, each distinct value once; returns parses and status codes."""
    parses: list[Any] = []
    cache: dict[object, Any] = {}
    for value in values:
        key = value if isinstance(value, str) else None
        if key is None:
            parses.append(parse(value))
            continue
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = parse(key)
        parses.append(hit)
    codes = np.fromiter((_STATUS_CODES[p.status] for p in parses), np.int8, len(parses))
    return parses, codes


_STATUS_CODES: dict[Status, int] = {"ok": 0, "repaired": 1, "missing": 2, "invalid": 3}


class ProcessLogParser(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Parse raw cells: numbers to floats, time points to hours, ranges to start and duration.

    Columns named in neither ``time_points`` nor ``time_ranges`` are read as numbers. What
    cannot be parsed becomes NaN, never an exception; ``transform_with_report`` also says
    which values were repaired or treated as missing.
    """

    def __init__(
        self,
        time_points: Sequence[str] = (),
        time_ranges: Sequence[str] = (),
    ) -> None:
        self.time_points = time_points
        self.time_ranges = time_ranges

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        return tags

    def fit(self, X: Any, y: Any = None) -> "ProcessLogParser":
        X = validate_data(self, X, dtype=None, ensure_all_finite=False, reset=True)
        names = _column_names(self, X.shape[1])
        unknown = [c for c in (*self.time_points, *self.time_ranges) if c not in names]
        if unknown:
            raise ValueError(f"time columns not in the input: {', '.join(unknown)}")
        points, ranges = set(self.time_points), set(self.time_ranges)
        self.kinds_ = [
            "point" if n in points else "range" if n in ranges else "number" for n in names
        ]
        out: list[str] = []
        for name, kind in zip(names, self.kinds_, strict=True):
            out.extend([f"{name}_start", f"{name}_duration"] if kind == "range" else [name])
        self.feature_names_out_ = np.asarray(out, dtype=object)
        return self

    def transform(self, X: Any) -> FloatArray:
        """Parse every cell into the output columns."""
        return self.transform_with_report(X)[0]

    def transform_with_report(self, X: Any) -> tuple[FloatArray, ParseReport]:
        """Parse every cell and report per-row warnings and per-column missing counts."""
        check_is_fitted(self, "kinds_")
        X = validate_data(self, X, dtype=None, ensure_all_finite=False, reset=False)
        X = np.asarray(X, dtype=object)
        n_rows = X.shape[0]
        out = np.empty((n_rows, len(self.feature_names_out_)), dtype=np.float64)
        report = ParseReport(warnings=[[] for _ in range(n_rows)])
        names = _column_names(self, X.shape[1])
        j = 0
        for i, (name, kind) in enumerate(zip(names, self.kinds_, strict=True)):
            column = X[:, i]
            if kind == "number":
                out[:, j], parses, codes = self._numbers(column)
                j += 1
            elif kind == "point":
                parses, codes = _parse_column(column, parse_time_point)
                out[:, j] = [np.nan if p.hours is None else p.hours for p in parses]
                j += 1
            else:
                parses, codes = _parse_column(column, parse_time_range)
                out[:, j] = [np.nan if p.start is None else p.start for p in parses]
                out[:, j + 1] = [np.nan if p.duration is None else p.duration for p in parses]
                j += 2
            self._record(report, name, column, parses, codes)
        return out, report

    @staticmethod
    def _numbers(
        column: npt.NDArray[Any],
    ) -> tuple[FloatArray, list[Any] | None, npt.NDArray[np.int8]]:
        # Fast path: plain numbers and numeric strings convert in one vectorised call;
        # only the leftovers (quirks) go through the parser one by one.
        values = np.array(
            pd.to_numeric(pd.Series(column, dtype=object), errors="coerce"), dtype=np.float64
        )
        # NaN, and magnitudes the model cannot compute with, go to the parser to be reported.
        left = np.flatnonzero(~(np.abs(values) <= FLOAT32_MAX))
        codes = np.zeros(len(column), dtype=np.int8)
        if not len(left):
            return values, None, codes
        parses, left_codes = _parse_column(column[left], parse_number)
        values[left] = [np.nan if p.value is None else p.value for p in parses]
        codes[left] = left_codes
        full: list[Any] = [None] * len(column)
        for k, p in zip(left, parses, strict=True):
            full[k] = p
        return values, full, codes

    @staticmethod
    def _record(
        report: ParseReport,
        name: str,
        column: npt.NDArray[Any],
        parses: list[Any] | None,
        codes: npt.NDArray[np.int8],
    ) -> None:
        counts = np.bincount(codes, minlength=4)
        report.repaired[name] = int(counts[1])
        report.absent[name] = int(counts[2])
        report.unparseable[name] = int(counts[3])
        if parses is None:
            return
        for row in np.flatnonzero((codes == 1) | (codes == 3)):
            parse = parses[row]
            text = describe(name, column[row], parse.status, parse.note)
            if text:
                report.warnings[row].append(text)

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.object_]:
        """Names of the output columns: inputs, with each range split in two."""
        check_is_fitted(self, "feature_names_out_")
        return np.asarray(self.feature_names_out_, dtype=object)


class StepDurations(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Add the hours between consecutive time stamps of the process, and the total.

    ``stamps`` lists, in process order, columns that hold a clock time in hours; a stamp
    named ``X`` is a range when columns ``X_start`` and ``X_duration`` exist, and the next
    step is measured from its end. Each output ``X_gap`` is the time from the previous
    known stamp to ``X`` (modulo 24 h: the log holds clock times, not dates).
    ``stamps=None`` takes every input column as a time point in order.
    """

    def __init__(self, stamps: Sequence[str] | None = None) -> None:
        self.stamps = stamps

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def fit(self, X: Any, y: Any = None) -> "StepDurations":
        X = validate_data(self, X, ensure_all_finite="allow-nan", reset=True)
        names = _column_names(self, X.shape[1])
        index = {n: i for i, n in enumerate(names)}
        plan: list[tuple[str, int, int | None]] = []
        for stamp in self.stamps if self.stamps is not None else names:
            if f"{stamp}_start" in index and f"{stamp}_duration" in index:
                plan.append((stamp, index[f"{stamp}_start"], index[f"{stamp}_duration"]))
            elif stamp in index:
                plan.append((stamp, index[stamp], None))
            else:
                raise ValueError(f"stamp column {stamp!r} is not in the input")
        self.plan_ = plan
        return self

    def transform(self, X: Any) -> FloatArray:
        """Append one gap column per stamp (after the first) and the total duration."""
        check_is_fitted(self, "plan_")
        X = validate_data(self, X, ensure_all_finite="allow-nan", reset=False)
        X = np.asarray(X, dtype=np.float64)
        n_rows = X.shape[0]
        gaps = np.full((n_rows, max(len(self.plan_) - 1, 0)), np.nan)
        total = np.zeros(n_rows)
        first_start = np.full(n_rows, np.nan)
        last_end = np.full(n_rows, np.nan)
        for k, (_, start_col, duration_col) in enumerate(self.plan_):
            start = X[:, start_col]
            duration = X[:, duration_col] if duration_col is not None else np.zeros(n_rows)
            if k:
                gaps[:, k - 1] = np.mod(start - last_end, 24.0)
            known = ~np.isnan(start)
            step = np.where(known, np.nan_to_num(gaps[:, k - 1]) if k else 0.0, 0.0)
            total += step + np.where(known, np.nan_to_num(duration), 0.0)
            first_start = np.where(np.isnan(first_start) & known, start, first_start)
            end = np.mod(start + np.nan_to_num(duration), 24.0)
            last_end = np.where(known, end, last_end)
        total[np.isnan(first_start)] = np.nan
        return np.hstack([X, gaps, total[:, None]])

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.object_]:
        """Input names, then ``<stamp>_gap`` per stamp after the first, then ``total_hours``."""
        check_is_fitted(self, "plan_")
        names = _column_names(self, self.n_features_in_)
        gaps = [f"{stamp}_gap" for stamp, _, _ in self.plan_[1:]]
        return np.asarray([*names, *gaps, "total_hours"], dtype=object)


class DropNearConstant(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Drop columns whose most common value (missing counts as a value) exceeds ``max_share``."""

    def __init__(self, max_share: float = 0.99) -> None:
        self.max_share = max_share

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def fit(self, X: Any, y: Any = None) -> "DropNearConstant":
        X = validate_data(self, X, ensure_all_finite="allow-nan", reset=True)
        if not 0 < self.max_share <= 1:
            raise ValueError(f"max_share must be in (0, 1], got {self.max_share!r}")
        keep = np.ones(X.shape[1], dtype=bool)
        for j in range(X.shape[1]):
            _, counts = np.unique(X[:, j], return_counts=True, equal_nan=True)
            keep[j] = counts.max() / X.shape[0] <= self.max_share if X.shape[0] else True
        self.keep_ = keep
        return self

    def transform(self, X: Any) -> FloatArray:
        """Keep the informative columns."""
        check_is_fitted(self, "keep_")
        X = validate_data(self, X, ensure_all_finite="allow-nan", reset=False)
        return np.asarray(X[:, self.keep_], dtype=np.float64)

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.object_]:
        """Names of the kept columns."""
        check_is_fitted(self, "keep_")
        names = np.asarray(_column_names(self, self.n_features_in_), dtype=object)
        return names[self.keep_]
