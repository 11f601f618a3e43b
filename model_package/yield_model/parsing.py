"""Turn the raw cell values of the published JinNan files into numbers.

Every function here is pure, never raises, and reports how it read a value:

- ``ok``: a clean value;
- ``repaired``: a known quirk of the published files was fixed and the value is trusted;
- ``missing``: None, NaN, pandas' NA/NaT, an empty string or a missing marker
  (``nan``, ``na``, ``n/a``, ``null``, ``none``, any case);
- ``invalid``: the value could not be read and is treated as missing.

Rules, with the reasons where they are not obvious:

- Strings are trimmed first; trimming alone is not a repair. Internal whitespace inside a clock
  time makes it invalid; whitespace around the ``-`` of a range is ignored.
- Clock times read ``H:MM:SS`` or ``H:MM`` (hour 0-24, minute and second 0-59) and give hours.
  ``24:00`` is the standard end-of-day notation, so it is ``ok`` and reads as 0 h;
  ``24:30`` is invalid.
- Repairs, each giving the status ``repaired``:
  ``;``, ``；``, ``：`` and a stray quote (``22"00``, or ``22""00`` as the CSV escape shows it)
  stand for ``:``; runs of colons collapse (``14::30``); a trailing ``分`` or ``:`` is dropped
  (``6:30分``, ``18:00:``); an hour with its minutes missing reads as whole hours (``19:``);
  a single-digit minute or second is read as that number (``23:0`` is 23:00; always a
  repair, so ``23:3`` is flagged rather than silently read as 23:03); a three-digit last field
  loses its stray last digit (``17:002`` is 17:00); three or four bare digits are ``HMM``
  (``700`` is 7:00, ``1600`` is 16:00); ``－ – — ~ ～`` stand for the ``-`` of a range and runs
  of dashes collapse.
- A missing hour (``:30:00``) or a bare one- or two-digit number is invalid: there is no single
  obvious reading.
- Excel date artefacts (``1900/1/9 7:00``; ``-`` also accepted as the date separator; the
  clock part optional): in a time point the clock part is the value (published solutions read
  ``1900/1/9 7:00`` as 7:00); in a number the value is Excel's serial day number plus the clock
  as a fraction of a day. Excel counts the nonexistent 1900-02-29 (serial 60), so dates from
  1900-03-01 on are one more than the true day count: ``1900/3/10 0:00`` is 70.
  ``1900/1/0`` is Excel's display of 0. A date in a range column is invalid.
- A range whose end is before its start crosses midnight (24 h are added), unless that makes
  it longer than 12 h (``18:30-15:00`` would be 20.5 h, implausible for one process step): then
  the start is kept and the duration is missing, status ``invalid``. Equal ends give 0 h.
- Numbers: int and float (numpy scalars included) are ``ok``; NaN is missing; infinities,
  magnitudes beyond float32's range (what the model computes in) and booleans are invalid;
  strings must be plain decimal numbers (``'3.5'``, ``' 400 '``, ``'1e3'``; no thousands
  separators, no full-width digits). A number in a time column is read as its text would be
  (a client that turns CSV cells into numbers sends ``700`` for the cell ``700``): ``700`` and
  ``700.0`` are ``'700'``, so 7:00 with the warning the text gets; ``7.5`` is ``'7.5'``, invalid.
  Booleans are invalid everywhere.
- Digits are ASCII only. Other scripts' digits (full-width ``３８``, Arabic-Indic ``٣٨``, which
  Python's ``float()`` and ``int()`` would accept) and ``_`` between digits (``3_8``, which they
  also accept) are invalid, with the reason in the warning: such a cell is not what the files
  hold, and reading it as 38 would hide the difference from the client.
- Strings longer than :data:`MAX_TEXT_LENGTH` are invalid without being parsed or cached.

Notes: a repaired value's note reads ``read as <reading>`` with a reason in parentheses when the
reading cannot be seen in the raw text (Excel artefacts); an invalid value's note, when there is
something to say beyond "could not parse", gives the reason.
"""

import datetime as dt
import math
import numbers
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

Status = Literal["ok", "repaired", "missing", "invalid"]

