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
"""

import copy
import json
from pathlib import Path
from string import Template
from typing import Any

from yield_deploy import api_keys, database, metrics_agent
from yield_deploy.errors import NotBootstrappedError
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
) -> dict[str, Any]:
    """The template filled in, with the Prometheus agent writing to ``remote_write_url``:
    arguments of register_task_definition."""
    api_keys.require_metrics_key(settings)
    values = {
        "family": settings.task_family,
        "cpu": str(settings.cpu),
        "memory": str(settings.memory),
        "execution_role_arn": execution_role_arn,
        "task_role_arn": task_role_arn,
        "container": settings.container,
        "image": image,
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


def with_image(described: dict[str, Any], container: str, image: str) -> dict[str, Any]:
    """Arguments of register_task_definition: the described revision with only the image new."""
    spec = {key: value for key, value in copy.deepcopy(described).items() if key not in READ_ONLY}
    container_of(spec, container)["image"] = image
    return spec
