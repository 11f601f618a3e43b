"""The Fargate task definition: rendered from ``taskdef.json``, or copied with a new image.

Notes on the template, which JSON cannot carry:
- the health check asks ``/api/v1/health`` with Python's urllib because the image has no curl,
  as the image's own HEALTHCHECK does; ECS ignores the image's HEALTHCHECK, hence this one.
- ``stopTimeout`` (30 s) is longer than the API's graceful timeout (MLAPI_GRACEFUL_TIMEOUT,
  20 s), so in-flight predictions finish before ECS sends SIGKILL.
- the root filesystem stays writable: a Fargate bind mount for /tmp would be writable by root
  only, and the API runs as an unprivileged user that keeps its metric files in /tmp.
- the Prometheus agent's container (yield_deploy.metrics_agent) is added by ``render``: its
  configuration is built from the settings and the workspace.
- MLAPI_MODEL_SHA256 is the sha256 of the model in the published wheel (DEPLOY_MODEL_WHEEL):
  the API refuses to start with any other model, so an image that carries another one never
  becomes healthy and ECS's circuit breaker rolls the deployment back.
"""

import copy
import json
from pathlib import Path
from string import Template
from typing import Any

from yield_deploy import api_keys, database, metrics_agent
from yield_deploy.errors import NotBootstrappedError, SettingsError
from yield_deploy.model_wheel import read_model_wheel
from yield_deploy.settings import Settings

# Fields describe_task_definition returns that register_task_definition does not accept.
# A deny-list, so that a field AWS adds later fails the registration loudly instead of
# being dropped from the new revision.
READ_ONLY = (
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
)


MODEL_SHA256 = "MLAPI_MODEL_SHA256"


def expected_model_sha256(settings: Settings) -> str:
    """The sha256 of the model in the release's wheel, which the API must load."""
    if settings.model_wheel is None:
        raise SettingsError(
            "the task definition needs the published model wheel, DEPLOY_MODEL_WHEEL"
            " (--model-wheel): the API is told its model's sha256 (MLAPI_MODEL_SHA256)"
        )
    return read_model_wheel(settings.model_wheel).model_sha256


def template() -> dict[str, Any]:
    """The template, placeholders unfilled."""
    # Beside this module, wherever it is installed: the repository's deploy/ directory would
    # shadow the package's own resources for an editable install run from the root.
    text = Path(__file__).with_name("taskdef.json").read_text(encoding="utf-8")
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def container_port() -> int:
    """The port the template's container listens on."""
    return int(template()["containerDefinitions"][0]["portMappings"][0]["containerPort"])


def start_period() -> int:
    """Seconds the template's health check gives a new container before counting failures."""
    return int(template()["containerDefinitions"][0]["healthCheck"]["startPeriod"])


def render(
    settings: Settings,
    image: str,
    execution_role_arn: str,
    task_role_arn: str,
    remote_write_url: str,
    *,
    model_sha256: str,
) -> dict[str, Any]:
    """The template filled in for an image whose model has ``model_sha256``, with the
    Prometheus agent writing to ``remote_write_url``: arguments of register_task_definition."""
    api_keys.require_metrics_key(settings)
    values = {
        "family": settings.task_family,
        "cpu": str(settings.cpu),
        "memory": str(settings.memory),
        "execution_role_arn": execution_role_arn,
        "task_role_arn": task_role_arn,
        "container": settings.container,
        "image": image,
        "model_sha256": model_sha256,
        "workers": str(settings.workers),
        "log_group": settings.log_group,
        "region": settings.region,
    }
    filled: dict[str, Any] = _fill(template(), values)
    # Only ever secrets: a URL in the environment would show its password to anyone who may
    # describe the task definition; the API keys' hashes are kept out of it too.
    secrets = database.container_secrets(settings) + api_keys.container_secrets(settings)
    container_of(filled, settings.container)["secrets"] = secrets
    filled["containerDefinitions"].append(
        metrics_agent.container(settings, remote_write_url, container_port(), settings.container)
    )
    return filled


def _fill(node: Any, values: dict[str, str]) -> Any:
    # Placeholders are filled in parsed JSON, string by string: a value is never parsed as JSON.
    if isinstance(node, str):
        return Template(node).substitute(values)
    if isinstance(node, list):
        return [_fill(item, values) for item in node]
    if isinstance(node, dict):
        return {key: _fill(item, values) for key, item in node.items()}
    return node


def container_of(definition: dict[str, Any], container: str) -> dict[str, Any]:
    """The named container of a task definition."""
    for candidate in definition.get("containerDefinitions", []):
        if candidate.get("name") == container:
            found: dict[str, Any] = candidate
            return found
    names = ", ".join(c.get("name", "?") for c in definition.get("containerDefinitions", []))
    raise NotBootstrappedError(
        f"task definition {definition.get('taskDefinitionArn', definition.get('family'))} has "
        f"no container {container!r} (it has: {names}); set DEPLOY_CONTAINER"
    )


def with_image(
    described: dict[str, Any], container: str, image: str, model_sha256: str
) -> dict[str, Any]:
    """Arguments of register_task_definition: the described revision with only the image and
    the sha256 of its model new."""
    spec = {key: value for key, value in copy.deepcopy(described).items() if key not in READ_ONLY}
    target = container_of(spec, container)
    target["image"] = image
    environment = [e for e in target.get("environment", []) if e.get("name") != MODEL_SHA256]
    target["environment"] = [*environment, {"name": MODEL_SHA256, "value": model_sha256}]
    return spec


def runs(described: dict[str, Any], container: str, image: str, model_sha256: str) -> bool:
    """Whether a revision's container runs the image and expects the model given."""
    target = container_of(described, container)
    environment = {e.get("name"): e.get("value") for e in target.get("environment", [])}
    return target.get("image") == image and environment.get(MODEL_SHA256) == model_sha256
