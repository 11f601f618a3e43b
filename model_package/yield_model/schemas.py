"""The record schema: one batch's process log, validated at every boundary.

The API reuses these models, so a record is described once for HTTP and for Python callers.
"""

import math
import numbers
import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import repeat
from typing import Annotated, Any, Final, overload

import numpy as np
import numpy.typing as npt
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)

from yield_model.columns import TIME_COLUMNS
from yield_model.errors import InvalidInputError, Problem
from yield_model.parsing import FLOAT32_MAX, MAX_TEXT_LENGTH, is_excel_date

FloatArray = npt.NDArray[np.float64]


def _is_nan(value: object) -> bool:
    return isinstance(value, float | np.floating) and math.isnan(value)


_OUT_OF_RANGE: Final = "must be between -3.4e38 and 3.4e38, the range the model computes in"


def _finite(number: float) -> float | None:
    if math.isnan(number):
        return None
    if math.isinf(number):
        raise ValueError("must be a finite number")
    if abs(number) > FLOAT32_MAX:
        raise ValueError(_OUT_OF_RANGE)
    return number


def _numeric(value: object) -> float | str | None:
    """Accept a number, a numeric string or null; keep Excel date artefacts for the parser."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        raise ValueError("expected a number, got a boolean")
    if isinstance(value, numbers.Real):  # numpy scalars too, as pandas rows carry them
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float
            raise ValueError(_OUT_OF_RANGE) from None
        return _finite(number)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            # Excel turned some numbers of the published files into dates; the parser
            # recovers the number, so such a string is accepted, with a warning later.
            if is_excel_date(text):
                return text
            raise ValueError(f"expected a number or a numeric string, got {value!r}") from None
        return _finite(number)
    raise ValueError(f"expected a number, got {type(value).__name__}")


def _time(value: object) -> str | None:
    """Accept a time string or null; NaN (pandas' missing marker) counts as null."""
    if value is None or _is_nan(value):
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    raise ValueError(f"expected a time string such as '13:30:00' or '21:00-21:30', got {value!r}")


def _sample_id(value: object) -> str | None:
    if value is None or _is_nan(value):
        return None
    if isinstance(value, str | int | np.integer) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected a string, got {type(value).__name__}")


NumericValue = Annotated[float | str | None, BeforeValidator(_numeric)]
TimeValue = Annotated[str | None, BeforeValidator(_time)]

EXAMPLE_RECORD: dict[str, Any] = {
    "sample_id": "sample_1528",
    "A1": 300, "A2": None, "A3": 405, "A4": 700, "A5": "13:30:00", "A6": 38, "A7": None,
    "A8": None, "A9": "15:00:00", "A10": 100, "A11": "16:00:00", "A12": 102, "A13": 0.2,
    "A14": "17:00:00", "A15": 104, "A16": "17:30:00", "A17": 105, "A18": 0.2, "A19": 300,
    "A20": "18:30-19:00", "A21": 50, "A22": 9, "A23": 5, "A24": "19:30:00", "A25": 74,
    "A26": "21:00:00", "A27": 73, "A28": "21:00-21:30", "B1": 320, "B2": 3.5, "B3": 3.5,
    "B4": "21:30-23:00", "B5": "23:00:00", "B6": 70, "B7": "0:30:00", "B8": 45,
    "B9": "0:30-2:00", "B10": "2:00-3:30", "B11": None, "B12": 800, "B13": 0.15, "B14": 400,
}  # fmt: skip


class Record(BaseModel):
    """One batch: the recipe and process log of the published files.

    The training file's yield column (收率) is accepted, so that its rows can be sent as they
    are, and is not used for the prediction.
    """

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={"examples": [EXAMPLE_RECORD]},
    )

    sample_id: Annotated[str | None, BeforeValidator(_sample_id)] = Field(
        default=None,
        validation_alias=AliasChoices("sample_id", "样本id"),
        description="The batch's id, e.g. sample_1528; also accepted as 样本id.",
    )
    A1: NumericValue = None
    A2: NumericValue = None
    A3: NumericValue = None
    A4: NumericValue = None
    A5: TimeValue = None
    A6: NumericValue = None
    A7: TimeValue = None
    A8: NumericValue = None
    A9: TimeValue = None
    A10: NumericValue = None
    A11: TimeValue = None
    A12: NumericValue = None
    A13: NumericValue = None
    A14: TimeValue = None
    A15: NumericValue = None
    A16: TimeValue = None
    A17: NumericValue = None
    A18: NumericValue = None
    A19: NumericValue = None
    A20: TimeValue = None
    A21: NumericValue = None
    A22: NumericValue = None
    A23: NumericValue = None
    A24: TimeValue = None
    A25: NumericValue = None
    A26: TimeValue = None
    A27: NumericValue = None
    A28: TimeValue = None
    B1: NumericValue = None
    B2: NumericValue = None
    B3: NumericValue = None
    B4: TimeValue = None
    B5: TimeValue = None
    B6: NumericValue = None
    B7: TimeValue = None
    B8: NumericValue = None
    B9: TimeValue = None
    B10: TimeValue = None
    B11: TimeValue = None
    B12: NumericValue = None
    B13: NumericValue = None
    B14: NumericValue = None
    observed_yield: NumericValue = Field(
        default=None,
        validation_alias=AliasChoices("observed_yield", "收率"),
        description="The measured yield (收率) when known, as in the training file; not used "
        "for the prediction.",
    )


