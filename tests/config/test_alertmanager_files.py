"""alertmanager/: the routing checked by amtool, Alertmanager's own parser and router, and the
receivers that alertmanager/entrypoint.sh renders from the environment."""

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

TEMPLATE = Path("alertmanager") / "alertmanager.yml"
ENTRYPOINT = Path("alertmanager") / "entrypoint.sh"
WEBHOOK = "http://receiver.example:9000/alerts"
SLACK = "https://hooks.slack.com/services/T000/B000/XXXX"
EMAIL = {
    "ALERT_EMAIL_TO": "plant-ops@example.com",
    "ALERT_EMAIL_FROM": "alertmanager@example.com",
    "ALERT_SMTP_SMARTHOST": "smtp.example.com:587",
}
INTEGRATIONS = {"webhook_configs", "slack_configs", "email_configs"}
DURATION = re.compile(r"^(\d+)([smh])$")
DASHBOARD_LINK = re.compile(
    r"/d/([\w-]+)/[\w-]+(\?var-model_version=\{\{ \$labels\.model_version \}\})?"
)


def seconds(duration: str) -> int:
    found = DURATION.fullmatch(duration)
    assert found, f"expected a duration like 30s, 5m or 4h, got {duration}"
    return int(found[1]) * {"s": 1, "m": 60, "h": 3600}[found[2]]


def render(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """entrypoint.sh render on the template, with only ``env`` among the ALERT_* variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ALERT_")}
    return subprocess.run(
        ["sh", str(ENTRYPOINT), "render", str(TEMPLATE)],
        capture_output=True,
        text=True,
        env={**clean, **env},
        cwd=root,
        check=False,
    )


def rendered(root: Path, tmp_path: Path, **env: str) -> tuple[Path, dict[str, Any]]:
    """The rendered configuration's file and its parsed content."""
    done = render(root, **env)
    assert done.returncode == 0, done.stderr
    path = tmp_path / "alertmanager.yml"
    path.write_text(done.stdout, encoding="utf-8")
    parsed: dict[str, Any] = yaml.safe_load(done.stdout)
    return path, parsed


def amtool_run(amtool: str, *args: str, cwd: Path) -> str:
    result = subprocess.run([amtool, *args], capture_output=True, text=True, cwd=cwd, check=False)
    assert result.returncode == 0, f"amtool {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def receivers(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {receiver.pop("name"): receiver for receiver in config["receivers"]}


@pytest.fixture(scope="module")
def alert_rules(root: Path) -> dict[str, dict[str, Any]]:
    """The alerting rules of prometheus/alerts.yml, by name."""
    groups = yaml.safe_load((root / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    return {r["alert"]: r for g in groups["groups"] for r in g["rules"] if "alert" in r}


def test_amtool_is_the_alertmanager_version_the_stack_runs(
    compose: dict[str, Any], amtool: str
) -> None:
    image_version = compose["services"]["alertmanager"]["image"].rsplit(":v", 1)[1]
    banner = subprocess.run([amtool, "--version"], capture_output=True, text=True, check=True)
    found = re.search(r"version (\d+\.\d+)\.", banner.stdout + banner.stderr)
    assert found, banner.stdout
    assert found[1] == image_version.rsplit(".", 1)[0]


def test_amtool_accepts_the_template_as_it_is(amtool: str, root: Path) -> None:
    amtool_run(amtool, "check-config", str(TEMPLATE), cwd=root)


def test_with_no_receiver_set_nothing_is_sent_and_it_is_no_error(
    amtool: str, root: Path, tmp_path: Path
) -> None:
    path, config = rendered(root, tmp_path)
    amtool_run(amtool, "check-config", str(path), cwd=root)
    assert receivers(config) == {"critical": {}, "warning": {}}


def test_every_receiver_set_goes_to_both_severities(
    amtool: str, root: Path, tmp_path: Path
) -> None:
    path, config = rendered(
        root,
        tmp_path,
        ALERT_WEBHOOK_URL=WEBHOOK,
        ALERT_SLACK_WEBHOOK_URL=SLACK,
        ALERT_SLACK_CHANNEL="#plant-alerts",
        ALERT_SMTP_USERNAME="alerts",
        ALERT_SMTP_PASSWORD="not-a-real-password",
        ALERT_GRAFANA_URL="https://grafana.plant.example/",
        **EMAIL,
    )
    amtool_run(amtool, "check-config", str(path), cwd=root)
    found = receivers(config)
    assert set(found) == {"critical", "warning"}
    for receiver in found.values():
        assert set(receiver) == INTEGRATIONS
        (webhook,) = receiver["webhook_configs"]
        assert webhook == {"url": WEBHOOK, "send_resolved": True}
        (slack,) = receiver["slack_configs"]
        assert (slack["api_url"], slack["channel"], slack["send_resolved"]) == (
            SLACK,
            "#plant-alerts",
            True,
        )
        # The dashboard link: Grafana's address (its trailing slash dropped), then the path
        assert (
            "<https://grafana.plant.example{{ .Annotations.dashboard }}|dashboard>"
            in (slack["text"])
        )
        (mail,) = receiver["email_configs"]
        assert mail["to"] == EMAIL["ALERT_EMAIL_TO"]
        assert mail["from"] == EMAIL["ALERT_EMAIL_FROM"]
        assert mail["smarthost"] == EMAIL["ALERT_SMTP_SMARTHOST"]
        assert (mail["auth_username"], mail["auth_password"]) == ("alerts", "not-a-real-password")
        assert (mail["require_tls"], mail["send_resolved"]) == (True, True)


@pytest.mark.parametrize("only", ["webhook", "slack", "email"])
def test_each_receiver_alone(amtool: str, root: Path, tmp_path: Path, only: str) -> None:
    env = {
        "webhook": {"ALERT_WEBHOOK_URL": WEBHOOK},
        "slack": {"ALERT_SLACK_WEBHOOK_URL": SLACK},
        "email": EMAIL,
    }[only]
    path, config = rendered(root, tmp_path, **env)
    amtool_run(amtool, "check-config", str(path), cwd=root)
    for receiver in receivers(config).values():
        assert set(receiver) == {f"{only}_configs"}
    if only == "email":
        (mail,) = receivers(rendered(root, tmp_path, **env)[1])["critical"]["email_configs"]
        # No login unless one is given
        assert "auth_username" not in mail
        assert "auth_password" not in mail


def test_values_reach_alertmanager_as_given_whatever_their_characters(
    amtool: str, root: Path, tmp_path: Path
) -> None:
    password = "a\\b\"c: {{ d }} #e 'f"
    path, config = rendered(root, tmp_path, ALERT_SMTP_PASSWORD=password, **EMAIL)
    amtool_run(amtool, "check-config", str(path), cwd=root)
    (mail,) = receivers(config)["warning"]["email_configs"]
    assert mail["auth_password"] == password


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ALERT_WEBHOOK_URL": "receiver:9000"},
            "ALERT_WEBHOOK_URL must be an http:// or https://",
        ),
        ({"ALERT_SLACK_WEBHOOK_URL": "hooks.slack.com"}, "ALERT_SLACK_WEBHOOK_URL must be an"),
        ({"ALERT_GRAFANA_URL": "grafana:3000"}, "ALERT_GRAFANA_URL must be an"),
        ({"ALERT_EMAIL_TO": "ops@example.com"}, "ALERT_SMTP_SMARTHOST must be host:port"),
        (
            {"ALERT_EMAIL_TO": "a@example.com", "ALERT_SMTP_SMARTHOST": "smtp.example.com:25"},
            "ALERT_EMAIL_FROM must be an address",
        ),
        (
            {**EMAIL, "ALERT_SMTP_REQUIRE_TLS": "yes"},
            "ALERT_SMTP_REQUIRE_TLS must be true or false",
        ),
        ({"ALERT_WEBHOOK_URL": "http://a.example/\nx"}, "ALERT_WEBHOOK_URL holds a control"),
    ],
)
def test_a_value_alertmanager_could_not_use_is_refused_by_name(
    root: Path, env: dict[str, str], message: str
) -> None:
    done = render(root, **env)
    assert done.returncode == 2
    assert message in done.stderr


