"""Production metrics on moto: the AMP workspace and its rules, the task role that writes to it,
the Prometheus agent in the task definition, Container Insights, the alert manager to SNS.

moto (5.2) answers AMP's workspace and rule groups namespace calls, and ECS' cluster settings,
but not AMP's alert manager definition: there the tests show that the call passes botocore's
check against AMP's API model and reaches the server, and amtool checks the definition.
"""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import stack_tools
import yaml
from botocore.exceptions import ClientError
from conftest import REGION, ROOT, TAG, client, put_image, workspace_arn, workspace_id

from yield_deploy import metrics_agent, monitoring, taskdef
from yield_deploy.aws import Aws
from yield_deploy.bootstrap import CONTAINER_INSIGHTS, bootstrap
from yield_deploy.errors import NotBootstrappedError, SettingsError
from yield_deploy.rollout import deploy
from yield_deploy.settings import Settings


def service_definition(aws: Aws, settings: Settings) -> dict[str, Any]:
    (service,) = aws.ecs.describe_services(cluster=settings.cluster, services=[settings.service])[
        "services"
    ]
    found = aws.ecs.describe_task_definition(taskDefinition=service["taskDefinition"])
    definition: dict[str, Any] = found["taskDefinition"]
    return definition


def rules_data(aws: Aws, settings: Settings) -> bytes:
    found = aws.amp.describe_rule_groups_namespace(
        workspaceId=workspace_id(aws, settings), name=settings.rules_namespace
    )
    return bytes(found["ruleGroupsNamespace"]["data"])


def test_bootstrap_twice_makes_one_workspace_holding_the_stacks_rules(
    aws: Aws, settings: Settings
) -> None:
    """Given two bootstraps, then one workspace, one namespace equal to prometheus/alerts.yml."""
    bootstrap(aws, settings)
    again = bootstrap(aws, settings)

    assert not [c for c in again.changes if "AMP" in c]
    found = aws.amp.list_workspaces(alias=settings.workspace_alias)["workspaces"]
    assert [w["alias"] for w in found] == [settings.workspace_alias]
    assert found[0]["status"]["statusCode"] == "ACTIVE"
    namespaces = aws.amp.list_rule_groups_namespaces(workspaceId=found[0]["workspaceId"])
    assert [n["name"] for n in namespaces["ruleGroupsNamespaces"]] == [settings.rules_namespace]
    assert rules_data(aws, settings) == (ROOT / "prometheus" / "alerts.yml").read_bytes()


def test_a_changed_rules_file_replaces_the_namespace(
    aws: Aws, settings: Settings, tmp_path: Path
) -> None:
    """Given bootstrapped rules, when the file changes, then the namespace is replaced by it."""
    bootstrap(aws, settings)
    changed = tmp_path / "alerts.yml"
    text = (ROOT / "prometheus" / "alerts.yml").read_text(encoding="utf-8")
    changed.write_text(text.replace("for: 30m", "for: 45m"), encoding="utf-8")
    updated = settings.model_copy(update={"alert_rules_file": changed})

    report = bootstrap(aws, updated)

    assert f"AMP rules {settings.rules_namespace}: replaced by {changed}" in report.changes
    assert rules_data(aws, settings) == changed.read_bytes()
    assert bootstrap(aws, updated).changes == []


def test_a_rules_file_that_cannot_be_read_is_refused_before_any_change(
    aws: Aws, settings: Settings, tmp_path: Path
) -> None:
    missing = settings.model_copy(update={"alert_rules_file": tmp_path / "none.yml"})
    with pytest.raises(SettingsError, match="DEPLOY_ALERT_RULES_FILE names a file that cannot"):
        bootstrap(aws, missing)


