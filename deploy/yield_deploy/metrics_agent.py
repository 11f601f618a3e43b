"""The Prometheus agent beside the API in each task: scrapes its /metrics, remote-writes the
samples to the service's Amazon Managed Service for Prometheus workspace.

The stock prom/prometheus image has no file of this project, and Fargate mounts none, so the
container gets its configuration and the metrics key as variables (the key from Secrets
Manager) and writes them to files before starting Prometheus in agent mode.
"""

import json
from typing import Any

from yield_deploy.settings import AGENT_MEMORY_MIB, Settings

CONTAINER = "prometheus-agent"
#: prometheus/prometheus.yml's scrape interval: the dashboards' $__rate_interval counts on it.
SCRAPE_INTERVAL = "15s"
#: The job name the alert rules and dashboards select (job="mlapi").
JOB = "mlapi"
CONFIG_VARIABLE = "PROMETHEUS_AGENT_CONFIG"
KEY_VARIABLE = "MLAPI_METRICS_KEY"
#: The image's data directory, writable by its user.
DATA_DIR = "/prometheus"
CONFIG_FILE = f"{DATA_DIR}/agent.yml"
KEY_FILE = f"{DATA_DIR}/metrics.key"
#: The variable the task's host name is given in, for the `task` label.
TASK_VARIABLE = "AGENT_TASK_HOST"
#: Writes the two files, readable by the agent's user only, then starts the agent on them.
START = (
    f'umask 077 && {TASK_VARIABLE}="$(hostname)" && export {TASK_VARIABLE}'
    + ' && printf "%s" "$MLAPI_METRICS_KEY" >' + KEY_FILE
    + ' && printf "%s\\n" "$PROMETHEUS_AGENT_CONFIG" >' + CONFIG_FILE
    + ' && exec /bin/prometheus "$@"'
)  # fmt: skip


def flags(config_file: str, storage: str, listen: str = "127.0.0.1:9090") -> list[str]:
    """The agent's command line, but for the binary."""
    return [
        # Agent mode: scrape and forward only; no local queries, no rule evaluation (the
        # workspace evaluates prometheus/alerts.yml). expand-external-labels: the task label.
        "--enable-feature=agent,expand-external-labels",
        f"--config.file={config_file}",
        f"--storage.agent.path={storage}",
        # Its own API stays inside the task.
        f"--web.listen-address={listen}",
    ]


def config(
    remote_write_url: str, *, port: int, sigv4_region: str | None, key_file: str = KEY_FILE
) -> dict[str, Any]:
    """The agent's configuration: scrape the API on ``port`` of the task, write to the URL.

    With ``sigv4_region`` the writes are signed with the task role's credentials, as Amazon
    Managed Service for Prometheus requires; without it they go unsigned to a plain
    Prometheus remote-write receiver (the tests' local one).
    """
    remote_write: dict[str, Any] = {"url": remote_write_url}
    if sigv4_region is not None:
        remote_write["sigv4"] = {"region": sigv4_region}
    return {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            # Each task's series apart: every agent scrapes the same 127.0.0.1 target.
            # Fargate names each task's host after its own address.
            "external_labels": {"task": f"${{{TASK_VARIABLE}}}"},
        },
        "scrape_configs": [
            {
                "job_name": JOB,
                "authorization": {"credentials_file": key_file},
                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
            }
        ],
        "remote_write": [remote_write],
    }


def container(
    settings: Settings, remote_write_url: str, port: int, api_container: str
) -> dict[str, Any]:
    """The agent's container definition."""
    # JSON is YAML: Prometheus reads it as it is.
    rendered = json.dumps(config(remote_write_url, port=port, sigv4_region=settings.region))
    return {
        "name": CONTAINER,
        "image": settings.prometheus_image,
        # The API serves on without it: a task is not stopped for want of its metrics.
        "essential": False,
        # A hard limit: the agent, not the API, is stopped if it ever outgrows its share.
        "memory": AGENT_MEMORY_MIB,
        "entryPoint": ["/bin/sh", "-c", START, CONTAINER],
        "command": flags(CONFIG_FILE, f"{DATA_DIR}/agent-data"),
        "environment": [{"name": CONFIG_VARIABLE, "value": rendered}],
        "secrets": [{"name": KEY_VARIABLE, "valueFrom": str(settings.metrics_key_secret_arn)}],
        # Scraping starts once the API answers, so that a starting task is not MlapiDown.
        "dependsOn": [{"containerName": api_container, "condition": "HEALTHY"}],
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": settings.log_group,
                "awslogs-region": settings.region,
                "awslogs-stream-prefix": CONTAINER,
            },
        },
    }
