"""Feature engineering: scikit-learn transformers from raw process-log cells to numbers.

``ProcessLogParser`` turns every raw cell into numbers (time points into hours, ranges into
start and duration), ``StepDurations`` adds the time each process step took, ``AmountRatio``
the amount that came out per amount put in, and ``DropNearConstant`` removes columns that
carry no information. Each follows the estimator contract: ``__init__`` only stores its
arguments, learned state ends in ``_``.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from yield_model.parsing import (
    NumberParse,
    TimePointParse,
    TimeRangeParse,
    describe,
    parse_number,
    parse_time_point,
    parse_time_range,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
Parse = NumberParse | TimePointParse | TimeRangeParse
_PARSERS: Final[dict[str, Callable[[object], Parse]]] = {
    "number": parse_number,
    "point": parse_time_point,
    "range": parse_time_range,
}


def _numbers(kind: str, parses: list[Parse]) -> list[list[float | None]]:
    """The output values of parses of one kind: a number or an hour; a start and a duration."""
    if kind == "number":
        return [[p.value for p in parses]]  # type: ignore[union-attr]
    if kind == "point":
        return [[p.hours for p in parses]]  # type: ignore[union-attr]
    return [[p.start for p in parses], [p.duration for p in parses]]  # type: ignore[union-attr]


@dataclass
class ParseReport:
    """What parsing did to a batch of rows: per-row warnings and per-column counts."""

    warnings: list[list[str]]
    absent: dict[str, int] = field(default_factory=dict)
    unparseable: dict[str, int] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)


def column_names(
    estimator: BaseEstimator, n_features: int, input_features: Any = None
) -> list[str]:
    names = input_features
    if names is None:
        names = getattr(estimator, "feature_names_in_", None)
    return [str(n) for n in names] if names is not None else [f"x{i}" for i in range(n_features)]


class NamedColumnsMixin:
    """For a transformer of float columns that may be missing (NaN), whose ``columns``
    argument names its inputs when the input carries no names of its own."""

    columns: Sequence[str] | None

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()  # type: ignore[misc]
        tags.input_tags.allow_nan = True
        return tags

    def _input_names(self, n_features: int) -> list[str]:
        if self.columns is not None and getattr(self, "feature_names_in_", None) is None:
            if len(self.columns) != n_features:
                raise ValueError(
                    f"columns names {len(self.columns)} columns but the input has {n_features}"
                )
            return [str(c) for c in self.columns]
        return column_names(self, n_features)


def parsed_column_names(columns: Sequence[str], time_ranges: Sequence[str]) -> list[str]:
    """The parser's output columns for these inputs: each range becomes a start and a duration."""
    ranges = set(time_ranges)
    out: list[str] = []
    for name in columns:
        out.extend([f"{name}_start", f"{name}_duration"] if name in ranges else [name])
    return out


_SECONDS_PER_HOUR: Final = 3600.0
_STATUS_CODES: Final = {"ok": 0, "repaired": 1, "missing": 2, "invalid": 3}
_BOOLEANS: Final = frozenset({bool, np.bool_})
_FEW_CELLS: Final = 256


def _read(cells: list[Any], parse: Callable[[object], Parse]) -> tuple[list[Parse], IntArray]:
    """The parses of the distinct cells, and each cell's position among them.

    A batch holds few distinct values per column, so each is parsed once. Booleans would be
    taken for the numbers they equal (True == 1), so a batch with one is parsed cell by cell,
    as are a few records' cells, where finding the distinct values costs more than it saves.
    """
    if len(cells) >= _FEW_CELLS and not _BOOLEANS.intersection(map(type, cells)):
        column = np.empty(len(cells), dtype=object)
        column[:] = cells
        try:
            at, distinct = pd.factorize(column, use_na_sentinel=False)
        except TypeError:  # an unhashable cell
            pass
        else:
            return [parse(cell) for cell in distinct], np.asarray(at, dtype=np.intp)
    return [parse(cell) for cell in cells], np.arange(len(cells))


