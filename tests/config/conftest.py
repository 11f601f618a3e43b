"""Fixtures of the configuration tests: the repository's config files, each parsed once."""

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL_INSTALL = "apt-get install -y --no-install-recommends prometheus"


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


@pytest.fixture(scope="session")
def datasource() -> dict[str, Any]:
    """The one data source Grafana is provisioned with."""
    files = sorted((ROOT / "grafana" / "provisioning" / "datasources").glob("*.y*ml"))
    sources = [source for path in files for source in load_yaml(path)["datasources"]]
    assert len(sources) == 1, f"expected one provisioned data source, found {len(sources)}"
    found: dict[str, Any] = sources[0]
    return found


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
def promtool() -> str:
    """Prometheus' own checker: $PROMTOOL, or promtool on the PATH."""
    found = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not found:
        pytest.fail(
            "promtool not found: install Debian's Prometheus package "
            f"(`{PROMTOOL_INSTALL}`) or set PROMTOOL to its path",
            pytrace=False,
        )
    return found