def test_the_task_role_may_remote_write_to_that_workspace_only(
    aws: Aws, settings: Settings
) -> None:
    """Given a bootstrapped service, then its tasks run as a role writing to its workspace."""
    bootstrap(aws, settings)
    put_image(aws, settings.repository, TAG)
    bootstrap(aws, settings)

    role = aws.iam.get_role(RoleName=settings.task_role)["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert aws.iam.list_role_policies(RoleName=settings.task_role)["PolicyNames"] == [
        monitoring.WRITE_POLICY
    ]
    assert (
        aws.iam.list_attached_role_policies(RoleName=settings.task_role)["AttachedPolicies"] == []
    )
    document = aws.iam.get_role_policy(
        RoleName=settings.task_role, PolicyName=monitoring.WRITE_POLICY
    )["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    assert document == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "RemoteWriteMetrics",
                "Effect": "Allow",
                "Action": "aps:RemoteWrite",
                "Resource": workspace_arn(aws, settings),
            }
        ],
    }
    assert service_definition(aws, settings)["taskRoleArn"] == role["Arn"]


def test_the_task_runs_a_prometheus_agent_beside_the_api(aws: Aws, settings: Settings) -> None:
    """Given a bootstrapped service, then the agent scrapes the API and writes to the workspace."""
    bootstrap(aws, settings)
    put_image(aws, settings.repository, TAG)
    bootstrap(aws, settings)

    definition = service_definition(aws, settings)
    agent = taskdef.container_of(definition, metrics_agent.CONTAINER)
    assert agent["image"] == "prom/prometheus:v2.42.0"
    assert agent["essential"] is False
    assert agent["dependsOn"] == [{"containerName": settings.container, "condition": "HEALTHY"}]
    assert agent["secrets"] == [
        {"name": "MLAPI_METRICS_KEY", "valueFrom": settings.metrics_key_secret_arn}
    ]
    assert agent["logConfiguration"]["options"]["awslogs-stream-prefix"] == "prometheus-agent"
    assert agent["entryPoint"][:2] == ["/bin/sh", "-c"]
    assert "--enable-feature=agent,expand-external-labels" in agent["command"]
    (variable,) = agent["environment"]
    assert variable["name"] == "PROMETHEUS_AGENT_CONFIG"
    config = yaml.safe_load(variable["value"])
    (job,) = config["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8001"]}]
    assert job["authorization"] == {"credentials_file": metrics_agent.KEY_FILE}
    assert config["global"]["scrape_interval"] == "15s"
    endpoint = aws.amp.describe_workspace(workspaceId=workspace_id(aws, settings))["workspace"][
        "prometheusEndpoint"
    ]
    assert config["remote_write"] == [
        {"url": f"{endpoint.rstrip('/')}/api/v1/remote_write", "sigv4": {"region": REGION}}
    ]