_RECORDS = TypeAdapter(list[Record])

_NUMBER, _TIME, _ID = 0, 1, 2
#: Each key a record may use (field names and aliases): its field and kind of value.
_KEYS: dict[str, tuple[str, int]] = {
    key: (name, _TIME if name in TIME_COLUMNS else _ID if name == "sample_id" else _NUMBER)
    for name, info in Record.model_fields.items()
    for key in (name, *(info.validation_alias.choices if info.validation_alias else ()))  # type: ignore[union-attr]
}
_EMPTY_RECORD: dict[str, Any] = dict.fromkeys(Record.model_fields)
_new_record = Record.__new__
_set = object.__setattr__


_UNUSUAL: Any = object()


def _plain_number(value: object) -> Any:
    """What ``_numeric`` returns for a str, int or float; ``_UNUSUAL`` for anything else."""
    kind = type(value)
    if kind is str:
        text = value.strip()  # type: ignore[attr-defined]
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            # Not a number: an Excel date artefact, kept for the parser, or an error.
            return text if is_excel_date(text) else _UNUSUAL
    elif kind is float:
        number = value  # type: ignore[assignment]
    elif kind is int:
        try:
            number = float(value)  # type: ignore[arg-type]
        except OverflowError:
            return _UNUSUAL
    else:
        return _UNUSUAL
    if math.isnan(number):
        return None  # NaN, as pandas writes a blank cell
    return number if -FLOAT32_MAX <= number <= FLOAT32_MAX else _UNUSUAL


def _plain_value(kind: int, value: object) -> Any:
    if value is None:
        return None
    if kind == _NUMBER:
        return _plain_number(value)
    if type(value) is str:
        return value if kind == _ID or value.strip() else None
    if kind == _ID and type(value) is int:
        return str(value)
    return _UNUSUAL


def _fast_fields(raw: dict[str, Any]) -> dict[str, Any] | None:
    """The fields of a record whose values are all of the plain kinds JSON gives, or None.

    Exactly what the validators above return for such values, without pydantic's per-field
    calls (~40 µs a record). None sends the record through pydantic, which accepts the
    unusual values (numpy scalars, NaN in a time field) and words every error.
    """
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        spec = _KEYS.get(key)
        if spec is None or spec[0] in fields:  # unknown, or a field under both its names
            return None
        plain = _plain_value(spec[1], value)
        if plain is _UNUSUAL:
            return None
        fields[spec[0]] = plain
    return fields


def _construct(fields: dict[str, Any]) -> Record:
    """A record of these validated fields, the others at their default (None)."""
    values = _EMPTY_RECORD.copy()
    values.update(fields)
    return _record(values, fields.keys())


_TABLE_FROM: Final = 8
_STR_AND_NONE: Final = frozenset({str, type(None)})


def _plain_column(kind: int, column: Sequence[Any]) -> list[Any] | None:
    """``_plain_value`` of every cell of one field, vectorised for the usual cases."""
    kinds = set(map(type, column))
    if kinds <= _STR_AND_NONE:
        if kind == _ID:
            return list(column)
        if kind == _TIME:
            texts = column if type(None) not in kinds else [v for v in column if v is not None]
            if all(map(str.strip, texts)):
                return list(column)
        else:
            # A column holds few distinct values: each is read once. float() strips the same
            # whitespace as str.strip(); blanks, Excel dates and errors go cell by cell below.
            try:
                table = {v: None if v is None else float(v) for v in set(column)}
            except ValueError:
                table = {}
            if table and all(v is None or -FLOAT32_MAX <= v <= FLOAT32_MAX for v in table.values()):
                return list(map(table.__getitem__, column))
    plain = [_plain_value(kind, value) for value in column]
    return None if any(value is _UNUSUAL for value in plain) else plain


#: Validated values of the numeric strings seen (NaN for a blank, and for None): a numeric
#: column of a request costs one lookup a cell. Bounded like the parse caches; errors are
#: not kept (pydantic words them).
_NUMBER_TEXTS: dict[object, float] = {None: math.nan}
_NUMBER_TEXTS_LIMIT: Final = 65536
_NOT_KNOWN: Final = math.inf  # never a validated value: those are finite or NaN
_EXCEL_TEXT: Final = -math.inf  # an Excel date, validated as the text itself
_INT_FLOAT_NONE: Final = frozenset({int, float, type(None)})


