"""Seeded synthetic JinNan files, written exactly in the published format.

The real files cannot ship with the project, so tests and the default training run use files
from this generator. They have the published columns, encoding, number and time formats, and
every quirk of the published files (``QUIRKS``); every column's values are drawn from counts of
the published training file (``yield_model.plant``, written by ``scripts/plant_tables.py``), so
that each engineered feature has the plant's distribution (a population stability index below
``PSI_WATCH`` against the real file, in tests/test_plant.py). The generator never reads that
file.

A batch first draws its route (``plant.ROUTE_BATCHES``: standard, extended or held schedule,
and whether it ends with step B9, B10 or B11), as a batch's waits, steps, amounts and
temperatures move together. Then, from that route's counts, each number column on its own, the
recipe columns A2, A3 and A4 together from the whole file's (A2 replaces A3 in 3 % of the
batches; B1 goes unrecorded in 1 %), its start (A5) on the clock, whether it has step A7 (with
its temperature A8), and for every step in the order of ``PROCESS_ORDER`` the gap after the
end of the previous step that took place and, for a range, how long it lasts, so clock times
wrap past midnight by themselves (``23:00-0:30``). The clock time itself has no effect on the yield.

The yield is computed from the true process values (``GeneratedData.truth``; durations in
hours, temperatures in degrees, amounts as written) and only then are cells corrupted, so a quirk
never changes a batch's target. The process effects add up to ``S``, which is 0 for a batch at
the reference values of the formula; the plant's usual batch is not one (its B4 step takes an
hour), and the base level ``BASE_YIELD`` puts the median yield at the published 0.925::

    S = 0.012  * tanh((A6 - 30) / 10)                start temperature
      - 0.002  * (mean(A10, A12, A15, A17) - 103)^2   heating profile, best at 103
      + 0.0008 * (B6 - 72)                            reaction temperature
      - 0.0004 * |B8 - 45|                            B8 temperature, best at 45
      + 0.0003 * (B14 - 410)                          B14 charge
      + 0.00002 * (B12 - 800)                         B12 charge
      - 0.00008 * min(|B1 - 320|, 150)                B1 charge, best at 320
      + 0.0001 * (A19 - 250)                          A19 charge
      + 0.02   * (min(d_A20, 1) - 0.5)                A20 step duration
      + 0.018  * tanh(2 * (d_B4 - 1.5))               B4 step duration
      - 0.008  * (B7 - B5 - 1.5)                      hold between time points B5 and B7
      - 0.005  * (min(d_B9 + d_B10, 5) - 3)^2         B9 + B10 work (d_B10 = 0 without B10)

    clean = 0.934 + (exp(12 S) - 1) / 12 - 0.09 * max(d_B9 - 4, 0)
    yield = round(min(clean + e, 1.0008), 4),   e ~ Normal(0, NOISE_SD^2) independently

where ``d_X`` is the duration of range step X in hours and ``B7 - B5`` the hours between those
time points. ``(exp(12 S) - 1) / 12`` is ``S`` for small effects; it compounds gains and damps
losses, so that almost no yield falls below 0.87 without an upset. The upset is the last term:
about 1 % of the batches stall in step B9 for 5 to 7 hours and make the published tail below
0.87, down to about 0.62. Among the other batches the noiseless yield explains about 75 % of the
yield's variance. With the plant's inputs the yields spread less upwards than the published
ones (the formula stands for part of what moves the plant's yield): the cap, the published
maximum, is seldom reached.

Every quirk of ``QUIRKS`` goes to a row of its own (never a stalled one) where its column has a
value; a file too small for all of them gets those that fit. The true value behind a quirk is its
obvious reading, and the row's timeline is set so that it holds: an Excel date in a time point
keeps its time of day (``1900/1/9 7:00`` is 7:00), ``1900/3/10 0:00`` in A25 is Excel's day 70,
``700`` is 7:00, ``:30:00`` is 14:30, ``19:-20:05`` is 19:05-20:05, ``23:00-24:00`` ends at
midnight, ``18:30-15:00`` is 18:30-19:00, B14 ``40`` is 400, A22 ``3.5`` is 9 and B1 ``3.5`` is
350. ``13;00-14:00`` stands for the ASCII ``;`` that DATA.md names without an example.

The ``shifted`` variant is for drift tests. On every row except those carrying a quirk (whose
cells must keep their literal values) it raises A6 by 10 degrees (``A6_SHIFT``), makes step B4
last 30 minutes longer (``B4_SHIFT_MINUTES``) and lowers B14 by 30 (``B14_SHIFT``). Every later
step starts that much later, so the clock times of the steps after B4 (``SHIFTED_CLOCKS``) and
the batch's total hours move with it; every other gap and duration is unchanged. Every other
draw, the noise included, is the same as in the unshifted file of the same seed.
"""

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, NamedTuple, get_args

