"""The API's errors: one exception with a status code, one body shape, one set of handlers."""

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlapi.prediction_log import PredictionLogError
from mlapi.schemas import ErrorBody, ErrorDetail, ErrorItem
from yield_model.errors import InvalidInputError, MalformedRequestError, TooManyRecordsError

logger = logging.getLogger("mlapi")

#: A request with thousands of bad values gets the first ones listed, and their count.
MAX_LISTED_ERRORS = 100


class ApiError(Exception):
    """A request the service will not serve, with the status and code to answer it with."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        errors: Sequence[ErrorItem] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.errors = list(errors)
        self.headers = headers


def error_response(
    status_code: int,
    code: str,
    message: str,
    errors: Sequence[ErrorItem] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The one error body, ``{"detail": {"code", "message", "errors"}}``."""
    body = ErrorBody(detail=ErrorDetail(code=code, message=message, errors=list(errors)))
    return JSONResponse(body.model_dump(mode="json"), status_code=status_code, headers=headers)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these statuses: every answer a route can give is documented."""
    return {s: {"model": ErrorBody, "description": HTTPStatus(s).phrase} for s in statuses}


def _code(status_code: int) -> str:
    return HTTPStatus(status_code).phrase.lower().replace(" ", "_").replace("-", "_")


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.code, exc.message, exc.errors, exc.headers)


async def _invalid_input(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidInputError)
    problems = exc.problems
    shown = [ErrorItem(index=p.index, field=p.field, message=p.message) for p in problems]
    # Validation stops at the first invalid record: what follows it is not checked.
    message = f"{len(problems)} invalid input value(s); records after the first invalid one "
    message += "are not checked"
    if len(problems) > MAX_LISTED_ERRORS:
        message += f"; the first {MAX_LISTED_ERRORS} are listed"
    return error_response(422, "invalid_input", message, shown[:MAX_LISTED_ERRORS])


async def _malformed_request(request: Request, exc: Exception) -> JSONResponse:
    return error_response(400, "malformed_json", str(exc))


async def _too_many_records(request: Request, exc: Exception) -> JSONResponse:
    item = ErrorItem(index=None, field="inputs", message=str(exc))
    return error_response(413, "too_many_records", str(exc), [item])


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    items = []
    for error in exc.errors()[:MAX_LISTED_ERRORS]:
        loc = [str(part) for part in error.get("loc", ())]
        items.append(ErrorItem(index=None, field=".".join(loc) or None, message=error["msg"]))
    return error_response(422, "invalid_request", "the request is not valid", items)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return error_response(exc.status_code, _code(exc.status_code), message, headers=exc.headers)


async def _prediction_log_error(request: Request, exc: Exception) -> JSONResponse:
    # Nothing is answered that is not on record: the caller retries, the operator reads why.
    logger.error("prediction log unavailable: %s", exc)
    message = "the prediction log cannot be written or read right now; retry shortly"
    return error_response(503, "prediction_log_unavailable", message)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # A bug, never the client's fault. Starlette re-raises it after this answer, so the server
    # logs the traceback once; the request log line has the request id and the 500.
    return error_response(500, "internal_error", "the service failed to answer; see its logs")


def add_error_handlers(app: FastAPI) -> None:
    """Render every error the app can raise as the one error body."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(InvalidInputError, _invalid_input)
    app.add_exception_handler(MalformedRequestError, _malformed_request)
    app.add_exception_handler(TooManyRecordsError, _too_many_records)
    app.add_exception_handler(PredictionLogError, _prediction_log_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
