"""The cell parsers read every quirk of the published files and never raise."""

import math
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yield_model.parsing import (
    _TOO_LARGE,
    MAX_TEXT_LENGTH,
    NumberParse,
    TimePointParse,
    TimeRangeParse,
    _number_from_text,
    _point_from_text,
    _range_from_text,
    describe,
    is_excel_date,
    parse_number,
    parse_time_point,
    parse_time_range,
)

Parser = Callable[[object], NumberParse | TimePointParse | TimeRangeParse]

MISSING_VALUES = [None, float("nan"), np.nan, np.float32("nan"), pd.NA, pd.NaT, "", "   ", "nan",
                  "NaN", "NA", "n/a", "null", "None"]  # fmt: skip

# ---------------------------------------------------------------------------- time points

POINTS = [
    # clean forms
    ("13:30:00", 13.5, "ok"),
    ("0:00:00", 0.0, "ok"),
    ("13:30", 13.5, "ok"),
    ("07:05:00", 7 + 5 / 60, "ok"),
    ("23:59:59", 24 - 1 / 3600, "ok"),
    ("  13:30:00 ", 13.5, "ok"),
    ("24:00", 0.0, "ok"),
    ("24:00:00", 0.0, "ok"),
    # Excel date artefacts of DATA.md: the clock part
    ("1900/1/21 0:00", 0.0, "repaired"),
    ("1900/1/9 7:00", 7.0, "repaired"),
    ("1900/3/13 0:00", 0.0, "repaired"),
    ("1900-01-09 07:30:00", 7.5, "repaired"),
    # unseparated and truncated
    ("700", 7.0, "repaired"),
    ("1600", 16.0, "repaired"),
    ("0730", 7.5, "repaired"),
    ("17:002", 17.0, "repaired"),
    ("19:", 19.0, "repaired"),
    ("18:00:", 18.0, "repaired"),
    # wrong separators
    ("13；00:00", 13.0, "repaired"),
    ("13;30:00", 13.5, "repaired"),
    ("13：30", 13.5, "repaired"),
    ("14::30:00", 14.5, "repaired"),
    ('22"00', 22.0, "repaired"),
    ('22""00', 22.0, "repaired"),
    ("6:30分", 6.5, "repaired"),
    # single-digit minutes and seconds
    ("23:0", 23.0, "repaired"),
    ("9:5", 9 + 5 / 60, "repaired"),
    ("9:05:7", 9 + 5 / 60 + 7 / 3600, "repaired"),
]


@pytest.mark.parametrize(("raw", "hours", "status"), POINTS)
def test_time_point_reads_clean_and_quirky_clock_times(raw: str, hours: float, status: str) -> None:
    result = parse_time_point(raw)

    assert result.status == status
    assert result.hours == pytest.approx(hours, abs=1e-12)
    assert (result.note is not None) == (status == "repaired")


@pytest.mark.parametrize(
    ("raw", "note"),
    [
        ("700", "read as 7:00"),
        ("1900/1/9 7:00", "read as 7:00 (the clock part of an Excel date artefact)"),
        ("13；00:00", "read as 13:00"),
        ("9:05:7", "read as 9:05:07"),
    ],
)
def test_time_point_note_gives_the_reading(raw: str, note: str) -> None:
    assert parse_time_point(raw).note == note


@pytest.mark.parametrize(
    ("raw", "note"),
    [
        (":30:00", "the hour is missing"),
        ("25:00", "hour 25 out of range"),
        ("24:30", "hour 24 out of range"),
        ("12:60", "minute 60 out of range"),
        ("12:30:60", "second 60 out of range"),
        ("7", None),
        ("12345", None),
        ("abc", None),
        ("1:2:3:4", None),
        ("12 :30", None),
        ("１３:００", "'１' (fullwidth digit one) is not an ASCII digit; only 0-9 are read"),
        ("13:3_0", "'_' is not read as a digit separator"),
        ("12:3045", None),
        ("12:300:00", None),
        ("-1:00", None),
        ("21:00-21:30", None),
        ("1900/2/30 7:00", None),
    ],
)
def test_time_point_rejects_unreadable_text(raw: str, note: str | None) -> None:
    assert parse_time_point(raw) == TimePointParse(None, "invalid", note)


