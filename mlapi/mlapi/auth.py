"""Who may call what: the API key a request bears, checked by one dependency per route.

Routes declare ``dependencies=[require("predict")]``; the OpenAPI document then names the
bearer scheme, and the scope, on each of them.
"""

import hmac
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.params import Security as SecurityParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes

from mlapi import metrics
from mlapi.errors import ApiError
from mlapi.keys import SCOPES, ApiKey, digest

_bearer = HTTPBearer(
    scheme_name="apiKey",
    description="An API key of the service's key file (MLAPI_API_KEYS_FILE), sent as "
    "`Authorization: Bearer KEY`. Each route needs the scope it names.",
    auto_error=False,
)


class KeyRing:
    """The keys the service accepts, looked up in constant time."""

    def __init__(self, keys: Sequence[ApiKey]) -> None:
        self.keys = list(keys)

    def find(self, key: str) -> ApiKey | None:
        """The key of the file whose hash the given key has, or None."""
        presented = digest(key)
        found = None
        # Every stored hash is compared, found or not: how long this takes says nothing.
        for candidate in self.keys:
            if hmac.compare_digest(presented, candidate.digest):
                found = candidate
        return found


def _refuse(reason: str, message: str, challenge: str = "Bearer") -> ApiError:
    metrics.record_auth_failure(reason)
    status, code = (403, "forbidden") if reason == "forbidden" else (401, "unauthorized")
    return ApiError(status, code, message, headers={"WWW-Authenticate": challenge})


async def authorize(
    scopes: SecurityScopes,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey | None:
    """The request's key if it holds every scope asked for; None when keys are off."""
    ring: KeyRing | None = request.app.state.key_ring
    if ring is None:  # MLAPI_AUTH=disabled
        return None
    if credentials is None:
        if "authorization" in request.headers:
            raise _refuse("malformed", "send the key as Authorization: Bearer KEY")
        raise _refuse("missing", "this route needs an API key: Authorization: Bearer KEY")
    key = ring.find(credentials.credentials)
    if key is None:
        raise _refuse("invalid", "the API key is not valid", 'Bearer error="invalid_token"')
    missing = [scope for scope in scopes.scopes if scope not in key.scopes]
    if missing:
        needed = " ".join(missing)
        raise _refuse(
            "forbidden",
            f"this API key lacks the scope {needed}",
            f'Bearer error="insufficient_scope", scope="{needed}"',
        )
    request.state.api_key_name = key.name
    return key


def require(*scopes: str) -> SecurityParam:
    """The dependency of a route: a valid key with these scopes (any valid key if none)."""
    unknown = set(scopes) - set(SCOPES)
    assert not unknown, f"unknown scopes {unknown}"
    dependency: SecurityParam = Security(authorize, scopes=list(scopes))
    return dependency