def test_the_agent_scrapes_as_the_stack_does(root_prometheus: dict[str, Any]) -> None:
    """The job, interval and credentials of prometheus/prometheus.yml's API job."""
    config = metrics_agent.config("http://x/api/v1/write", port=8001, sigv4_region=None)
    (stack_job,) = [j for j in root_prometheus["scrape_configs"] if j["job_name"] == "mlapi"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == stack_job["job_name"]
    assert set(job["authorization"]) == set(stack_job["authorization"])
    assert config["global"]["scrape_interval"] == root_prometheus["global"]["scrape_interval"]
    assert "sigv4" not in config["remote_write"][0]


def test_the_agent_image_is_the_stacks_prometheus(settings: Settings) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert settings.prometheus_image == compose["services"]["prometheus"]["image"]


def test_the_agents_start_writes_its_files_then_runs_prometheus(tmp_path: Path) -> None:
    """Given the container's entry point, then key and config files, mode 600, then the agent."""
    # The image's paths, in a directory of the test's
    script = metrics_agent.START.replace("/bin/prometheus", str(tmp_path / "prometheus"))
    script = script.replace(f"{metrics_agent.DATA_DIR}/", f"{tmp_path}/")
    (tmp_path / "prometheus").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n', encoding="utf-8")
    (tmp_path / "prometheus").chmod(0o755)
    env = {
        "PATH": os.environ["PATH"],
        "MLAPI_METRICS_KEY": "mlapi_a-key",
        "PROMETHEUS_AGENT_CONFIG": '{"global": {}}',
    }

    done = subprocess.run(
        ["sh", "-c", script, metrics_agent.CONTAINER, "--a-flag"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout == "--a-flag\n"
    key, config = tmp_path / "metrics.key", tmp_path / "agent.yml"
    assert key.read_text() == "mlapi_a-key"
    assert config.read_text() == '{"global": {}}\n'
    assert {key.stat().st_mode & 0o777, config.stat().st_mode & 0o777} == {0o600}


def test_the_cluster_has_container_insights(aws: Aws, settings: Settings) -> None:
    bootstrap(aws, settings)
    (cluster,) = aws.ecs.describe_clusters(clusters=[settings.cluster], include=["SETTINGS"])[
        "clusters"
    ]
    assert CONTAINER_INSIGHTS in cluster["settings"]


def test_an_existing_cluster_gets_container_insights_turned_on(
    aws: Aws, settings: Settings
) -> None:
    aws.ecs.create_cluster(clusterName=settings.cluster)

    report = bootstrap(aws, settings)

    assert f"ECS cluster {settings.cluster}: Container Insights turned on" in report.changes
    (cluster,) = aws.ecs.describe_clusters(clusters=[settings.cluster], include=["SETTINGS"])[
        "clusters"
    ]
    assert CONTAINER_INSIGHTS in cluster["settings"]


def test_without_a_topic_bootstrap_says_alerts_reach_no_one(aws: Aws, settings: Settings) -> None:
    report = bootstrap(aws, settings)
    assert report.notes == [
        "no DEPLOY_ALERT_TOPIC_ARN (--alert-topic-arn): the workspace evaluates the alert"
        " rules but sends their alerts to no one"
    ]


def test_a_topic_that_does_not_exist_is_refused_before_any_change(
    aws: Aws, settings: Settings
) -> None:
    topic = f"arn:aws:sns:{REGION}:123456789012:no-such-topic"
    with pytest.raises(SettingsError, match="DEPLOY_ALERT_TOPIC_ARN names no SNS topic"):
        bootstrap(aws, settings.model_copy(update={"alert_topic_arn": topic}))
    assert aws.amp.list_workspaces(alias=settings.workspace_alias)["workspaces"] == []


def test_the_alert_manager_definition_call_reaches_amp(
    aws: Aws, settings: Settings, moto_endpoint: str
) -> None:
    """Given a topic, then bootstrap asks AMP for the alert manager definition: moto has no such
    route (404), so what is seen here is that the request passed botocore's validation."""
    topic = client("sns", moto_endpoint).create_topic(Name=f"{settings.service}-alerts")
    with_topic = settings.model_copy(update={"alert_topic_arn": topic["TopicArn"]})

    with pytest.raises(ClientError) as raised:
        bootstrap(aws, with_topic)

    assert raised.value.operation_name == "DescribeAlertManagerDefinition"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # the workspace and its rules were made before
    assert rules_data(aws, settings) == (ROOT / "prometheus" / "alerts.yml").read_bytes()


def test_the_topic_lets_the_workspace_publish_and_keeps_its_other_statements(
    aws: Aws, settings: Settings, moto_endpoint: str
) -> None:
    """Given a topic with a policy of its own, then AMP may publish for this workspace only."""
    sns = client("sns", moto_endpoint)
    topic = sns.create_topic(Name=f"{settings.service}-alerts")["TopicArn"]
    theirs = {
        "Sid": "SubscribeFromTheAccount",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "sns:Subscribe",
        "Resource": topic,
    }
    sns.set_topic_attributes(
        TopicArn=topic,
        AttributeName="Policy",
        AttributeValue=json.dumps({"Version": "2012-10-17", "Statement": [theirs]}),
    )
    with_topic = settings.model_copy(update={"alert_topic_arn": topic})
    workspace = monitoring.ensure_workspace(aws, with_topic, [])

    changes: list[str] = []
    monitoring.ensure_topic_policy(aws, with_topic, workspace, changes)
    monitoring.ensure_topic_policy(aws, with_topic, workspace, changes)

    assert changes == [f"SNS topic {topic}: AMP workspace may publish"]
    policy = json.loads(sns.get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"])
    assert policy["Statement"] == [
        theirs,
        {
            "Sid": "AmpAlertManagerPublish",
            "Effect": "Allow",
            "Principal": {"Service": "aps.amazonaws.com"},
            "Action": ["sns:Publish", "sns:GetTopicAttributes"],
            "Resource": topic,
            "Condition": {"ArnEquals": {"aws:SourceArn": workspace_arn(aws, with_topic)}},
        },
    ]


@pytest.fixture(scope="module")
def root_prometheus() -> dict[str, Any]:
    """prometheus/prometheus.yml."""
    parsed: dict[str, Any] = yaml.safe_load(
        (ROOT / "prometheus" / "prometheus.yml").read_text(encoding="utf-8")
    )
    return parsed


@pytest.fixture(scope="module", params=["found", "image"])
def amtool(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """amtool as installed, or else from the stack's alertmanager image (stack_tools); and,
    the second time, from that image even where it is installed."""
    directory = tmp_path_factory.mktemp("amtool")
    if request.param == "found":
        return stack_tools.executable(stack_tools.AMTOOL, directory)
    if not stack_tools.docker_works():
        if request.config.getoption("--require-docker") or os.environ.get("CI") == "true":
            pytest.fail("no Docker engine answers to run amtool from its image", pytrace=False)
        pytest.skip("no Docker engine answers to run amtool from its image")
    return stack_tools.from_image(stack_tools.AMTOOL, directory)


def definition_config(settings: Settings, tmp_path: Path) -> Path:
    definition = yaml.safe_load(monitoring.alert_manager_definition(settings))
    assert set(definition) == {"alertmanager_config"}
    path = tmp_path / "alertmanager.yml"
    path.write_text(definition["alertmanager_config"], encoding="utf-8")
    return path


def amtool_run(amtool: str, *args: str) -> str:
    done = subprocess.run([amtool, *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"amtool {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def test_amtool_accepts_the_alert_manager_definition(
    amtool: str, settings: Settings, tmp_path: Path
) -> None:
    """Given a topic, then AMP's alert manager is the stack's routing, sending to SNS."""
    topic = f"arn:aws:sns:{REGION}:123456789012:mlapi-alerts"
    with_topic = settings.model_copy(
        update={"alert_topic_arn": topic, "grafana_url": "https://grafana.plant.example/"}
    )
    path = definition_config(with_topic, tmp_path)

    amtool_run(amtool, "check-config", str(path))
    for severity in ("critical", "warning"):
        found = amtool_run(
            amtool, "config", "routes", "test", f"--config.file={path}", f"severity={severity}"
        )
        assert found.strip() == severity
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    stack = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())
    assert (config["route"], config["inhibit_rules"]) == (stack["route"], stack["inhibit_rules"])
    for receiver in config["receivers"]:
        (sns,) = receiver["sns_configs"]
        assert (sns["topic_arn"], sns["sigv4"], sns["send_resolved"]) == (
            topic,
            {"region": REGION},
            True,
        )
        assert "https://grafana.plant.example{{ .Annotations.dashboard }}" in sns["message"]


def test_deploy_from_the_template_before_bootstrap_made_the_workspace_says_so(
    aws: Aws, settings: Settings, tasks_start: None
) -> None:
    bootstrap(aws, settings)
    put_image(aws, settings.repository, TAG)
    bootstrap(aws, settings)
    renamed = settings.model_copy(update={"workspace_alias": f"{settings.service}-elsewhere"})
    with pytest.raises(NotBootstrappedError, match=r"AMP workspace .* does not exist"):
        deploy(aws, renamed, from_template=True, sleep=lambda _: None)
