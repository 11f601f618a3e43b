"""Bodies above schemas.CHUNKED_BODY_BYTES are validated a slice of records at a time, with
exactly the outcome of validating the whole body at once."""

import json
from typing import Any

import pytest

from yield_model import schemas
from yield_model.errors import InvalidInputError, MalformedRequestError, YieldModelError
from yield_model.schemas import EXAMPLE_RECORD, validate_request

#: Records enough for a body above the threshold, a few slices of them.
MANY = 3_000


def body_of(records: list[Any], text: bytes | None = None) -> bytes:
    return text if text is not None else json.dumps({"inputs": records}).encode()


def outcome(body: bytes) -> tuple[str, Any]:
    """What validation makes of a body: its records' dumps, or the error and its problems."""
    try:
        records = validate_request(body, max_records=100_000)
    except InvalidInputError as exc:
        return "invalid", [(p.index, p.field, p.message) for p in exc.problems]
    except YieldModelError as exc:
        return type(exc).__name__, str(exc)
    return "valid", [r.model_dump(exclude_unset=True) for r in records]


def whole_and_sliced(body: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    assert len(body) > schemas.CHUNKED_BODY_BYTES
    sliced = outcome(body)
    with monkeypatch.context() as patch:
        patch.setattr(schemas, "CHUNKED_BODY_BYTES", len(body))
        whole = outcome(body)
    return whole, sliced


def records(**changes: Any) -> list[dict[str, Any]]:
    """MANY records, each a variant of the example, with ``changes`` by index."""
    made: list[dict[str, Any]] = [
        {**EXAMPLE_RECORD, "sample_id": f"sample_{i}", "A6": 30 + i % 20} for i in range(MANY)
    ]
    for index, change in changes.items():
        made[int(index.removeprefix("at_"))].update(change)
    return made


CASES: dict[str, bytes] = {
    "valid": body_of(records()),
    "invalid in the third slice": body_of(records(at_1234={"A6": True, "colour": "red"})),
    "invalid early, then no JSON": body_of(records(at_3={"A6": [1]}))[:-2] + b",]}",
    "a string holding },{": body_of(records(at_700={"A20": "6:00},{6:30"})),
    "a nested value between records": body_of(records(at_900={"A1": [{"x": 1}, {"y": 2}]})),
    "no JSON whitespace": b"\x0c" + body_of(records()),
    "another key beside inputs": body_of(records())[:-1] + b', "colour": [1]}',
    "pretty-printed": json.dumps({"inputs": records()}, indent=2).encode(),
}


@pytest.mark.parametrize("case", CASES)
def test_a_large_body_sliced_is_validated_as_the_whole_body(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole, sliced = whole_and_sliced(CASES[case], monkeypatch)
    assert sliced == whole


def test_the_outcomes_are_the_expected_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    # (else the comparison above could pass with both paths wrong)
    found = {case: outcome(body)[0] for case, body in CASES.items()}
    assert found == {
        "valid": "valid",
        "invalid in the third slice": "invalid",
        "invalid early, then no JSON": MalformedRequestError.__name__,
        "a string holding },{": "valid",
        "a nested value between records": "invalid",
        "no JSON whitespace": MalformedRequestError.__name__,
        "another key beside inputs": "invalid",
        "pretty-printed": "valid",
    }
    assert outcome(CASES["invalid in the third slice"])[1] == [
        (1234, "A6", "expected a number, a numeric string or null, got a boolean"),
        (1234, "colour", "unknown field"),
    ]
    assert len(outcome(CASES["valid"])[1]) == MANY