#: Longer strings are no cell value of the published files; they are rejected unparsed so a
#: hostile input can neither cost time nor fill the parse caches.
MAX_TEXT_LENGTH: Final = 100
_CACHE_SIZE: Final = 65536
_MAX_CROSSING_HOURS: Final = 12.0
_SHOWN_RAW_LENGTH: Final = 40

_MISSING_MARKERS: Final = frozenset({"", "nan", "na", "n/a", "null", "none"})
_EXCEL_NOTE: Final = "an Excel date artefact"
_EXCEL_CLOCK_NOTE: Final = "the clock part of an Excel date artefact"

_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_EXCEL_DATE = re.compile(
    r"([0-9]{4})([/-])([0-9]{1,2})\2([0-9]{1,2})(?:[ T]+([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?)?",
    re.ASCII,
)
_COLON_LIKE = re.compile(r'[;；："]')
_COLON_RUN = re.compile(r"::+")
_DASH_LIKE = re.compile(r"[－–—~～]")
_DASH_RUN = re.compile(r"--+")
_CLOCK = re.compile(r"([0-9]{1,2}):([0-9]{0,3})(?::([0-9]{0,3}))?", re.ASCII)
_BARE_CLOCK = re.compile(r"([0-9]{1,2})([0-9]{2})", re.ASCII)


@dataclass(frozen=True, slots=True)
class NumberParse:
    """A number read from a cell, with how it was read."""

    value: float | None
    status: Status
    note: str | None = None


@dataclass(frozen=True, slots=True)
class TimePointParse:
    """A clock time read from a cell, in hours in [0, 24)."""

    hours: float | None
    status: Status
    note: str | None = None


@dataclass(frozen=True, slots=True)
class TimeRangeParse:
    """A clock range read from a cell: start in hours in [0, 24) and duration in hours >= 0."""

    start: float | None
    duration: float | None
    status: Status
    note: str | None = None


@dataclass(frozen=True, slots=True)
class _Clock:
    """A validated clock time; ``hour`` may be 24 (only as 24:00:00)."""

    hour: int
    minute: int
    second: int

    @property
    def seconds(self) -> int:
        """Seconds since midnight; 24:00 is midnight."""
        return (self.hour % 24) * 3600 + self.minute * 60 + self.second

    @property
    def hours(self) -> float:
        return self.seconds / 3600

    def __str__(self) -> str:
        text = f"{self.hour}:{self.minute:02d}"
        return f"{text}:{self.second:02d}" if self.second else text


_NUMBER_MISSING: Final = NumberParse(None, "missing")
_POINT_MISSING: Final = TimePointParse(None, "missing")
_RANGE_MISSING: Final = TimeRangeParse(None, None, "missing")


def _too_long(text: str) -> str:
    return f"too long for a cell value ({len(text)} characters)"


def _format_number(value: float) -> str:
    return f"{value:.10g}"


def _is_missing_scalar(value: object) -> bool:
    """None, a NaN of any float type, or pandas' NA / NaT (matched by name: no pandas import)."""
    if value is None:
        return True
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return math.isnan(value)
    return type(value).__name__ in ("NAType", "NaTType")


def _unusual_digits(text: str) -> str | None:
    """Why a cell with digits the parsers do not read is invalid, or None if it has none.

    Python's ``float()`` and ``int()`` would read ``'３８'``, ``'٣٨'`` and ``'3_8'`` as 38; the
    parsers take ASCII digits only, and say so rather than leave the client guessing.
    """
    for char in text:
        if char.isdigit() and not char.isascii():
            name = unicodedata.name(char, "a digit").lower()
            return f"{char!r} ({name}) is not an ASCII digit; only 0-9 are read"
    if "_" in text:
        return "'_' is not read as a digit separator"
    return None


# ---------------------------------------------------------------------------- Excel dates


def _excel_serial(year: int, month: int, day: int) -> int | None:
    """Excel's 1900-system serial day number of a date, or None if Excel has no such date."""
    if year == 1900 and month == 1 and day == 0:
        return 0
    if year == 1900 and month == 2 and day == 29:
        return 60  # Excel's phantom leap day
    try:
        date = dt.date(year, month, day)
    except ValueError:
        return None
    serial = (date - dt.date(1899, 12, 31)).days
    return serial + 1 if date >= dt.date(1900, 3, 1) else serial