import numpy as np
import numpy.typing as npt
import pandas as pd

from yield_model import plant
from yield_model.columns import (
    ALL_COLUMNS,
    ID_COLUMN,
    NUMERIC_COLUMNS,
    PROCESS_ORDER,
    TARGET_COLUMN,
    TIME_RANGE_COLUMNS,
)
from yield_model.data import Dataset, parse_dataset
from yield_model.features import FloatArray, IntArray

Encoding = Literal["gb18030", "utf-8"]
BoolArray = npt.NDArray[np.bool_]

TRAIN_ROWS: Final = 1396
TEST_ROWS: Final = 150
TRAIN_SEED: Final = 0
TEST_SEED: Final = 1

BASE_YIELD: Final = 0.934
#: How strongly the process effects compound (the 12 of ``exp(12 S)``).
COMPOUNDING: Final = 12.0
NOISE_SD: Final = 0.009
YIELD_CAP: Final = 1.0008
#: Decimals of the written yields, as in the published files.
YIELD_DECIMALS: Final = 4

SHIFTED_FEATURES: Final[tuple[str, ...]] = ("A6", "B4", "B14")
A6_SHIFT: Final = 10.0
B4_SHIFT_MINUTES: Final = 30
B14_SHIFT: Final = -30.0
#: Clock times the shifted variant moves by ``B4_SHIFT_MINUTES``: the steps after B4, as the
#: engineered features name them (plant batches start at set hours, so they read as drift).
SHIFTED_CLOCKS: Final[tuple[str, ...]] = ("B5", "B7", "B9_start", "B10_start", "B11_start")

#: Ids of seed s are sample_{s * ID_BLOCK + k}: files of different seeds share no id as long as
#: they have at most ID_BLOCK rows.
ID_BLOCK: Final = 10_000


class _Quirk(NamedTuple):
    """One corrupted cell: the literal written and the true value behind it."""

    column: str
    literal: str
    clock: int | None = None  # true clock time of the point or range start, minutes
    minutes: int | None = None  # true duration of a range step
    value: float | None = None  # true value of a number


def _at(hour: int, minute: int = 0) -> int:
    return 60 * hour + minute


# The literal values of DATA.md's quirk list, each in a column of its kind.
_QUIRK_CELLS: Final[tuple[_Quirk, ...]] = (
    _Quirk("A5", "1900/1/21 0:00", clock=_at(0)),  # Excel kept the time of day
    _Quirk("A26", "1900/1/9 7:00", clock=_at(7)),
    _Quirk("B5", "1900/3/13 0:00", clock=_at(0)),
    _Quirk("A25", "1900/3/10 0:00", value=70),  # Excel's serial day 70 is 1900-03-10
    _Quirk("A11", ":30:00", clock=_at(14, 30)),
    _Quirk("A9", "700", clock=_at(7)),
    _Quirk("B9", "15:00-1600", clock=_at(15), minutes=60),
    _Quirk("A20", "19:-20:05", clock=_at(19, 5), minutes=60),
    _Quirk("A28", "16:00-17:002", clock=_at(16), minutes=60),
    _Quirk("B10", "13；00-14:00", clock=_at(13), minutes=60),
    _Quirk("B11", "13;00-14:00", clock=_at(13), minutes=60),
    _Quirk("B4", "14::30-15:30", clock=_at(14, 30), minutes=60),
    _Quirk("B9", "2:00-4::00", clock=_at(2), minutes=120),
    _Quirk("B10", '22"00-0:00', clock=_at(22), minutes=120),
    _Quirk("A20", "6:00-6:30分", clock=_at(6), minutes=30),
    _Quirk("A28", "18:00:-18:30", clock=_at(18), minutes=30),
    _Quirk("B4", "21:30-23:0", clock=_at(21, 30), minutes=90),
    _Quirk("B9", "23:0-1:0", clock=_at(23), minutes=120),
    _Quirk("A28", "23:00-24:00", clock=_at(23), minutes=60),
    _Quirk("B11", "24:00-1:00", clock=_at(0), minutes=60),
    _Quirk("A20", "18:30-15:00", clock=_at(18, 30), minutes=30),  # true end 19:00
    _Quirk("B14", "40", value=400),  # a dropped zero
    _Quirk("B14", "40", value=400),
    _Quirk("A22", "3.5", value=9),  # B2's value in the wrong column
    _Quirk("B1", "3.5", value=350),  # decimal point misplaced
)

