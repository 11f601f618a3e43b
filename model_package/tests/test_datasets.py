"""Tests of the synthetic JinNan files: format, quirks, statistics, drift variant and CLI."""

import hashlib
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from yield_model import datasets, plant
from yield_model.columns import (
    ALL_COLUMNS,
    FEATURE_COLUMNS,
    ID_COLUMN,
    NUMERIC_COLUMNS,
    PROCESS_ORDER,
    TARGET_COLUMN,
    TIME_POINT_COLUMNS,
    TIME_RANGE_COLUMNS,
)
from yield_model.data import load_dataset

N = datasets.TRAIN_ROWS
POINT = re.compile(r"(\d{1,2}):(\d{2}):00")
RANGE = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")
#: A number as the published files write it: no exponent, no trailing ".0".
NUMBER = re.compile(r"\d+(\.\d*[1-9])?")
#: Missing shares of DATA.md; every other column is complete.
MISSING = {"A2": 0.97, "A7": 0.89, "A8": 0.89, "B11": 0.61, "B10": 0.17, "A3": 0.03, "B1": 0.01}
#: DATA.md's quirk list, literally, with the kind of column each belongs in.
DATA_MD_QUIRKS = {
    "1900/1/21 0:00": "point",
    "1900/1/9 7:00": "point",
    "1900/3/13 0:00": "point",
    ":30:00": "point",
    "700": "A9",
    "1900/3/10 0:00": "A25",
    "15:00-1600": "range",
    "19:-20:05": "range",
    "16:00-17:002": "range",
    "13；00-14:00": "range",
    "14::30-15:30": "range",
    "2:00-4::00": "range",
    '22"00-0:00': "range",
    "6:00-6:30分": "range",
    "18:00:-18:30": "range",
    "21:30-23:0": "range",
    "23:0-1:0": "range",
    "23:00-24:00": "range",
    "24:00-1:00": "range",
    "18:30-15:00": "range",
}


def four_sd(p: float, n: int) -> float:
    """Four standard deviations of a binomial proportion p estimated from n draws."""
    return 4 * math.sqrt(p * (1 - p) / n)


def clock_minutes(hours: pd.Series) -> pd.Series:
    """Hours after midnight (possibly past 24) as minutes of the day."""
    return (hours * 60).round().astype("int64") % 1440


def quirk_mask(data: datasets.GeneratedData) -> pd.DataFrame:
    """True at the cells the generator corrupted."""
    mask = pd.DataFrame(False, index=data.frame.index, columns=data.frame.columns)
    for row, column, _ in data.quirk_cells:
        mask.loc[row, column] = True
    return mask


@pytest.fixture(scope="module")
def train_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default training file, written once."""
    path = tmp_path_factory.mktemp("train") / "train.csv"
    datasets.write_train(path)
    return path


@pytest.fixture(scope="module")
def train_data() -> datasets.GeneratedData:
    """What the default training file was generated from."""
    return datasets.generate()


@pytest.fixture(scope="module")
def large_data() -> datasets.GeneratedData:
    """A file big enough to check the noise and the yield's tails closely."""
    return datasets.generate(20_000, seed=7, quirks=False)


@pytest.fixture(scope="module")
def cells(train_path: Path) -> pd.DataFrame:
    """The default training file read back as text."""
    return pd.read_csv(train_path, encoding="gb18030", dtype=str)


@pytest.fixture(scope="module")
def clean_cells(cells: pd.DataFrame, train_data: datasets.GeneratedData) -> pd.DataFrame:
    """The default training file's cells with the quirk cells blanked out."""
    return cells.mask(quirk_mask(train_data))


def test_file_is_gb18030_like_the_published_one(train_path: Path) -> None:
    raw = train_path.read_bytes()
    assert raw[:4] == bytes.fromhex("d1f9b1be")  # 样本 in GBK
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")


def test_utf8_is_an_option(tmp_path: Path) -> None:
    datasets.write_train(tmp_path / "t.csv", n_rows=30, encoding="utf-8")
    assert (tmp_path / "t.csv").read_bytes().decode("utf-8").startswith("样本id,A1,")


