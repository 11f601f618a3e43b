"""Prediction: records in, one yield per record and its warnings out."""

import functools
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import sklearn

from yield_model import __version__
from yield_model.card import ModelCard
from yield_model.columns import FEATURE_COLUMNS
from yield_model.compiled import verified_tail
from yield_model.config import MODEL_NAME
from yield_model.errors import ModelLoadError
from yield_model.guard import OutOfRangeGuard
from yield_model.persistence import default_model_path, load_pipeline
from yield_model.schemas import Record, validate_records, validate_request


@dataclass(frozen=True)
class PredictionResult:
    """Predictions of one call, in the order of the records, with what parsing had to say.

    ``records`` are the records as validated, ``cells`` their feature values (a row a
    record, columns in the published order) and ``sample_ids`` their ids as text;
    ``absent`` and ``unparseable`` count, per input column, the values that were missing
    and those that could not be read (treated as missing too); ``out_of_range``, per guarded
    column, the values far outside the training range (treated as missing too, each named
    in its record's warnings after what parsing had to say).
    """

    model_version: str
    records: list[Record]
    cells: npt.NDArray[np.object_]
    sample_ids: list[str | None]
    predictions: list[float]
    warnings: list[list[str]]
    absent: dict[str, int]
    unparseable: dict[str, int]
    out_of_range: dict[str, int] = field(default_factory=dict)


#: Up to this many records, the compiled steps predict; beyond it scikit-learn's, which gain
#: on them as batches grow (the crossovers measured are in benchmarks/README.md).
COMPILED_MAX_ROWS = 200

_FEATURES = operator.attrgetter(*FEATURE_COLUMNS)


def records_to_cells(records: Sequence[Record]) -> npt.NDArray[np.object_]:
    """The records' raw feature cells, a row a record, columns in the published order."""
    cells = np.empty((len(records), len(FEATURE_COLUMNS)), dtype=object)
    if records:
        cells[:] = list(map(_FEATURES, records))
    return cells


def records_to_frame(records: Sequence[Record]) -> pd.DataFrame:
    """The raw feature frame of the records, columns in the published order."""
    return pd.DataFrame(records_to_cells(records), columns=list(FEATURE_COLUMNS), dtype=object)


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
        # Parsing once, outside the pipeline, yields both the features and the warnings.
        self._parser = pipeline[0]
        self._rest = pipeline[1:]
        # The guard's verdicts go into the warnings; the steps after parsing apply it.
        self._guard: OutOfRangeGuard | None = pipeline.named_steps.get("guard")
        # The same steps as array operations, used for small batches where they are faster.
        self._compiled = verified_tail(self._rest, len(self._parser.get_feature_names_out()))
        self.engine = "compiled" if self._compiled is not None else "scikit-learn"

    def predict(
        self, records: Sequence[Record | Mapping[str, Any]] | pd.DataFrame
    ) -> PredictionResult:
        """Predict each record's yield; raises InvalidInputError listing every bad value.

        ``records`` may also be a DataFrame with the published columns (NaN is missing).
        """
        rows = _frame_records(records) if isinstance(records, pd.DataFrame) else records
        return self._predict(validate_records(rows))

    def predict_json(
        self, body: bytes | bytearray, max_records: int | None = None
    ) -> PredictionResult:
        """Predict the records of a JSON body ``{"inputs": [record, ...]}``.

        Raises MalformedRequestError for a body that is not JSON, InvalidInputError listing
        the first invalid record's bad values, TooManyRecordsError beyond ``max_records``
        (checked before the body is parsed as far as its structure tells).
        """
        return self._predict(validate_request(body, max_records))

    def _predict(self, records: list[Record]) -> PredictionResult:
        # The records are validated and the parser never raises: scikit-learn's checks of
        # finiteness and of its own parameters have nothing left to find.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            cells = records_to_cells(records)
            parsed, report = self._parser.parse(cells)
            warnings, out_of_range = report.warnings, {}
            if self._guard is not None:
                ranges = self._guard.report(parsed)
                out_of_range = ranges.out_of_range
                warnings = [
                    [*parsing, *guarded]
                    for parsing, guarded in zip(warnings, ranges.warnings, strict=True)
                ]
            if self._compiled is not None and len(records) <= COMPILED_MAX_ROWS:
                predictions = self._compiled(parsed)
            else:
                predictions = np.asarray(self._rest.predict(parsed), dtype=np.float64)
        return PredictionResult(
            model_version=self.version,
            records=records,
            cells=cells,
            sample_ids=[None if r.sample_id is None else str(r.sample_id) for r in records],
            predictions=predictions.tolist(),
            warnings=warnings,
            absent=report.absent,
            unparseable=report.unparseable,
            out_of_range=out_of_range,
        )


def load_model(path: Path | None = None, sha256: str | None = None) -> TrainedModel:
    """Load a trained model; by default the one inside the installed package.

    The file must have the sha256 ``sha256``, or without it the installed package's model's:
    a model file is a pickle, which runs code, so none other is loaded.
    """
    pipeline, card = load_pipeline(path or default_model_path(), sha256)
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
