"""The record schema: one batch's process log, validated at every boundary.

The API reuses these models, so a record is described once for HTTP and for Python callers.
"""

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final

import numpy as np
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
from yield_model.parsing import FLOAT32_MAX, is_excel_date


def _is_nan(value: object) -> bool:
    return isinstance(value, float | np.floating) and math.isnan(value)


def _finite(number: float) -> float | None:
    if math.isnan(number):
        return None
    if math.isinf(number):
        raise ValueError("must be a finite number")
    if abs(number) > FLOAT32_MAX:
        raise ValueError("must be between -3.4e38 and 3.4e38, the range the model computes in")
    return number


def _numeric(value: object) -> float | str | None:
    """Accept a number, a numeric string or null; keep Excel date artefacts for the parser."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        raise ValueError("expected a number, got a boolean")
    if isinstance(value, numbers.Real):  # numpy scalars too, as pandas rows carry them
        return _finite(float(value))
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
    # What Record.model_construct does (~45 µs), for values already validated (~2 µs).
    record = _new_record(Record)
    values = _EMPTY_RECORD.copy()
    values.update(fields)
    _set(record, "__dict__", values)
    _set(record, "__pydantic_fields_set__", set(fields))
    _set(record, "__pydantic_extra__", None)
    _set(record, "__pydantic_private__", None)
    return record


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


def _fast_table(records: Sequence[dict[str, Any]]) -> list[Record] | None:
    """Records that all send the same keys, validated field by field rather than record by
    record: a few C-level passes per field instead of a Python call per value."""
    keys = tuple(records[0])
    specs = [_KEYS.get(key) for key in keys]
    names = [spec[0] for spec in specs if spec is not None]
    if len(names) != len(keys) or len(set(names)) != len(names):
        return None  # unknown keys, or a field under both its names: pydantic words it
    n = len(records)
    columns: dict[str, list[Any] | tuple[Any, ...]] = dict.fromkeys(_EMPTY_RECORD, (None,) * n)
    for key, name, spec in zip(keys, names, specs, strict=True):
        plain = _plain_column(spec[1], [r[key] for r in records])  # type: ignore[index]
        if plain is None:
            return None
        columns[name] = plain
    provided = set(names)
    fields = tuple(columns)
    out: list[Record] = []
    for row in zip(*columns.values(), strict=True):
        record = _new_record(Record)
        _set(record, "__dict__", dict(zip(fields, row, strict=True)))
        _set(record, "__pydantic_fields_set__", provided.copy())
        _set(record, "__pydantic_extra__", None)
        _set(record, "__pydantic_private__", None)
        out.append(record)
    return out


def _fast_records(records: Sequence[Record | Mapping[str, Any]]) -> list[Record] | None:
    """The records validated without pydantic when every value is of a plain kind, or None."""
    if not all(type(r) is dict for r in records):
        return None
    rows: Sequence[dict[str, Any]] = records  # type: ignore[assignment]
    # Field by field pays off from a few records on; one record goes faster cell by cell.
    if len(rows) >= _TABLE_FROM and all(r.keys() == rows[0].keys() for r in rows):
        return _fast_table(rows)
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


def validate_records(records: Sequence[Record | Mapping[str, Any]]) -> list[Record]:
    """Validate raw records, collecting every problem with its record index and field."""
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