class ProcessLogParser(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Parse raw cells: numbers to floats, time points to hours, ranges to start and duration.

    Columns named in neither ``time_points`` nor ``time_ranges`` are read as numbers. What
    cannot be parsed becomes NaN, never an exception; ``transform_with_report`` also says
    which values were repaired or treated as missing.

    ``columns``, if given, names the input columns: a DataFrame is then read by those names,
    in that order (other columns are ignored), and an array is taken to hold them in that
    order. Without it the columns are the fitted frame's, by position.
    """

    def __init__(
        self,
        time_points: Sequence[str] = (),
        time_ranges: Sequence[str] = (),
        columns: Sequence[str] | None = None,
    ) -> None:
        self.time_points = time_points
        self.time_ranges = time_ranges
        self.columns = columns

    def _cells(self, X: Any) -> Any:
        """A frame's named columns as an array of cells, when ``columns`` names them."""
        if self.columns is None or not hasattr(X, "columns"):
            return X
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise ValueError(f"columns missing from the input: {', '.join(map(str, missing))}")
        return X[list(self.columns)].to_numpy(dtype=object)

    def _names(self, n_features: int) -> list[str]:
        if self.columns is not None:
            if len(self.columns) != n_features:
                raise ValueError(f"{len(self.columns)} columns named, the input has {n_features}")
            return [str(c) for c in self.columns]
        return column_names(self, n_features)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        return tags

    def fit(self, X: Any, y: Any = None) -> "ProcessLogParser":
        X = validate_data(self, self._cells(X), dtype=None, ensure_all_finite=False, reset=True)
        names = self._names(X.shape[1])
        unknown = [c for c in (*self.time_points, *self.time_ranges) if c not in names]
        if unknown:
            raise ValueError(f"time columns not in the input: {', '.join(unknown)}")
        points, ranges = set(self.time_points), set(self.time_ranges)
        self.kinds_ = [
            "point" if n in points else "range" if n in ranges else "number" for n in names
        ]
        self.feature_names_out_ = np.asarray(
            parsed_column_names(names, self.time_ranges), dtype=object
        )
        return self

    def transform(self, X: Any) -> FloatArray:
        """Parse every cell into the output columns."""
        return self.transform_with_report(X)[0]

    def transform_with_report(self, X: Any) -> tuple[FloatArray, ParseReport]:
        """Parse every cell and report per-row warnings and per-column counts."""
        check_is_fitted(self, "kinds_")
        X = validate_data(self, self._cells(X), dtype=None, ensure_all_finite=False, reset=False)
        return self.parse(np.asarray(X, dtype=object))

    def parse(self, cells: npt.NDArray[np.object_]) -> tuple[FloatArray, ParseReport]:
        """``transform_with_report`` for a 2-D object array already in the fitted columns'
        order, which it does not check again (``TrainedModel`` builds that array itself).

        The cells of all number columns are read together, then those of all time points and
        of all ranges, each distinct value once.
        """
        check_is_fitted(self, "kinds_")
        n_rows, n_columns = cells.shape
        names = self._names(n_columns)
        widths = [2 if kind == "range" else 1 for kind in self.kinds_]
        first_output = np.cumsum([0, *widths[:-1]])
        out = np.empty((n_rows, sum(widths)), dtype=np.float64)
        counts = np.zeros((n_columns, 4), dtype=np.intp)  # per status code
        flagged: list[tuple[int, int, str]] = []  # (row, column, warning)
        for kind, parse in _PARSERS.items():
            which = [i for i, k in enumerate(self.kinds_) if k == kind]
            if not which:
                continue
            block = cells[:, which].T  # a row per input column
            parses, at = _read(block.ravel().tolist(), parse)
            codes = np.array([_STATUS_CODES[p.status] for p in parses], dtype=np.intp)[at]
            places = first_output[which]
            for offset, values in enumerate(_numbers(kind, parses)):
                taken = np.array(values, dtype=np.float64)[at].reshape(len(which), n_rows)
                out[:, places + offset] = taken.T
            by_column = codes.reshape(len(which), n_rows) + 4 * np.arange(len(which))[:, None]
            counts[which] = np.bincount(by_column.ravel(), minlength=4 * len(which)).reshape(-1, 4)
            for position in np.flatnonzero(codes % 2).tolist():  # repaired or invalid
                k, row = divmod(position, n_rows)
                found = parses[at[position]]
                text = describe(names[which[k]], block[k, row], found.status, found.note)
                if text:
                    flagged.append((row, which[k], text))
        per_column = counts.T.tolist()
        report = ParseReport(
            warnings=[[] for _ in range(n_rows)],
            repaired=dict(zip(names, per_column[1], strict=True)),
            absent=dict(zip(names, per_column[2], strict=True)),
            unparseable=dict(zip(names, per_column[3], strict=True)),
        )
        for row, _, text in sorted(flagged):  # a row's warnings in column order
            report.warnings[row].append(text)
        return out, report

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.object_]:
        """Names of the output columns: inputs, with each range split in two."""
        check_is_fitted(self, "feature_names_out_")
        return np.asarray(self.feature_names_out_, dtype=object)