def _learn_numbers(column: Sequence[Any], unknown: FloatArray) -> bool:
    """Cache the validated value of each unknown cell; False if one is no plain number."""
    new: dict[object, float] = {}
    for value in {column[i] for i in np.flatnonzero(unknown).tolist()}:
        if type(value) is not str or len(value) > MAX_TEXT_LENGTH:
            return False
        plain = _plain_number(value)
        if plain is _UNUSUAL:
            return False  # pydantic words the error
        new[value] = math.nan if plain is None else _EXCEL_TEXT if type(plain) is str else plain
    if len(_NUMBER_TEXTS) + len(new) > _NUMBER_TEXTS_LIMIT:
        _NUMBER_TEXTS.clear()
        _NUMBER_TEXTS[None] = math.nan
    _NUMBER_TEXTS.update(new)
    return True


def _number_column(column: Sequence[Any]) -> FloatArray | list[Any] | None:
    """A numeric field's validated values: float64, NaN for None, when all are numbers; a
    list when Excel dates are kept as text; None when a cell is neither a number, a numeric
    string, an Excel date, a blank nor null (the caller then goes cell by cell)."""
    # A column that starts with text is tried as text first: scanning the types of its cells
    # first cost a third of its validation. Numbers are never keys of the text cache.
    if type(column[0]) is not str and set(map(type, column)) <= _INT_FLOAT_NONE:
        # Numbers as JSON sends them: one conversion, booleans and numpy scalars excluded.
        # Infinities and magnitudes beyond float32 go cell by cell.
        try:
            values = np.array(column, dtype=np.float64)
        except OverflowError:
            return None
        ok = (np.isnan(values) | (np.abs(values) <= FLOAT32_MAX)).all()
        return values if ok else None
    n = len(column)
    for _ in range(2):  # once more after learning the strings not seen before
        try:
            values = np.fromiter(map(_NUMBER_TEXTS.get, column, repeat(_NOT_KNOWN)), np.float64, n)
        except TypeError:  # an unhashable cell
            return None
        unknown = values == _NOT_KNOWN
        if not unknown.any():
            excel = values == _EXCEL_TEXT
            if not excel.any():
                return values
            cells = _none_for_nan(np.where(excel, math.nan, values))
            for row in np.flatnonzero(excel).tolist():
                cells[row] = column[row].strip()
            return cells
        if not _learn_numbers(column, unknown):
            break
    return None


def _time_column(column: Sequence[Any]) -> Sequence[Any] | None:
    """A time field's validated values (blanks as None), or None for an unusual cell."""
    try:
        distinct = set(column)
    except TypeError:
        return None
    if not set(map(type, distinct)) <= _STR_AND_NONE:
        return None
    distinct.discard(None)
    blanks = {v for v in distinct if not v.strip()}
    if not blanks:
        return column
    return [None if v in blanks else v for v in column]


def _number_cell(value: float) -> float | None:
    return None if math.isnan(value) else value


def _none_for_nan(values: FloatArray) -> list[Any]:
    cells: list[Any] = values.tolist()
    return [None if math.isnan(v) else v for v in cells] if np.isnan(values).any() else cells


class RecordBatch(Sequence[Record]):
    """Validated records kept column by column; a ``Record`` is built when one is asked for.

    What ``validate_records`` returns for a batch of plain records: prediction reads the
    columns (``column``), and the ids are at hand (``sample_ids``), without a thousand
    objects built for each request. Indexing and iterating give records equal to the
    ones pydantic builds, with the same fields set.
    """

    __slots__ = ("_columns", "_fields_set", "_n", "_records")

    def __init__(
        self, columns: dict[str, Sequence[Any] | FloatArray], fields_set: set[str], n: int
    ) -> None:
        self._columns = columns
        self._fields_set = frozenset(fields_set)
        self._n = n
        self._records: list[Record] | None = None

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, index: int) -> Record: ...

    @overload
    def __getitem__(self, index: slice) -> list[Record]: ...

    def __getitem__(self, index: int | slice) -> Record | list[Record]:
        if isinstance(index, slice) or self._records is not None:
            return self._materialise()[index]
        row = range(self._n)[index]  # IndexError, negative indices: as a list does
        values = {
            name: _number_cell(float(cells[row])) if isinstance(cells, np.ndarray) else cells[row]
            for name, cells in self._columns.items()
        }
        return _record(values, self._fields_set)

    def __iter__(self) -> Iterator[Record]:
        return iter(self._materialise())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RecordBatch | list | tuple):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RecordBatch({self._n} records)"

    @property
    def sample_ids(self) -> list[str | None]:
        """Each record's ``sample_id``, in order."""
        return list(self._columns["sample_id"])

    def column(self, name: str) -> Sequence[Any] | FloatArray:
        """One field's validated values: a float64 array (NaN for None) for a numeric field
        whose values are all numbers or None, else the values as the records hold them."""
        return self._columns[name]

    def _materialise(self) -> list[Record]:
        if self._records is None:
            cells = [
                _none_for_nan(c) if isinstance(c, np.ndarray) else c for c in self._columns.values()
            ]
            fields = tuple(self._columns)
            self._records = [
                _record(dict(zip(fields, row, strict=True)), self._fields_set)
                for row in zip(*cells, strict=True)
            ]
        return self._records


