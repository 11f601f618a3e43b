"""A table of malformed requests: each gets its 4xx and the one error body, never a 500."""

import gzip
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import orjson
import pytest
from fastapi.testclient import TestClient
from mlapi_support import AUTH

from mlapi.main import create_app
from mlapi.settings import Settings
from yield_model.columns import FEATURE_COLUMNS
from yield_model.schemas import EXAMPLE_RECORD

JSON: Mapping[str, str] = {"content-type": "application/json"}
RECORD = orjson.dumps(EXAMPLE_RECORD)


class Bad(NamedTuple):
    """A request, the status it must get, its error code and the (index, field) pairs named."""

    body: bytes
    status: int
    code: str
    where: Sequence[tuple[int | None, str | None]] = ()
    headers: Mapping[str, str] = JSON
    method: str = "POST"
    path: str = "/api/v1/predict"


def _inputs(*records: Any) -> bytes:
    return orjson.dumps({"inputs": list(records)})


def _typed(content_type: str) -> dict[str, str]:
    return {"content-type": content_type}


INVALID = "invalid_input"
MALFORMED = "malformed_json"
MEDIA = "unsupported_media_type"
ENCODED = "unsupported_content_encoding"

BAD_REQUESTS = {
    "truncated json": Bad(b'{"inputs": [', 400, MALFORMED),
    "empty body": Bad(b"", 400, MALFORMED),
    "not utf-8": Bad(b'{"inputs": ["\xff"]}', 400, MALFORMED),
    "NaN and a lone surrogate": Bad(b'{"inputs": [{"A1": NaN, "A5": "\\ud800"}]}', 400, MALFORMED),
    "NaN and nesting 5000 deep": Bad(b"[NaN, " + b"[" * 5000, 400, MALFORMED),
    "nesting 5000 deep": Bad(b"[" * 5000, 400, MALFORMED),
    "text/plain": Bad(b'{"inputs": [{}]}', 415, MEDIA, headers=_typed("text/plain")),
    "form encoded": Bad(b"a=1", 415, MEDIA, headers=_typed("application/x-www-form-urlencoded")),
    "no content type": Bad(b'{"inputs": [{}]}', 415, MEDIA, headers={}),
    "gzip": Bad(gzip.compress(RECORD), 415, ENCODED, headers={**JSON, "content-encoding": "gzip"}),
    "gzip declared, body plain": Bad(
        _inputs({}), 415, ENCODED, headers={**JSON, "content-encoding": "GZIP"}
    ),
    "br after identity": Bad(
        _inputs({}), 415, ENCODED, headers={**JSON, "content-encoding": "identity, br"}
    ),
    "charset latin-1": Bad(
        '{"inputs": [{"A6": "é"}]}'.encode("latin-1"),
        415,
        "unsupported_charset",
        headers=_typed("application/json; charset=latin-1"),
    ),
    "charset utf-16": Bad(
        '{"inputs": [{}]}'.encode("utf-16"),
        415,
        "unsupported_charset",
        headers=_typed('application/json; charset="UTF-16"'),
    ),
    "body is a list": Bad(b"[{}]", 422, INVALID, [(None, None)]),
    "body is a string": Bad(b'"inputs"', 422, INVALID, [(None, None)]),
    "no inputs": Bad(b"{}", 422, INVALID, [(None, "inputs")]),
    "inputs is an object": Bad(b'{"inputs": {}}', 422, INVALID, [(None, "inputs")]),
    "inputs is null": Bad(b'{"inputs": null}', 422, INVALID, [(None, "inputs")]),
    "empty inputs": Bad(b'{"inputs": []}', 422, INVALID, [(None, "inputs")]),
    "unknown top-level field": Bad(
        b'{"inputs": [{}], "model": 1}', 422, INVALID, [(None, "model")]
    ),
    "record is a number": Bad(_inputs({}, 5), 422, INVALID, [(1, None)]),
    "record is null": Bad(_inputs(None), 422, INVALID, [(0, None)]),
    "unknown field in record 2": Bad(_inputs({}, {}, {"C1": 1}), 422, INVALID, [(2, "C1")]),
    "boolean in a number": Bad(_inputs({"A6": True}), 422, INVALID, [(0, "A6")]),
    "list in a time": Bad(_inputs({"A20": ["18:30", "19:00"]}), 422, INVALID, [(0, "A20")]),
    "object as sample id": Bad(_inputs({"sample_id": {}}), 422, INVALID, [(0, "sample_id")]),
    "two bad records: validation stops at the first": Bad(
        _inputs({"A1": False}, {}, {"B14": [1]}), 422, INVALID, [(0, "A1")]
    ),
    "two bad values in record 1": Bad(
        _inputs({}, {"A1": False, "B14": [1]}, {"A1": False}), 422, INVALID, [(1, "A1"), (1, "B14")]
    ),
    "text beyond 100 characters": Bad(_inputs({"A20": "x" * 101}), 422, INVALID, [(0, "A20")]),
    "100k characters": Bad(_inputs({}, {"B14": "9" * 100_000}), 422, INVALID, [(1, "B14")]),
    "10,001 records": Bad(_inputs(*[{}] * 10_001), 413, "too_many_records", [(None, "inputs")]),
    "more structure than 10,000 records have": Bad(
        b'{"inputs": [%s]}' % b",".join([b"[]"] * 1_000_000),
        413,
        "too_many_records",
        [(None, "inputs")],
    ),
    "unknown path": Bad(b"", 404, "not_found", method="GET", path="/api/v2/predict"),
    "GET on predict": Bad(b"", 405, "method_not_allowed", method="GET"),
    "POST on health": Bad(b"{}", 405, "method_not_allowed", path="/api/v1/health"),
}


