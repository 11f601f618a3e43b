"""The stack test's compose override: the project's own Prometheus and Alertmanager, with
only what makes an alert reach the test's webhook within minutes changed.

- Prometheus runs its config with one more rule file: copies of the alerts in FAST_ALERTS
  from prometheus/alerts.yml, with `for: 0s`. Their expressions, labels and annotations are
  the production ones; the production file is loaded too, with its delays, which promtool's
  tests (prometheus/alerts_test.yml) check.
- Alertmanager renders its routing file with the groups' waits shortened: the routes,
  receivers and inhibitions are the production ones.
- Alertmanager reaches the host, where the test's webhook listens, as host.docker.internal.
"""

import copy
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
#: The alerts the test makes fire: the generator's shifted batch drifts its inputs; a stopped
#: API is down.
FAST_ALERTS = ("MlapiInputDrift", "MlapiDown")
#: Container paths of the test's own files.
PROMETHEUS_DIR = "/etc/prometheus-test"
ALERTMANAGER_DIR = "/etc/alertmanager-test"
FAST_RULES = "alerts-now.yml"
#: Alertmanager's waits in the test: a group is sent a second after its first alert, and a
#: change (the resolution) a few seconds after it happens.
TEST_TIMING = {"group_wait": "1s", "group_interval": "5s"}
HOST = "host.docker.internal"


def fast_rules() -> dict[str, Any]:
    """The FAST_ALERTS of prometheus/alerts.yml, firing as soon as their condition holds."""
    production = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    rules = []
    for group in production["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") in FAST_ALERTS:
                rules.append({**copy.deepcopy(rule), "for": "0s"})
    assert {rule["alert"] for rule in rules} == set(FAST_ALERTS)
    return {"groups": [{"name": "stack-test-now", "rules": rules}]}


def prometheus_config() -> dict[str, Any]:
    """prometheus/prometheus.yml, loading the production rules and the fast copies."""
    config: dict[str, Any] = yaml.safe_load(
        (ROOT / "prometheus" / "prometheus.yml").read_text(encoding="utf-8")
    )
    config["rule_files"] = [
        *(f"/etc/prometheus/{name}" for name in config["rule_files"]),
        f"{PROMETHEUS_DIR}/{FAST_RULES}",
    ]
    return config


def alertmanager_template() -> str:
    """alertmanager/alertmanager.yml with every group_wait and group_interval shortened, as text:
    the `# integrations` lines the entrypoint fills in are comments a YAML dump would drop."""
    text = (ROOT / "alertmanager" / "alertmanager.yml").read_text(encoding="utf-8")
    for key, value in TEST_TIMING.items():
        text, count = re.subn(rf"^(\s*{key}:) \S+$", rf"\1 {value}", text, flags=re.MULTILINE)
        assert count >= 1, key
    return text


def write(directory: Path, compose: dict[str, Any]) -> Path:
    """Write the test's files and the override under ``directory``; the override's path.

    ``compose`` is docker-compose.yml, parsed: the override keeps the production commands but
    for the file each service reads.
    """
    services = compose["services"]
    prometheus_dir, alertmanager_dir = directory / "prometheus", directory / "alertmanager"
    for path in (prometheus_dir, alertmanager_dir):
        path.mkdir()
        # Prometheus and Alertmanager run as nobody
        path.chmod(0o755)
    dump(prometheus_dir / "prometheus.yml", prometheus_config())
    dump(prometheus_dir / FAST_RULES, fast_rules())
    (alertmanager_dir / "alertmanager.yml").write_text(alertmanager_template(), encoding="utf-8")
    (alertmanager_dir / "alertmanager.yml").chmod(0o644)
    command = [
        f"--config.file={PROMETHEUS_DIR}/prometheus.yml"
        if flag.startswith("--config.file=")
        else flag
        for flag in services["prometheus"]["command"]
    ]
    *entrypoint, template = services["alertmanager"]["entrypoint"]
    assert template == "/etc/alertmanager/alertmanager.yml"
    override = {
        "services": {
            "prometheus": {
                "command": command,
                "volumes": [f"{prometheus_dir}:{PROMETHEUS_DIR}:ro"],
            },
            "alertmanager": {
                "entrypoint": [*entrypoint, f"{ALERTMANAGER_DIR}/alertmanager.yml"],
                "volumes": [f"{alertmanager_dir}:{ALERTMANAGER_DIR}:ro"],
                "extra_hosts": [f"{HOST}:host-gateway"],
            },
        }
    }
    path = directory / "docker-compose.test.yml"
    dump(path, override)
    return path


def dump(path: Path, content: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    path.chmod(0o644)