def test_columns_rows_and_ids(cells: pd.DataFrame) -> None:
    assert list(cells.columns) == list(ALL_COLUMNS)
    assert len(cells) == N
    assert cells[ID_COLUMN].str.fullmatch(r"sample_\d+").all()
    assert cells[ID_COLUMN].is_unique


def test_file_holds_exactly_the_generated_cells(
    cells: pd.DataFrame, train_data: datasets.GeneratedData
) -> None:
    pd.testing.assert_frame_equal(cells, train_data.frame, check_dtype=False)


@pytest.mark.parametrize("column", FEATURE_COLUMNS)
def test_missing_rates_match_the_published_ones(cells: pd.DataFrame, column: str) -> None:
    expected = MISSING.get(column, 0.0)
    assert abs(cells[column].isna().mean() - expected) <= four_sd(expected, N)


def test_a2_replaces_a3(cells: pd.DataFrame) -> None:
    assert (cells["A2"].isna() == cells["A3"].notna()).all()
    assert (cells["A7"].isna() == cells["A8"].isna()).all()
    assert (cells["B10"].notna() | cells["B11"].isna()).all()


def test_numbers_are_written_like_the_published_ones(clean_cells: pd.DataFrame) -> None:
    for column in NUMERIC_COLUMNS:
        written = clean_cells[column].dropna()
        assert written.str.fullmatch(NUMBER.pattern).all(), column
    assert set(clean_cells["A13"].dropna()) >= {"0.2"}
    assert set(clean_cells["A4"].dropna()) >= {"700"}


def plant_counts(column: str) -> dict[float, int]:
    """A number column's counts in the whole published file: the sum over the routes."""
    counts: dict[float, int] = {}
    for per_route in plant.NUMBERS.values():
        for value, count in per_route[column]:
            counts[value] = counts.get(value, 0) + count
    return counts


@pytest.mark.parametrize(
    ("column", "low", "high"),
    [
        ("A6", 17, 97),
        ("A21", 20, 90),
        ("B1", 3.5, 1200),
        ("B6", 40, 80),
        ("B8", 20, 73),
        ("B12", 400, 1200),
        ("B14", 40, 460),
    ],
)
def test_the_plants_counts_span_the_published_ranges(column: str, low: float, high: float) -> None:
    # DATA.md's ranges; B1's and B14's lows are quirk values, which the generator writes itself
    values = list(plant_counts(column))
    assert max(values) == high
    quirks = [float(literal) for c, literal in datasets.QUIRKS if c == column]
    assert min([*values, *quirks]) == low


@pytest.mark.parametrize("column", sorted(plant.NUMBERS[datasets.ROUTES[0]]))
def test_numbers_are_drawn_from_the_plants_counts(clean_cells: pd.DataFrame, column: str) -> None:
    # Each route's batches draw from the route's counts: the file has the whole file's.
    values = clean_cells[column].dropna().astype(float)
    counts = plant_counts(column)
    assert set(values) <= set(counts)
    total = sum(counts.values())
    shares = values.value_counts(normalize=True)
    for value, count in counts.items():
        p = count / total
        assert abs(shares.get(value, 0.0) - p) <= four_sd(p, len(values)) + 1 / len(values)


def test_recipes_are_the_plants(clean_cells: pd.DataFrame) -> None:
    recipes = clean_cells[list(datasets.RECIPE_COLUMNS)].astype(float)
    found: dict[tuple[float | None, ...], int] = {}
    for row in recipes.itertuples(index=False):
        key = tuple(None if np.isnan(v) else float(v) for v in row)
        found[key] = found.get(key, 0) + 1
    expected = dict(plant.RECIPES)
    assert set(found) == set(expected)
    for recipe, count in expected.items():
        p = count / plant.BATCHES
        assert abs(found[recipe] / len(recipes) - p) <= four_sd(p, len(recipes)), recipe


