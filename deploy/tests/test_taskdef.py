"""The task definition template: filled completely, and in step with the image it runs."""

import hashlib
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from model_wheels import ModelWheels

from yield_deploy import taskdef
from yield_deploy.errors import NotBootstrappedError, SettingsError
from yield_deploy.settings import AGENT_MEMORY_MIB, TASK_OVERHEAD_MIB, WORKER_MEMORY_MIB, Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "mlapi" / "Dockerfile"
ROLE = "arn:aws:iam::123456789012:role/mlapi-task-execution"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/yield/mlapi:1.0.0"
KEYS_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mlapi/api-keys-AbCdEf"
METRICS_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mlapi/metrics-key-GhIjKl"
TASK_ROLE = "arn:aws:iam::123456789012:role/mlapi-task"
WRITE_URL = "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1/api/v1/remote_write"
MODEL_SHA256 = "5e" * 32


@pytest.fixture
def bare_settings() -> Settings:
    """Settings with only the required names, and the keys' secrets, which the task needs."""
    return Settings(
        region="eu-west-1",
        cluster="yield",
        service="mlapi",
        repository="yield/mlapi",
        api_keys_secret_arn=KEYS_SECRET,
        metrics_key_secret_arn=METRICS_SECRET,
    )


def render(settings: Settings, image: str, model_sha256: str = MODEL_SHA256) -> dict[str, Any]:
    return taskdef.render(settings, image, ROLE, TASK_ROLE, WRITE_URL, model_sha256=model_sha256)


def environment_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["environment"]}


def test_render_fills_every_placeholder(bare_settings: Settings) -> None:
    """Given the settings, when rendering, then no ${...} is left and the values are in place."""
    rendered = render(bare_settings, IMAGE)

    # (the agent's config keeps its own ${...}: Prometheus expands it in the task)
    assert not re.search(r"\$\{(?!AGENT_TASK_HOST\})", json.dumps(rendered))
    assert (rendered["family"], rendered["cpu"], rendered["memory"]) == ("mlapi", "512", "1024")
    assert rendered["executionRoleArn"] == ROLE
    assert rendered["taskRoleArn"] == TASK_ROLE
    container, agent = rendered["containerDefinitions"]
    assert agent["name"] == "prometheus-agent"
    # the agent's own hard limit, within the task's memory beside the API's worst case
    assert agent["memory"] == AGENT_MEMORY_MIB
    assert WORKER_MEMORY_MIB + TASK_OVERHEAD_MIB + agent["memory"] <= int(rendered["memory"])
    assert (container["name"], container["image"]) == ("mlapi", IMAGE)
    assert container["logConfiguration"]["options"]["awslogs-group"] == "/ecs/mlapi"
    assert container["logConfiguration"]["options"]["awslogs-region"] == "eu-west-1"
    assert container["secrets"] == [{"name": "MLAPI_API_KEYS", "valueFrom": KEYS_SECRET}]
    # the API refuses to start with any model but the release's
    assert environment_of(container)["MLAPI_MODEL_SHA256"] == MODEL_SHA256


def test_port_health_check_and_api_port_agree() -> None:
    """Given the template, then the mapped port, MLAPI_PORT and the health URL are one port."""
    (container,) = taskdef.template()["containerDefinitions"]
    environment = {item["name"]: item["value"] for item in container["environment"]}
    command = container["healthCheck"]["command"]
    url = re.search(r"'(http://[^']+)'", command[3])

    assert command[:3] == ["CMD", "python", "-c"]  # the image has no curl
    assert url is not None
    assert url[1] == f"http://127.0.0.1:{taskdef.container_port()}/api/v1/health"
    assert environment["MLAPI_PORT"] == str(taskdef.container_port()) == "8001"


def test_template_matches_the_image() -> None:
    """Given mlapi/Dockerfile, then its EXPOSE and HEALTHCHECK path are the template's."""
    if not DOCKERFILE.is_file():
        pytest.skip("mlapi/Dockerfile is not in this checkout")
    text = DOCKERFILE.read_text(encoding="utf-8")

    assert re.search(rf"^EXPOSE {taskdef.container_port()}$", text, re.MULTILINE)
    assert "/api/v1/health" in text.split("HEALTHCHECK", 1)[1].split("\nCMD", 1)[0]


def test_container_stops_later_than_the_api_drains() -> None:
    """Given the template, then ECS waits longer than the API's 20 s graceful timeout."""
    (container,) = taskdef.template()["containerDefinitions"]
    assert container["stopTimeout"] > 20


def test_with_image_changes_the_image_and_drops_read_only_fields(bare_settings: Settings) -> None:
    """Given a described revision, then the copy has the new image and no read-only field."""
    described = {
        **render(bare_settings, "old:1"),
        "taskDefinitionArn": "arn:aws:ecs:eu-west-1:1:task-definition/mlapi:7",
        "revision": 7,
        "status": "ACTIVE",
        "registeredAt": "2026-01-01T00:00:00Z",
        "compatibilities": ["EC2", "FARGATE"],
    }

    copied = taskdef.with_image(described, "mlapi", IMAGE, MODEL_SHA256)

    assert set(copied) == set(render(bare_settings, IMAGE))
    assert copied == render(bare_settings, IMAGE)
    assert described["containerDefinitions"][0]["image"] == "old:1"


def test_with_image_replaces_the_expected_model_sha256(bare_settings: Settings) -> None:
    """Given a revision expecting one model, then the copy expects the new image's, once."""
    described = render(bare_settings, "old:1", model_sha256="01" * 32)
    assert taskdef.runs(described, "mlapi", "old:1", "01" * 32)

    copied = taskdef.with_image(described, "mlapi", IMAGE, MODEL_SHA256)

    (container, _) = copied["containerDefinitions"]
    names = [item["name"] for item in container["environment"]]
    assert names.count("MLAPI_MODEL_SHA256") == 1
    assert environment_of(container)["MLAPI_MODEL_SHA256"] == MODEL_SHA256
    assert taskdef.runs(copied, "mlapi", IMAGE, MODEL_SHA256)
    assert not taskdef.runs(copied, "mlapi", IMAGE, "01" * 32)
    assert not taskdef.runs(copied, "mlapi", "old:1", MODEL_SHA256)


def test_the_expected_sha256_is_the_model_wheels(
    bare_settings: Settings, model_wheels: ModelWheels
) -> None:
    """Given the release's wheel, then the sha256 is its model file's; without one, an error."""
    with_wheel = bare_settings.model_copy(update={"model_wheel": model_wheels.from_file})
    with zipfile.ZipFile(model_wheels.from_file) as wheel:
        (model,) = [n for n in wheel.namelist() if n.endswith(".joblib")]
        expected = hashlib.sha256(wheel.read(model)).hexdigest()

    assert taskdef.expected_model_sha256(with_wheel) == expected
    with pytest.raises(SettingsError, match=r"DEPLOY_MODEL_WHEEL \(--model-wheel\)"):
        taskdef.expected_model_sha256(bare_settings)


def test_a_revision_without_the_container_says_which_it_has(bare_settings: Settings) -> None:
    """Given a revision whose container is named otherwise, then the error lists its names."""
    described = render(bare_settings.model_copy(update={"container": "api"}), "x:1")

    names = r"\(it has: api, prometheus-agent\)"
    with pytest.raises(NotBootstrappedError, match=rf"no container 'mlapi' {names}"):
        taskdef.with_image(described, "mlapi", IMAGE, MODEL_SHA256)