@pytest.mark.parametrize("bad", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_request_gets_its_status_and_error_body(client: TestClient, bad: Bad) -> None:
    # When
    response = client.request(bad.method, bad.path, content=bad.body, headers=dict(bad.headers))
    # Then
    assert response.status_code == bad.status, response.text
    detail = response.json()["detail"]
    assert set(detail) == {"code", "message", "errors"}
    assert detail["code"] == bad.code
    assert detail["message"]
    assert [(e["index"], e["field"]) for e in detail["errors"]] == list(bad.where)


def test_an_encoded_body_is_refused_naming_the_encoding(client: TestClient) -> None:
    headers = {**JSON, "content-encoding": "gzip"}
    response = client.post("/api/v1/predict", content=gzip.compress(RECORD), headers=headers)
    assert response.status_code == 415
    assert response.json()["detail"]["message"] == (
        "the service does not decode request bodies: send the body without Content-Encoding "
        "(got gzip)"
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "application/json; charset=utf-8"},
        {"content-type": "application/json; charset=UTF8"},
        {**JSON, "content-encoding": "identity"},
    ],
)
def test_utf8_and_identity_declared_outright_are_accepted(
    client: TestClient, headers: dict[str, str]
) -> None:
    response = client.post("/api/v1/predict", content=_inputs(EXAMPLE_RECORD), headers=headers)
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def small_limits_client() -> Iterator[TestClient]:
    """A client of an app accepting 3 records and 4 KiB per request."""
    with TestClient(
        create_app(Settings(max_records=3, max_body_bytes=4096)), headers=AUTH
    ) as client:
        yield client


def test_body_over_the_byte_limit_is_413(small_limits_client: TestClient) -> None:
    body = _inputs(*[{"A5": "x" * 2000}] * 3)
    response = small_limits_client.post("/api/v1/predict", content=body, headers=JSON)
    assert response.status_code == 413
    assert response.json()["detail"]["code"] == "body_too_large"


def test_streamed_body_over_the_byte_limit_is_413(small_limits_client: TestClient) -> None:
    # Given a body without Content-Length, sent in chunks
    def chunks() -> Iterator[bytes]:
        yield b'{"inputs": [{"A5": "'
        yield b"x" * 5000
        yield b'"}]}'

    response = small_limits_client.post("/api/v1/predict", content=chunks(), headers=JSON)
    assert response.status_code == 413
    assert response.json()["detail"]["code"] == "body_too_large"


def test_record_limit_follows_the_setting(small_limits_client: TestClient) -> None:
    three = small_limits_client.post("/api/v1/predict", content=_inputs({}, {}, {}), headers=JSON)
    four = small_limits_client.post(
        "/api/v1/predict", content=_inputs({}, {}, {}, {}), headers=JSON
    )
    assert three.status_code == 200
    assert four.status_code == 413
    assert four.json()["detail"]["message"] == (
        "4 records sent; at most 3 are accepted per request"
    )


def test_thousands_of_bad_values_list_those_of_the_first_bad_record(client: TestClient) -> None:
    # Given 150 records, each with every field of the wrong type, after a valid one
    everything_wrong = dict.fromkeys(FEATURE_COLUMNS, True)
    body = _inputs(EXAMPLE_RECORD, *[everything_wrong] * 150)
    # When
    response = client.post("/api/v1/predict", content=body, headers=JSON)
    # Then the first bad record's values are listed, and nothing of the others
    detail = response.json()["detail"]
    assert response.status_code == 422
    assert detail["message"] == (
        f"{len(FEATURE_COLUMNS)} invalid input value(s); records after the first invalid one "
        "are not checked"
    )
    assert [(e["index"], e["field"]) for e in detail["errors"]] == [
        (1, field) for field in FEATURE_COLUMNS
    ]
    assert {e["message"] for e in detail["errors"]} == {
        "expected a number, a numeric string or null, got a boolean",
        "expected a time string such as '13:30:00' or '21:00-21:30', or null, got a boolean",
    }