def test_usual_values_dominate(clean_cells: pd.DataFrame) -> None:
    b1 = clean_cells["B1"].dropna().astype(float)
    b14 = clean_cells["B14"].astype(float).dropna()
    assert b1.between(200, 400).mean() > 0.95
    assert b14.between(400, 460).mean() > 0.75


def test_near_constant_columns(cells: pd.DataFrame) -> None:
    assert set(cells["A1"]) == {"200", "250", "300"}
    assert set(cells["A2"].dropna()) == {"125"}
    # Two values each, one of them in a single batch of the published file's 1396
    for column, usual, rare in (("A18", "0.2", "0.1"), ("B3", "3.5", "3.6")):
        assert set(cells[column]) <= {usual, rare}
        assert (cells[column] == usual).mean() > 0.99
    assert (cells["A1"] == "300").mean() > 0.98


def test_quirks_are_data_md_literals_in_columns_of_their_kind() -> None:
    listed = {literal for _, literal in datasets.QUIRKS}
    assert listed >= set(DATA_MD_QUIRKS)
    for column, literal in datasets.QUIRKS:
        kind = DATA_MD_QUIRKS.get(literal)
        if kind == "point":
            assert column in TIME_POINT_COLUMNS, literal
        elif kind == "range" or literal == "13;00-14:00":
            assert column in TIME_RANGE_COLUMNS, literal
        elif kind is not None:
            assert column == kind, literal
    numeric = sorted(q for q in datasets.QUIRKS if q[0] in NUMERIC_COLUMNS and q[0] != "A25")
    assert numeric == [("A22", "3.5"), ("B1", "3.5"), ("B14", "40"), ("B14", "40")]


@pytest.mark.parametrize(("column", "literal"), sorted(set(datasets.QUIRKS)))
def test_every_quirk_is_in_the_file_literally(
    cells: pd.DataFrame, column: str, literal: str
) -> None:
    assert (cells[column] == literal).sum() == datasets.QUIRKS.count((column, literal))


def test_the_stray_quote_is_quoted_by_the_csv_writer(train_path: Path) -> None:
    assert '"22""00-0:00"'.encode("gb18030") in train_path.read_bytes()


@pytest.mark.parametrize(
    ("column", "literal", "truth_column", "value"),
    [
        ("A25", "1900/3/10 0:00", "A25", 70),
        ("B14", "40", "B14", 400),
        ("A22", "3.5", "A22", 9),
        ("B1", "3.5", "B1", 350),
        ("A9", "700", "A9_clock", 7 * 60),
        ("A5", "1900/1/21 0:00", "A5_clock", 0),
        ("A28", "23:00-24:00", "A28_clock", 23 * 60),
        ("A28", "23:00-24:00", "A28_duration_h", 1),
        ("B9", "2:00-4::00", "B9_duration_h", 2),
        ("A20", "18:30-15:00", "A20_clock", 18 * 60 + 30),
    ],
)
def test_quirk_cells_hide_a_true_value_the_yield_uses(
    train_data: datasets.GeneratedData, column: str, literal: str, truth_column: str, value: float
) -> None:
    truth = train_data.truth
    rows = [r for r, c, lit in train_data.quirk_cells if (c, lit) == (column, literal)]
    assert rows
    for row in rows:
        if truth_column.endswith("_clock"):
            start = truth.loc[[row], f"{column}_start_h"] + truth.loc[[row], "start_clock_h"]
            assert clock_minutes(start).item() == value
        else:
            assert truth.loc[row, truth_column] == value


