"""The record schema: one batch's process log, validated at every boundary by pydantic.

Validation checks what a value *is* (a number, a string of bounded length, null); what it
*means* is the parser's job (``yield_model.parsing``), which reads numeric text, repairs the
published files' quirks and reports, per record, what it could not read. The API reuses these
models, so a record is described once for HTTP and for Python callers.
"""

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetPydanticSchema,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import ErrorDetails, core_schema, from_json

from yield_model.columns import ID_COLUMN, NUMERIC_COLUMNS, TARGET_COLUMN, TIME_COLUMNS
from yield_model.errors import (
    InvalidInputError,
    MalformedRequestError,
    Problem,
    TooManyRecordsError,
)
from yield_model.parsing import MAX_TEXT_LENGTH

Text = Annotated[str, StringConstraints(strict=True, max_length=MAX_TEXT_LENGTH)]
#: The error type of a cell that is none of the JSON types its field takes.
CELL_TYPE_ERROR: Final = "cell_type"


def _cell(*choices: core_schema.CoreSchema) -> GetPydanticSchema:
    """A cell of one of ``choices`` or null, failing with one error, ``cell_type``.

    pydantic reports a plain union's failure once per branch, each error with the input
    converted anew: a 30 MB string would be held three times over before it is refused.
    """
    return GetPydanticSchema(
        lambda _source, _handler: core_schema.nullable_schema(
            core_schema.union_schema(
                list(choices),
                custom_error_type=CELL_TYPE_ERROR,
                custom_error_message="not a value this field takes",
            )
        )
    )


_NUMBER: Final = core_schema.float_schema(strict=True)
_TEXT: Final = core_schema.str_schema(strict=True, max_length=MAX_TEXT_LENGTH)
#: A number, a string the parser reads (numeric text, an Excel date artefact), or null. NaN is
#: null, as pandas writes a blank cell; infinities and magnitudes beyond float32 are reported
#: by the parser and treated as missing.
NumericValue = Annotated[float | str | None, _cell(_NUMBER, _TEXT)]
#: A clock time or range as the files write it, or null. A number is read as its text (700 is
#: 7:00, as the text "700"; NaN is missing, as a pandas row has it for a blank cell).
TimeValue = Annotated[float | str | None, _cell(_NUMBER, _TEXT)]


def _whole_number(value: object) -> object:
    """A float without a fraction as the integer it equals: JSON Schema's ``integer`` is any
    number that is a whole (``1.0`` is one), and the schema says a sample_id may be one."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


SampleId = Annotated[
    str | int | None,
    _cell(_TEXT, core_schema.int_schema(strict=True)),
    BeforeValidator(_whole_number),
]

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


#: The published files' names, accepted for a field instead of its own (never both).
ALIASES: Final = {"sample_id": ID_COLUMN, "observed_yield": TARGET_COLUMN}


def _record_schema(schema: dict[str, Any]) -> None:
    """The record's JSON Schema as validation has it: the published names are properties too,
    each excluding its field's own name."""
    schema["examples"] = [EXAMPLE_RECORD]
    properties = schema["properties"]
    for field, alias in ALIASES.items():
        properties[alias] = {**properties[field], "description": f"The same as {field}."}
    schema["not"] = {"anyOf": [{"required": [f, a]} for f, a in ALIASES.items()]}


class Record(BaseModel):
    """One batch: the recipe and process log of the published files.

    The training file's yield column (收率) is accepted, so that its rows can be sent as they
    are, and is not used for the prediction.
    """

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra=_record_schema,
    )

    sample_id: SampleId = Field(
        default=None,
        validation_alias=AliasChoices("sample_id", ID_COLUMN),
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
        validation_alias=AliasChoices("observed_yield", TARGET_COLUMN),
        description="The measured yield (收率) when known, as in the training file; not used "
        "for the prediction.",
    )