#: (column, literal raw value) of every injected quirk cell, one entry per cell.
QUIRKS: Final[tuple[tuple[str, str], ...]] = tuple((q.column, q.literal) for q in _QUIRK_CELLS)


_STALL_RATE: Final = 0.009
_STALL_MINUTES: Final = tuple(range(300, 421, 30))
#: B1 goes unrecorded in 1 % of the batches (DATA.md).
_B1_RECORDED_RATE: Final = 0.99
ROUTES: Final[tuple[str, ...]] = tuple(plant.ROUTE_BATCHES)
RECIPE_COLUMNS: Final = ("A2", "A3", "A4")


@dataclass(frozen=True)
class GeneratedData:
    """A generated file before writing, with what the file cannot show."""

    #: The cells exactly as written (strings; missing cells are NaN), all of ``ALL_COLUMNS``.
    frame: pd.DataFrame
    #: The noiseless yield of every row, ``true_yield(truth)``.
    clean_yield: FloatArray
    #: The true process: every number column (the value behind a quirk or an unrecorded B1
    #: included), ``{col}_start_h`` (hours after A5) for every time column, ``{col}_duration_h``
    #: for ranges and ``start_clock_h`` (A5's clock time, hours). NaN where a step or recipe
    #: value does not exist in that batch.
    truth: pd.DataFrame
    #: (row position, column, literal) of every injected quirk cell.
    quirk_cells: tuple[tuple[int, str, str], ...]


def true_yield(truth: pd.DataFrame) -> FloatArray:
    """The noiseless yield of the module docstring's formula, from the true process values."""

    def col(name: str) -> FloatArray:
        return truth[name].to_numpy(dtype=np.float64)

    heating = (col("A10") + col("A12") + col("A15") + col("A17")) / 4
    hold = col("B7_start_h") - col("B5_start_h")
    d_b9 = col("B9_duration_h")
    work = d_b9 + np.nan_to_num(col("B10_duration_h"), nan=0.0)
    effects = (
        0.012 * np.tanh((col("A6") - 30) / 10)
        - 0.002 * (heating - 103) ** 2
        + 0.0008 * (col("B6") - 72)
        - 0.0004 * np.abs(col("B8") - 45)
        + 0.0003 * (col("B14") - 410)
        + 0.00002 * (col("B12") - 800)
        - 0.00008 * np.minimum(np.abs(col("B1") - 320), 150)
        + 0.0001 * (col("A19") - 250)
        + 0.02 * (np.minimum(col("A20_duration_h"), 1) - 0.5)
        + 0.018 * np.tanh(2 * (col("B4_duration_h") - 1.5))
        - 0.008 * (hold - 1.5)
        - 0.005 * (np.minimum(work, 5) - 3) ** 2
    )
    upset = 0.09 * np.maximum(d_b9 - 4, 0)
    clean = BASE_YIELD + np.expm1(COMPOUNDING * effects) / COMPOUNDING - upset
    return np.asarray(clean, dtype=np.float64)