def test_times_follow_the_true_timeline(
    clean_cells: pd.DataFrame, train_data: datasets.GeneratedData
) -> None:
    truth = train_data.truth
    crossings = 0
    for column in PROCESS_ORDER:
        written = clean_cells[column].dropna()
        start = clock_minutes((truth[f"{column}_start_h"] + truth["start_clock_h"])[written.index])
        if column in TIME_POINT_COLUMNS:
            parts = written.str.extract(f"^{POINT.pattern}$").astype(float)
            assert parts.notna().all().all(), column
            assert (parts[0] * 60 + parts[1]).astype("int64").equals(start)
            continue
        parts = written.str.extract(f"^{RANGE.pattern}$").astype(float)
        assert parts.notna().all().all(), column
        assert (parts[0] * 60 + parts[1]).astype("int64").equals(start)
        end_hours = truth[f"{column}_start_h"] + truth[f"{column}_duration_h"]
        end = clock_minutes((end_hours + truth["start_clock_h"])[written.index])
        assert (parts[2] * 60 + parts[3]).astype("int64").equals(end)
        assert (parts[[0, 2]] < 24).all().all()
        assert (parts[[1, 3]] < 60).all().all()
        crossings += int((end < start).sum())
    assert crossings > 0  # batches run through midnight
    # steps happen in process order
    starts = truth[[f"{c}_start_h" for c in PROCESS_ORDER]].to_numpy()
    for row in starts:
        present = row[~np.isnan(row)]
        assert (np.diff(present) >= 0).all()


def test_yield_is_written_with_four_decimals(cells: pd.DataFrame) -> None:
    assert cells[TARGET_COLUMN].str.fullmatch(r"[01]\.\d{1,4}").all()


def test_yield_distribution_is_the_published_one(cells: pd.DataFrame) -> None:
    y = cells[TARGET_COLUMN].astype(float)
    # 0.925 is the median: the share below it is a binomial proportion around 1/2
    assert abs((y < 0.925).mean() - 0.5) <= four_sd(0.5, N)
    assert y.max() <= datasets.YIELD_CAP
    assert 0.55 < y.min() < 0.70  # the published minimum is 0.624
    assert (y < 0.87).sum() >= 1


def test_tails_match_the_published_shares(large_data: datasets.GeneratedData) -> None:
    y = large_data.frame[TARGET_COLUMN].astype(float)
    n = len(y)
    published_low = 13 / 1396
    assert abs((y < 0.87).mean() - published_low) <= four_sd(published_low, n)
    # The upper tail is thinner than the plant's (the module docstring): high yields occur,
    # the published maximum is never passed
    assert 0.98 <= y.max() <= datasets.YIELD_CAP


@pytest.mark.parametrize("size", ["default", "large"])
def test_noise_is_gaussian_with_the_documented_sd(
    train_data: datasets.GeneratedData, large_data: datasets.GeneratedData, size: str
) -> None:
    data = train_data if size == "default" else large_data
    y = data.frame[TARGET_COLUMN].astype(float).to_numpy()
    # Rows whose clean yield is 5 sd below the cap are never clipped; choosing them by the
    # clean yield alone leaves their noise unbiased.
    keep = data.clean_yield < datasets.YIELD_CAP - 5 * datasets.NOISE_SD
    residual = (y - data.clean_yield)[keep]
    m = residual.size
    assert m > 0.7 * len(y)
    # sd of a sample sd is sigma / sqrt(2m); rounding to 4 decimals adds 1e-4 / sqrt(12)
    sd = math.hypot(datasets.NOISE_SD, 1e-4 / math.sqrt(12))
    assert abs(residual.std(ddof=1) - sd) <= 4 * sd / math.sqrt(2 * m)
    assert abs(residual.mean()) <= 4 * sd / math.sqrt(m)
    assert abs(residual).max() <= 5 * sd


def test_signal_is_learnable(train_data: datasets.GeneratedData) -> None:
    y = train_data.frame[TARGET_COLUMN].astype(float).to_numpy()
    usual = y > 0.87
    r2 = 1 - np.var((y - train_data.clean_yield)[usual]) / np.var(y[usual])
    assert r2 >= 0.6


def test_clean_yield_is_the_formula_of_the_truth(train_data: datasets.GeneratedData) -> None:
    assert np.array_equal(train_data.clean_yield, datasets.true_yield(train_data.truth))


def reference_batch(**changes: float) -> pd.DataFrame:
    """A one-row truth at which every documented effect is zero, with some values changed."""
    row = {
        **dict.fromkeys(("A10", "A12", "A15", "A17"), 103.0),
        "A6": 30.0, "B6": 72.0, "B8": 45.0, "B14": 410.0, "B12": 800.0, "B1": 320.0,
        "A19": 250.0, "A20_duration_h": 0.5, "B4_duration_h": 1.5, "B5_start_h": 10.0,
        "B7_start_h": 11.5, "B9_duration_h": 2.0, "B10_duration_h": 1.0,
    }  # fmt: skip
    return pd.DataFrame([row | changes])