class PredictionRequest(BaseModel):
    """The body of a prediction request: one or more batches' process logs."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"inputs": [EXAMPLE_RECORD]}]}
    )

    # fail_fast: validation stops at the first invalid record, so that a body of thousands
    # of bad values costs the problems of one record, not an error object per value.
    inputs: list[Record] = Field(
        min_length=1,
        fail_fast=True,
        description="The records to predict; at most MLAPI_MAX_RECORDS (10,000 by default).",
    )


#: The keys a record may hold: each field once, under one of its names (two are unknown).
RECORD_KEYS: Final = len(Record.model_fields)
_STRUCTURAL: Final = (b"{", b"[", b",", b":")
# Escapes whose second character is a backslash or a quote, which would pair quotes wrongly;
# a backslash pair first, so that in \\" the quote ends the string.
_ESCAPES: Final = (b"\\\\", b'\\"')
_QUOTED: Final = re.compile(rb'"[^"]*"')
#: Bytes of the body looked at at once: the strings of a window are its memory.
_WINDOW: Final = 64 * 1024


def _tokens(text: bytes | bytearray) -> int:
    return sum(text.count(token) for token in _STRUCTURAL)


def structural_tokens(body: bytes | bytearray, limit: int) -> int:
    """How many of ``{ [ , :`` a JSON body holds outside its strings, when above ``limit``.

    Each JSON value but the first follows one of them, so this bounds the values a parser
    would build. Counted over the raw bytes first (memchr-fast); only a count above the
    limit is recounted with the strings taken out, so text full of commas is not refused.
    The recount goes window by window (a string across two is carried over), so that a
    body of millions of short strings costs a window's worth of memory.
    """
    count = _tokens(body)
    if count <= limit:
        return count
    count = 0
    in_string = False
    start = 0
    while start < len(body):
        end = min(start + _WINDOW, len(body))
        while end < len(body) and body[end - 1] == 0x5C:  # never cut an escape in two
            end += 1
        window = body[start:end]
        for escape in _ESCAPES:
            window = window.replace(escape, b"")
        quotes = window.count(b'"')
        paired = (b'"' if in_string else b"") + window
        if (in_string + quotes) % 2:
            paired += b'"'
        count += _tokens(_QUOTED.sub(b"", paired))
        in_string = bool((in_string + quotes) % 2)
        start = end
    return count


def max_request_tokens(max_records: int) -> int:
    """The structural tokens of ``{"inputs": [...]}`` with ``max_records`` records of every
    key: ``{ : [`` and, per record, its ``{``, a ``:`` per key, a ``,`` between keys and one
    after the record."""
    return 3 + max_records * (2 * RECORD_KEYS + 1)


_REQUEST: Final = TypeAdapter(PredictionRequest)
_RECORDS: Final = TypeAdapter(list[Record])
_FIRST_INVALID: Final = TypeAdapter(Annotated[list[Record], Field(fail_fast=True)])

#: Bodies above this are validated a slice of records at a time: pydantic-core builds a
#: document's whole JSON tree before it validates, some 6x the text of small values.
CHUNKED_BODY_BYTES: Final = 1024 * 1024
_CHUNK_RECORDS: Final = 500
_WS: Final = rb"[ \t\n\r]*"  # JSON's whitespace
_ENVELOPE: Final = re.compile(
    rb"\A" + _WS + rb'\{' + _WS + rb'"inputs"' + _WS + rb":" + _WS + rb"\[(.*)\]" + _WS
    + rb"\}" + _WS + rb"\Z",
    re.DOTALL,
)  # fmt: skip
# Between two records. A match inside a string or a nested value leaves the slice before it
# no JSON (a string or a bracket left open): the whole body is then validated at once.
_BETWEEN_RECORDS: Final = re.compile(rb"\}" + _WS + rb"," + _WS + rb"\{")


def _slices(body: bytes | bytearray, start: int, end: int) -> list[tuple[int, int]]:
    """Where, in ``body[start:end]`` (``{...}, {...}``), each run of ``_CHUNK_RECORDS``
    records starts and ends."""
    cuts = list(_BETWEEN_RECORDS.finditer(body, start, end))[_CHUNK_RECORDS - 1 :: _CHUNK_RECORDS]
    starts = [start, *(cut.end() - 1 for cut in cuts)]  # at the next record's {
    ends = [*(cut.start() + 1 for cut in cuts), end]  # after the last record's }
    return list(zip(starts, ends, strict=True))


def _validate_in_slices(body: bytes | bytearray) -> list[Record] | None:
    """The records of a large body, validated a slice of records at a time, with the same
    outcome as the whole body's validation; None when that cannot be known this way (the
    body is not plainly ``{"inputs": [{...}, ...]}``, a slice is no JSON, or it holds too
    few records to slice), to validate the body at once."""
    envelope = _ENVELOPE.match(body)
    if envelope is None:
        return None
    spans = _slices(body, *envelope.span(1))
    if len(spans) == 1:
        return None
    records: list[Record] = []
    first_invalid: list[ErrorDetails] = []
    with memoryview(body) as view:
        for start, end in spans:
            chunk = b"[" + view[start:end] + b"]"
            if first_invalid:  # the answer is known, if the rest of the body is JSON
                try:
                    from_json(chunk)
                except ValueError:
                    return None
                continue
            try:
                records += _FIRST_INVALID.validate_json(chunk)
            except ValidationError as exc:
                errors = exc.errors(include_url=False)
                if errors and errors[0]["type"] == "json_invalid":
                    return None
                for error in errors:  # an index within the slice, made the body's
                    if error["loc"] and isinstance(error["loc"][0], int):
                        error["loc"] = (error["loc"][0] + len(records), *error["loc"][1:])
                first_invalid = errors
    if first_invalid:
        raise InvalidInputError(_problems(first_invalid, ()))
    return records


_KIND_OF_FIELD: Final = {
    **dict.fromkeys(NUMERIC_COLUMNS, "a number, a numeric string or null"),
    "observed_yield": "a number, a numeric string or null",
    **dict.fromkeys(TIME_COLUMNS, "a time string such as '13:30:00' or '21:00-21:30', or null"),
    "sample_id": "a string or an integer",
}
_ALIASED: Final = {
    **{alias: field for field, alias in ALIASES.items()},
    **ALIASES,
}
_JSON_TYPES: Final = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
}
_ENVELOPE_MESSAGES: Final[dict[tuple[str, tuple[int | str, ...]], str]] = {
    ("model_type", ()): 'the body must be a JSON object: {"inputs": [record, ...]}',
    ("missing", ("inputs",)): "field required: inputs, a list of records",
    ("list_type", ("inputs",)): "inputs must be a list of records",
    ("too_short", ("inputs",)): "inputs must hold at least one record",
}


def _kind(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _problems(errors: Sequence[ErrorDetails], prefix: tuple[str, ...]) -> list[Problem]:
    """One problem per (record, field), worded for the client, in the order pydantic found them:
    what the field takes and what it got, or the length limit when the value was text too long.
    """
    found: dict[tuple[int | None, str | None], Problem] = {}
    for error in errors:
        loc = tuple(error["loc"])
        envelope = _ENVELOPE_MESSAGES.get((error["type"], loc))
        if envelope is not None:
            field = str(loc[0]) if loc else None
            found.setdefault((None, field), Problem(envelope, None, field))
            continue
        if loc[: len(prefix)] == prefix:
            loc = loc[len(prefix) :]
        index = loc[0] if loc and isinstance(loc[0], int) else None
        rest = loc[1:] if index is not None else loc
        field = str(rest[0]) if rest else None
        if error["type"] == "extra_forbidden" and field in _ALIASED:
            message = f"{field} and {_ALIASED[field]} name the same field: give one of them"
        elif error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == CELL_TYPE_ERROR and type(error["input"]) is str:
            message = f"too long: at most {MAX_TEXT_LENGTH} characters"  # any string else is read
        elif error["type"] == "model_type" and field is None:
            message = "a record must be a JSON object"
        elif type(error["input"]) is int and field in _KIND_OF_FIELD:  # no float holds it
            message = "too large: an integer beyond any floating-point number"
        elif field in _KIND_OF_FIELD:
            message = f"expected {_KIND_OF_FIELD[field]}, got {_kind(error['input'])}"
        else:
            message = error["msg"]
        found.setdefault((index, field), Problem(message, index, field))
    return list(found.values())


def validate_request(body: bytes | bytearray, max_records: int | None = None) -> list[Record]:
    """The records of a JSON request body ``{"inputs": [record, ...]}``, validated.

    Raises MalformedRequestError when the body is not JSON (``NaN`` is read as a number,
    as Python's and pandas' JSON writers put it for a blank cell), InvalidInputError listing
    the problems of the first invalid record, with its index and fields, otherwise;
    TooManyRecordsError for more than ``max_records`` records, or for a body with more
    structure than that many records can have, which is refused before it is parsed (a
    parsed JSON value takes far more memory than its text).
    """
    if max_records is not None:
        limit = max_request_tokens(max_records)
        if structural_tokens(body, limit) > limit:
            raise TooManyRecordsError(
                None,
                max_records,
                f"the body holds more JSON values than {max_records} records of at most "
                f"{RECORD_KEYS} fields can; at most {max_records} records are accepted "
                "per request",
            )
    if len(body) > CHUNKED_BODY_BYTES:
        sliced = _validate_in_slices(body)
        if sliced is not None:
            if max_records is not None and len(sliced) > max_records:
                raise TooManyRecordsError(len(sliced), max_records)
            return sliced
    try:
        request = _REQUEST.validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if errors and errors[0]["type"] == "json_invalid":
            detail = errors[0]["ctx"].get("error", errors[0]["msg"]) if "ctx" in errors[0] else ""
            raise MalformedRequestError(f"the request body is not valid JSON: {detail}") from None
        raise InvalidInputError(_problems(errors, ("inputs",))) from None
    if max_records is not None and len(request.inputs) > max_records:
        raise TooManyRecordsError(len(request.inputs), max_records)
    return request.inputs


def validate_records(records: Sequence[Record | Mapping[str, Any]]) -> list[Record]:
    """Validate records given as Python mappings (or ``Record``), every problem at once."""
    if not records:
        raise InvalidInputError([Problem("at least one record is required")])
    try:
        return _RECORDS.validate_python(records)  # Record instances pass as they are
    except ValidationError as exc:
        raise InvalidInputError(_problems(exc.errors(include_url=False), ())) from None
