"""API keys: every route but health needs one, with the route's scope; refusals are counted."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from mlapi_support import Scrape
from starlette.routing import Route

from mlapi import metrics
from mlapi.api import router
from mlapi.auth import KeyRing
from mlapi.keys import SCOPES, ApiKey, digest, key_line
from mlapi.main import create_app
from mlapi.settings import Settings

#: One key per scope set the tests need; the file holds their hashes only.
KEYS = {
    "all": ("mlapi_all-scopes", list(SCOPES)),
    "metrics": ("mlapi_metrics-only", ["metrics"]),
    **{
        f"not-{scope}": (f"mlapi_all-but-{scope}", [s for s in SCOPES if s != scope])
        for scope in SCOPES
    },
    # Two keys for the same client, as during a rotation.
    "plant-old": ("mlapi_plant-old", ["predict"]),
    "plant-new": ("mlapi_plant-new", ["predict"]),
}
#: Routes anyone may call: health, and the docs (what they show is not the service's data).
OPEN_PATHS = {"/api/v1/health", "/", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name][0]}"}


@pytest.fixture(scope="module")
def keyed_app(tmp_path_factory: pytest.TempPathFactory, clean_env: None) -> FastAPI:
    """An app reading a key file of KEYS."""
    path = tmp_path_factory.mktemp("keys") / "api-keys"
    lines = [key_line(key, scopes, name) for name, (key, scopes) in KEYS.items()]
    path.write_text("\n".join(["# the tests' keys", *lines, ""]), encoding="utf-8")
    return create_app(Settings(api_keys_file=path))


@pytest.fixture(scope="module")
def anonymous(keyed_app: FastAPI) -> Iterator[TestClient]:
    """A client of that app that sends no key unless told."""
    with TestClient(keyed_app) as client:
        yield client


@pytest.fixture(scope="module")
def prediction_id(anonymous: TestClient) -> str:
    """The id of a logged prediction."""
    body = {"inputs": [{"sample_id": "auth-1", "A6": 38}]}
    answer = anonymous.post("/api/v1/predict", json=body, headers=bearer("all"))
    assert answer.status_code == 200, answer.text
    found: str = answer.json()["predictions"][0]["prediction_id"]
    return found


class Call(NamedTuple):
    method: str
    path: str
    scope: str | None  # None: any valid key
    body: Any = None


def calls(prediction_id: str) -> list[Call]:
    """A successful call of every route that needs a key, and the scope it needs."""
    return [
        Call("GET", "/api/v1/model", None),
        Call("POST", "/api/v1/predict", "predict", {"inputs": [{"A6": 38}]}),
        Call(
            "POST",
            "/api/v1/feedback",
            "feedback",
            {"feedback": [{"prediction_id": prediction_id, "actual_yield": 0.9}]},
        ),
        Call("GET", f"/api/v1/predictions/{prediction_id}", "read"),
        Call("GET", "/metrics", "metrics"),
    ]


def send(client: TestClient, call: Call, headers: dict[str, str]) -> Any:
    return client.request(call.method, call.path, json=call.body, headers=headers)


def test_the_table_has_every_route_that_is_not_open(keyed_app: FastAPI) -> None:
    # A route added without a row here (and so without these tests) fails this test.
    routes = {
        (method, route.path)
        for route in [*router.routes, *keyed_app.routes]
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    table = {(c.method, c.path.replace("ID", "{prediction_id}")) for c in calls("ID")}
    assert {(m, p) for m, p in routes if p not in OPEN_PATHS} == table
    # and the app's other routes (FastAPI's docs) are the open ones
    others = {
        route.path
        for route in keyed_app.routes
        if isinstance(route, Route) and not isinstance(route, APIRoute)
    }
    assert others <= OPEN_PATHS


def test_every_route_without_a_key_is_401_in_the_error_format(
    anonymous: TestClient, prediction_id: str
) -> None:
    for call in calls(prediction_id):
        answer = send(anonymous, call, {})
        assert answer.status_code == 401, call
        assert answer.headers["WWW-Authenticate"] == "Bearer", call
        assert answer.json() == {
            "detail": {
                "code": "unauthorized",
                "message": "this route needs an API key: Authorization: Bearer KEY",
                "errors": [],
            }
        }


def test_every_route_with_an_unknown_key_is_401(anonymous: TestClient, prediction_id: str) -> None:
    for call in calls(prediction_id):
        answer = send(anonymous, call, {"Authorization": "Bearer mlapi_not-in-the-file"})
        assert answer.status_code == 401, call
        assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        assert answer.json()["detail"]["code"] == "unauthorized"


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "mlapi_all-scopes", ""])
def test_a_header_that_is_not_bearer_key_is_401(anonymous: TestClient, header: str) -> None:
    answer = anonymous.get("/api/v1/model", headers={"Authorization": header})
    assert answer.status_code == 401
    assert answer.json()["detail"]["message"] == "send the key as Authorization: Bearer KEY"


def test_every_route_with_a_key_lacking_its_scope_is_403(
    anonymous: TestClient, prediction_id: str
) -> None:
    for call in calls(prediction_id):
        if call.scope is None:
            continue
        answer = send(anonymous, call, bearer(f"not-{call.scope}"))
        assert answer.status_code == 403, call
        assert answer.headers["WWW-Authenticate"] == (
            f'Bearer error="insufficient_scope", scope="{call.scope}"'
        )
        assert answer.json()["detail"] == {
            "code": "forbidden",
            "message": f"this API key lacks the scope {call.scope}",
            "errors": [],
        }


def test_every_route_with_its_scope_answers(anonymous: TestClient, prediction_id: str) -> None:
    for call in calls(prediction_id):
        # The key with only that scope where there is one; the metrics key can read the card.
        name = "metrics" if call.scope in (None, "metrics") else "all"
        if call.scope == "predict":
            name = "plant-old"
        answer = send(anonymous, call, bearer(name))
        assert 200 <= answer.status_code < 300, (call, answer.text)


def test_health_and_the_docs_need_no_key(anonymous: TestClient) -> None:
    assert anonymous.get("/api/v1/health").status_code == 200
    assert anonymous.get("/openapi.json").status_code == 200
    assert anonymous.get("/docs").status_code == 200


def test_two_keys_of_one_client_are_valid_at_once(anonymous: TestClient) -> None:
    body = {"inputs": [{"A6": 38}]}
    for name in ("plant-old", "plant-new"):
        assert anonymous.post("/api/v1/predict", json=body, headers=bearer(name)).status_code == 200
    # and neither may read the log
    answer = anonymous.get("/api/v1/predictions/0193a5c2-7e41-7c3a-9d51-4f2b8e0a6c11")
    assert answer.status_code == 401


def test_the_key_is_checked_before_the_request_is_read(anonymous: TestClient) -> None:
    # No key: refused before its content type, body or path parameter say anything.
    answer = anonymous.post("/api/v1/predict", content=b"not json", headers={"Content-Type": "x"})
    assert answer.status_code == 401
    assert anonymous.get("/api/v1/predictions/not-a-uuid").status_code == 401


def test_refusals_are_counted_by_reason_and_never_by_key(anonymous: TestClient) -> None:
    def scrape() -> Scrape:
        answer = anonymous.get("/metrics", headers=bearer("metrics"))
        assert answer.status_code == 200
        return Scrape(answer.text)

    before = scrape()
    # When: 1 request without a key, 2 with a malformed header, 3 with an unknown key, 4
    # with a key without the scope
    anonymous.get("/api/v1/model")
    for _ in range(2):
        anonymous.get("/api/v1/model", headers={"Authorization": "Basic eDp5"})
    for _ in range(3):
        anonymous.get("/api/v1/model", headers={"Authorization": "Bearer mlapi_guessed-key"})
    for _ in range(4):
        anonymous.get("/metrics", headers=bearer("not-metrics"))
    after = scrape()
    # Then
    deltas = {
        reason: after.value("mlapi_auth_failures_total", reason=reason)
        - before.value("mlapi_auth_failures_total", reason=reason)
        for reason in metrics.AUTH_FAILURE_REASONS
    }
    assert deltas == {"missing": 1, "malformed": 2, "invalid": 3, "forbidden": 4}
    assert after.series("mlapi_auth_failures_total") == [
        {"reason": reason} for reason in metrics.AUTH_FAILURE_REASONS
    ]
    assert "guessed" not in anonymous.get("/metrics", headers=bearer("metrics")).text


def test_the_openapi_document_declares_the_bearer_scheme_and_each_routes_scope(
    anonymous: TestClient,
) -> None:
    document = anonymous.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["apiKey"]["type"] == "http"
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    security = {
        (method.upper(), path): operation.get("security")
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    assert security == {
        ("GET", "/api/v1/health"): None,
        ("GET", "/api/v1/model"): [{"apiKey": []}],
        ("POST", "/api/v1/predict"): [{"apiKey": ["predict"]}],
        ("POST", "/api/v1/feedback"): [{"apiKey": ["feedback"]}],
        ("GET", "/api/v1/predictions/{prediction_id}"): [{"apiKey": ["read"]}],
    }
    for (method, path), needed in security.items():
        responses = document["paths"][path][method.lower()]["responses"]
        assert ("401" in responses) == (needed is not None), (method, path)
        assert ("403" in responses) == bool(needed and needed[0]["apiKey"]), (method, path)


def test_with_auth_disabled_every_route_answers_without_a_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLAPI_API_KEYS_FILE")
    with TestClient(create_app(Settings(auth="disabled"))) as client:
        assert client.post("/api/v1/predict", json={"inputs": [{"A6": 38}]}).status_code == 200
        assert client.get("/metrics").status_code == 200
        assert client.get("/api/v1/model").status_code == 200


def test_a_key_is_found_among_many_and_a_near_miss_is_not() -> None:
    ring = KeyRing(
        [ApiKey(digest(f"mlapi_key-{i}"), frozenset({"predict"}), f"k{i}") for i in range(50)]
    )
    found = ring.find("mlapi_key-49")
    assert found is not None
    assert found.name == "k49"
    assert ring.find("mlapi_key-50") is None
    assert ring.find("mlapi_key-49 ") is None
    assert ring.find("mlapi_key-4") == ring.keys[4]


def test_serve_refuses_to_start_without_keys_or_the_explicit_opt_out(
    run_serve: Callable[..., Any],
) -> None:
    result = run_serve(api_keys_file="")  # empty: unset
    assert result.returncode == 2
    assert "MLAPI_API_KEYS_FILE:" in result.stderr
    assert "MLAPI_AUTH=disabled" in result.stderr


def test_serve_refuses_a_bad_key_file_naming_its_line(
    run_serve: Callable[..., Any], tmp_path: Path
) -> None:
    path = tmp_path / "bad-keys"
    path.write_text("# keys\npredict mlapi_a-raw-key-pasted-by-mistake\n", encoding="utf-8")
    result = run_serve(api_keys_file=str(path))
    assert result.returncode == 2
    assert "MLAPI_API_KEYS_FILE: Value error, line 2: the second field must be sha256:" in (
        result.stderr
    )
    assert "pasted-by-mistake" not in result.stderr