def test_true_yield_is_the_documented_formula() -> None:
    assert datasets.true_yield(reference_batch()) == pytest.approx([0.934], abs=1e-12)
    stalled = reference_batch(A6=40.0, B9_duration_h=6.0, B10_duration_h=math.nan)
    effects = 0.012 * math.tanh(1.0) - 0.005 * (5 - 3) ** 2
    expected = 0.934 + math.expm1(12 * effects) / 12 - 0.09 * (6 - 4)
    assert datasets.true_yield(stalled) == pytest.approx([expected], abs=1e-12)
    longer_b4 = reference_batch(B4_duration_h=2.0, B14=440.0, B1=700.0)
    effects = 0.018 * math.tanh(1.0) + 0.0003 * 30 - 0.00008 * 150
    expected = 0.934 + math.expm1(12 * effects) / 12
    assert datasets.true_yield(longer_b4) == pytest.approx([expected], abs=1e-12)


def test_same_seed_same_bytes_other_seed_other_bytes(train_path: Path, tmp_path: Path) -> None:
    datasets.write_train(tmp_path / "again.csv")
    assert (tmp_path / "again.csv").read_bytes() == train_path.read_bytes()
    datasets.write_train(tmp_path / "other.csv", seed=1)
    assert (tmp_path / "other.csv").read_bytes() != train_path.read_bytes()


def test_the_generated_training_set_is_the_written_file_marked_generated(
    train_path: Path,
) -> None:
    # Given the default training file written to disk, and the same drawn in memory
    from_file = load_dataset(train_path)
    drawn = datasets.generated_training_set()
    # Then training reads the same cells and bytes; only the origin and source differ
    pd.testing.assert_frame_equal(drawn.frame, from_file.frame)
    assert drawn.sha256 == hashlib.sha256(train_path.read_bytes()).hexdigest()
    assert (drawn.origin, from_file.origin) == ("generated", "file")
    assert drawn.source == "generated by yield_model.datasets: 1396 rows, seed 0"
    assert datasets.generated_training_set(40, seed=5).sha256 != drawn.sha256


def test_test_file_and_answers(tmp_path: Path, cells: pd.DataFrame) -> None:
    data = datasets.write_test(tmp_path / "test.csv", tmp_path / "answers.csv")
    test = pd.read_csv(tmp_path / "test.csv", encoding="gb18030", dtype=str)
    assert list(test.columns) == list(ALL_COLUMNS[:-1])
    assert len(test) == datasets.TEST_ROWS
    pd.testing.assert_frame_equal(test, data.frame.drop(columns=TARGET_COLUMN), check_dtype=False)
    answers = pd.read_csv(tmp_path / "answers.csv", header=None, dtype=str)
    assert answers.shape == (datasets.TEST_ROWS, 2)
    assert answers[0].tolist() == test[ID_COLUMN].tolist()
    assert answers[1].tolist() == data.frame[TARGET_COLUMN].tolist()
    assert answers[1].str.fullmatch(r"[01]\.\d{1,4}").all()
    assert not set(test[ID_COLUMN]) & set(cells[ID_COLUMN])
    for column, literal in set(datasets.QUIRKS):
        assert (test[column] == literal).any(), (column, literal)


