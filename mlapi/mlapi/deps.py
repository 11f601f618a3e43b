"""Dependencies the routes declare: the model, the prediction log, the settings, the JSON body.

Each is ``async`` because none blocks: they run on the event loop rather than in a thread.
"""

import logging
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import Depends, Request
from starlette.requests import ClientDisconnect

from mlapi import metrics
from mlapi.errors import ApiError
from mlapi.prediction_log import PredictionLog, PredictionLogError
from mlapi.settings import Settings
from yield_model.predict import TrainedModel

logger = logging.getLogger("mlapi")

#: Answered when the client hangs up mid-body (nginx's code): nobody reads it, but the
#: request log and the HTTP metrics count it as a 4xx, the client's doing.
CLIENT_CLOSED_REQUEST = 499


async def get_model(request: Request) -> TrainedModel:
    """The model loaded at startup; 503 while there is none."""
    model: TrainedModel | None = getattr(request.state, "model", None)
    if model is None:
        raise ApiError(503, "not_ready", "the model is not loaded yet; retry shortly")
    return model


async def get_prediction_log(request: Request) -> PredictionLog:
    """The prediction log opened at startup; 503 while there is none."""
    log: PredictionLog | None = getattr(request.state, "prediction_log", None)
    failure: str | None = getattr(request.state, "prediction_log_failure", None)
    if log is None and failure is not None:
        # Handled as every failure of the log: a 503, the cause in the service's log.
        raise PredictionLogError(f"the prediction log could not be opened: {failure}")
    if log is None:
        raise ApiError(503, "not_ready", "the prediction log is not open yet; retry shortly")
    return log


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


#: Longest header value quoted back in an error message.
_SHOWN_HEADER_LENGTH = 40


def _shown_header(value: str) -> str:
    return value if len(value) <= _SHOWN_HEADER_LENGTH else value[:_SHOWN_HEADER_LENGTH] + "…"


def _check_declared_json(request: Request) -> None:
    """415 unless the body is declared JSON, in UTF-8, and not content-encoded.

    The body is read as UTF-8 JSON as it arrives: a gzipped body or one in another charset
    would otherwise be read as something it is not.
    """
    media_type, *parameters = request.headers.get("content-type", "").split(";")
    media_type = media_type.strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        shown = _shown_header(media_type) or "none"
        raise ApiError(
            415, "unsupported_media_type", f"send Content-Type: application/json (got {shown})"
        )
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            raise ApiError(
                415,
                "unsupported_charset",
                f"send the body in UTF-8, as JSON is (got charset={_shown_header(charset)})",
            )
    encodings = [
        coding.strip().lower()
        for header in request.headers.getlist("content-encoding")
        for coding in header.split(",")
    ]
    unsupported = [coding for coding in encodings if coding not in ("", "identity")]
    if unsupported:
        raise ApiError(
            415,
            "unsupported_content_encoding",
            f"the service does not decode request bodies: send the body without "
            f"Content-Encoding (got {_shown_header(', '.join(unsupported))})",
        )


class BodyBudget:
    """The request body bytes a worker holds at once, across its requests.

    Each body is bounded by ``MLAPI_MAX_BODY_BYTES``; this bounds their sum, so that many
    uploads at once cannot take a worker's memory. Used on the event loop only.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> bool:
        """Hold ``size`` more bytes, if within the limit."""
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        """Release bytes taken before."""
        self.held -= size


async def read_json_body(request: Request) -> AsyncIterator[bytearray]:
    """The request body, if it is declared JSON (UTF-8, not encoded) and within the size
    limit; its bytes count against the worker's budget until the response is done."""
    _check_declared_json(request)
    budget: BodyBudget = request.app.state.body_budget
    # One buffer grown in place, not chunks joined at the end: a body costs its size once.
    body = bytearray()
    try:
        await _read_body(request, body, budget)
        yield body
    finally:
        budget.give(len(body))


async def _read_body(request: Request, body: bytearray, budget: BodyBudget) -> None:
    settings: Settings = request.app.state.settings
    limit = settings.max_body_bytes
    too_large = ApiError(413, "body_too_large", f"the request body exceeds {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    handler = getattr(request.scope.get("route"), "path", "none")
    deadline = settings.body_read_timeout_seconds
    try:
        with anyio.fail_after(deadline):
            async for chunk in request.stream():
                if len(body) + len(chunk) > limit:
                    raise too_large
                if not budget.take(len(chunk)):
                    metrics.record_body_refused_busy(handler)
                    raise ApiError(
                        503,
                        "busy",
                        "the service is receiving as many request bodies as it may hold; "
                        "retry shortly",
                        # the rest of the body is not read
                        headers={"retry-after": "1", "connection": "close"},
                    )
                body += chunk
    except ClientDisconnect:
        logger.info("client disconnected after %d bytes of the body", len(body))
        metrics.record_client_disconnect(handler)
        raise ApiError(
            CLIENT_CLOSED_REQUEST, "client_disconnected", "the client closed the connection"
        ) from None
    except TimeoutError:
        metrics.record_body_read_timeout(handler)
        raise ApiError(
            408,
            "body_timeout",
            f"the request body did not arrive within {deadline:g} seconds",
            headers={"connection": "close"},  # the rest of the body is not waited for
        ) from None


ModelDep = Annotated[TrainedModel, Depends(get_model)]
LogDep = Annotated[PredictionLog, Depends(get_prediction_log)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
JsonBody = Annotated[bytearray, Depends(read_json_body)]