@pytest.mark.parametrize("raw", MISSING_VALUES)
def test_time_point_missing_forms(raw: object) -> None:
    assert parse_time_point(raw) == TimePointParse(None, "missing", None)


@pytest.mark.parametrize(
    ("raw", "type_name"),
    [(True, "bool"), (np.bool_(True), "bool"), (b"7:00", "bytes"), ([1], "list"),
     (Decimal("700"), "Decimal")],
)  # fmt: skip
def test_time_parsers_reject_non_strings(raw: object, type_name: str) -> None:
    note = f"expected a time string, got {type_name}"

    assert parse_time_point(raw) == TimePointParse(None, "invalid", note)
    assert parse_time_range(raw) == TimeRangeParse(None, None, "invalid", note)


@pytest.mark.parametrize(
    ("number", "text"),
    [(700, "700"), (700.0, "700"), (np.int64(1600), "1600"), (np.float32(730), "730"),
     (np.float64(2359.0), "2359"), (2500, "2500")],
)  # fmt: skip
def test_a_number_in_a_time_column_is_read_as_its_text(number: object, text: str) -> None:
    point = parse_time_point(number)

    as_text = describe("A9", text, point.status, point.note)

    assert point == parse_time_point(text)
    assert as_text is not None
    assert describe("A9", number, point.status, point.note) == as_text.replace(repr(text), text)


def test_a_number_read_as_700_gets_the_warning_of_the_text() -> None:
    point = parse_time_point(700)

    assert point == TimePointParse(7.0, "repaired", "read as 7:00")
    assert describe("A9", 700.0, point.status, point.note) == "A9: read 700 as 7:00"


@pytest.mark.parametrize("number", [7.5, 30, 0, -700, 12345, math.inf, -math.inf, 1e20])
def test_a_number_that_is_no_hmm_clock_time_is_invalid_with_the_reason(number: float) -> None:
    point = parse_time_point(number)

    assert point == TimePointParse(
        None, "invalid", "a number in a time column is read as HMM digits, 700 for 7:00"
    )
    assert parse_time_range(number) == TimeRangeParse(
        None, None, "invalid", "a number is no range such as 21:00-21:30"
    )


def test_a_number_keeps_the_reason_its_text_has() -> None:
    assert parse_time_point(1260) == TimePointParse(None, "invalid", "minute 60 out of range")


def test_time_point_accepts_string_subclasses() -> None:
    assert parse_time_point(np.str_("13:30:00")) == TimePointParse(13.5, "ok")


# ---------------------------------------------------------------------------- time ranges

CLEAN_RANGES = [
    ("21:00-21:30", 21.0, 0.5),
    ("23:00-0:30", 23.0, 1.5),
    ("0:00-0:00", 0.0, 0.0),
    ("21:00:00-21:30:00", 21.0, 0.5),
    (" 21:00 - 21:30 ", 21.0, 0.5),
    ("23:00-24:00", 23.0, 1.0),
    ("24:00-1:00", 0.0, 1.0),
    ("1:00-13:00", 1.0, 12.0),  # long, but not across midnight
    ("18:00-6:00", 18.0, 12.0),  # the longest plausible crossing
]


@pytest.mark.parametrize(("raw", "start", "duration"), CLEAN_RANGES)
def test_time_range_reads_clean_ranges(raw: str, start: float, duration: float) -> None:
    assert parse_time_range(raw) == TimeRangeParse(start, duration, "ok", None)


QUIRKY_RANGES = [
    # every range quirk of DATA.md
    ("15:00-1600", 15.0, 1.0, "15:00-16:00"),
    ("19:-20:05", 19.0, 1 + 5 / 60, "19:00-20:05"),
    ("16:00-17:002", 16.0, 1.0, "16:00-17:00"),
    ("13；00-14:00", 13.0, 1.0, "13:00-14:00"),
    ("13;00-14:00", 13.0, 1.0, "13:00-14:00"),
    ("13：00-14:00", 13.0, 1.0, "13:00-14:00"),
    ("14::30-15:30", 14.5, 1.0, "14:30-15:30"),
    ("2:00-4::00", 2.0, 2.0, "2:00-4:00"),
    ('22"00-0:00', 22.0, 2.0, "22:00-0:00"),
    ('22""00-0:00', 22.0, 2.0, "22:00-0:00"),
    ("6:00-6:30分", 6.0, 0.5, "6:00-6:30"),
    ("18:00:-18:30", 18.0, 0.5, "18:00-18:30"),
    ("21:30-23:0", 21.5, 1.5, "21:30-23:00"),
    ("23:0-1:0", 23.0, 2.0, "23:00-1:00"),
    # other dashes
    ("21:00～21:30", 21.0, 0.5, "21:00-21:30"),
    ("21:00--21:30", 21.0, 0.5, "21:00-21:30"),
    ("23:00-24::00", 23.0, 1.0, "23:00-24:00"),
]


