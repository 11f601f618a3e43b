"""BentoML's way to serve the pipeline: a service class loading the model file once.

Started by ``run.py`` with ``bentoml serve`` (BentoML 1.4) in its own virtualenv; the model
file and the worker count come from ``BENCH_MODEL_PATH`` and ``BENCH_WORKERS``. Body and
answer: ``{"inputs": [record, ...]}`` in, the list of predictions out.
"""

import os
from typing import Any

import bentoml  # type: ignore[import-not-found]
import joblib
import pandas as pd

from yield_model.columns import FEATURE_COLUMNS


@bentoml.service(workers=int(os.environ.get("BENCH_WORKERS", "1")))
class YieldModel:
    """The trained pipeline behind one API."""

    def __init__(self) -> None:
        self.pipeline = joblib.load(os.environ["BENCH_MODEL_PATH"])

    @bentoml.api  # type: ignore[untyped-decorator]
    def predict(self, inputs: list[dict[str, Any]]) -> list[float]:
        """Records to a frame of the raw columns, the pipeline's predictions back."""
        frame = pd.DataFrame(inputs, columns=list(FEATURE_COLUMNS), dtype=object)
        predictions: list[float] = self.pipeline.predict(frame).tolist()
        return predictions
