"""The routes: each translates HTTP to one call of the model package or the log, and back."""

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import anyio
import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from mlapi import __version__, metrics
from mlapi.auth import require
from mlapi.deps import JsonBody, LogDep, ModelDep, SettingsDep, get_prediction_log
from mlapi.errors import ApiError, error_responses
from mlapi.feedback import parse_feedback
from mlapi.prediction_log import (
    PredictionEntry,
    PredictionLog,
    PredictionLogError,
    new_prediction_ids,
)
from mlapi.schemas import (
    FeedbackResult,
    FeedbackResults,
    Health,
    LoggedPrediction,
    PredictionId,
    PredictionResults,
    RecordedFeedback,
)
from mlapi.settings import Settings
from yield_model.card import ModelCard
from yield_model.predict import PredictionResult, TrainedModel

router = APIRouter()


# The body is validated by the model package, in a thread, from its bytes; its schema, the
# package's own model, is declared here for the OpenAPI document.
def _request_body(schema: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    """Point to the interactive API docs."""
    return RedirectResponse("/docs")


@router.get("/api/v1/health", responses=error_responses(503))
async def health(request: Request, model: ModelDep) -> Health:
    """Report that the service is ready (its log can be written) and which model it serves."""
    try:
        log = await get_prediction_log(request)
        await anyio.to_thread.run_sync(log.check_writable)
    except PredictionLogError as exc:
        # For the operator, and for Docker or ECS, which replace a container that says so.
        raise ApiError(503, "prediction_log_unavailable", f"the prediction log: {exc}") from exc
    return Health(
        status="ok", api_version=__version__, model_name=model.name, model_version=model.version
    )


@router.get("/api/v1/model", dependencies=[require()], responses=error_responses(401, 503))
async def model_card(model: ModelDep) -> ModelCard:
    """Describe the served model: version, training time and data, holdout metrics, features."""
    return model.card


@router.post(
    "/api/v1/predict",
    dependencies=[require("predict")],
    response_model=PredictionResults,
    responses=error_responses(400, 401, 403, 408, 413, 415, 422, 503),
    openapi_extra=_request_body("PredictionRequest"),
)
async def predict(
    request: Request, body: JsonBody, model: ModelDep, log: LogDep, settings: SettingsDep
) -> Response:
    """Predict the yield of each record, with warnings about values it could not read."""
    # Validation, the model and the durable log write all block: a thread does them, a few
    # requests at a time, so that one big batch holds up no other request.
    limiter: anyio.CapacityLimiter = request.state.predict_limiter
    result, answer, values = await anyio.to_thread.run_sync(
        _predict, body, model, log, settings, limiter=limiter
    )
    request.state.record_count = len(result.predictions)
    if values is not None:
        request.state.record_values = values
    return Response(answer, media_type="application/json")


def _predict(
    body: bytearray, model: TrainedModel, log: PredictionLog, settings: Settings
) -> tuple[PredictionResult, bytes, list[dict[str, Any]] | None]:
    """The work of a prediction request: the result, the answer's JSON and, when the
    settings ask for them in the request log, the records' values."""
    started = time.perf_counter()
    result = model.predict_json(body, settings.max_records)
    model_seconds = time.perf_counter() - started
    ids = new_prediction_ids(len(result.predictions))
    # Answered only once on record: an acknowledged prediction survives a crash.
    started = time.perf_counter()
    log.record(ids, result, time.time())
    metrics.record_log_write(time.perf_counter() - started)
    metrics.record_prediction(
        result.model_version,
        result.predictions,
        model_seconds,
        absent=result.absent,
        unparseable=result.unparseable,
        out_of_range=result.out_of_range,
    )
    values = None
    if settings.log_record_values:
        values = [r.model_dump(mode="json", exclude_unset=True) for r in result.records]
    return result, prediction_results(result, ids), values


def prediction_results(result: PredictionResult, ids: Sequence[UUID]) -> bytes:
    """The ``PredictionResults`` JSON of a result, one id per prediction.

    Written by orjson straight from the result (the tests check the shape against
    ``PredictionResults``): building a pydantic object per prediction first would double
    the cost of answering a large batch.
    """
    return orjson.dumps(
        {
            "model_version": result.model_version,
            "predictions": [
                {
                    "prediction_id": prediction_id,
                    "sample_id": sample_id,
                    "predicted_yield": value,
                    "warnings": warnings,
                }
                for prediction_id, sample_id, value, warnings in zip(
                    ids, result.sample_ids, result.predictions, result.warnings, strict=True
                )
            ],
        }
    )


@router.post(
    "/api/v1/feedback",
    dependencies=[require("feedback")],
    responses=error_responses(400, 401, 403, 408, 413, 415, 422, 503),
    openapi_extra=_request_body("FeedbackRequest"),
)
async def feedback(
    request: Request, body: JsonBody, log: LogDep, settings: SettingsDep
) -> FeedbackResults:
    """Record the measured yields of earlier predictions; says per item what became of it."""
    # The prediction requests' threads: validation and the log write block, and memory
    # stays bounded however many feedback requests arrive at once.
    limiter: anyio.CapacityLimiter = request.state.predict_limiter
    return await anyio.to_thread.run_sync(_feedback, body, log, settings, limiter=limiter)


def _feedback(body: bytearray, log: PredictionLog, settings: Settings) -> FeedbackResults:
    outcomes = log.add_feedback(parse_feedback(body, settings.max_records), time.time())
    metrics.record_feedback(outcomes)
    return FeedbackResults(
        results=[
            FeedbackResult(
                prediction_id=o.prediction_id, status=o.status, actual_yield=o.actual_yield
            )
            for o in outcomes
        ]
    )


@router.get(
    "/api/v1/predictions/{prediction_id}",
    dependencies=[require("read")],
    responses=error_responses(401, 403, 404, 422, 503),
)
async def logged_prediction(prediction_id: PredictionId, log: LogDep) -> LoggedPrediction:
    """A logged prediction: the record as sent, the answer, and the measured yield if known."""
    found = await anyio.to_thread.run_sync(log.get, prediction_id)
    if found is None:
        raise ApiError(
            404,
            "prediction_not_found",
            f"prediction {prediction_id} is not in the log: never made, or older than the "
            "retention limit",
        )
    return _logged(found)


def _logged(found: PredictionEntry) -> LoggedPrediction:
    feedback = found.feedback
    return LoggedPrediction(
        prediction_id=found.prediction_id,
        created_at=datetime.fromtimestamp(found.created_at, UTC),
        model_version=found.model_version,
        sample_id=found.sample_id,
        inputs=found.inputs,
        predicted_yield=found.predicted_yield,
        warnings=found.warnings,
        feedback=None
        if feedback is None
        else RecordedFeedback(
            actual_yield=feedback.actual_yield,
            received_at=datetime.fromtimestamp(feedback.received_at, UTC),
            absolute_error=abs(found.predicted_yield - feedback.actual_yield),
        ),
    )
