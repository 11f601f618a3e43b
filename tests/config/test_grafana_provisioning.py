"""grafana/provisioning: the files Grafana reads at start, against the documented format.

Grafana ignores keys it does not know, so a misspelt one would go unnoticed at start; these
schemas list the keys of "Provision Grafana" (grafana.com/docs/grafana/latest/administration/
provisioning/, sections "Data sources" and "Dashboards") and refuse any other.
"""

import os
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

PROVISIONING = Path(__file__).resolve().parents[2] / "grafana" / "provisioning"

DATASOURCES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "datasources"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": 1},
        "prune": {"type": "boolean"},
        "deleteDatasources": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {"name": {"type": "string"}, "orgId": {"type": "integer"}},
            },
        },
        "datasources": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "type", "access"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "type": {"type": "string", "minLength": 1},
                    "access": {"enum": ["proxy", "direct"]},
                    "orgId": {"type": "integer"},
                    # Panels refer to the data source by uid: at most 40 characters.
                    "uid": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,40}$"},
                    "url": {"type": "string"},
                    "user": {"type": "string"},
                    "database": {"type": "string"},
                    "basicAuth": {"type": "boolean"},
                    "basicAuthUser": {"type": "string"},
                    "withCredentials": {"type": "boolean"},
                    "isDefault": {"type": "boolean"},
                    "jsonData": {"type": "object"},
                    "secureJsonData": {"type": "object"},
                    "version": {"type": "integer"},
                    "editable": {"type": "boolean"},
                },
            },
        },
    },
}

DASHBOARDS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "providers"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": 1},
        "providers": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "type", "options"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "orgId": {"type": "integer"},
                    "folder": {"type": "string"},
                    "folderUid": {"type": "string"},
                    "type": {"const": "file"},
                    "disableDeletion": {"type": "boolean"},
                    "updateIntervalSeconds": {"type": "integer", "minimum": 10},
                    "allowUiUpdates": {"type": "boolean"},
                    "options": {
                        "type": "object",
                        "required": ["path"],
                        "additionalProperties": False,
                        "properties": {
                            "path": {"type": "string", "pattern": "^/"},
                            "foldersFromFilesStructure": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    },
}

FILES = sorted(PROVISIONING.glob("*/*.y*ml"))
SCHEMAS = {"datasources": DATASOURCES_SCHEMA, "dashboards": DASHBOARDS_SCHEMA}


def test_there_are_two_datasources_files_and_one_dashboards_file() -> None:
    assert sorted(path.relative_to(PROVISIONING).as_posix() for path in FILES) == [
        "dashboards/dashboards.yml",
        "datasources/postgres.yml",
        "datasources/prometheus.yml",
    ]


