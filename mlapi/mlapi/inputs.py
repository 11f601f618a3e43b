"""The prediction request body: JSON bytes to raw records, or the error that says why not.

Only the envelope is checked here; each record is validated by the model package.
"""

import json
from typing import Any

import orjson

from mlapi.errors import ApiError
from mlapi.schemas import ErrorItem


def _invalid(message: str, field: str | None = "inputs") -> ApiError:
    return ApiError(
        422, "invalid_input", message, [ErrorItem(index=None, field=field, message=message)]
    )


def _nan_only(constant: str) -> None:
    if constant != "NaN":
        raise ValueError(f"{constant} is not a JSON number")


def _loads(body: bytes) -> tuple[Any, bool]:
    """The body's JSON, also when missing values are written NaN, as Python and pandas do;
    and whether it was strict JSON."""
    if not body.strip():
        raise ApiError(400, "malformed_json", "the request body is empty; send JSON")
    try:
        return orjson.loads(body), True
    except orjson.JSONDecodeError as exc:
        error = exc
    # NaN is not JSON, but json.dumps writes it for every blank cell of a pandas frame; read
    # it as null (missing). The result must still be what orjson can write back, which
    # rules out what only the lenient reader accepts (lone surrogates, integers > 64 bits).
    try:
        payload = json.loads(body, parse_constant=_nan_only)
        orjson.dumps(payload)
    except (ValueError, RecursionError, orjson.JSONEncodeError):
        message = f"the request body is not valid JSON: {error}"
        raise ApiError(400, "malformed_json", message) from None
    return payload, False


def parse_body(body: bytes, max_records: int) -> tuple[list[Any], bool]:
    """The ``inputs`` list of a ``{"inputs": [record, ...]}`` body, before record validation,
    and whether the body was strict JSON (no NaN): the log then keeps the body as sent."""
    payload, strict = _loads(body)
    if not isinstance(payload, dict):
        raise _invalid('the body must be a JSON object: {"inputs": [record, ...]}', field=None)
    unknown = sorted(key for key in payload if key != "inputs")
    if unknown:
        items = [ErrorItem(index=None, field=key, message="unknown field") for key in unknown]
        raise ApiError(422, "invalid_input", "the body has unknown fields", items)
    if "inputs" not in payload:
        raise _invalid("field required: inputs, a list of records")
    inputs = payload["inputs"]
    if not isinstance(inputs, list):
        raise _invalid("inputs must be a list of records")
    if not inputs:
        raise _invalid("inputs must hold at least one record")
    if len(inputs) > max_records:
        raise ApiError(
            413,
            "too_many_records",
            f"{len(inputs)} records sent; at most {max_records} are accepted per request",
        )
    return inputs, strict
