"""Fixtures of the configuration tests: the repository's config files, each parsed once."""

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL_INSTALL = "apt-get install -y --no-install-recommends prometheus"
AMTOOL_INSTALL = "apt-get install -y --no-install-recommends prometheus-alertmanager"


def load_yaml(path: Path) -> Any:
    """The parsed YAML file."""
    with path.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream)


@pytest.fixture(scope="session")
def root() -> Path:
    """The repository's root."""
    return ROOT


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """docker-compose.yml."""
    parsed: dict[str, Any] = load_yaml(ROOT / "docker-compose.yml")
    return parsed


@pytest.fixture(scope="session")
def prometheus_config() -> dict[str, Any]:
    """prometheus/prometheus.yml."""
    parsed: dict[str, Any] = load_yaml(ROOT / "prometheus" / "prometheus.yml")
    return parsed


PROMETHEUS_TYPE = "prometheus"
POSTGRES_TYPE = "grafana-postgresql-datasource"


@pytest.fixture(scope="session")
def datasources() -> dict[str, dict[str, Any]]:
    """The data sources Grafana is provisioned with, by type: one of each."""
    files = sorted((ROOT / "grafana" / "provisioning" / "datasources").glob("*.y*ml"))
    sources = [source for path in files for source in load_yaml(path)["datasources"]]
    types = sorted(source["type"] for source in sources)
    assert types == sorted([PROMETHEUS_TYPE, POSTGRES_TYPE]), f"provisioned data sources: {types}"
    return {source["type"]: source for source in sources}


@pytest.fixture(scope="session")
def datasource(datasources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The Prometheus data source."""
    return datasources[PROMETHEUS_TYPE]


@pytest.fixture(scope="session")
def postgres_datasource(datasources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The PostgreSQL data source: the prediction log."""
    return datasources[POSTGRES_TYPE]


@pytest.fixture(scope="session")
def dashboard_provider() -> dict[str, Any]:
    """The one dashboard provider Grafana is provisioned with."""
    files = sorted((ROOT / "grafana" / "provisioning" / "dashboards").glob("*.y*ml"))
    providers = [provider for path in files for provider in load_yaml(path)["providers"]]
    assert len(providers) == 1, f"expected one dashboard provider, found {len(providers)}"
    found: dict[str, Any] = providers[0]
    return found


@pytest.fixture(scope="session")
def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard JSON file, by file name."""
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
    }


#: A checker run from the stack's own image, where it is not installed: the same version.
DOCKER_WRAPPER = """#!/bin/sh
# {tool} from {image}, seeing /tmp, the repository and the working directory where they are.
run() {{
  exec docker run --rm -i --network none --user "$(id -u):$(id -g)" \\
    -v /tmp:/tmp -v "{root}:{root}:ro" "$@"
}}
case "$PWD" in
  /tmp | /tmp/* | "{root}" | "{root}"/*) run -w "$PWD" --entrypoint {tool} {image} "$@" ;;
  *) run -v "$PWD:$PWD" -w "$PWD" --entrypoint {tool} {image} "$@" ;;
esac
"""


def docker_works() -> bool:
    """Whether a Docker engine answers here."""
    docker = shutil.which("docker")
    return docker is not None and (
        subprocess.run([docker, "info"], capture_output=True, check=False).returncode == 0
    )


def docker_tool(tool: str, service: str, directory: Path) -> str:
    """An executable that runs ``tool`` from the image of the compose ``service``."""
    compose = load_yaml(ROOT / "docker-compose.yml")
    image = compose["services"][service]["image"]
    path = directory / tool
    path.write_text(DOCKER_WRAPPER.format(root=ROOT, tool=tool, image=image), encoding="utf-8")
    path.chmod(0o755)
    return str(path)


def find_tool(
    tool: str, variable: str, install: str, service: str, factory: pytest.TempPathFactory
) -> str:
    """$VARIABLE, the tool on the PATH, or, with Docker, the tool from the stack's image."""
    found = os.environ.get(variable) or shutil.which(tool)
    if found:
        return found
    if docker_works():
        return docker_tool(tool, service, factory.mktemp(f"{tool}-from-docker"))
    pytest.fail(
        f"{tool} not found: install it (`{install}`) or Docker (the tests then run it from "
        f"the {service} image of docker-compose.yml), or set {variable} to its path",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def promtool(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Prometheus' own checker: $PROMTOOL, promtool on the PATH, or the stack's image's."""
    return find_tool("promtool", "PROMTOOL", PROMTOOL_INSTALL, "prometheus", tmp_path_factory)


@pytest.fixture(scope="session")
def amtool(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Alertmanager's own checker: $AMTOOL, amtool on the PATH, or the stack's image's."""
    return find_tool("amtool", "AMTOOL", AMTOOL_INSTALL, "alertmanager", tmp_path_factory)
