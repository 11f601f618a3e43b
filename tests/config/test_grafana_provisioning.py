"""grafana/provisioning: the files Grafana reads at start, against the documented format.

Grafana ignores keys it does not know, so a misspelt one would go unnoticed at start; these
schemas list the keys of "Provision Grafana" (grafana.com/docs/grafana/latest/administration/
provisioning/, sections "Data sources" and "Dashboards") and refuse any other.
"""

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
