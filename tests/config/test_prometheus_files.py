"""prometheus/: checked by promtool, Prometheus' own parser, and the alert set it must hold."""

import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

# One alert per failure the issues name: API down, error ratio, p95 latency, no predictions,
# predicted yield out of its usual range; the model's error from feedback, input drift,
# inputs outside the training range.
EXPECTED_ALERTS = {
    "MlapiDown",
    "MlapiHighErrorRatio",
    "MlapiHighLatencyP95",
    "MlapiNoPredictions",
    "MlapiPredictedYieldOutOfRange",
    "MlapiHighMAE",
    "MlapiInputDrift",
    "MlapiInputsOutOfRange",
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


def test_promtool_accepts_the_config(promtool: str, root: Path, tmp_path: Path) -> None:
    promtool_run(
        promtool, "check", "config", "--syntax-only", "prometheus/prometheus.yml", cwd=root
    )
    # The whole check also reads the files the config names: the API key Prometheus scrapes
    # with exists only in the stack, so a copy names a key file here instead.
    copy = tmp_path / "prometheus"
    shutil.copytree(root / "prometheus", copy)
    config = yaml.safe_load((copy / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = [job for job in config["scrape_configs"] if "authorization" in job]
    (tmp_path / "metrics.key").write_text("mlapi_not-a-real-key\n")
    job["authorization"]["credentials_file"] = str(tmp_path / "metrics.key")
    (copy / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    promtool_run(promtool, "check", "config", "prometheus.yml", cwd=copy)


def test_prometheus_scrapes_the_api_with_the_key_the_stack_makes_for_it(
    prometheus_config: dict[str, Any], compose: dict[str, Any]
) -> None:
    (job,) = [job for job in prometheus_config["scrape_configs"] if job["job_name"] == "mlapi"]
    key_file = PurePosixPath(job["authorization"]["credentials_file"])
    assert job["authorization"].get("type", "Bearer") == "Bearer"
    # Made where mlapi-keys writes the metrics key, on a volume Prometheus mounts read-only
    services = compose["services"]
    assert f"--metrics-key={key_file}" in services["mlapi-keys"]["command"]
    volume = mounted_volume(services["mlapi-keys"], key_file.parent)
    assert f"{volume}:{key_file.parent}:ro" in services["prometheus"]["volumes"]
    # the API itself never mounts it
    assert not any(v.startswith(f"{volume}:") for v in services["mlapi"]["volumes"])
    assert services["prometheus"]["depends_on"]["mlapi-keys"] == {
        "condition": "service_completed_successfully"
    }


def mounted_volume(service: dict[str, Any], target: PurePosixPath) -> str:
    """The named volume a service mounts at target."""
    (found,) = [v.split(":")[0] for v in service["volumes"] if v.split(":")[1] == str(target)]
    return str(found)


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
