"""Count the generator's tables in the published training file and write them as a module.

    python scripts/plant_tables.py ../shared/data/jinnan_round1_train_20181227.csv \
        > model_package/yield_model/plant.py

The generator (``yield_model.datasets``) draws every column from these counts, so that its
files look like the plant's without the plant's file; model_package/tests/test_plant.py checks
that the module holds what this script counts. The counts are of the engineered features the
drift monitoring bins (``yield_model.pipeline.engineered_frame``): numbers as parsed, clock
times and step durations in minutes.
"""

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from yield_model.columns import FEATURE_COLUMNS, NUMERIC_COLUMNS, PROCESS_ORDER, TIME_RANGE_COLUMNS
from yield_model.data import load_dataset
from yield_model.pipeline import build_pipeline, engineered_steps

#: Steps whose gap (or, for A20, duration) moves together between two ways of running a batch.
SCHEDULE_STEPS = ("A20_duration", "A9_gap", "A20_gap", "A26_gap", "A28_gap", "B7_gap", "B10_gap")
#: A batch is on the extended schedule when at least this many of them are not the usual value.
EXTENDED_FROM = 3
#: An extended batch is held when it waits this long before step A28.
HELD_MINUTES = 120
#: Values that are the quirks DATA.md lists: the generator writes those cells itself.
QUIRK_VALUES = {"B14": (40.0,), "A22": (3.5,), "B1": (3.5,)}
#: The recipe columns, drawn together: A2 replaces A3, and A4 goes with them.
RECIPE = ("A2", "A3", "A4")
#: The last step of a batch: B10 and B11 happen in only part of the batches, B11 only after B10.
LAST_STEPS = ("B9", "B10", "B11")
#: B7's wait after B5 is the yield's hold term: a logged wait of half a day or more is a
#: clock written wrong (B7 before B5), not a batch that waited.
B7_MAX_GAP_MINUTES = 720
#: B9 steps this long are the stalls the generator draws on their own (``_STALL_RATE``).
B9_MAX_MINUTES = 270

Table = list[tuple[float, int]]
LINE_LENGTH = 100


@dataclass
class Tables:
    """Every count the generator draws from."""

    batches: int
    numbers: dict[str, dict[str, Table]]
    recipes: list[tuple[tuple[float | None, ...], int]]
    route_batches: dict[str, int]
    start_clock: dict[str, Table]
    gaps: dict[str, dict[str, Table]]
    durations: dict[str, dict[str, Table]]
    a7_batches: dict[str, int]


def engineered(path: Path) -> pd.DataFrame:
    """The training file's engineered features, as the drift references see them."""
    frame = load_dataset(path).frame[list(FEATURE_COLUMNS)]
    steps = engineered_steps(build_pipeline()).fit(frame)
    return pd.DataFrame(steps.transform(frame), columns=steps.get_feature_names_out())


def _table(values: pd.Series, *, minutes: bool = False) -> Table:
    known = values.dropna()
    if minutes:
        known = (known * 60).round()
    counts = known.value_counts().sort_index()
    return [(float(v), int(c)) for v, c in zip(counts.index, counts, strict=True)]


def extended_schedule(features: pd.DataFrame) -> "pd.Series[bool]":
    """Whether each batch ran on the extended schedule (``SCHEDULE_STEPS``)."""
    unusual = sum(
        (features[c].notna() & (features[c] != features[c].mode()[0])).astype(int)
        for c in SCHEDULE_STEPS
    )
    return pd.Series(np.asarray(unusual) >= EXTENDED_FROM, index=features.index)


def count_tables(path: Path) -> Tables:
    """Count every table in the training file at ``path``."""
    features = engineered(path)
    recipe_counts: dict[tuple[float | None, ...], int] = {}
    for row in features[list(RECIPE)].itertuples(index=False):
        key = tuple(None if np.isnan(v) else float(v) for v in row)
        recipe_counts[key] = recipe_counts.get(key, 0) + 1
    extended = extended_schedule(features)
    tables = Tables(
        batches=len(features),
        numbers={},
        recipes=sorted(recipe_counts.items(), key=lambda item: -item[1]),
        route_batches={},
        start_clock={},
        gaps={},
        durations={},
        a7_batches={},
    )
    last_step = np.where(
        features["B11_start"].notna(), "B11", np.where(features["B10_start"].notna(), "B10", "B9")
    )
    held = extended & (features["A28_gap"] * 60 >= HELD_MINUTES)
    schedules = (("standard", ~extended), ("extended", extended & ~held), ("held", held))
    for schedule, on_it in schedules:
        for last in LAST_STEPS:
            part = features[on_it & (last_step == last)]
            if part.empty:
                continue
            route = f"{schedule}-{last}"
            tables.route_batches[route] = len(part)
            tables.start_clock[route] = _table(part[PROCESS_ORDER[0]], minutes=True)
            gaps: dict[str, Table] = {}
            durations: dict[str, Table] = {}
            for column in PROCESS_ORDER[1:]:
                gap = part[f"{column}_gap"]
                if column == "B7":
                    gap = gap[gap * 60 < B7_MAX_GAP_MINUTES]
                gaps[column] = _table(gap, minutes=True)
                if column in TIME_RANGE_COLUMNS:
                    duration = part[f"{column}_duration"]
                    if column == "B9":
                        duration = duration[duration * 60 <= B9_MAX_MINUTES]
                    durations[column] = _table(duration, minutes=True)
            tables.gaps[route] = gaps
            tables.durations[route] = durations
            tables.a7_batches[route] = int(part["A7"].notna().sum())
            tables.numbers[route] = {
                column: _table(part[column][~part[column].isin(QUIRK_VALUES.get(column, ()))])
                for column in NUMERIC_COLUMNS
                if column not in RECIPE
            }
    return tables


