"""The HTTP floor with the model: a bare Starlette app calling the pipeline, nothing else.

Started by ``run.py`` under uvicorn with the benchmark's worker count; reads the model file
named by ``BENCH_MODEL_PATH``. Body and answer: ``{"inputs": [record, ...]}`` in, the list of
predictions out.
"""

import os

import joblib
import orjson
import pandas as pd
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from yield_model.columns import FEATURE_COLUMNS

PIPELINE = joblib.load(os.environ["BENCH_MODEL_PATH"])


async def predict(request: Request) -> Response:
    """Records to a frame of the raw columns, the pipeline's predictions back."""
    records = orjson.loads(await request.body())["inputs"]
    frame = pd.DataFrame(records, columns=list(FEATURE_COLUMNS), dtype=object)
    return Response(orjson.dumps(PIPELINE.predict(frame).tolist()), media_type="application/json")


async def health(request: Request) -> Response:
    """Ready once the module, and so the model, is loaded."""
    return Response(b"ok")


app = Starlette(routes=[Route("/", predict, methods=["POST"]), Route("/health", health)])