@pytest.mark.parametrize("path", FILES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_provisioning_file_follows_the_documented_format(path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    jsonschema.validate(document, SCHEMAS[path.parent.name])


@pytest.mark.parametrize(
    ("document", "schema"),
    [
        ({"apiVersion": 1, "datasources": [{"name": "P", "type": "prometheus"}]}, "datasources"),
        (
            {
                "apiVersion": 1,
                "datasources": [{"name": "P", "type": "x", "access": "proxy", "iud": "a"}],
            },
            "datasources",
        ),
        (
            {"apiVersion": 1, "providers": [{"name": "d", "type": "file", "options": {}}]},
            "dashboards",
        ),
    ],
    ids=["missing access", "misspelt uid", "no dashboards path"],
)
def test_schemas_refuse_what_grafana_would_not_load(document: dict[str, Any], schema: str) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, SCHEMAS[schema])


def test_datasource_is_the_fixed_default_prometheus(datasource: dict[str, Any]) -> None:
    assert datasource["type"] == "prometheus"
    assert datasource["uid"]
    assert datasource["isDefault"] is True
    assert datasource["editable"] is False


def test_prediction_log_datasource_is_fixed_and_not_the_default(
    postgres_datasource: dict[str, Any], datasource: dict[str, Any]
) -> None:
    assert postgres_datasource["uid"] != datasource["uid"]
    assert postgres_datasource["isDefault"] is False
    assert postgres_datasource["editable"] is False
    # Over the compose network only: nothing outside the stack reaches the database.
    assert postgres_datasource["jsonData"]["sslmode"] == "disable"
    # The password is Grafana's $VAR interpolation of its environment, never a value here.
    assert set(postgres_datasource["secureJsonData"]) == {"password"}
    assert postgres_datasource["secureJsonData"]["password"].startswith("$")
    assert "password" not in postgres_datasource["jsonData"]


def test_prediction_log_datasource_is_the_image_postgresql_version(
    postgres_datasource: dict[str, Any], compose: dict[str, Any]
) -> None:
    # Grafana's postgresVersion: major * 100 (1500 for 15); it decides which functions the
    # query editor offers.
    major = compose["services"]["postgres"]["image"].split(":")[1].split("-")[0]
    assert postgres_datasource["jsonData"]["postgresVersion"] == int(major) * 100


def test_datasource_scrape_interval_is_prometheus(
    datasource: dict[str, Any], prometheus_config: dict[str, Any]
) -> None:
    # Grafana's $__rate_interval is computed from this value: it must be Prometheus' own.
    assert datasource["jsonData"]["timeInterval"] == prometheus_config["global"]["scrape_interval"]


def test_dashboards_are_code_not_ui_state(dashboard_provider: dict[str, Any]) -> None:
    assert dashboard_provider["allowUiUpdates"] is False
    assert dashboard_provider["disableDeletion"] is True


AMP_FILE = PROVISIONING.parent / "optional" / "amp.yml"
ENTRYPOINT = PROVISIONING.parent / "entrypoint.sh"
AMP_ENV = {
    "GRAFANA_AMP_WORKSPACE_ID": "ws-12345678-1234-1234-1234-123456789012",
    "GRAFANA_AMP_REGION": "eu-west-1",
    "GRAFANA_AMP_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "GRAFANA_AMP_SECRET_ACCESS_KEY": "not-a-real-secret",
}


@pytest.fixture(scope="module")
def amp_datasource() -> dict[str, Any]:
    """grafana/optional/amp.yml's one data source."""
    document = yaml.safe_load(AMP_FILE.read_text(encoding="utf-8"))
    jsonschema.validate(document, DATASOURCES_SCHEMA)
    (source,) = document["datasources"]
    found: dict[str, Any] = source
    return found


def test_amp_datasource_is_a_sigv4_prometheus_of_the_workspace_from_env(
    amp_datasource: dict[str, Any], datasource: dict[str, Any]
) -> None:
    # The dashboards' "Prometheus" variable lists data sources of the Prometheus type
    assert amp_datasource["type"] == datasource["type"] == "prometheus"
    assert amp_datasource["uid"] != datasource["uid"]
    assert not amp_datasource["isDefault"]
    assert amp_datasource["url"] == (
        "https://aps-workspaces.${GRAFANA_AMP_REGION}.amazonaws.com"
        "/workspaces/${GRAFANA_AMP_WORKSPACE_ID}"
    )
    data = amp_datasource["jsonData"]
    assert (data["sigV4Auth"], data["sigV4AuthType"], data["sigV4Region"]) == (
        True,
        "keys",
        "${GRAFANA_AMP_REGION}",
    )
    assert amp_datasource["secureJsonData"] == {
        "sigV4AccessKey": "${GRAFANA_AMP_ACCESS_KEY_ID}",
        "sigV4SecretKey": "${GRAFANA_AMP_SECRET_ACCESS_KEY}",
    }
    # The agents scrape as often as the stack's Prometheus: $__rate_interval is the same
    assert data["timeInterval"] == datasource["jsonData"]["timeInterval"]


def run_entrypoint(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """grafana/entrypoint.sh with a stand-in for Grafana that prints its provisioning."""
    start = tmp_path / "run.sh"
    start.write_text(
        "#!/bin/sh\n"
        'printf "%s|%s\\n" "${GF_PATHS_PROVISIONING:-}" "${GF_AUTH_SIGV4_AUTH_ENABLED:-}"\n'
    )
    start.chmod(0o755)
    base = {
        "PATH": os.environ["PATH"],
        "GF_PATHS_DATA": str(tmp_path),
        "GF_SECURITY_ADMIN_PASSWORD": "chosen",
        "GRAFANA_START": str(start),
        "GRAFANA_STACK_PROVISIONING": str(PROVISIONING),
        "GRAFANA_OPTIONAL": str(AMP_FILE.parent),
        "GRAFANA_PROVISIONING_DIR": str(tmp_path / "provisioning"),
    }
    return subprocess.run(
        ["sh", str(ENTRYPOINT)],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_without_a_workspace_grafana_gets_the_stacks_provisioning_only(tmp_path: Path) -> None:
    done = run_entrypoint(tmp_path)
    assert (done.returncode, done.stdout) == (0, "|\n")
    assert not (tmp_path / "provisioning").exists()


def test_with_a_workspace_grafana_gets_the_amp_datasource_too(tmp_path: Path) -> None:
    done = run_entrypoint(tmp_path, **AMP_ENV)
    assert done.returncode == 0, done.stderr
    combined = tmp_path / "provisioning"
    assert done.stdout == f"{combined}|true\n"
    found = sorted(p.relative_to(combined).as_posix() for p in combined.glob("*/*.y*ml"))
    assert found == [
        "dashboards/dashboards.yml",
        "datasources/amp.yml",
        "datasources/postgres.yml",
        "datasources/prometheus.yml",
    ]
    assert (combined / "datasources" / "amp.yml").read_bytes() == AMP_FILE.read_bytes()


@pytest.mark.parametrize("missing", sorted(set(AMP_ENV) - {"GRAFANA_AMP_WORKSPACE_ID"}))
def test_a_workspace_without_its_region_or_keys_is_refused_by_name(
    tmp_path: Path, missing: str
) -> None:
    env = {k: v for k, v in AMP_ENV.items() if k != missing}
    done = run_entrypoint(tmp_path, **env)
    assert done.returncode == 2
    assert f"GRAFANA_AMP_WORKSPACE_ID is set but {missing} is not" in done.stderr
