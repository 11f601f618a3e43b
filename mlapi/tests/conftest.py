"""Shared fixtures: an app with its model loaded, clients, records and metric scrapes."""

import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import stack_tools
from fastapi import FastAPI
from fastapi.testclient import TestClient
from mlapi_support import (
    AUTH,
    BACKENDS,
    Postgres,
    RunningServer,
    Scrape,
    new_log_url,
    start_postgres,
    write_test_key_file,
)

from mlapi.main import create_app
from mlapi.settings import ENV_PREFIX, Settings
from yield_model.schemas import EXAMPLE_RECORD


def _without_service_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(ENV_PREFIX) and k != "PROMETHEUS_MULTIPROC_DIR"
    }


#: Settings every in-process app of the tests gets (set by pytest_configure): a prediction
#: log of the test session's own, a monitoring job that never runs by itself (tests call
#: ``run_once``), and the key file of the tests' key (``AUTH``).
TEST_ENV: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Set the tests' environment before collection: some test modules build apps at import."""
    for key in set(os.environ) - set(_without_service_env()):
        del os.environ[key]
    data = tempfile.mkdtemp(prefix="mlapi-tests-")
    TEST_ENV[f"{ENV_PREFIX}PREDICTION_LOG_URL"] = f"sqlite://{Path(data) / 'predictions.db'}"
    TEST_ENV[f"{ENV_PREFIX}MONITOR_INTERVAL_SECONDS"] = "86400"
    TEST_ENV[f"{ENV_PREFIX}API_KEYS_FILE"] = str(write_test_key_file(Path(data) / "api-keys"))
    os.environ.update(TEST_ENV)


def pytest_unconfigure(config: pytest.Config) -> None:
    url = TEST_ENV[f"{ENV_PREFIX}PREDICTION_LOG_URL"]
    shutil.rmtree(Path(url.removeprefix("sqlite://")).parent, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def clean_env() -> Iterator[None]:
    """The tests' own settings only: no MLAPI_* or multiprocess variable from the caller."""
    with pytest.MonkeyPatch.context() as patch:
        for key in set(os.environ) - set(_without_service_env()):
            patch.delenv(key)
        for key, value in TEST_ENV.items():
            patch.setenv(key, value)
        yield


@pytest.fixture(scope="session")
def app(clean_env: None) -> FastAPI:
    """The app with default settings (10,000 records per request at most)."""
    return create_app(Settings())


@pytest.fixture(scope="session")
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client of the app whose model is loaded (lifespan started)."""
    with TestClient(app, headers=AUTH) as test_client:
        yield test_client


@pytest.fixture
def unready_client(clean_env: None) -> TestClient:
    """A client of an app whose lifespan has not run: no model loaded."""
    return TestClient(create_app(Settings()), headers=AUTH)


# -- the two backends of the prediction log --------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """A real PostgreSQL 15 server for the session: as installed, or else from the stack's
    image through Docker; with neither, the tests that need it fail saying what to install."""
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a new, empty prediction log, once per backend."""
    backend: str = request.param
    return new_log_url(request, backend, tmp_path)


@pytest.fixture
def record() -> dict[str, Any]:
    """A complete, valid record (a copy, free to change)."""
    return copy.deepcopy(EXAMPLE_RECORD)


@pytest.fixture
def scrape(client: TestClient) -> Callable[[], Scrape]:
    """Read the in-process app's /metrics."""
    return lambda: Scrape(client.get("/metrics").text)  # the client sends AUTH


# -- real servers ---------------------------------------------------------------------------


MLAPI_SERVE = str(Path(sys.executable).with_name("mlapi-serve"))
STARTUP_TIMEOUT_SECONDS = 180


def serve_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment of an mlapi-serve process: these settings; metrics, the prediction
    log and the key file of the tests' key under tmp_path."""
    env = _without_service_env()
    env[f"{ENV_PREFIX}MULTIPROC_DIR"] = str(tmp_path / "metrics")
    env[f"{ENV_PREFIX}API_KEYS_FILE"] = str(write_test_key_file(tmp_path / "api-keys"))
    env[f"{ENV_PREFIX}PREDICTION_LOG_URL"] = f"sqlite://{tmp_path / 'data' / 'predictions.db'}"
    env.update({ENV_PREFIX + key.upper(): value for key, value in settings.items()})
    return env


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start ``mlapi-serve`` on a free port with the given settings; wait until healthy."""
    started: list[subprocess.Popen[str]] = []

    def start(**settings: str) -> RunningServer:
        port = stack_tools.free_port()
        log = tmp_path / f"server-{port}.log"
        env = serve_env(tmp_path, **{"host": "127.0.0.1", "port": str(port), **settings})
        with log.open("w") as out:
            process = subprocess.Popen(
                [MLAPI_SERVE], env=env, stdout=out, stderr=subprocess.STDOUT, text=True
            )
        started.append(process)
        server = RunningServer(process, port, log)
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"mlapi-serve exited with {process.returncode}:\n{server.output()}")
            try:
                if httpx.get(f"{server.url}/api/v1/health", timeout=5).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"mlapi-serve not healthy after {STARTUP_TIMEOUT_SECONDS} s")

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def run_serve(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``mlapi-serve`` expecting it to stop by itself (a start that must fail)."""

    def run(**settings: str) -> subprocess.CompletedProcess[str]:
        env = serve_env(
            tmp_path,
            **{"host": "127.0.0.1", "port": str(stack_tools.free_port()), **settings},
        )
        return subprocess.run(
            [MLAPI_SERVE],
            env=env,
            capture_output=True,
            text=True,
            timeout=STARTUP_TIMEOUT_SECONDS,
            check=False,
        )

    return run


@pytest.fixture
def packaged_model_copy(tmp_path: Path) -> Path:
    """A copy of the packaged model file and its card, to break at will."""
    from yield_model.persistence import default_model_path

    source = default_model_path()
    card = source.with_name(source.name.removesuffix(".joblib") + ".card.json")
    target = tmp_path / "model"
    target.mkdir()
    shutil.copy(source, target / source.name)
    shutil.copy(card, target / card.name)
    return target / source.name
