"""The stack under test: mlapi, PostgreSQL and Prometheus started from docker-compose.yml, torn
down after.

Needs a Docker engine and a compose command (`docker compose` or `docker-compose`). Without
them the stack tests are skipped, except under CI=true, where they fail.
"""

import os
import secrets
from collections.abc import Iterator

import docker
import pytest
from compose_stack import (
    BUILD_WITHIN_S,
    Stack,
    compose_command,
    free_port,
    unavailable,
    wait_healthy,
    wait_scraped,
)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Build the API image, start mlapi, PostgreSQL and Prometheus, and remove everything
    afterwards."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        unavailable(
            f"no Docker engine answers ({exc}); start one with ../shared/tools/docker-offline"
        )
    compose = compose_command()
    if compose is None:
        unavailable("neither `docker compose` nor `docker-compose` is installed")
    # An empty env file: a developer's .env must not change what is tested.
    env_file = tmp_path_factory.mktemp("stack") / "empty.env"
    env_file.touch()
    run_id = secrets.token_hex(4)
    env = {
        **os.environ,
        # A tag of this run's own, so that concurrent runs and a developer's image don't mix.
        "MLAPI_IMAGE_TAG": f"stacktest-{run_id}",
        "GRAFANA_ADMIN_PASSWORD": secrets.token_urlsafe(16),
        # With characters a URL would need escaped: the API gets it as PGPASSWORD.
        "POSTGRES_PASSWORD": f"{secrets.token_urlsafe(16)}@/:?#%",
        "POSTGRES_GRAFANA_PASSWORD": f"{secrets.token_urlsafe(16)}'\" ;",
        "MLAPI_HOST_PORT": str(free_port()),
        "PROMETHEUS_HOST_PORT": str(free_port()),
        # Two workers whatever the machine, so /metrics sums over processes as in production.
        "MLAPI_WORKERS": "2",
        # The drift and accuracy job every 5 s, and drift from 50 predictions on, so that
        # their panels have data within the test's time.
        "MLAPI_MONITOR_INTERVAL_SECONDS": "5",
        "MLAPI_DRIFT_MIN_RECORDS": "50",
    }
    stack = Stack(
        compose=compose,
        project=f"yieldstack{run_id}",
        env_file=env_file,
        env=env,
        api_url=f"http://127.0.0.1:{env['MLAPI_HOST_PORT']}",
        prometheus_url=f"http://127.0.0.1:{env['PROMETHEUS_HOST_PORT']}",
        docker=client,
    )
    try:
        built = stack.run("build", "mlapi", timeout=BUILD_WITHIN_S)
        assert built.returncode == 0, (
            f"image build failed:\n{built.stdout[-4000:]}{built.stderr[-4000:]}"
        )
        # postgres starts first, as mlapi depends on it.
        started = stack.run("up", "-d", "mlapi", "prometheus")
        assert started.returncode == 0, f"compose up failed:\n{started.stderr}"
        wait_healthy(stack, "postgres")
        wait_healthy(stack, "mlapi")
        wait_healthy(stack, "prometheus")
        wait_scraped(stack)
        yield stack
    finally:
        logs = stack.run("logs", "--no-color", "--tail", "40")
        print(logs.stdout[-8000:])
        stack.run("down", "-v", "--remove-orphans")
        # Only this run's tag goes: the layers stay, as the build cache of the next run, and
        # so does any other tag of the same image.
        ours = f":{env['MLAPI_IMAGE_TAG']}"
        for image in client.images.list(filters={"reference": f"*{ours}"}):
            for tag in image.tags:
                if tag.endswith(ours):
                    client.images.remove(tag, noprune=True)