def _draw(rng: np.random.Generator, table: plant.Table, n: int) -> FloatArray:
    """``n`` values drawn with the table's counts as weights (zeros from an empty table)."""
    if not table:
        return np.zeros(n)
    values = np.array([v for v, _ in table], dtype=np.float64)
    weights = np.array([c for _, c in table], dtype=np.float64)
    return rng.choice(values, size=n, p=weights / weights.sum())


def _by_route(
    rng: np.random.Generator,
    tables: Mapping[str, Mapping[str, plant.Table]],
    column: str,
    route: IntArray,
) -> FloatArray:
    """A draw from each row's route's table of ``column`` (every route drawn for every row)."""
    draws = np.stack([_draw(rng, tables[name][column], route.size) for name in ROUTES])
    return draws[route, np.arange(route.size)]


class _Process(NamedTuple):
    numbers: dict[str, FloatArray]
    gaps: dict[str, FloatArray]
    durations: dict[str, FloatArray]
    present: dict[str, BoolArray]
    start_clock: FloatArray
    stall: BoolArray


def _draw_process(rng: np.random.Generator, n: int) -> _Process:
    """Every random draw of a batch's recipe and timeline, in a fixed order."""
    shares = np.array([plant.ROUTE_BATCHES[r] for r in ROUTES], dtype=np.float64)
    route = rng.choice(len(ROUTES), size=n, p=shares / shares.sum())
    numbers = {c: _by_route(rng, plant.NUMBERS, c, route) for c in plant.NUMBERS[ROUTES[0]]}
    counts = np.array([count for _, count in plant.RECIPES], dtype=np.float64)
    recipe = rng.choice(len(counts), size=n, p=counts / counts.sum())
    for k, column in enumerate(RECIPE_COLUMNS):
        values = [np.nan if r[k] is None else r[k] for r, _ in plant.RECIPES]
        numbers[column] = np.asarray(values, dtype=np.float64)[recipe]
    a7_rates = [plant.A7_BATCHES[r] / plant.ROUTE_BATCHES[r] for r in ROUTES]
    a7 = rng.random(n) < np.asarray(a7_rates)[route]
    last_step = np.array([r.rpartition("-")[2] for r in ROUTES])[route]
    b1_recorded = rng.random(n) < _B1_RECORDED_RATE
    numbers["A8"] = np.where(a7, numbers["A8"], np.nan)

    # Which cells are written: time steps that happened, numbers that exist and were recorded.
    present = {c: ~np.isnan(numbers[c]) for c in NUMERIC_COLUMNS}
    present |= {c: np.ones(n, dtype=bool) for c in PROCESS_ORDER}
    present |= {"A7": a7, "B10": last_step != "B9", "B11": last_step == "B11", "B1": b1_recorded}
    gaps = {c: _by_route(rng, plant.GAPS, c, route) for c in PROCESS_ORDER[1:]}
    gaps[PROCESS_ORDER[0]] = np.zeros(n)
    durations = {c: np.zeros(n) for c in PROCESS_ORDER}
    for c in TIME_RANGE_COLUMNS:
        durations[c] = _by_route(rng, plant.DURATIONS, c, route)
    stall = rng.random(n) < _STALL_RATE
    durations["B9"] = np.where(stall, rng.choice(_STALL_MINUTES, n), durations["B9"])
    start_clock = _by_route(rng, {r: {"A5": plant.START_CLOCK[r]} for r in ROUTES}, "A5", route)
    return _Process(numbers, gaps, durations, present, start_clock, stall)


def _pick_quirk_rows(rng: np.random.Generator, process: _Process) -> list[tuple[int, _Quirk]]:
    """A distinct row for every quirk whose column is present there; skip a quirk if none is."""
    # A quirk sets its row's step durations from its literal, which would undo a stall.
    used = process.stall.copy()
    picked: list[tuple[int, _Quirk]] = []
    for quirk in _QUIRK_CELLS:
        eligible = np.flatnonzero(process.present[quirk.column] & ~used)
        if eligible.size:
            row = int(rng.choice(eligible))
            used[row] = True
            picked.append((row, quirk))
    return picked


