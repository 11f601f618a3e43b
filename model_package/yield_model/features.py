"""Feature engineering: scikit-learn transformers from raw process-log cells to numbers.

``ProcessLogParser`` turns every raw cell into numbers (time points into hours, ranges into
start and duration), ``StepDurations`` adds the time each process step took, and
``DropNearConstant`` removes columns that carry no information. Each follows the estimator
contract: ``__init__`` only stores its arguments, learned state ends in ``_``.
"""

import functools
import math
import operator
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from yield_model.parsing import (
    FLOAT32_MAX,
    MAX_TEXT_LENGTH,
    Status,
    TimeRangeParse,
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


def _floats(column: npt.NDArray[Any]) -> bool:
    if column.dtype == np.float64:
        return True  # as validated batches hold a numeric field, NaN for None
    return set(map(type, column)) <= _FLOAT_OR_NONE


_STATUS_CODES: dict[Status, int] = {"ok": 0, "repaired": 1, "missing": 2, "invalid": 3}
_REPAIRED, _MISSING, _INVALID = (_STATUS_CODES[s] for s in ("repaired", "missing", "invalid"))
_FLOAT_OR_NONE: Final = frozenset({float, type(None)})
_TUPLE_OR_LIST: Final = frozenset({tuple, list})
_FLOAT_OR_OBJECT: Final = (np.dtype(np.float64), np.dtype(object))
_COLUMN_AND_ROW: Final = operator.itemgetter(0, 1)
_NOT_NUMERIC_TEXT: Final = frozenset({"missing", "repaired"})
#: Parses of the strings seen, per parse function: a column of a request costs one dict
#: lookup per cell. Bounded: emptied when full (strings longer than MAX_TEXT_LENGTH are
#: never kept, as in the parse functions' own caches).
_CACHE_LIMIT: Final = 65536
_PARSE_CACHES: dict[Callable[[object], Any], dict[object, tuple[Any, ...]]] = {}


def _entry(parse: Any) -> tuple[Any, ...]:
    code = _STATUS_CODES[parse.status]
    if isinstance(parse, TimeRangeParse):
        start = np.nan if parse.start is None else parse.start
        duration = np.nan if parse.duration is None else parse.duration
        return (start, duration, code, parse)
    return (np.nan if parse.hours is None else parse.hours, code, parse)


def _parse_and_keep(
    cache: dict[object, tuple[Any, ...]], parse: Callable[[object], Any], value: object
) -> tuple[Any, ...]:
    """A cell's ``_entry``, kept in ``cache`` when the cell is None or a short string."""
    entry = _entry(parse(value))
    if value is None or (type(value) is str and len(value) <= MAX_TEXT_LENGTH):
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[value] = entry
    return entry


def _cached_parses(
    column: Sequence[Any] | npt.NDArray[Any], parse: Callable[[object], Any]
) -> list[Any]:
    """Each cell's parse as columns: (hours, codes, parses) or (starts, durations, codes,
    parses), each distinct string parsed once per process."""
    cache = _PARSE_CACHES.setdefault(parse, {})
    get = cache.get
    try:
        entries = [get(v) or _parse_and_keep(cache, parse, v) for v in column]
    except TypeError:  # an unhashable cell: no cache
        entries = [_entry(parse(v)) for v in column]
    # One list per field rather than zip(*entries), whose iterator per cell feeds the GC.
    return [[entry[k] for entry in entries] for k in range(len(entries[0]))]


#: From this many rows columns are parsed as arrays, and a time column through ``_Known``:
#: one lookup a cell. Below, cell by cell in Python (``_FewRows``) is cheaper: numpy's cost
#: per call outweighs its gain on a few cells (one record: 0.02 against 0.13 ms).
_POSITIONS_FROM: Final = 16


@dataclass(frozen=True)
class _Known:
    """The distinct cells one parse function has read, with their parses as arrays.

    Replaced, never changed, when cells are added: a request reads one consistent
    snapshot while another adds to the next.
    """

    index: dict[object, int]
    parses: list[Any]
    numbers: FloatArray  # (1, n) hours, or (2, n) starts and durations
    codes: npt.NDArray[np.int8]


_KNOWN: dict[Callable[[object], Any], _Known] = {}
_KNOWN_LOCK = threading.Lock()


def _learn(parse: Callable[[object], Any], cells: set[object]) -> _Known:
    with _KNOWN_LOCK:
        known = _KNOWN.get(parse)
        index = dict(known.index) if known is not None else {}
        parses = list(known.parses) if known is not None else []
        if len(index) + len(cells) > _CACHE_LIMIT:
            index, parses = {}, []
        for cell in cells:
            if cell not in index:
                index[cell] = len(parses)
                parses.append(parse(cell))
        entries = [_entry(p) for p in parses]
        numbers = np.array([entry[:-2] for entry in entries], dtype=np.float64).T
        codes = np.array([entry[-2] for entry in entries], dtype=np.int8)
        known = _KNOWN[parse] = _Known(index, parses, numbers, codes)
        return known


def _positions(
    column: Sequence[Any] | npt.NDArray[Any], parse: Callable[[object], Any]
) -> tuple[_Known, npt.NDArray[np.intp]] | None:
    """Each cell's position among the cells ``parse`` has read, or None when a cell is
    not a string or None, or too long to keep."""
    known = _KNOWN.get(parse) or _learn(parse, {None})
    n = len(column)
    for _ in range(2):  # once more after reading the cells not seen before
        try:
            at = np.fromiter(map(known.index.get, column, repeat(-1)), np.intp, n)
        except TypeError:  # an unhashable cell
            return None
        unseen = at < 0
        if not unseen.any():
            return known, at
        cells = {column[i] for i in np.flatnonzero(unseen).tolist()}
        if not all(map(_keepable, cells)):
            return None
        known = _learn(parse, cells)
    return None  # pragma: no cover - the second lookup finds every cell just learnt


def _keepable(cell: object) -> bool:
    return cell is None or (type(cell) is str and len(cell) <= MAX_TEXT_LENGTH)


class _Cells:
    """The parses of a column's cells, by row, from their positions in a ``_Known``."""

    def __init__(self, parses: list[Any], at: npt.NDArray[np.intp]) -> None:
        self._parses = parses
        self._at = at

    def __getitem__(self, row: int) -> Any:
        return self._parses[self._at[row]]


_FLOAT64_MAX: Final = float(np.finfo(np.float64).max)


def _nan_to_num(x: FloatArray) -> FloatArray:
    """``np.nan_to_num`` for floats, without its per-call overhead (~10 µs)."""
    return np.clip(np.where(np.isnan(x), 0.0, x), -_FLOAT64_MAX, _FLOAT64_MAX)


def _float_to_num(x: float) -> float:
    """``_nan_to_num`` of one float."""
    if math.isnan(x):
        return 0.0
    return _FLOAT64_MAX if x > _FLOAT64_MAX else -_FLOAT64_MAX if x < -_FLOAT64_MAX else x


@functools.lru_cache(maxsize=16)
def _stamp_columns(
    plan: tuple[tuple[str, int, int | None], ...], n_columns: int
) -> tuple[list[int], list[int], npt.NDArray[np.intp]]:
    """Columns of the stamps' starts and durations (a point's duration is column
    ``n_columns``), and the stamps' positions."""
    starts = [start for _, start, _ in plan]
    durations = [n_columns if duration is None else duration for _, _, duration in plan]
    return starts, durations, np.arange(len(plan))


@dataclass(frozen=True)
class _Layout:
    """Where each kind of input column goes in the parser's output."""

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    numbers: list[int]
    number_out: list[int]
    times: list[int]
    time_out: list[int]
    n_out: int
    #: Per number column: its index, output column and position among the number columns.
    number_cells: list[tuple[int, int, int]]
    #: Per time column: its index, parse function, output column and, for a range, the
    #: duration's output column (-1 for a point).
    time_cells: list[tuple[int, Callable[[object], Any], int, int]]
    #: A count of 0 per column, to copy.
    zero_counts: dict[str, int]


@functools.lru_cache(maxsize=16)
def _layout(kinds: tuple[str, ...], names_in: tuple[Any, ...] | None) -> _Layout:
    """The layout for the fitted kinds and ``feature_names_in_`` (None: unnamed columns)."""
    names = (
        tuple(f"x{i}" for i in range(len(kinds))) if names_in is None else tuple(map(str, names_in))
    )
    numbers, number_out, times, time_out = [], [], [], []
    time_cells: list[tuple[int, Callable[[object], Any], int, int]] = []
    j = 0
    for i, kind in enumerate(kinds):
        if kind == "number":
            numbers.append(i)
            number_out.append(j)
        elif kind == "range":
            times.append(i)
            time_out.extend([j, j + 1])
            time_cells.append((i, parse_time_range, j, j + 1))
        else:
            times.append(i)
            time_out.append(j)
            time_cells.append((i, parse_time_point, j, -1))
        j += 2 if kind == "range" else 1
    number_cells = [(i, j, k) for k, (i, j) in enumerate(zip(numbers, number_out, strict=True))]
    zero_counts = dict.fromkeys(names, 0)
    return _Layout(
        names, kinds, numbers, number_out, times, time_out, j, number_cells, time_cells, zero_counts
    )


def _well_formed(
    columns: Sequence[Sequence[Any] | npt.NDArray[Any]], n_rows: int, layout: _Layout
) -> bool:
    """One column per input, of ``n_rows`` cells: else the column-wise path raises its error."""
    return len(columns) == len(layout.kinds) and set(map(len, columns)) == {n_rows}


def _count(report: ParseReport, names: Sequence[str], codes: npt.NDArray[np.int8]) -> None:
    """Per-column counts of repaired, missing and invalid cells into the report."""
    n_columns = codes.shape[0]
    offsets = np.arange(0, 4 * n_columns, 4)[:, None]
    counts = np.bincount((codes + offsets).ravel(), minlength=4 * n_columns).reshape(-1, 4)
    _, repaired, absent, unparseable = counts.T.tolist()
    report.repaired = dict(zip(names, repaired, strict=True))
    report.absent = dict(zip(names, absent, strict=True))
    report.unparseable = dict(zip(names, unparseable, strict=True))


def _few_parsed_numbers(cells: Sequence[Any]) -> list[tuple[float, int, Any]] | None:
    """Each cell's number, status code and parse as ``_numbers`` gives them, or None when a
    cell may read differently through pandas' conversion there (numeric text, ints, ...)."""
    parsed: list[tuple[float, int, Any]] = []
    for cell in cells:
        if type(cell) is float and abs(cell) <= FLOAT32_MAX:
            parsed.append((cell, 0, None))  # pandas takes a float as it is
            continue
        if cell is not None and type(cell) is not float and type(cell) is not str:
            return None
        parse = parse_number(cell)
        # Missing markers and Excel dates are no number to pandas either: both leave them
        # to the parser. Any other text might be one.
        if type(cell) is str and parse.status not in _NOT_NUMERIC_TEXT:
            return None
        number = np.nan if parse.value is None else parse.value
        parsed.append((number, _STATUS_CODES[parse.status], parse))
    return parsed


class _FewRows:
    """``ProcessLogParser.parse_columns`` for a few rows, cell by cell in Python.

    The numbers, counts and warnings of the column-wise path, without its numpy calls per
    column, which cost more than they save on a few cells. For columns that
    ``_well_formed`` accepts.
    """

    def __init__(self, layout: _Layout, n_rows: int) -> None:
        self.layout = layout
        self.rows = [[0.0] * layout.n_out for _ in range(n_rows)]
        # Per status code, per column: the report's dicts (the one for "ok" is not used).
        self.counts = [layout.zero_counts.copy() for _ in _STATUS_CODES]
        self.flagged: list[tuple[int, int, Any]] = []  # (column, row, parse) to warn about

    def parse(
        self, columns: Sequence[Sequence[Any] | npt.NDArray[Any]]
    ) -> tuple[FloatArray, ParseReport]:
        """The parser's output and report."""
        self._numbers(columns)
        self._times(columns)
        names, counts = self.layout.names, self.counts
        report = ParseReport(
            warnings=[[] for _ in self.rows],
            absent=counts[_MISSING],
            unparseable=counts[_INVALID],
            repaired=counts[_REPAIRED],
        )
        self.flagged.sort(key=_COLUMN_AND_ROW)  # a row's warnings in column order
        for i, r, found in self.flagged:
            text = describe(names[i], columns[i][r], found.status, found.note)
            if text:
                report.warnings[r].append(text)
        return np.array(self.rows, dtype=np.float64), report

    def _times(self, columns: Sequence[Sequence[Any] | npt.NDArray[Any]]) -> None:
        rows, counts, flagged, names = self.rows, self.counts, self.flagged, self.layout.names
        for i, parse, j, k in self.layout.time_cells:
            cache = _PARSE_CACHES.setdefault(parse, {})
            for r, cell in enumerate(columns[i]):
                try:
                    entry = cache.get(cell) or _parse_and_keep(cache, parse, cell)
                except TypeError:  # an unhashable cell: no cache
                    entry = _entry(parse(cell))
                row = rows[r]
                if k < 0:
                    row[j], code, found = entry
                else:
                    row[j], row[k], code, found = entry
                if code:
                    counts[code][names[i]] += 1
                    if code != _MISSING:
                        flagged.append((i, r, found))

    def _numbers(self, columns: Sequence[Sequence[Any] | npt.NDArray[Any]]) -> None:
        """The number columns, read as ``ProcessLogParser._parse_numbers`` reads them."""
        layout, rows = self.layout, self.rows
        number_columns = [columns[i] for i in layout.numbers]
        containers = set(map(type, number_columns))
        cells: list[Sequence[Any]]
        if containers <= _TUPLE_OR_LIST:
            cells = cast("list[Sequence[Any]]", number_columns)
        else:
            cells = [c.tolist() if isinstance(c, np.ndarray) else c for c in number_columns]
        flat = list(chain.from_iterable(cells))  # column after column
        # The columns _parse_numbers converts as one block: floats and None only. It takes them
        # as they are (NaN included, bit for bit) unless one holds a float beyond float32's
        # range; then every column goes through the parser. Validated records have only such
        # columns: no need to look column by column.
        every = set(map(type, flat)) <= _FLOAT_OR_NONE and (
            containers <= _TUPLE_OR_LIST
            or all(
                type(c) is np.ndarray and c.dtype in _FLOAT_OR_OBJECT
                for c in number_columns
                if type(c) not in _TUPLE_OR_LIST
            )
        )
        plain = (
            [True] * len(cells)
            if every
            else [
                set(map(type, c)) <= _FLOAT_OR_NONE if type(c) is not np.ndarray else _floats(c)
                for c in number_columns
            ]
        )
        n_rows = len(rows)
        beyond = {
            k // n_rows for k, v in enumerate(flat) if type(v) is float and abs(v) > FLOAT32_MAX
        }
        block: list[tuple[int, int, int]] = []
        if not any(plain[k] for k in beyond):
            block = (
                layout.number_cells
                if every
                else [cell for cell, ok in zip(layout.number_cells, plain, strict=True) if ok]
            )
        absent, names = self.counts[_MISSING], layout.names
        for r, row in enumerate(rows):
            values = flat[r::n_rows]  # the row's cells
            for i, j, k in block:
                v = values[k]
                if v is None:
                    row[j] = np.nan
                    absent[names[i]] += 1
                else:
                    row[j] = v
                    if math.isnan(v):
                        absent[names[i]] += 1
        if len(block) < len(cells):
            taken = {k for _, _, k in block}
            for i, j, k in layout.number_cells:
                if k not in taken:
                    self._number_column(columns[i], cells[k], i, j)

    def _number_column(
        self, column: Sequence[Any] | npt.NDArray[Any], cells: Sequence[Any], i: int, j: int
    ) -> None:
        """Column ``i`` into output column ``j``, as ``ProcessLogParser._numbers`` reads it."""
        parsed = _few_parsed_numbers(cells)
        if parsed is None:
            numbers, found, codes = ProcessLogParser._numbers(np.asarray(column, dtype=object))
            parsed = list(
                zip(numbers.tolist(), codes.tolist(), found or repeat(None), strict=False)
            )
        for r, (number, code, parse) in enumerate(parsed):
            self.rows[r][j] = number
            if code:
                self.counts[code][self.layout.names[i]] += 1
                if code != _MISSING:
                    self.flagged.append((i, r, parse))


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
        return self.parse_columns([X[:, i] for i in range(X.shape[1])], X.shape[0])

    def parse_columns(
        self, columns: Sequence[Sequence[Any] | npt.NDArray[Any]], n_rows: int
    ) -> tuple[FloatArray, ParseReport]:
        """Parse raw cells given column by column, in the fitted order, unchecked.

        ``transform_with_report`` without scikit-learn's input checks, for callers that
        build the columns themselves (the prediction fast path).
        """
        names_in = getattr(self, "feature_names_in_", None)
        layout = _layout(tuple(self.kinds_), None if names_in is None else tuple(names_in.tolist()))
        if 0 < n_rows < _POSITIONS_FROM and _well_formed(columns, n_rows, layout):
            return _FewRows(layout, n_rows).parse(columns)
        out = np.empty((n_rows, layout.n_out), dtype=np.float64)
        codes = np.zeros((len(columns), n_rows), dtype=np.int8)
        report = ParseReport(warnings=[[] for _ in range(n_rows)])
        if not n_rows:
            _count(report, layout.names, codes)
            return out, report
        parses: dict[int, Any] = {}
        self._parse_numbers(columns, layout, out, codes, parses)
        times: list[Sequence[float]] = []
        time_codes: list[Any] = []
        for i in layout.times:
            parse = parse_time_point if layout.kinds[i] == "point" else parse_time_range
            positions = _positions(columns[i], parse)
            if positions is not None:
                known, at = positions
                times += list(known.numbers[:, at])
                time_codes.append(known.codes[at])
                parses[i] = _Cells(known.parses, at)
                continue
            if layout.kinds[i] == "point":
                hours, column_codes, found = _cached_parses(columns[i], parse)
                times.append(hours)
            else:
                starts, durations, column_codes, found = _cached_parses(columns[i], parse)
                times += (starts, durations)
            time_codes.append(column_codes)
            parses[i] = found
        if times:
            out[:, layout.time_out] = np.array(times, dtype=np.float64).T
            codes[layout.times] = np.array(time_codes, dtype=np.int8)
        _count(report, layout.names, codes)
        for i, row in zip(*np.nonzero((codes == 1) | (codes == 3)), strict=True):
            parse = parses[i][row]
            text = describe(layout.names[i], columns[i][row], parse.status, parse.note)
            if text:
                report.warnings[row].append(text)
        return out, report

    def _parse_numbers(
        self,
        columns: Sequence[Sequence[Any] | npt.NDArray[Any]],
        layout: "_Layout",
        out: FloatArray,
        codes: npt.NDArray[np.int8],
        parses: dict[int, Any],
    ) -> None:
        # Validated records hold floats and None only: one conversion for all such columns.
        clean = [
            set(map(type, c)) <= _FLOAT_OR_NONE if type(c) is not np.ndarray else _floats(c)
            for c in map(columns.__getitem__, layout.numbers)
        ]
        block_in = [i for i, ok in zip(layout.numbers, clean, strict=True) if ok]
        if block_in:
            block_out = [j for j, ok in zip(layout.number_out, clean, strict=True) if ok]
            block = np.array([columns[i] for i in block_in], dtype=np.float64)
            missing = np.isnan(block)
            if (missing | (np.abs(block) <= FLOAT32_MAX)).all():
                out[:, block_out] = block.T
                codes[block_in] = np.where(missing, 2, 0)
            else:  # infinities or magnitudes beyond float32: the parser reports them
                clean = [False] * len(clean)
        for i, j, ok in zip(layout.numbers, layout.number_out, clean, strict=True):
            if ok:
                continue
            values, found, column_codes = self._numbers(np.asarray(columns[i], dtype=object))
            out[:, j] = values
            codes[i] = column_codes
            if found is not None:
                parses[i] = found

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
        return self.add_durations(np.asarray(X, dtype=np.float64))

    def add_durations(self, X: FloatArray) -> FloatArray:
        """``transform`` of a float array in the fitted column order, unchecked.

        Every stamp at once (a loop over stamps costs ~12 numpy calls each): the same
        element-wise operations as step by step, and the total summed in process order.
        """
        n_rows = X.shape[0]
        starts, durations, order = _stamp_columns(tuple(self.plan_), X.shape[1])
        start = X[:, starts]
        unknown = np.isnan(start)
        # Points take their duration, 0, from a column of zeros appended to X.
        duration = _nan_to_num(np.hstack([X, np.zeros((n_rows, 1))])[:, durations])
        end = np.where(unknown, np.nan, np.mod(start + duration, 24.0))
        # The end of the latest known stamp before each one: a forward fill along the stamps,
        # where "no stamp yet" picks a NaN column appended to the ends.
        latest = np.maximum.accumulate(np.where(unknown, -1, order), axis=1)
        ends = np.hstack([end, np.full((n_rows, 1), np.nan)])
        last_end = ends[np.arange(n_rows)[:, None], latest]
        gaps = np.mod(start[:, 1:] - last_end[:, :-1], 24.0)
        steps = np.zeros((n_rows, len(starts) + 1))
        steps[:, 2:] = np.where(unknown[:, 1:], 0.0, _nan_to_num(gaps))
        steps[:, 1:] += np.where(unknown, 0.0, duration)
        total = np.add.accumulate(steps, axis=1)[:, -1]
        total[unknown.all(axis=1)] = np.nan
        return np.hstack([X, gaps, total[:, None]])

    def row_durations(self, row: Sequence[float]) -> list[float]:
        """The gaps and total ``add_durations`` appends to one row, from Python floats.

        For a few rows, where numpy's ~20 calls cost more than the arithmetic: the same
        operations on the same floats in the same order, so the same bits. Python's float
        ``%`` is numpy's ``mod`` (C's fmod, then the divisor's sign), and the total is summed
        left to right from 0.0, as ``np.add.accumulate`` sums the steps.
        """
        gaps: list[float] = []
        total = 0.0
        known_any = False
        last_end = math.nan  # of the latest known stamp
        for k, (_, start_column, duration_column) in enumerate(self.plan_):
            start = row[start_column]
            duration = 0.0 if duration_column is None else _float_to_num(row[duration_column])
            known = not math.isnan(start)
            if k:
                gap = (start - last_end) % 24.0
                gaps.append(gap)
                step = _float_to_num(gap) + duration if known else 0.0
            else:  # numpy adds to a step of 0.0: -0.0 becomes 0.0
                step = 0.0 + (duration if known else 0.0)
            total += step
            if known:
                known_any = True
                last_end = (start + duration) % 24.0
        gaps.append(total if known_any else math.nan)
        return gaps

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
