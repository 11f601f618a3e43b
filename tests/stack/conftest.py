"""The stack under test: mlapi, PostgreSQL, Prometheus and Alertmanager started from
docker-compose.yml and the test's override (stack_override.py), torn down after; Alertmanager
sends to a webhook the test runs on the host.

Needs a Docker engine and a compose command (`docker compose` or `docker-compose`). Without
them the stack tests are skipped, except under CI=true, where they fail.
"""

import os
import secrets
from collections.abc import Iterator

import docker
import pytest
import stack_override
import yaml
from compose_stack import (
    BUILD_WITHIN_S,
    COMPOSE_FILE,
    Stack,
    WebhookReceiver,
    bridge_gateway,
    compose_command,
    free_port,
    unavailable,
    wait_healthy,
    wait_scraped,
)


@pytest.fixture(scope="session")
def webhook() -> Iterator[WebhookReceiver]:
    """The receiver Alertmanager's ALERT_WEBHOOK_URL names: on the host, at the address of
    Docker's default bridge, which containers reach as host.docker.internal (host-gateway)."""
    try:
        bridge = docker.from_env().networks.get("bridge")
    except docker.errors.DockerException as exc:
        unavailable(f"no Docker engine answers ({exc})")
    receiver = WebhookReceiver(bridge_gateway(bridge))
    yield receiver
    receiver.close()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, webhook: WebhookReceiver) -> Iterator[Stack]:
    """Build the API image, start mlapi, PostgreSQL, Prometheus and Alertmanager, and remove
    everything afterwards."""
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
    directory = tmp_path_factory.mktemp("stack")
    env_file = directory / "empty.env"
    env_file.touch()
    override = stack_override.write(directory, yaml.safe_load(COMPOSE_FILE.read_text()))
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
        "ALERTMANAGER_HOST_PORT": str(free_port()),
        "ALERT_WEBHOOK_URL": f"http://{stack_override.HOST}:{webhook.port}/alerts",
        # Two workers whatever the machine, so /metrics sums over processes as in production.
        "MLAPI_WORKERS": "2",
        # The drift and accuracy job every 5 s, and drift from 50 predictions on, so that
        # their panels have data within the test's time.
        "MLAPI_MONITOR_INTERVAL_SECONDS": "5",
        "MLAPI_DRIFT_MIN_RECORDS": "50",
    }
    stack = Stack(
        compose=compose,
        # STACK_TEST_PROJECT_PREFIX: on a machine whose users share out the project names.
        project=f"{os.environ.get('STACK_TEST_PROJECT_PREFIX', 'yieldstack')}{run_id}",
        env_file=env_file,
        override=override,
        env=env,
        api_url=f"http://127.0.0.1:{env['MLAPI_HOST_PORT']}",
        prometheus_url=f"http://127.0.0.1:{env['PROMETHEUS_HOST_PORT']}",
        alertmanager_url=f"http://127.0.0.1:{env['ALERTMANAGER_HOST_PORT']}",
        docker=client,
    )
    try:
        built = stack.run("build", "mlapi", timeout=BUILD_WITHIN_S)
        assert built.returncode == 0, (
            f"image build failed:\n{built.stdout[-4000:]}{built.stderr[-4000:]}"
        )
        # postgres and alertmanager start first, as mlapi and prometheus depend on them.
        started = stack.run("up", "-d", "mlapi", "prometheus")
        assert started.returncode == 0, f"compose up failed:\n{started.stderr}"
        wait_healthy(stack, "postgres")
        wait_healthy(stack, "mlapi")
        wait_healthy(stack, "alertmanager")
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