def _excel_date(text: str) -> tuple[int, _Clock] | None:
    """The serial day number and clock time of an Excel date artefact, or None."""
    match = _EXCEL_DATE.fullmatch(text)
    if match is None:
        return None
    year, _, month, day, hour, minute, second = match.groups()
    serial = _excel_serial(int(year), int(month), int(day))
    if serial is None:
        return None
    clock = _Clock(int(hour or 0), int(minute or 0), int(second or 0))
    if clock.hour > 23 or clock.minute > 59 or clock.second > 59:
        return None
    return serial, clock


def is_excel_date(text: str) -> bool:
    """Whether a string is a date Excel wrote over a cell value, e.g. '1900/3/10 0:00'."""
    if not isinstance(text, str) or len(text) > MAX_TEXT_LENGTH:
        return False
    return _excel_date(text.strip()) is not None


# ---------------------------------------------------------------------------- numbers


#: scikit-learn's trees compare features as float32: a larger magnitude cannot be predicted with.
FLOAT32_MAX: Final = 3.4028234663852886e38
_TOO_LARGE: Final = "too large: beyond ±3.4e38, the float32 range the model computes in"


@lru_cache(maxsize=_CACHE_SIZE)
def _number_from_text(text: str) -> NumberParse:
    text = text.strip()
    if text.lower() in _MISSING_MARKERS:
        return _NUMBER_MISSING
    if _NUMBER.fullmatch(text):
        number = float(text)
        if not abs(number) <= FLOAT32_MAX:
            return NumberParse(None, "invalid", _TOO_LARGE)
        return NumberParse(number, "ok")
    excel = _excel_date(text)
    if excel is not None:
        serial, clock = excel
        number = serial + clock.seconds / 86400
        return NumberParse(number, "repaired", f"read as {_format_number(number)} ({_EXCEL_NOTE})")
    return NumberParse(None, "invalid", _unusual_digits(text))


def _number_from_float(number: float) -> NumberParse:
    if math.isnan(number):
        return _NUMBER_MISSING
    if math.isinf(number):
        return NumberParse(None, "invalid", "not a finite number")
    if abs(number) > FLOAT32_MAX:
        return NumberParse(None, "invalid", _TOO_LARGE)
    return NumberParse(float(number), "ok")  # a plain float, also for numpy.float64


def _number_from_object(value: object) -> NumberParse:
    if isinstance(value, str):
        return parse_number(str.__str__(value))
    if type(value) is not int:  # plain ints skip the slower ABC checks
        if _is_missing_scalar(value):
            return _NUMBER_MISSING
        if isinstance(value, bool) or not isinstance(value, numbers.Number):
            return NumberParse(None, "invalid", f"expected a number, got {type(value).__name__}")
    try:
        number = float(value)  # type: ignore[arg-type]  # complex raises, caught by the caller
    except OverflowError:
        return NumberParse(None, "invalid", _TOO_LARGE)
    return _number_from_float(number)


def parse_number(value: object) -> NumberParse:
    """Read an amount, temperature or other numeric cell; never raises."""
    if type(value) is str:
        if len(value) > MAX_TEXT_LENGTH:
            return NumberParse(None, "invalid", _too_long(value))
        return _number_from_text(value)
    # isinstance, not type(): numpy.float64, what pandas columns hold, is a float subclass
    if isinstance(value, float):
        return _number_from_float(value)
    try:
        return _number_from_object(value)
    except Exception:  # the contract is to never raise, whatever the object does
        return NumberParse(None, "invalid", f"not a number ({type(value).__name__})")


# ---------------------------------------------------------------------------- clock times


def _normalise(text: str) -> tuple[str, bool]:
    """Replace the separators the files misuse; True if anything changed."""
    fixed = _COLON_LIKE.sub(":", text)
    fixed = _COLON_RUN.sub(":", fixed)
    fixed = fixed.rstrip()
    if fixed.endswith("分"):
        fixed = fixed[:-1].rstrip()
    return fixed, fixed != text