def test_shifted_variant_moves_only_the_shifted_features() -> None:
    base, shifted = datasets.generate(), datasets.generate(shifted=True)
    assert datasets.SHIFTED_FEATURES == ("A6", "B4", "B14")
    plain = ~quirk_mask(base).any(axis=1)
    assert plain.sum() == N - len(datasets.QUIRKS)

    later = PROCESS_ORDER[PROCESS_ORDER.index("B4") + 1 :]
    clocks = tuple(f"{c}_start" if c in TIME_RANGE_COLUMNS else c for c in later)
    assert clocks == datasets.SHIFTED_CLOCKS
    for column in FEATURE_COLUMNS:
        if column not in (*datasets.SHIFTED_FEATURES, *later):
            assert base.frame[column].equals(shifted.frame[column]), column
    for column in ("A6", "B14"):
        change = shifted.truth[column] - base.truth[column]
        expected = datasets.A6_SHIFT if column == "A6" else datasets.B14_SHIFT
        assert np.allclose(change[plain], expected, rtol=0, atol=1e-9)
        assert (change[~plain] == 0).all()
        assert (shifted.frame.loc[~plain, column] == base.frame.loc[~plain, column]).all()

    # B4 lasts longer; every later step starts that much later, no other duration changes
    step = datasets.B4_SHIFT_MINUTES / 60
    for name in base.truth.columns:
        assert shifted.truth[name].isna().equals(base.truth[name].isna()), name
        change = shifted.truth[name] - base.truth[name]
        if name == "B4_duration_h" or name.removesuffix("_start_h") in later:
            assert np.allclose(change[plain].dropna(), step), name
        elif name not in ("A6", "B14"):
            assert (change.fillna(0) == 0).all(), name

    # the noise is the same draw: the target moved only with the clean yield
    y = base.frame[TARGET_COLUMN].astype(float)
    y_shifted = shifted.frame[TARGET_COLUMN].astype(float)
    unclipped = (y < datasets.YIELD_CAP) & (y_shifted < datasets.YIELD_CAP)
    noise = (y - base.clean_yield)[unclipped]
    noise_shifted = (y_shifted - shifted.clean_yield)[unclipped]
    assert np.allclose(noise, noise_shifted, atol=1e-4)
    assert shifted.clean_yield.mean() != base.clean_yield.mean()


def test_small_files_and_files_without_quirks() -> None:
    small = datasets.generate(5, seed=2)
    assert small.frame.shape == (5, len(ALL_COLUMNS))
    assert 0 < len(small.quirk_cells) <= 5
    clean = datasets.generate(300, seed=2, quirks=False)
    assert clean.quirk_cells == ()
    for column, literal in datasets.QUIRKS:
        assert not (clean.frame[column] == literal).any()
    with pytest.raises(ValueError, match="n_rows"):
        datasets.generate(0)
    with pytest.raises(ValueError, match="seed"):
        datasets.generate(10, seed=-1)


def test_cli_writes_what_the_api_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "deep" / "dir" / "train.csv"
    assert datasets.main(["train", "--out", str(out), "--rows", "40", "--seed", "5"]) == 0
    datasets.write_train(tmp_path / "api.csv", n_rows=40, seed=5)
    assert out.read_bytes() == (tmp_path / "api.csv").read_bytes()
    assert capsys.readouterr().out.count("\n") == 1

    test, answers = tmp_path / "t" / "test.csv", tmp_path / "a" / "answers.csv"
    argv = ["test", "--out", str(test), "--answers", str(answers), "--shifted"]
    assert datasets.main([*argv, "--encoding", "utf-8"]) == 0
    api = datasets.generate(datasets.TEST_ROWS, datasets.TEST_SEED, shifted=True)
    written = pd.read_csv(test, encoding="utf-8", dtype=str)
    pd.testing.assert_frame_equal(written, api.frame.drop(columns=TARGET_COLUMN), check_dtype=False)
    assert len(answers.read_text().splitlines()) == datasets.TEST_ROWS


@pytest.mark.parametrize("bad", [["train"], ["train", "--out", "x.csv", "--rows", "0"], ["fit"]])
def test_cli_rejects_bad_arguments(bad: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        datasets.main(bad)
    assert exc.value.code == 2


def test_module_runs_as_a_script(tmp_path: Path) -> None:
    out = tmp_path / "train.csv"
    package_root = str(Path(datasets.__file__).parents[1])
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-m", "yield_model.datasets", "train", "--out", str(out), "--rows", "20"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert len(pd.read_csv(out, encoding="gb18030")) == 20
