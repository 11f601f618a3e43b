"""Fixtures of the configuration tests: the repository's config files, each parsed once."""

import json
from pathlib import Path
from typing import Any

import pytest
import stack_tools
import yaml

ROOT = Path(__file__).resolve().parents[2]


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


@pytest.fixture(scope="session")
def promtool(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Prometheus' own checker: as installed, or else from the stack's image (stack_tools)."""
    return stack_tools.executable(stack_tools.PROMTOOL, tmp_path_factory.mktemp("promtool"))


@pytest.fixture(scope="session")
def amtool(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Alertmanager's own checker: as installed, or else from the stack's image (stack_tools)."""
    return stack_tools.executable(stack_tools.AMTOOL, tmp_path_factory.mktemp("amtool"))
