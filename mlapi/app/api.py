"""The routes: each translates HTTP to one call of the model package and back."""

import os
import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import anyio
import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from app import __version__, metrics
from app.deps import JsonBody, ModelDep, SettingsDep
from app.errors import error_responses
from app.inputs import parse_inputs
from app.schemas import Health, PredictionResults
from app.settings import Settings
from yield_model.card import ModelCard
from yield_model.predict import PredictionResult, TrainedModel
from yield_model.schemas import Record, validate_records

router = APIRouter()

# The body is read and validated by the route itself (off the event loop, records by the
# model package), so its schema is declared here for the OpenAPI document.
_PREDICT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/MultipleYieldInputs"}}
        },
    }
}


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    """Point to the interactive API docs."""
    return RedirectResponse("/docs")


@router.get("/api/v1/health", responses=error_responses(503))
async def health(model: ModelDep) -> Health:
    """Report that the service is ready and which model it serves."""
    return Health(
        status="ok", api_version=__version__, model_name=model.name, model_version=model.version
    )


@router.get("/api/v1/model", responses=error_responses(503))
async def model_card(model: ModelDep) -> ModelCard:
    """Describe the served model: version, training time and data, holdout metrics, features."""
    return model.card


@router.post(
    "/api/v1/predict",
    response_model=PredictionResults,
    responses=error_responses(400, 413, 415, 422, 503),
    openapi_extra=_PREDICT_BODY,
)
async def predict(
    request: Request, body: JsonBody, model: ModelDep, settings: SettingsDep
) -> Response:
    """Predict the yield of each record, with warnings about values it could not read."""
    # Parsing, validation and prediction are CPU work: off the event loop, a few at a time.
    limiter: anyio.CapacityLimiter = request.state.predict_limiter
    return await anyio.to_thread.run_sync(_predict, request, body, model, settings, limiter=limiter)


def _predict(request: Request, body: bytes, model: TrainedModel, settings: Settings) -> Response:
    inputs = parse_inputs(body, settings.max_records)
    request.state.record_count = len(inputs)
    if settings.log_record_values:
        request.state.record_values = inputs
    records = validate_records(inputs)
    started = time.perf_counter()
    result = model.predict(records)
    metrics.record_prediction(
        result.model_version,
        result.predictions,
        time.perf_counter() - started,
        result.absent,
        result.unparseable,
    )
    return Response(prediction_results(records, result), media_type="application/json")


def prediction_results(records: Sequence[Record], result: PredictionResult) -> bytes:
    """The ``PredictionResults`` JSON for the records predicted, one id per prediction.

    Built with orjson rather than through pydantic objects: for a 1,000-record batch that
    was ~10 ms, a sizeable part of what HTTP adds (benchmarks/README.md). The tests check
    the shape against ``PredictionResults``.
    """
    # One read of the random source for all ids, instead of one per uuid4() call.
    random = os.urandom(16 * len(records))
    return orjson.dumps(
        {
            "model_version": result.model_version,
            "predictions": [
                {
                    "prediction_id": UUID(bytes=random[16 * i : 16 * i + 16], version=4),
                    "sample_id": record.sample_id,
                    "predicted_yield": value,
                    "warnings": warnings,
                }
                for i, (record, value, warnings) in enumerate(
                    zip(records, result.predictions, result.warnings, strict=True)
                )
            ],
        }
    )