@pytest.mark.parametrize(("raw", "start", "duration", "reading"), QUIRKY_RANGES)
def test_time_range_repairs_every_known_quirk(
    raw: str, start: float, duration: float, reading: str
) -> None:
    result = parse_time_range(raw)

    assert (result.status, result.note) == ("repaired", f"read as {reading}")
    assert result.start == pytest.approx(start, abs=1e-12)
    assert result.duration == pytest.approx(duration, abs=1e-12)


def test_time_range_ending_before_it_starts_keeps_the_start_only() -> None:
    result = parse_time_range("18:30-15:00")

    assert result == TimeRangeParse(
        18.5,
        None,
        "invalid",
        "ends before it starts; 20.5 h across midnight is implausible for one step",
    )


@pytest.mark.parametrize(
    ("raw", "note"),
    [
        ("6:00-6x", None),
        ("21:00", None),
        ("21:00-22:00-23:00", None),
        ("-21:00", None),
        ("25:00-1:00", "hour 25 out of range"),
        ("1:00-1:75", "minute 75 out of range"),
        (":30-1:00", "the hour is missing"),
        ("1900/1/9 7:00", "an Excel date artefact, not a range"),
    ],
)
def test_time_range_rejects_unreadable_text(raw: str, note: str | None) -> None:
    assert parse_time_range(raw) == TimeRangeParse(None, None, "invalid", note)


@pytest.mark.parametrize("raw", MISSING_VALUES)
def test_time_range_missing_forms(raw: object) -> None:
    assert parse_time_range(raw) == TimeRangeParse(None, None, "missing", None)


# ---------------------------------------------------------------------------- numbers

NUMBERS = [
    (3, 3.0),
    (3.5, 3.5),
    (-2, -2.0),
    (np.int64(400), 400.0),
    (np.float32(0.5), 0.5),
    (np.float64(70.0), 70.0),
    (Decimal("2.5"), 2.5),
    (Fraction(1, 4), 0.25),
    ("3.5", 3.5),
    (" 400 ", 400.0),
    ("+3", 3.0),
    ("-2.5", -2.5),
    ("1e3", 1000.0),
    (".5", 0.5),
    ("5.", 5.0),
]


@pytest.mark.parametrize(("raw", "value"), NUMBERS)
def test_number_reads_numbers_and_numeric_strings(raw: object, value: float) -> None:
    assert parse_number(raw) == NumberParse(value, "ok", None)


EXCEL_SERIALS = [
    # the A25 artefact of DATA.md
    ("1900/3/10 0:00", 70.0),
    # January: serial = day of the year
    ("1900/1/0", 0.0),
    ("1900/1/1 0:00", 1.0),
    ("1900/1/31", 31.0),
    # February, including Excel's nonexistent 1900-02-29
    ("1900/2/1", 32.0),
    ("1900/2/28", 59.0),
    ("1900/2/29 0:00", 60.0),
    # March on: one more than the true day count
    ("1900/3/1", 61.0),
    ("1900/12/31", 366.0),
    ("1901/1/1", 367.0),
    # the clock is a fraction of a day
    ("1900/3/10 12:00", 70.5),
    ("1900/3/10 6:00:00", 70.25),
    ("1900-03-10 00:00:00", 70.0),
    (" 1900/3/10 0:00 ", 70.0),
]


@pytest.mark.parametrize(("raw", "value"), EXCEL_SERIALS)
def test_number_recovers_excel_serial_from_date_artefact(raw: str, value: float) -> None:
    result = parse_number(raw)

    assert (result.value, result.status) == (value, "repaired")
    assert result.note == f"read as {value:g} (an Excel date artefact)"
    assert is_excel_date(raw)


