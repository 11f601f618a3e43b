"""The columns of the published JinNan files and what kind of value each holds."""

from typing import Final

ID_COLUMN: Final = "样本id"
TARGET_COLUMN: Final = "收率"

FEATURE_COLUMNS: Final[tuple[str, ...]] = (
    *(f"A{i}" for i in range(1, 29)),
    *(f"B{i}" for i in range(1, 15)),
)
#: Every column of the training file, in the published order.
ALL_COLUMNS: Final[tuple[str, ...]] = (ID_COLUMN, *FEATURE_COLUMNS, TARGET_COLUMN)

#: Clock times written ``H:MM:SS``.
TIME_POINT_COLUMNS: Final[tuple[str, ...]] = (
    "A5", "A7", "A9", "A11", "A14", "A16", "A24", "A26", "B5", "B7",
)  # fmt: skip
#: Clock ranges written ``H:MM-H:MM``, often across midnight.
TIME_RANGE_COLUMNS: Final[tuple[str, ...]] = ("A20", "A28", "B4", "B9", "B10", "B11")
TIME_COLUMNS: Final[tuple[str, ...]] = tuple(
    c for c in FEATURE_COLUMNS if c in TIME_POINT_COLUMNS or c in TIME_RANGE_COLUMNS
)
#: Amounts, temperatures, pressures, pH: everything that is not a time.
NUMERIC_COLUMNS: Final[tuple[str, ...]] = tuple(c for c in FEATURE_COLUMNS if c not in TIME_COLUMNS)

#: Time columns in the order the process runs through them; the gaps between
#: consecutive stamps are the durations of the process steps.
PROCESS_ORDER: Final[tuple[str, ...]] = TIME_COLUMNS