def test_the_structure_check_refuses_no_valid_request(small_limits_client: TestClient) -> None:
    # Given 3 records (the limit) with every field, and text full of the characters that are
    # structure outside a string
    record = dict.fromkeys(FEATURE_COLUMNS, "{[,:]}")
    record.update({"样本id": 2, "收率": 0.9})
    body = orjson.dumps({"inputs": [record] * 3})
    assert len(body) < 4096
    # When
    response = small_limits_client.post("/api/v1/predict", content=body, headers=JSON)
    # Then it is predicted
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 3


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "application/vnd.plant+json", "APPLICATION/JSON"],
)
def test_json_media_types_are_accepted(client: TestClient, content_type: str) -> None:
    response = client.post(
        "/api/v1/predict", content=_inputs(EXAMPLE_RECORD), headers={"content-type": content_type}
    )
    assert response.status_code == 200


#: Values of the right type that the parser cannot read: the record is predicted with the
#: value treated as missing, and a warning names it (the rest of the batch is unaffected).
UNREADABLE = {
    "Infinity literal": (b'{"inputs": [{"A1": Infinity}, {}]}', "A1"),
    "NaN and a 400-digit integer": (
        b'{"inputs": [{"A1": NaN, "A3": 1%s}, {}]}' % (b"0" * 400),
        "A3",
    ),
    "number beyond double": (b'{"inputs": [{"A1": 1e999}, {}]}', "A1"),
    "1e300": (_inputs({"A25": 1e300}, {}), "A25"),
    "-1e300 as text": (_inputs({"A6": "-1e300"}, {}), "A6"),
    "beyond float32": (_inputs({"B14": 3.4028235677973366e38}, {}), "B14"),
    "text in a number": (_inputs({"A1": "abc"}, {}), "A1"),
    "infinite number string": (_inputs({"A6": "1e999"}, {}), "A6"),
    "number in a time, no HMM reading": (_inputs({"A5": 13.3}, {}), "A5"),
    "number in a range": (_inputs({"A20": 1330}, {}), "A20"),
}


@pytest.mark.parametrize(("body", "field"), UNREADABLE.values(), ids=UNREADABLE.keys())
def test_unreadable_values_are_missing_with_a_warning_naming_them(
    client: TestClient, body: bytes, field: str
) -> None:
    response = client.post("/api/v1/predict", content=body, headers=JSON)
    assert response.status_code == 200, response.text
    first, second = response.json()["predictions"]
    (warning,) = first["warnings"]
    assert warning.startswith(f"{field}: could not parse ")
    assert warning.endswith(", treated as missing")
    assert second["warnings"] == []


ODD_VALUES = {
    "full-width digits": ("A20", "６:００"),
    "24:00": ("A20", "24:00-1:00"),
    "NUL": ("A20", "\x00"),
    "number text in a time": ("A20", "-1e308"),
    "Excel date in a number": ("A25", "1900/3/10 0:00"),
    "10^30": ("A25", 10**30),
    "-0.0": ("A25", -0.0),
}


@pytest.mark.parametrize(("key", "value"), ODD_VALUES.values(), ids=ODD_VALUES.keys())
def test_odd_but_well_typed_values_are_predicted(
    client: TestClient, key: str, value: object
) -> None:
    # A value of the right type is predicted; one the parser cannot read counts as missing
    response = client.post("/api/v1/predict", json={"inputs": [{**EXAMPLE_RECORD, key: value}]})
    assert response.status_code == 200, response.text
    assert isinstance(response.json()["predictions"][0]["predicted_yield"], float)


def test_nan_as_python_writes_it_is_read_as_missing(
    client: TestClient, record: dict[str, Any]
) -> None:
    # Given a record with blanks written NaN (json.dumps of a pandas row) and the same with null
    with_nan = json.dumps({"inputs": [{**record, "A1": float("nan"), "A5": float("nan")}]})
    with_null = json.dumps({"inputs": [{**record, "A1": None, "A5": None}]})
    # When
    nan_answer = client.post("/api/v1/predict", content=with_nan, headers=JSON)
    null_answer = client.post("/api/v1/predict", content=with_null, headers=JSON)
    # Then both are predicted alike
    assert nan_answer.status_code == 200, nan_answer.text
    assert (
        nan_answer.json()["predictions"][0]["predicted_yield"]
        == null_answer.json()["predictions"][0]["predicted_yield"]
    )


def test_a_number_in_a_time_column_is_read_as_its_text_not_refused(
    client: TestClient, record: dict[str, Any]
) -> None:
    # Given a batch whose A9 a client turned from the published cell "700" into a number
    batch = [{**record, "A9": 700}] + [record] * 99
    # When
    as_number = client.post("/api/v1/predict", json={"inputs": batch})
    as_text = client.post("/api/v1/predict", json={"inputs": [{**record, "A9": "700"}]})
    # Then the whole batch is predicted, the number as the text is, with the same warning
    assert as_number.status_code == 200, as_number.text
    first, *rest = as_number.json()["predictions"]
    (text,) = as_text.json()["predictions"]
    assert (
        first["warnings"]
        == ["A9: read 700 as 7:00"]
        == [w.replace("'700'", "700") for w in text["warnings"]]
    )
    assert first["predicted_yield"] == text["predicted_yield"]
    assert all(p["warnings"] == [] for p in rest)
