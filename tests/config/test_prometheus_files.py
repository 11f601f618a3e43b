"""prometheus/: checked by promtool, Prometheus' own parser, and the alert set it must hold."""

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

# One alert per failure the issues name: API down, error ratio, p95 latency, no predictions,
# predicted yield out of its usual range; the model's error from feedback, input drift.
EXPECTED_ALERTS = {
    "MlapiDown",
    "MlapiHighErrorRatio",
    "MlapiHighLatencyP95",
    "MlapiNoPredictions",
    "MlapiPredictedYieldOutOfRange",
    "MlapiHighMAE",
    "MlapiInputDrift",
}


def promtool_run(promtool: str, *args: str, cwd: Path) -> None:
    result = subprocess.run([promtool, *args], capture_output=True, text=True, cwd=cwd, check=False)
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"


@pytest.fixture(scope="module")
def alert_rules(root: Path) -> dict[str, dict[str, Any]]:
    """The alerting rules of alerts.yml, by name."""
    groups = yaml.safe_load((root / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    return {
        rule["alert"]: rule
        for group in groups["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


@pytest.fixture(scope="module")
def alert_tests(root: Path) -> list[dict[str, Any]]:
    """Every alert_rule_test case of alerts_test.yml."""
    unit = yaml.safe_load((root / "prometheus" / "alerts_test.yml").read_text(encoding="utf-8"))
    return [case for group in unit["tests"] for case in group.get("alert_rule_test", [])]


def test_promtool_accepts_the_config(promtool: str, root: Path) -> None:
    promtool_run(promtool, "check", "config", "prometheus/prometheus.yml", cwd=root)


def test_promtool_accepts_the_rules(promtool: str, root: Path) -> None:
    promtool_run(promtool, "check", "rules", "prometheus/alerts.yml", cwd=root)


def test_alert_unit_tests_pass(promtool: str, root: Path) -> None:
    promtool_run(promtool, "test", "rules", "prometheus/alerts_test.yml", cwd=root)


def test_alerts_are_the_expected_set(alert_rules: dict[str, dict[str, Any]]) -> None:
    assert set(alert_rules) == EXPECTED_ALERTS


def test_every_alert_has_a_severity_a_summary_and_a_delay(
    alert_rules: dict[str, dict[str, Any]],
) -> None:
    for name, rule in alert_rules.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"], name
        assert rule["for"], name


def test_every_alert_is_tested_firing_and_quiet(
    alert_rules: dict[str, dict[str, Any]], alert_tests: list[dict[str, Any]]
) -> None:
    firing = {case["alertname"] for case in alert_tests if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in alert_tests if not case.get("exp_alerts")}
    assert firing == set(alert_rules)
    assert quiet == set(alert_rules)


def test_prometheus_scrapes_the_api_cadvisor_and_itself(prometheus_config: dict[str, Any]) -> None:
    jobs = [job["job_name"] for job in prometheus_config["scrape_configs"]]
    assert sorted(jobs) == ["cadvisor", "mlapi", "prometheus"]