def _number(value: float | None) -> str:
    if value is None:
        return "None"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _pairs(table: Sequence[tuple[float, int]], indent: int) -> str:
    """A table as a tuple literal, wrapped by hand to the line length (the module is left
    unformatted: the formatter would put one pair on each line)."""
    pairs = [f"({_number(v)}, {n})" for v, n in table]
    if len(table) == 1:
        pairs[0] += ","
    lines, line = [], ""
    for pair in pairs:
        if line and indent + 4 + len(line) + len(pair) + 3 > LINE_LENGTH:
            lines.append(line + ",")
            line = ""
        line = f"{line}, {pair}" if line else pair
    lines.append(line)
    if len(lines) == 1 and indent + len(lines[0]) + 12 <= LINE_LENGTH:
        return f"({lines[0]})"
    pad = " " * (indent + 4)
    return "(\n" + "\n".join(pad + text for text in lines) + "\n" + " " * indent + ")"


def _block(name: str, annotation: str, entries: dict[str, str], comment: str) -> list[str]:
    return [
        f"#: {comment}",
        f"{name}: Final[{annotation}] = {{",
        *(f'    "{key}": {value},' for key, value in entries.items()),
        "}",
        "",
    ]


def _nested(tables: dict[str, dict[str, Table]]) -> dict[str, str]:
    return {
        schedule: "{\n"
        + "".join(f'        "{c}": {_pairs(t, 8)},\n' for c, t in per_step.items())
        + "    }"
        for schedule, per_step in tables.items()
    }


def render(tables: Tables, source: str) -> str:
    """The module ``yield_model.plant``."""
    steps = ", ".join(SCHEDULE_STEPS)
    recipes = "".join(f"    (({', '.join(map(_number, k))}), {n}),\n" for k, n in tables.recipes)
    out = [
        '"""Counts of the published training file, which the generator draws from.',
        "",
        f"Written by scripts/plant_tables.py from {source}, which says how each",
        "is counted; tests/test_plant.py checks them against the file when it is present. Values",
        "are the engineered features: numbers as parsed; clock times, gaps and step durations in",
        "minutes.",
        "",
        "A batch's route is its schedule and its last step (B9, B10 or B11); the tables are",
        "counted per route, as the steps of a batch move together, and its amounts and",
        "temperatures with them (the recipe, A2 to A4, is counted once). A batch ran on the",
        f"extended schedule when at least {EXTENDED_FROM} of",
        f"{steps} are not their most common",
        "value: its waits and steps are longer, it sometimes has step A7 and rarely B11. It was",
        f"held when it also waited {HELD_MINUTES // 60} hours or more before step A28; its other "
        "waits are",
        "longer too. B9 lasts longer in batches that end with it.",
        "",
        "Quirk values (B14 40, A22 3.5, B1 3.5) are left out, as the generator writes its quirk",
        "cells itself; so are B7 waits of half a day or more and B9 steps over 4.5 hours, which",
        "would dominate the yield (the generator's B9 stalls stand for those).",
        '"""',
        "",
        "from typing import Final",
        "",
        "#: (value, batches) pairs, ascending.",
        "Table = tuple[tuple[float, int], ...]",
        "",
        f"BATCHES: Final = {tables.batches}",
        "",
        "# fmt: off",
        f"#: ({', '.join(RECIPE)}) of a batch (None: not written), and how many batches had it.",
        "RECIPES: Final[tuple[tuple[tuple[float | None, ...], int], ...]] = (",
        recipes + ")",
        "",
        *_block(
            "ROUTE_BATCHES",
            "dict[str, int]",
            {s: str(n) for s, n in tables.route_batches.items()},
            "Batches per route: schedule, and the last step of the batch.",
        ),
        *_block(
            "START_CLOCK",
            "dict[str, Table]",
            {s: _pairs(t, 4) for s, t in tables.start_clock.items()},
            "Clock time of the first step (A5), minutes after midnight, per route.",
        ),
        *_block(
            "GAPS",
            "dict[str, dict[str, Table]]",
            _nested(tables.gaps),
            "Minutes from the end of the previous step that happened to the start of each step.",
        ),
        *_block(
            "DURATIONS",
            "dict[str, dict[str, Table]]",
            _nested(tables.durations),
            "Minutes each range step lasted.",
        ),
        *_block(
            "NUMBERS",
            "dict[str, dict[str, Table]]",
            _nested(tables.numbers),
            "Values of the numeric columns other than the recipe's, per route.",
        ),
        *_block(
            "A7_BATCHES",
            "dict[str, int]",
            {s: str(n) for s, n in tables.a7_batches.items()},
            "Batches per route that had step A7.",
        ),
        "# fmt: on",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    """Command line: print the module for the training file named by the only argument."""
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(argv[0])
    print(render(count_tables(path), path.name), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
