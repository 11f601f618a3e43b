"""The record schema: one batch's process log, validated at every boundary.

The API reuses these models, so a record is described once for HTTP and for Python callers.
"""

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

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
    raw = [r.model_dump() if isinstance(r, Record) else r for r in records]
    try:
        return _RECORDS.validate_python(raw)
    except ValidationError as exc:
        raise InvalidInputError([_problem(e) for e in exc.errors()]) from None