def _timeline(process: _Process) -> dict[str, FloatArray]:
    """Minutes after A5 at which every step starts; NaN where the step did not happen."""
    starts: dict[str, FloatArray] = {}
    cursor = np.zeros_like(process.start_clock)
    for column in PROCESS_ORDER:
        here = process.present[column]
        start = cursor + process.gaps[column]
        starts[column] = np.where(here, start, np.nan)
        cursor = np.where(here, start + process.durations[column], cursor)
    return starts


def _format_number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _format_clock(minutes: float) -> str:
    hours, mins = divmod(int(minutes) % 1440, 60)
    return f"{hours}:{mins:02d}"


def _apply_shift(process: _Process, picked: list[tuple[int, _Quirk]]) -> None:
    """The drift of the ``shifted`` variant, on every row that carries no quirk."""
    plain = np.ones(process.start_clock.size, dtype=bool)
    plain[[row for row, _ in picked]] = False
    process.numbers["A6"] += np.where(plain, A6_SHIFT, 0.0)
    process.numbers["B14"] += np.where(plain, B14_SHIFT, 0.0)
    process.durations["B4"] += np.where(plain, B4_SHIFT_MINUTES, 0)


def _settle_quirks(process: _Process, picked: list[tuple[int, _Quirk]]) -> dict[str, FloatArray]:
    """Make each quirk row's truth what its literal says; return the timeline."""
    for row, quirk in picked:
        if quirk.value is not None:
            process.numbers[quirk.column][row] = quirk.value
        if quirk.minutes is not None:
            process.durations[quirk.column][row] = quirk.minutes
    starts = _timeline(process)
    for row, quirk in picked:
        if quirk.clock is not None:
            # moving a whole batch on the clock changes no duration, hence not its yield
            process.start_clock[row] = (quirk.clock - starts[quirk.column][row]) % 1440
    return starts


def _truth(process: _Process, starts: dict[str, FloatArray]) -> pd.DataFrame:
    columns: dict[str, FloatArray] = {c: process.numbers[c] for c in NUMERIC_COLUMNS}
    for column in PROCESS_ORDER:
        columns[f"{column}_start_h"] = starts[column] / 60
        if column in TIME_RANGE_COLUMNS:
            minutes = np.where(process.present[column], process.durations[column], np.nan)
            columns[f"{column}_duration_h"] = minutes / 60
    columns["start_clock_h"] = process.start_clock / 60
    return pd.DataFrame(columns)


def _time_cells(process: _Process, starts: dict[str, FloatArray]) -> dict[str, list[str | None]]:
    cells: dict[str, list[str | None]] = {}
    for column in PROCESS_ORDER:
        clock = process.start_clock + starts[column]
        if column in TIME_RANGE_COLUMNS:
            end = clock + process.durations[column]
            cells[column] = [
                None if np.isnan(s) else f"{_format_clock(s)}-{_format_clock(e)}"
                for s, e in zip(clock, end, strict=True)
            ]
        else:
            cells[column] = [None if np.isnan(s) else f"{_format_clock(s)}:00" for s in clock]
    return cells


def generate(
    n_rows: int = TRAIN_ROWS, seed: int = TRAIN_SEED, *, shifted: bool = False, quirks: bool = True
) -> GeneratedData:
    """Draw a training file's rows: raw cells, the noiseless yield and the true process."""
    if n_rows < 1:
        raise ValueError(f"n_rows must be at least 1, got {n_rows}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    process_rng, quirk_rng, noise_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    process = _draw_process(process_rng, n_rows)
    ids = seed * ID_BLOCK + process_rng.permutation(n_rows)
    noise = noise_rng.normal(0.0, NOISE_SD, n_rows)
    picked = _pick_quirk_rows(quirk_rng, process) if quirks else []
    if shifted:
        _apply_shift(process, picked)
    starts = _settle_quirks(process, picked)
    truth = _truth(process, starts)
    clean = true_yield(truth)
    observed = np.round(np.minimum(clean + noise, YIELD_CAP), YIELD_DECIMALS)

    cells: dict[str, list[str | None]] = {ID_COLUMN: [f"sample_{i}" for i in ids]}
    for column in NUMERIC_COLUMNS:
        cells[column] = [
            _format_number(float(v)) if ok else None
            for v, ok in zip(process.numbers[column], process.present[column], strict=True)
        ]
    cells |= _time_cells(process, starts)
    cells[TARGET_COLUMN] = [repr(float(y)) for y in observed]
    for row, quirk in picked:
        cells[quirk.column][row] = quirk.literal
    frame = pd.DataFrame({c: pd.Series(cells[c], dtype="str") for c in ALL_COLUMNS})
    quirk_cells = tuple((row, q.column, q.literal) for row, q in picked)
    return GeneratedData(frame=frame, clean_yield=clean, truth=truth, quirk_cells=quirk_cells)


def _csv_bytes(frame: pd.DataFrame, *, header: bool, encoding: Encoding) -> bytes:
    return frame.to_csv(index=False, header=header, lineterminator="\n").encode(encoding)


def _write_csv(frame: pd.DataFrame, path: Path, *, header: bool, encoding: Encoding) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_csv_bytes(frame, header=header, encoding=encoding))