@pytest.mark.parametrize("raw", MISSING_VALUES)
def test_number_missing_forms(raw: object) -> None:
    assert parse_number(raw) == NumberParse(None, "missing", None)


@pytest.mark.parametrize(
    ("raw", "note"),
    [
        (float("inf"), "not a finite number"),
        (-math.inf, "not a finite number"),
        (np.float64("inf"), "not a finite number"),
        ("inf", None),
        ("1e999", _TOO_LARGE),
        ("-1e39", _TOO_LARGE),
        (10**400, _TOO_LARGE),
        (1e39, _TOO_LARGE),
        (True, "expected a number, got bool"),
        (np.bool_(True), "expected a number, got bool"),
        (b"3", "expected a number, got bytes"),
        ([1], "expected a number, got list"),
        (complex(1, 2), "not a number (complex)"),
        ("abc", None),
        ("1,200", None),
        ("1_000", "'_' is not read as a digit separator"),
        ("３", "'３' (fullwidth digit three) is not an ASCII digit; only 0-9 are read"),
        ("70%", None),
        ("1900/2/30", None),
        ("1900/13/1", None),
        ("1900/3/10 25:00", None),
        ("13:30:00", None),
    ],
)
def test_number_rejects_non_numbers(raw: object, note: str | None) -> None:
    assert parse_number(raw) == NumberParse(None, "invalid", note)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1900/3/10 0:00", True),
        ("1900/1/9 7:00", True),
        ("1900/1/21 0:00", True),
        (" 1900/3/13 0:00 ", True),
        ("1900/3/10", True),
        ("1900/2/30 0:00", False),
        ("1900/3/10 24:00", False),
        ("1900/3-10 0:00", False),
        ("13:30:00", False),
        ("70", False),
        ("", False),
        ("1" * (MAX_TEXT_LENGTH + 1), False),
    ],
)
def test_is_excel_date(text: str, expected: bool) -> None:
    assert is_excel_date(text) is expected


# ---------------------------------------------------------------------------- describe


@pytest.mark.parametrize(
    ("column", "raw", "parse", "expected"),
    [
        ("A20", "6:00-6x", parse_time_range, "A20: could not parse '6:00-6x', treated as missing"),
        ("A20", "6:00-6:30分", parse_time_range, "A20: read '6:00-6:30分' as 6:00-6:30"),
        ("A20", '22""00-0:00', parse_time_range, "A20: read '22\"\"00-0:00' as 22:00-0:00"),
        ("A9", "700", parse_time_point, "A9: read '700' as 7:00"),
        ("A25", "1900/3/10 0:00", parse_number,
         "A25: read '1900/3/10 0:00' as 70 (an Excel date artefact)"),
        ("B4", "18:30-15:00", parse_time_range,
         "B4: could not parse '18:30-15:00' (ends before it starts; 20.5 h across midnight "
         "is implausible for one step), treated as missing"),
        ("A5", 700, parse_time_point, "A5: read 700 as 7:00"),
        ("A5", True, parse_time_point,
         "A5: could not parse True (expected a time string, got bool), treated as missing"),
        ("A5", "1" * 50, parse_time_point,
         f"A5: could not parse '{'1' * 40}…', treated as missing"),
        ("A5", "13:30:00", parse_time_point, None),
        ("A7", None, parse_time_point, None),
        ("A25", 74, parse_number, None),
    ],
)  # fmt: skip
def test_describe_gives_the_warning_of_a_parse(
    column: str, raw: object, parse: Parser, expected: str | None
) -> None:
    result = parse(raw)

    assert describe(column, raw, result.status, result.note) == expected


def test_describe_shortens_long_raw_values() -> None:
    raw = "x" * (MAX_TEXT_LENGTH + 1)
    result = parse_number(raw)

    assert describe("A1", raw, result.status, result.note) == (
        f"A1: could not parse '{'x' * 40}…' (too long for a cell value (101 characters)), "
        "treated as missing"
    )


def test_describe_without_note() -> None:
    assert describe("A20", "x", "repaired", None) == "A20: repaired 'x'"
    assert describe("A20", "x", "invalid", None) == "A20: could not parse 'x', treated as missing"


# ---------------------------------------------------------------------------- unusual digits