def test_the_entrypoint_runs_alertmanager_on_the_rendered_file(root: Path, tmp_path: Path) -> None:
    # Given a stand-in for the alertmanager binary that prints what it was given
    fake = tmp_path / "alertmanager"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n', encoding="utf-8")
    fake.chmod(0o755)
    target = tmp_path / "rendered.yml"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ALERT_")},
        "ALERTMANAGER": str(fake),
        "ALERTMANAGER_RENDERED": str(target),
        "ALERT_WEBHOOK_URL": WEBHOOK,
    }
    # When the entrypoint starts it as the compose file does
    done = subprocess.run(
        ["sh", str(ENTRYPOINT), str(TEMPLATE), "--storage.path=/alertmanager"],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        check=False,
    )
    # Then Alertmanager gets the rendered file, readable by its user only, and the flags
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"--config.file={target}", "--storage.path=/alertmanager"]
    assert target.read_text(encoding="utf-8") == render(root, ALERT_WEBHOOK_URL=WEBHOOK).stdout
    assert target.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ("alertname=MlapiDown severity=critical", "critical"),
        ("alertname=MlapiHighErrorRatio severity=critical", "critical"),
        ("alertname=MlapiInputDrift severity=warning model_version=0.1.0 feature=A6", "warning"),
        ("alertname=MlapiHighMAE severity=warning", "warning"),
        # An alert someone adds without a severity is still sent
        ("alertname=SomethingNew", "warning"),
    ],
)
def test_routes_by_severity(
    amtool: str, root: Path, tmp_path: Path, labels: str, receiver: str
) -> None:
    path, _ = rendered(root, tmp_path, ALERT_WEBHOOK_URL=WEBHOOK)
    found = amtool_run(
        amtool, "config", "routes", "test", f"--config.file={path}", *labels.split(), cwd=root
    )
    assert found.strip() == receiver