Plan = list[tuple[str, int, int | None]]


def _stamp_plan(stamps: Sequence[str] | None, names: Sequence[str]) -> Plan:
    """Per stamp in process order: its name, its start column and its duration column
    (None for a time point)."""
    index = {n: i for i, n in enumerate(names)}
    plan: Plan = []
    for stamp in stamps if stamps is not None else names:
        if f"{stamp}_start" in index and f"{stamp}_duration" in index:
            plan.append((stamp, index[f"{stamp}_start"], index[f"{stamp}_duration"]))
        elif stamp in index:
            plan.append((stamp, index[stamp], None))
        else:
            raise ValueError(f"stamp column {stamp!r} is not in the input")
    return plan


def _duration_names(names: Sequence[str], plan: Plan) -> list[str]:
    return [*names, *(f"{stamp}_gap" for stamp, _, _ in plan[1:]), "total_hours"]


def step_duration_names(columns: Sequence[str], stamps: Sequence[str] | None) -> list[str]:
    """The output columns of ``StepDurations(stamps, columns)``, known before it is fitted."""
    return _duration_names(columns, _stamp_plan(stamps, columns))


class StepDurations(NamedColumnsMixin, TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Add the hours between consecutive time stamps of the process, and the total.

    ``stamps`` lists, in process order, columns that hold a clock time in hours; a stamp
    named ``X`` is a range when columns ``X_start`` and ``X_duration`` exist, and the next
    step is measured from its end. Each output ``X_gap`` is the time from the previous
    known stamp to ``X`` (modulo 24 h: the log holds clock times, not dates).
    ``stamps=None`` takes every input column as a time point in order. ``columns`` names the
    input columns when the input carries no names (a plain array); by default they are the
    fitted frame's names, or ``x0``, ``x1``, ...
    """

    def __init__(
        self, stamps: Sequence[str] | None = None, columns: Sequence[str] | None = None
    ) -> None:
        self.stamps = stamps
        self.columns = columns

    def fit(self, X: Any, y: Any = None) -> "StepDurations":
        X = validate_data(self, X, ensure_all_finite="allow-nan", reset=True)
        self.plan_ = _stamp_plan(self.stamps, self._input_names(X.shape[1]))
        return self

    def transform(self, X: Any) -> FloatArray:
        """Append one gap column per stamp (after the first) and the total duration.

        Every stamp at once, with the same element-wise operations as step by step, and the
        total summed in process order.
        """
        check_is_fitted(self, "plan_")
        X = validate_data(self, X, ensure_all_finite="allow-nan", reset=False)
        return self.add_durations(np.asarray(X, dtype=np.float64))

    def add_durations(self, X: FloatArray) -> FloatArray:
        """``transform`` for a float array of the fitted width, which it does not check."""
        n_rows = X.shape[0]
        starts = [start for _, start, _ in self.plan_]
        # A point's duration, 0, comes from a column of zeros appended to X.
        durations = [X.shape[1] if d is None else d for _, _, d in self.plan_]
        start = X[:, starts]
        unknown = np.isnan(start)
        duration = np.nan_to_num(np.hstack([X, np.zeros((n_rows, 1))])[:, durations])
        end = np.where(unknown, np.nan, np.mod(start + duration, 24.0))
        # The end of the latest known stamp before each one: a forward fill along the stamps,
        # where "no stamp yet" picks a NaN column appended to the ends.
        order = np.arange(len(starts))
        latest = np.maximum.accumulate(np.where(unknown, -1, order), axis=1)
        ends = np.hstack([end, np.full((n_rows, 1), np.nan)])
        last_end = ends[np.arange(n_rows)[:, None], latest]
        # Clock times are whole seconds. Hours are not exact (20 minutes is 1/3 h), so two equal
        # times can differ by a rounding error, which the modulo would turn into a 24 h gap.
        seconds = np.round((start[:, 1:] - last_end[:, :-1]) * _SECONDS_PER_HOUR)
        gaps = np.mod(seconds / _SECONDS_PER_HOUR, 24.0)
        steps = np.zeros((n_rows, len(starts) + 1))
        steps[:, 2:] = np.where(unknown[:, 1:], 0.0, np.nan_to_num(gaps))
        steps[:, 1:] += np.where(unknown, 0.0, duration)
        total = np.add.accumulate(steps, axis=1)[:, -1]
        total[unknown.all(axis=1)] = np.nan
        return np.hstack([X, gaps, total[:, None]])

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.object_]:
        """Input names, then ``<stamp>_gap`` per stamp after the first, then ``total_hours``."""
        check_is_fitted(self, "plan_")
        names = (
            column_names(self, self.n_features_in_, input_features)
            if input_features is not None
            else self._input_names(self.n_features_in_)
        )
        return np.asarray(_duration_names(names, self.plan_), dtype=object)


class AmountRatio(NamedColumnsMixin, TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Append the ratio of one amount to the sum of others: what came out per what went in.

    ``numerator`` and ``denominators`` name input columns; a missing denominator counts as
    nothing added, and the ratio is missing when the numerator is or the sum is not
    positive. The output column is ``<numerator>_per_<denominators joined by _>``.
    ``columns`` names the input columns when the input carries no names.
    """

    def __init__(
        self,
        numerator: str = "",
        denominators: Sequence[str] = (),
        columns: Sequence[str] | None = None,
    ) -> None:
        self.numerator = numerator
        self.denominators = denominators
        self.columns = columns

    def fit(self, X: Any, y: Any = None) -> "AmountRatio":
        X = validate_data(self, X, ensure_all_finite="allow-nan", reset=True)
        names = self._input_names(X.shape[1])
        wanted = [self.numerator, *self.denominators]
        unknown = [n for n in wanted if n not in names]
        if unknown or not self.denominators:
            raise ValueError(
                f"ratio columns not in the input: {', '.join(map(str, unknown))}"
                if unknown
                else "denominators names no column"
            )
        self.numerator_ = names.index(self.numerator)
        self.denominators_ = np.asarray([names.index(d) for d in self.denominators], np.intp)
        return self

    def add_ratio(self, X: FloatArray) -> FloatArray:
        """``transform`` for a float array of the fitted width, which it does not check."""
        total = np.add.accumulate(np.nan_to_num(X[:, self.denominators_]), axis=1)[:, -1]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(total > 0, X[:, self.numerator_] / total, np.nan)
        return np.hstack([X, ratio[:, None]])

    def transform(self, X: Any) -> FloatArray:
        """The input with the ratio appended as its last column."""
        check_is_fitted(self, "numerator_")
        X = validate_data(self, X, ensure_all_finite="allow-nan", reset=False)
        return self.add_ratio(np.asarray(X, dtype=np.float64))

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.object_]:
        """Input names, then the ratio's."""
        check_is_fitted(self, "numerator_")
        names = (
            column_names(self, self.n_features_in_, input_features)
            if input_features is not None
            else self._input_names(self.n_features_in_)
        )
        ratio = "_".join([f"{self.numerator}_per", *map(str, self.denominators)])
        return np.asarray([*names, ratio], dtype=object)


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
        names = column_names(self, self.n_features_in_, input_features)
        return np.asarray(names, dtype=object)[self.keep_]
