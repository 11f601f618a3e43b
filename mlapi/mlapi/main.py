"""The FastAPI application: built by ``create_app``; the model, the prediction log and the
monitoring job are set up in its lifespan."""

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline
from prometheus_fastapi_instrumentator import Instrumentator
from pydantic.json_schema import models_json_schema

from mlapi import __version__, metrics
from mlapi.api import router
from mlapi.auth import KeyRing, require
from mlapi.deps import BodyBudget
from mlapi.errors import add_error_handlers
from mlapi.keys import load_keys, read_keys
from mlapi.monitor import Monitor
from mlapi.prediction_log import PredictionLog, PredictionLogError, open_prediction_log
from mlapi.request_log import RequestLogMiddleware
from mlapi.schemas import FeedbackRequest
from mlapi.settings import Settings, get_settings
from yield_model.predict import load_model
from yield_model.schemas import PredictionRequest

logger = logging.getLogger("mlapi")

TITLE = "JinNan yield prediction API"
DESCRIPTION = (
    "Predicts the yield (收率) of batches of the JinNan continuous chemical process from "
    "their recipe and process log. Send records as the published files have them; values "
    "that cannot be read are treated as missing and reported in each prediction's warnings."
)
#: Requests to these paths are left out of the HTTP request metrics.
UNMEASURED_PATHS = ("/metrics", "/api/v1/health")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    """Load the model and open the log once per process.

    A model that cannot be loaded stops the process from serving; a log that cannot be
    opened leaves it serving 503 where the log is needed, until the worker is replaced.
    """
    settings: Settings = app.state.settings
    model = await run_in_threadpool(load_model, settings.model_path, settings.model_sha256)
    log, failure = await _open_log(settings, settings.prediction_log_pool_size)
    guarded = [name for name, r in model.card.input_ranges.items() if r.highest is not None]
    metrics.announce_model(model.name, model.version, __version__, guarded)
    metrics.announce_mae_alert_threshold(settings.mae_alert_threshold)
    # Created here: a limiter belongs to the event loop that serves the requests.
    limiter = anyio.CapacityLimiter(settings.predict_threads)
    logger.info(
        "model %s %s loaded",
        model.name,
        model.version,
        extra={"model_name": model.name, "model_version": model.version},
    )
    # The job has a connection of its own: a predict never waits for it.
    monitor_log = None if log is None else (await _open_log(settings, 1))[0]
    monitor = None if monitor_log is None else Monitor(monitor_log, model, settings)
    if monitor is not None:
        monitor.start()
    app.state.monitor = monitor
    # What is loaded now lives as long as the process: keep the garbage collector from
    # walking it again on every full collection (a 1,000-record request triggers several).
    gc.collect()
    gc.freeze()
    state = {
        "model": model,
        "predict_limiter": limiter,
        "prediction_log": log,
    }
    try:
        yield state | {"prediction_log_failure": failure}
    finally:
        for close in (
            monitor and monitor.stop,
            monitor_log and monitor_log.close,
            log and log.close,
        ):
            if close:
                await run_in_threadpool(close)


async def _open_log(settings: Settings, pool_size: int) -> tuple[PredictionLog | None, str | None]:
    """The prediction log, or why it cannot be opened.

    A worker that cannot open it still starts, and answers 503 where the log is needed
    (health included, with the reason): were its start to fail, gunicorn would stop the
    whole service the first time a worker is replaced while the log is broken.
    """
    try:
        log = await run_in_threadpool(
            open_prediction_log,
            settings.prediction_log_url,
            settings.prediction_log_sync,
            pool_size,
        )
    except PredictionLogError as exc:
        logger.error("the prediction log cannot be opened; this worker answers 503: %s", exc)
        return None, str(exc)
    return log, None


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; nothing is loaded until the lifespan starts."""
    # FastAPIOffline: /docs and /redoc load their scripts from the service, not from a CDN
    # that a plant network may not reach.
    app = FastAPIOffline(
        title=TITLE, description=DESCRIPTION, version=__version__, lifespan=lifespan
    )
    settings = app.state.settings = settings or get_settings()
    app.state.key_ring = None
    # A worker's own: the app is built in each worker process.
    app.state.body_budget = BodyBudget(settings.body_bytes_in_flight)
    if settings.api_keys_file is not None:
        app.state.key_ring = KeyRing(load_keys(settings.api_keys_file))
    elif settings.api_keys is not None:
        app.state.key_ring = KeyRing(read_keys(settings.api_keys, "MLAPI_API_KEYS"))
    else:
        logger.warning("MLAPI_AUTH=disabled: every route answers anyone who can reach it")
    app.include_router(router)
    add_error_handlers(app)
    Instrumentator(excluded_handlers=[f"^{path}$" for path in UNMEASURED_PATHS]).add(
        metrics.HTTP_INSTRUMENTATION
    ).instrument(app).expose(app, include_in_schema=False, dependencies=[require("metrics")])
    app.add_middleware(RequestLogMiddleware)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _openapi_document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the request body schemas the routes declare by $ref."""
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    _, definitions = models_json_schema(
        [(PredictionRequest, "validation"), (FeedbackRequest, "validation")],
        ref_template="#/components/schemas/{model}",
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(definitions["$defs"])
    return document