def _record(values: dict[str, Any], fields_set: Iterable[str]) -> Record:
    # What Record.model_construct does (~45 µs), for values already validated (~2 µs).
    record = _new_record(Record)
    _set(record, "__dict__", values)
    _set(record, "__pydantic_fields_set__", set(fields_set))
    _set(record, "__pydantic_extra__", None)
    _set(record, "__pydantic_private__", None)
    return record


def _fast_table(records: Sequence[dict[str, Any]]) -> RecordBatch | None:
    """Records that all send the same keys, validated field by field rather than record by
    record: a few C-level passes per field instead of a Python call per value."""
    keys = tuple(records[0])
    specs = [_KEYS.get(key) for key in keys]
    names = [spec[0] for spec in specs if spec is not None]
    if len(names) != len(keys) or len(set(names)) != len(names) or not keys:
        return None  # unknown keys, or a field under both its names: pydantic words it
    try:
        cells = zip(*map(operator.itemgetter(*keys), records), strict=True)
        rows = list(cells) if len(keys) > 1 else [tuple(map(operator.itemgetter(keys[0]), records))]
    except KeyError:
        return None  # key sets differ (the caller checked the sizes): record by record
    n = len(records)
    columns: dict[str, Sequence[Any] | FloatArray] = dict.fromkeys(_EMPTY_RECORD, (None,) * n)
    for column, name, spec in zip(rows, names, specs, strict=True):
        kind = spec[1]  # type: ignore[index]
        plain: Sequence[Any] | FloatArray | None
        if kind == _NUMBER:
            plain = _number_column(column)
        elif kind == _TIME:
            plain = _time_column(column)
        else:
            plain = column if set(map(type, column)) <= _STR_AND_NONE else None
        if plain is None:
            plain = _plain_column(kind, column)
            if plain is None:
                return None
        columns[name] = plain
    return RecordBatch(columns, set(names), n)


def _fast_records(
    records: Sequence[Record | Mapping[str, Any]],
) -> list[Record] | RecordBatch | None:
    """The records validated without pydantic when every value is of a plain kind, or None."""
    if set(map(type, records)) != {dict}:
        return None
    rows: Sequence[dict[str, Any]] = records  # type: ignore[assignment]
    # Field by field pays off from a few records on; one record goes faster cell by cell.
    # Equal sizes and the first record's keys found in every one: the same key sets.
    if len(rows) >= _TABLE_FROM and len(set(map(len, rows))) == 1:
        batch = _fast_table(rows)
        if batch is not None:
            return batch
    out: list[Record] = []
    for r in rows:
        fields = _fast_fields(r)
        if fields is None:
            return None
        out.append(_construct(fields))
    return out


def _problem(error: Mapping[str, Any]) -> Problem:
    loc = list(error["loc"])
    index = loc.pop(0) if loc and isinstance(loc[0], int) else None
    field = ".".join(str(part) for part in loc) or None
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    return Problem(message=message, index=index, field=field)


def sample_ids(records: Sequence[Record]) -> list[str | None]:
    """Each validated record's ``sample_id``; from a ``RecordBatch`` without building records."""
    if type(records) is RecordBatch:
        return records.sample_ids  # a new list already
    return [record.sample_id for record in records]


def validate_records(records: Sequence[Record | Mapping[str, Any]]) -> Sequence[Record]:
    """Validate raw records, collecting every problem with its record index and field.

    The result is a sequence of ``Record``: a ``RecordBatch`` for a batch of plain records
    (JSON values) that all send the same fields, else a list.
    """
    if type(records) is RecordBatch:  # a type test: isinstance asks the Sequence ABC
        return records
    if all(isinstance(r, Record) for r in records):
        return list(records)  # type: ignore[arg-type]
    fast = _fast_records(records)
    if fast is not None:
        return fast
    raw = [r.model_dump() if isinstance(r, Record) else r for r in records]
    try:
        return _RECORDS.validate_python(raw)
    except ValidationError as exc:
        raise InvalidInputError([_problem(e) for e in exc.errors()]) from None