UNUSUAL_DIGITS = [
    ("３８", "'３' (fullwidth digit three) is not an ASCII digit; only 0-9 are read"),
    ("٣٨", "'٣' (arabic-indic digit three) is not an ASCII digit; only 0-9 are read"),
    ("3_8", "'_' is not read as a digit separator"),
    ("1３:00", "'３' (fullwidth digit three) is not an ASCII digit; only 0-9 are read"),
]


@pytest.mark.parametrize(("raw", "note"), UNUSUAL_DIGITS)
def test_digits_python_would_read_are_invalid_with_the_reason(raw: str, note: str) -> None:
    # float('３８') == float('٣٨') == float('3_8') == 38.0: the parsers must not follow.
    assert parse_number(raw) == NumberParse(None, "invalid", note)
    assert parse_time_point(raw) == TimePointParse(None, "invalid", note)
    assert parse_time_range(raw) == TimeRangeParse(None, None, "invalid", note)
    assert parse_time_range(f"{raw}-21:30") == TimeRangeParse(None, None, "invalid", note)
    assert describe("A6", raw, "invalid", note) == (
        f"A6: could not parse {raw!r} ({note}), treated as missing"
    )


# ---------------------------------------------------------------------------- caching


def test_repeated_strings_are_served_from_the_cache() -> None:
    before = [f.cache_info().hits for f in (_number_from_text, _point_from_text, _range_from_text)]

    for _ in range(3):
        parse_number("3.25")
        parse_time_point("13:31:00")
        parse_time_range("21:01-21:30")

    after = [f.cache_info().hits for f in (_number_from_text, _point_from_text, _range_from_text)]
    assert all(a - b >= 2 for a, b in zip(after, before, strict=True))


def test_huge_strings_are_rejected_without_filling_the_cache() -> None:
    huge = "1" * 1_000_000
    sizes = [f.cache_info().currsize for f in (_number_from_text, _point_from_text)]

    assert parse_number(huge).status == "invalid"
    assert parse_time_point(huge).status == "invalid"
    assert parse_time_range(huge).status == "invalid"
    assert sizes == [f.cache_info().currsize for f in (_number_from_text, _point_from_text)]


# ---------------------------------------------------------------------------- fuzz

_CELL_CHARACTERS = '0123456789:-;；："分/ .~～－+eEx\t１'
cell_like = st.text(alphabet=_CELL_CHARACTERS, max_size=24)
any_text = st.text(max_size=300)
any_value = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.decimals(), st.fractions(),
    st.complex_numbers(), st.binary(max_size=8), cell_like, any_text,
)  # fmt: skip


def _check_number(result: NumberParse) -> None:
    assert (result.value is not None) == (result.status in ("ok", "repaired"))
    if result.value is not None:
        assert math.isfinite(result.value)


def _check_point(result: TimePointParse) -> None:
    assert (result.hours is not None) == (result.status in ("ok", "repaired"))
    if result.hours is not None:
        assert 0 <= result.hours < 24


def _check_range(result: TimeRangeParse) -> None:
    assert (result.duration is not None) == (result.status in ("ok", "repaired"))
    if result.start is not None:
        assert 0 <= result.start < 24
    if result.duration is not None:
        assert 0 <= result.duration <= 24


def _check_all(column: str, value: object) -> None:
    number, point, span = parse_number(value), parse_time_point(value), parse_time_range(value)
    _check_number(number)
    _check_point(point)
    _check_range(span)
    for result in (number, point, span):
        text = describe(column, value, result.status, result.note)
        assert (text is not None) == (result.status in ("repaired", "invalid"))


@settings(max_examples=3000, deadline=None)
@given(cell_like)
def test_parsers_never_raise_on_cell_like_text(text: str) -> None:
    _check_all("A20", text)
    if is_excel_date(text):
        assert parse_number(text).status == "repaired"


@settings(max_examples=1000, deadline=None)
@given(any_value)
def test_parsers_never_raise_on_any_value(value: object) -> None:
    _check_all("B4", value)


@pytest.mark.parametrize("length", [MAX_TEXT_LENGTH, MAX_TEXT_LENGTH + 1, 10**6])
def test_parsers_never_raise_on_long_text(length: int) -> None:
    _check_all("A5", ("13:30-" * length)[:length])
