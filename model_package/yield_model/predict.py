"""Prediction: validated records in, one yield per record and its warnings out."""

import functools
import logging
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from yield_model import __version__
from yield_model.card import ModelCard
from yield_model.columns import FEATURE_COLUMNS
from yield_model.config import MODEL_NAME
from yield_model.errors import InvalidInputError, ModelLoadError, Problem
from yield_model.features import FloatArray, ParseReport
from yield_model.persistence import default_model_path, load_pipeline
from yield_model.pipeline import compile_pipeline
from yield_model.schemas import EXAMPLE_RECORD, Record, RecordBatch, validate_records

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictionResult:
    """Predictions of one call, with what parsing had to say about the inputs."""

    model_version: str
    predictions: list[float]
    warnings: list[list[str]]
    absent: dict[str, int]
    unparseable: dict[str, int]


def records_to_frame(records: Sequence[Record]) -> pd.DataFrame:
    """The raw feature frame the pipeline expects, columns in the published order."""
    rows = [[getattr(r, c) for c in FEATURE_COLUMNS] for r in records]
    return pd.DataFrame(rows, columns=list(FEATURE_COLUMNS), dtype=object)


_FEATURES = operator.itemgetter(*FEATURE_COLUMNS)
#: A record with repairs, an invalid value and Excel dates, for the compiled pipeline's check.
_QUIRKY_RECORD: dict[str, Any] = {
    **EXAMPLE_RECORD,
    "A5": "1900/1/9 7:00",
    "A20": "6:00-6:30分",
    "A25": "1900/3/10 0:00",
    "B4": "nonsense",
    "B9": "23:00-0:30",
    "B14": None,
}


def _columns(records: Sequence[Record]) -> list[Sequence[Any] | FloatArray]:
    """The records' raw feature cells, column by column, in the published order."""
    if type(records) is RecordBatch:  # already by column
        return [records.column(name) for name in FEATURE_COLUMNS]
    return list(zip(*map(_FEATURES, map(vars, records)), strict=True))


def _frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    cells = frame.astype(object).where(frame.notna(), None)
    return [{str(k): v for k, v in row.items()} for row in cells.to_dict("records")]


class TrainedModel:
    """A fitted pipeline and its card, ready to predict."""

    def __init__(self, pipeline: Any, card: ModelCard) -> None:
        self.pipeline = pipeline
        self.card = card
        self.name = card.name
        self.version = card.version
        self._parser = pipeline[0]
        self._rest = pipeline[1:]
        self._compiled = compile_pipeline(pipeline)
        if self._compiled is not None and not self._compiled_agrees():
            logger.warning("the compiled pipeline disagrees with scikit-learn; not used")
            self._compiled = None

    def _predict_with_pipeline(self, records: Sequence[Record]) -> tuple[FloatArray, ParseReport]:
        frame = records_to_frame(records)
        # Parsing once, outside the pipeline, yields both the features and the warnings.
        parsed, report = self._parser.transform_with_report(frame)
        features = pd.DataFrame(parsed, columns=self._parser.get_feature_names_out())
        return np.asarray(self._rest.predict(features), dtype=np.float64), report

    def _compiled_agrees(self) -> bool:
        """Whether the compiled pipeline predicts what scikit-learn does on sample records.

        A model file from another scikit-learn release, or fitted differently, must not be
        served by a shortcut that does not match it; the tests hold this on whole files.
        """
        if list(getattr(self._parser, "feature_names_in_", ())) != list(FEATURE_COLUMNS):
            return False
        records = validate_records([EXAMPLE_RECORD, {}, _QUIRKY_RECORD])
        try:
            parsed, _ = self._parser.parse_columns(_columns(records), len(records))
            fast = self._compiled.predict(parsed) if self._compiled is not None else None
        except Exception:  # any failure of the shortcut means: do not use it
            return False
        expected, _ = self._predict_with_pipeline(records)
        return fast is not None and np.array_equal(fast, expected)

    def predict(
        self, records: Sequence[Record | Mapping[str, Any]] | pd.DataFrame
    ) -> PredictionResult:
        """Predict each record's yield; raises InvalidInputError listing every bad value.

        ``records`` may also be a DataFrame with the published columns (NaN is missing).
        """
        rows: Sequence[Record | Mapping[str, Any]] = (
            _frame_records(records) if isinstance(records, pd.DataFrame) else records
        )
        if not rows:
            raise InvalidInputError([Problem("at least one record is required")])
        validated = validate_records(rows)
        if self._compiled is not None:
            parsed, report = self._parser.parse_columns(_columns(validated), len(validated))
            predictions = self._compiled.predict(parsed)
        else:
            predictions, report = self._predict_with_pipeline(validated)
        return PredictionResult(
            model_version=self.version,
            predictions=predictions.tolist(),
            warnings=report.warnings,
            absent=report.absent,
            unparseable=report.unparseable,
        )


def load_model(path: Path | None = None) -> TrainedModel:
    """Load a trained model; by default the one inside the installed package."""
    pipeline, card = load_pipeline(path or default_model_path())
    if path is None and card.version != __version__:
        raise ModelLoadError(
            f"packaged model is version {card.version} but the package is {__version__}"
        )
    if card.name != MODEL_NAME:
        raise ModelLoadError(f"model card names {card.name!r}, expected {MODEL_NAME!r}")
    return TrainedModel(pipeline, card)


@functools.cache
def _packaged_model() -> TrainedModel:
    return load_model()


def make_prediction(
    records: Sequence[Record | Mapping[str, Any]] | pd.DataFrame,
    *,
    model: TrainedModel | None = None,
) -> PredictionResult:
    """Predict with ``model``, or with the packaged model (loaded once, on first use)."""
    return (model or _packaged_model()).predict(records)