def _field(digits: str | None, last: bool) -> tuple[int, bool] | None:
    """A minute or second field: its value and whether reading it was a repair."""
    if digits is None or digits == "":
        return 0, digits is not None
    if len(digits) == 2:
        return int(digits), False
    if len(digits) == 1:
        return int(digits), True
    return (int(digits[:2]), True) if last else None


def _clock(text: str) -> tuple[_Clock | None, bool, str | None]:
    """Read one normalised clock time: (clock or None, repaired, note if invalid)."""
    repaired = False
    match = _CLOCK.fullmatch(text)
    if match is not None:
        hour_text, minute_text, second_text = match.groups()
        minute = _field(minute_text, last=second_text is None)
        second = _field(second_text, last=True)
        if minute is None or second is None:
            return None, False, None
        repaired = minute[1] or second[1]
        clock = _Clock(int(hour_text), minute[0], second[0])
    else:
        bare = _BARE_CLOCK.fullmatch(text)
        if bare is None:
            note = "the hour is missing" if text.startswith(":") else None
            return None, False, note
        repaired = True
        clock = _Clock(int(bare.group(1)), int(bare.group(2)), 0)
    if clock.hour > 24 or (clock.hour == 24 and (clock.minute or clock.second)):
        return None, False, f"hour {clock.hour} out of range"
    if clock.minute > 59:
        return None, False, f"minute {clock.minute} out of range"
    if clock.second > 59:
        return None, False, f"second {clock.second} out of range"
    return clock, repaired, None


@lru_cache(maxsize=_CACHE_SIZE)
def _point_from_text(raw: str) -> TimePointParse:
    text = raw.strip()
    if text.lower() in _MISSING_MARKERS:
        return _POINT_MISSING
    excel = _excel_date(text)
    if excel is not None:
        clock = excel[1]
        return TimePointParse(clock.hours, "repaired", f"read as {clock} ({_EXCEL_CLOCK_NOTE})")
    normalised, changed = _normalise(text)
    parsed, repaired, note = _clock(normalised)
    if parsed is None:
        return TimePointParse(None, "invalid", note or _unusual_digits(text))
    if changed or repaired:
        return TimePointParse(parsed.hours, "repaired", f"read as {parsed}")
    return TimePointParse(parsed.hours, "ok")


def _number_text(value: numbers.Real) -> str:
    """A number as a cell's text: 700 and 700.0 are ``'700'``, 7.5 is ``'7.5'``."""
    if isinstance(value, numbers.Integral):
        return str(int(value))
    number = float(value)
    return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)


def _time_from_object(value: object) -> tuple[str | None, bool]:
    """The string to parse (None if the value is missing) and whether it is a number's text;
    raises TypeError for anything else."""
    if isinstance(value, str):
        return str.__str__(value), False
    if isinstance(value, float) and math.isnan(value):
        return None, False  # pandas' usual missing marker, checked before the slower ABC test
    if _is_missing_scalar(value):
        return None, False
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(type(value).__name__)
    return _number_text(value), True


def _not_a_time(value: object) -> str:
    return f"expected a time string, got {type(value).__name__}"


_NOT_A_CLOCK_NUMBER: Final = "a number in a time column is read as HMM digits, 700 for 7:00"
_NOT_A_RANGE_NUMBER: Final = "a number is no range such as 21:00-21:30"


def parse_time_point(value: object) -> TimePointParse:
    """Read a clock-time cell (``13:30:00``) as hours in [0, 24); never raises.

    A number is read as its text: 700 as ``'700'``, 7:00.
    """
    try:
        text, from_number = (value, False) if type(value) is str else _time_from_object(value)
        if text is None:
            return _POINT_MISSING
        if len(text) > MAX_TEXT_LENGTH:
            return TimePointParse(None, "invalid", _too_long(text))
        parsed = _point_from_text(text)
        if from_number and parsed.status == "invalid" and parsed.note is None:
            return TimePointParse(None, "invalid", _NOT_A_CLOCK_NUMBER)
        return parsed
    except Exception:  # the contract is to never raise, whatever the object does
        return TimePointParse(None, "invalid", _not_a_time(value))


