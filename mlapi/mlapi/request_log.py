"""One log line per request, with the request id the response carries back."""

import logging
import os
import re
import time
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("mlapi.request")

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is echoed into logs and headers, so only a short, plain token is kept.
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_MAX_LOGGED_PATH = 200


def request_id_from(headers: Headers) -> str:
    """The caller's X-Request-ID if it is a plain token, else a new one."""
    given = headers.get(REQUEST_ID_HEADER, "")
    return given if _SAFE_REQUEST_ID.fullmatch(given) else os.urandom(16).hex()


class RequestLogMiddleware:
    """Tag each request with an id, return it as X-Request-ID, and log the request once.

    Routes add what they know to the request state: ``record_count`` and, only when the
    settings ask for it, ``record_values``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(Headers(scope=scope))
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _log(scope, state, status, time.perf_counter() - started)


def _log(scope: Scope, state: dict[str, Any], status: int, seconds: float) -> None:
    route = scope.get("route")
    model = state.get("model")
    fields: dict[str, Any] = {
        "request_id": state["request_id"],
        "method": scope["method"],
        "route": getattr(route, "path", None),
        "path": scope["path"][:_MAX_LOGGED_PATH],
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
        "record_count": state.get("record_count"),
        "model_version": getattr(model, "version", None),
        # The name of the API key the request was served for (mlapi.auth), never the key.
        "api_key": state.get("api_key_name"),
    }
    if "record_values" in state:
        fields["record_values"] = state["record_values"]
    message = f"{fields['method']} {fields['path']} {status} {fields['duration_ms']:.1f} ms"
    logger.info(message, extra=fields)