def test_every_alert_of_the_rules_is_routed_by_its_severity(
    amtool: str, root: Path, alert_rules: dict[str, dict[str, Any]]
) -> None:
    for name, rule in alert_rules.items():
        severity = rule["labels"]["severity"]
        found = amtool_run(
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={TEMPLATE}",
            f"alertname={name}",
            f"severity={severity}",
            cwd=root,
        )
        assert found.strip() == severity, name


def test_warnings_are_not_repeated_more_than_once_a_day_and_critical_ones_page_sooner(
    root: Path,
) -> None:
    config = yaml.safe_load((root / TEMPLATE).read_text(encoding="utf-8"))
    routes = {route["receiver"]: route for route in config["route"]["routes"]}
    critical, warning = routes["critical"], routes["warning"]
    # A drift or accuracy alert is a matter for the day: once a day while it lasts
    assert seconds(warning["repeat_interval"]) >= 24 * 3600
    assert seconds(warning["group_interval"]) >= 30 * 60
    # The API down or failing: within a minute, a reminder every few hours
    assert seconds(critical["group_wait"]) <= 60
    assert seconds(critical["repeat_interval"]) <= 4 * 3600
    assert seconds(critical["group_interval"]) < seconds(warning["group_interval"])
    assert config["route"]["group_by"] == ["alertname", "model_version"]


def test_mlapi_down_inhibits_every_other_alert_of_the_rules(
    root: Path, alert_rules: dict[str, dict[str, Any]]
) -> None:
    config = yaml.safe_load((root / TEMPLATE).read_text(encoding="utf-8"))
    (rule,) = config["inhibit_rules"]
    assert rule["source_matchers"] == ['alertname="MlapiDown"']
    (target,) = rule["target_matchers"]
    found = re.fullmatch(r'alertname=~"([\w|]+)"', target)
    assert found
    assert set(found[1].split("|")) == set(alert_rules) - {"MlapiDown"}
    assert "equal" not in rule


def test_every_alert_links_to_a_dashboard_that_exists(
    root: Path, alert_rules: dict[str, dict[str, Any]], dashboards: dict[str, dict[str, Any]]
) -> None:
    uids = {dashboard["uid"] for dashboard in dashboards.values()}
    # The alerts that carry a model version, as their promtool tests show them firing
    unit = yaml.safe_load((root / "prometheus" / "alerts_test.yml").read_text(encoding="utf-8"))
    versioned = {
        case["alertname"]
        for group in unit["tests"]
        for case in group.get("alert_rule_test", [])
        for alert in case.get("exp_alerts", [])
        if "model_version" in alert["exp_labels"]
    }
    assert versioned
    for name, rule in alert_rules.items():
        link = rule["annotations"]["dashboard"]
        found = DASHBOARD_LINK.fullmatch(link)
        assert found, f"{name}: {link}"
        assert found[1] in uids, name
        # The dashboard opens on the alert's model version when it has one
        assert bool(found[2]) == (name in versioned), name


def test_compose_runs_the_entrypoint_on_the_mounted_template(
    compose: dict[str, Any], root: Path
) -> None:
    service = compose["services"]["alertmanager"]
    assert "./alertmanager:/etc/alertmanager:ro" in service["volumes"]
    assert service["entrypoint"] == [
        "/bin/sh",
        f"/etc/alertmanager/{ENTRYPOINT.name}",
        f"/etc/alertmanager/{TEMPLATE.name}",
    ]
    # The rendered file goes to a tmpfs: it may hold a Slack URL or an SMTP password
    assert service["read_only"] is True
    assert service["tmpfs"] == ["/tmp"]
    assert "--storage.path=/alertmanager" in service["command"]
    assert "alertmanager-data:/alertmanager" in service["volumes"]
    # Every variable the entrypoint reads is passed from .env, and no other
    script = (root / ENTRYPOINT).read_text(encoding="utf-8")
    read = set(re.findall(r'ENVIRON\["(ALERT_\w+)"\]', script))
    assert set(service["environment"]) == read
    for name, value in service["environment"].items():
        assert value.startswith(f"${{{name}:-"), name


def test_prometheus_sends_alerts_to_the_alertmanager_service(
    compose: dict[str, Any], prometheus_config: dict[str, Any]
) -> None:
    (manager,) = prometheus_config["alerting"]["alertmanagers"]
    (static,) = manager["static_configs"]
    port = str(compose["services"]["alertmanager"]["ports"][0]).rsplit(":", 1)[1]
    assert static["targets"] == [f"alertmanager:{port}"]
    assert compose["services"]["prometheus"]["depends_on"]["alertmanager"] == {
        "condition": "service_started"
    }


def test_the_dashboard_links_default_to_the_stacks_grafana(compose: dict[str, Any]) -> None:
    # ALERT_GRAFANA_URL's default is Grafana's host port default, on loopback
    default = compose["services"]["alertmanager"]["environment"]["ALERT_GRAFANA_URL"]
    (port,) = compose["services"]["grafana"]["ports"]
    found = re.fullmatch(r"127\.0\.0\.1:\$\{GRAFANA_HOST_PORT:-(\d+)\}:3000", str(port))
    assert found
    assert default == f"${{ALERT_GRAFANA_URL:-http://127.0.0.1:{found[1]}}}"