@lru_cache(maxsize=_CACHE_SIZE)
def _range_from_text(raw: str) -> TimeRangeParse:
    text = raw.strip()
    if text.lower() in _MISSING_MARKERS:
        return _RANGE_MISSING
    if _excel_date(text) is not None:
        return TimeRangeParse(None, None, "invalid", f"{_EXCEL_NOTE}, not a range")
    dashed = _DASH_RUN.sub("-", _DASH_LIKE.sub("-", text))
    parts = dashed.split("-")
    if len(parts) != 2:
        return TimeRangeParse(None, None, "invalid", _unusual_digits(text))
    changed = dashed != text
    clocks: list[_Clock] = []
    for part in parts:
        normalised, part_changed = _normalise(part.strip())
        clock, repaired, note = _clock(normalised)
        if clock is None:
            return TimeRangeParse(None, None, "invalid", note or _unusual_digits(text))
        changed = changed or part_changed or repaired
        clocks.append(clock)
    return _range(clocks[0], clocks[1], changed)


def _range(start: _Clock, end: _Clock, repaired: bool) -> TimeRangeParse:
    """The start and duration of a range, adding 24 h when it plausibly crosses midnight."""
    seconds = end.seconds - start.seconds
    if seconds < 0:
        seconds += 86400
        if seconds > _MAX_CROSSING_HOURS * 3600:
            note = (
                f"ends before it starts; {_format_number(seconds / 3600)} h across midnight "
                "is implausible for one step"
            )
            return TimeRangeParse(start.hours, None, "invalid", note)
    duration = seconds / 3600
    if repaired:
        return TimeRangeParse(start.hours, duration, "repaired", f"read as {start}-{end}")
    return TimeRangeParse(start.hours, duration, "ok")


def parse_time_range(value: object) -> TimeRangeParse:
    """Read a clock-range cell (``21:00-21:30``) as a start and a duration in hours; never
    raises. A number is read as its text, which is no range."""
    try:
        text, from_number = (value, False) if type(value) is str else _time_from_object(value)
        if text is None:
            return _RANGE_MISSING
        if len(text) > MAX_TEXT_LENGTH:
            return TimeRangeParse(None, None, "invalid", _too_long(text))
        parsed = _range_from_text(text)
        if from_number and parsed.status == "invalid" and parsed.note is None:
            return TimeRangeParse(None, None, "invalid", _NOT_A_RANGE_NUMBER)
        return parsed
    except Exception:  # the contract is to never raise, whatever the object does
        return TimeRangeParse(None, None, "invalid", _not_a_time(value))


# ---------------------------------------------------------------------------- warnings


def _shown(raw: object) -> str:
    if isinstance(raw, str):
        text = str.__str__(raw)
        if len(text) > _SHOWN_RAW_LENGTH:
            text = text[:_SHOWN_RAW_LENGTH] + "…"
        return repr(text)
    try:
        if isinstance(raw, bool) or not isinstance(raw, numbers.Real):
            return str(raw)[:_SHOWN_RAW_LENGTH]
        return _number_text(raw)[:_SHOWN_RAW_LENGTH]  # as the time parsers read it
    except Exception:  # a value whose str() fails is still worth a warning
        return f"<{type(raw).__name__}>"


def describe(column: str, raw: object, status: Status, note: str | None) -> str | None:
    """The warning a record gets for one value, or None when there is nothing to say.

    ``A20: read '6:00-6:30分' as 6:00-6:30`` for a repair (the note, ``read as ...``, gives the
    reading) and ``A20: could not parse '6:00-6x', treated as missing`` for an invalid value,
    with the note in parentheses after the raw value when there is one.
    """
    if status == "repaired":
        if note is None:
            return f"{column}: repaired {_shown(raw)}"
        reading = note.removeprefix("read ")
        if not reading.startswith("as "):
            reading = f"as {reading}"
        return f"{column}: read {_shown(raw)} {reading}"
    if status == "invalid":
        reason = f" ({note})" if note else ""
        return f"{column}: could not parse {_shown(raw)}{reason}, treated as missing"
    return None