def generated_training_set(n_rows: int = TRAIN_ROWS, seed: int = TRAIN_SEED) -> Dataset:
    """The training file ``write_train`` would write (GB18030), as training reads it, marked
    as generated: a model trained on it says so in its card (``DataSummary.origin``)."""
    raw = _csv_bytes(generate(n_rows, seed).frame, header=True, encoding="gb18030")
    source = f"generated by yield_model.datasets: {n_rows} rows, seed {seed}"
    return parse_dataset(raw, source, origin="generated")


def write_train(
    path: str | Path,
    n_rows: int = TRAIN_ROWS,
    seed: int = TRAIN_SEED,
    *,
    shifted: bool = False,
    encoding: Encoding = "gb18030",
) -> GeneratedData:
    """Write a training file (all 44 columns) like ``jinnan_round1_train_20181227.csv``."""
    data = generate(n_rows, seed, shifted=shifted)
    _write_csv(data.frame, Path(path), header=True, encoding=encoding)
    return data


def write_test(
    path: str | Path,
    answers_path: str | Path,
    n_rows: int = TEST_ROWS,
    seed: int = TEST_SEED,
    *,
    shifted: bool = False,
    encoding: Encoding = "gb18030",
) -> GeneratedData:
    """Write a test file without 收率 and its header-less ``sample id, yield`` answer file."""
    data = generate(n_rows, seed, shifted=shifted)
    _write_csv(data.frame.drop(columns=TARGET_COLUMN), Path(path), header=True, encoding=encoding)
    answers = data.frame[[ID_COLUMN, TARGET_COLUMN]]
    _write_csv(answers, Path(answers_path), header=False, encoding=encoding)
    return data


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m yield_model.datasets",
        description="Write synthetic JinNan files in the published format.",
    )
    kinds = parser.add_subparsers(dest="kind", required=True)
    for kind, rows, seed in (("train", TRAIN_ROWS, TRAIN_SEED), ("test", TEST_ROWS, TEST_SEED)):
        sub = kinds.add_parser(kind, help=f"write a {kind} file")
        sub.add_argument("--out", type=Path, required=True, help="the CSV to write")
        if kind == "test":
            sub.add_argument("--answers", type=Path, required=True, help="the answer CSV")
        sub.add_argument("--rows", type=_positive, default=rows, help=f"default {rows}")
        sub.add_argument("--seed", type=_non_negative, default=seed, help=f"default {seed}")
        sub.add_argument("--shifted", action="store_true", help="the drifted variant")
        sub.add_argument("--encoding", choices=get_args(Encoding), default="gb18030")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command line: write a train or a test file (with answers)."""
    args = _parser().parse_args(argv)
    if args.kind == "train":
        write_train(args.out, args.rows, args.seed, shifted=args.shifted, encoding=args.encoding)
        print(f"wrote {args.rows} training rows to {args.out}")
    else:
        write_test(
            args.out,
            args.answers,
            args.rows,
            args.seed,
            shifted=args.shifted,
            encoding=args.encoding,
        )
        print(f"wrote {args.rows} test rows to {args.out} and answers to {args.answers}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
