"""bootstrap against moto: what it creates, and that a second run changes nothing."""

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import TAG, Network, put_image, workspace_arn, workspace_id
from model_wheels import model_sha256_of

from yield_deploy import taskdef
from yield_deploy.autoscaling import (
    DIMENSION,
    METRIC,
    SCALE_IN_COOLDOWN_S,
    SCALE_OUT_COOLDOWN_S,
    scale,
)
from yield_deploy.aws import Aws
from yield_deploy.bootstrap import LIFECYCLE_POLICY, bootstrap
from yield_deploy.errors import ModelWheelError, NotBootstrappedError, SettingsError
from yield_deploy.settings import Settings


def snapshot(aws: Aws, settings: Settings) -> dict[str, Any]:
    """Everything bootstrap manages, as AWS describes it."""
    resource = settings.autoscaling_resource
    workspace = workspace_id(aws, settings)
    repository = aws.ecr.describe_repositories(repositoryNames=[settings.repository])
    service = aws.ecs.describe_services(cluster=settings.cluster, services=[settings.service])
    return {
        "repository": repository["repositories"],
        "lifecycle": aws.ecr.get_lifecycle_policy(repositoryName=settings.repository)[
            "lifecyclePolicyText"
        ],
        "log groups": aws.logs.describe_log_groups(logGroupNamePrefix=settings.log_group)[
            "logGroups"
        ],
        "role": aws.iam.get_role(RoleName=settings.execution_role)["Role"],
        "role policies": aws.iam.list_attached_role_policies(RoleName=settings.execution_role)[
            "AttachedPolicies"
        ],
        "role inline policies": aws.iam.list_role_policies(RoleName=settings.execution_role)[
            "PolicyNames"
        ],
        "cluster": aws.ecs.describe_clusters(clusters=[settings.cluster], include=["SETTINGS"])[
            "clusters"
        ],
        "workspaces": aws.amp.list_workspaces(alias=settings.workspace_alias)["workspaces"],
        "rules": aws.amp.describe_rule_groups_namespace(
            workspaceId=workspace, name=settings.rules_namespace
        )["ruleGroupsNamespace"],
        "task role": aws.iam.get_role(RoleName=settings.task_role)["Role"],
        "task role policies": aws.iam.list_role_policies(RoleName=settings.task_role)[
            "PolicyNames"
        ],
        "revisions": aws.ecs.list_task_definitions(familyPrefix=settings.task_family)[
            "taskDefinitionArns"
        ],
        "service": service["services"],
        "targets": aws.autoscaling.describe_scalable_targets(
            ServiceNamespace="ecs", ResourceIds=[resource]
        )["ScalableTargets"],
        "policies": aws.autoscaling.describe_scaling_policies(
            ServiceNamespace="ecs", ResourceId=resource
        )["ScalingPolicies"],
    }


def test_first_run_without_an_image_creates_what_needs_none(aws: Aws, settings: Settings) -> None:
    """Given an empty account, when bootstrapping before a push, then all but the service exist."""
    report = bootstrap(aws, settings)

    role = settings.execution_role
    assert report.changes == [
        f"ECR repository {settings.repository} (scan on push)",
        f"ECR repository {settings.repository}: lifecycle policy",
        f"log group {settings.log_group}",
        f"log group {settings.log_group}: kept 30 days",
        f"IAM role {role}",
        f"IAM role {role}: AmazonECSTaskExecutionRolePolicy attached",
        f"IAM role {role}: may read secret {settings.database_secret_arn}",
        f"IAM role {role}: may read secret {settings.api_keys_secret_arn}",
        f"IAM role {role}: may read secret {settings.metrics_key_secret_arn}",
        f"AMP workspace {settings.workspace_alias} ({workspace_id(aws, settings)})",
        f"AMP rules {settings.rules_namespace}: {settings.alert_rules_file}",
        f"IAM role {settings.task_role}",
        f"IAM role {settings.task_role}: may remote-write to {workspace_arn(aws, settings)}",
        f"ECS cluster {settings.cluster} (Container Insights)",
    ]
    assert report.waiting == (
        f"image {settings.repository}:{TAG} is not in ECR yet: push it, "
        "then run bootstrap again to create the task definition and the service"
    )
    repository = aws.ecr.describe_repositories(repositoryNames=[settings.repository])
    assert repository["repositories"][0]["imageScanningConfiguration"] == {"scanOnPush": True}
    lifecycle = aws.ecr.get_lifecycle_policy(repositoryName=settings.repository)
    assert json.loads(lifecycle["lifecyclePolicyText"]) == LIFECYCLE_POLICY
    (group,) = aws.logs.describe_log_groups(logGroupNamePrefix=settings.log_group)["logGroups"]
    assert (group["logGroupName"], group["retentionInDays"]) == (settings.log_group, 30)
    trust = aws.iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    attached = aws.iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [
        "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
    ]
    assert aws.ecs.list_services(cluster=settings.cluster)["serviceArns"] == []


def test_after_the_push_it_creates_the_service_from_the_template(
    aws: Aws, settings: Settings, network: Network
) -> None:
    """Given the image in ECR, when bootstrapping, then task definition, service, autoscaling."""
    bootstrap(aws, settings)
    put_image(aws, settings.repository, TAG)

    report = bootstrap(aws, settings)

    family = settings.task_family
    revision = f"arn:aws:ecs:eu-west-1:123456789012:task-definition/{family}:1"
    assert report.waiting is None
    assert report.changes[1:] == [
        f"ECS service {settings.service} in {settings.cluster}: 2 tasks",
        f"autoscaling target {settings.autoscaling_resource}: 2-5 tasks",
        f"scaling policy {settings.scaling_policy}: average CPU 55%",
    ]
    uri = aws.ecr.describe_repositories(repositoryNames=[settings.repository])["repositories"][0][
        "repositoryUri"
    ]
    assert report.changes[0] == f"task definition {revision} ({uri}:{TAG})"

    definition = aws.ecs.describe_task_definition(taskDefinition=revision)["taskDefinition"]
    role_arn = aws.iam.get_role(RoleName=settings.execution_role)["Role"]["Arn"]
    assert (definition["cpu"], definition["memory"]) == ("512", "1024")
    assert definition["networkMode"] == "awsvpc"
    assert definition["requiresCompatibilities"] == ["FARGATE"]
    assert definition["executionRoleArn"] == role_arn
    container = taskdef.container_of(definition, settings.container)
    assert container["name"] == "mlapi"
    assert container["image"] == f"{uri}:{TAG}"
    assert [m["containerPort"] for m in container["portMappings"]] == [8001]
    assert container["healthCheck"]["command"][:3] == ["CMD", "python", "-c"]
    assert "http://127.0.0.1:8001/api/v1/health" in container["healthCheck"]["command"][3]
    assert container["logConfiguration"]["options"] == {
        "awslogs-group": settings.log_group,
        "awslogs-region": "eu-west-1",
        "awslogs-stream-prefix": "mlapi",
    }
    assert {"name": "MLAPI_WORKERS", "value": "1"} in container["environment"]
    # the API starts only with the model of the release's wheel
    expected = {"name": "MLAPI_MODEL_SHA256", "value": model_sha256_of(settings.model_wheel)}
    assert expected in container["environment"]

    (service,) = aws.ecs.describe_services(cluster=settings.cluster, services=[settings.service])[
        "services"
    ]
    assert service["taskDefinition"] == revision
    assert service["desiredCount"] == 2
    assert service["launchType"] == "FARGATE"
    assert service["networkConfiguration"]["awsvpcConfiguration"] == {
        "subnets": list(network.subnets),
        "securityGroups": [network.security_group],
        "assignPublicIp": "DISABLED",
    }


def test_autoscaling_target_and_target_tracking_policy_are_registered(
    aws: Aws, settings: Settings
) -> None:
    """Given a bootstrapped service, then its desired count scales 2-5 on average CPU 55%."""
    bootstrap(aws, settings)
    put_image(aws, settings.repository, TAG)
    bootstrap(aws, settings)

    resource = f"service/{settings.cluster}/{settings.service}"
    (target,) = aws.autoscaling.describe_scalable_targets(
        ServiceNamespace="ecs", ResourceIds=[resource]
    )["ScalableTargets"]
    assert (target["ScalableDimension"], target["MinCapacity"], target["MaxCapacity"]) == (
        DIMENSION,
        2,
        5,
    )
    (policy,) = aws.autoscaling.describe_scaling_policies(
        ServiceNamespace="ecs", ResourceId=resource
    )["ScalingPolicies"]
    assert policy["PolicyName"] == f"{settings.service}-cpu-target"
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["TargetTrackingScalingPolicyConfiguration"] == {
        "TargetValue": 55.0,
        "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
        "ScaleOutCooldown": SCALE_OUT_COOLDOWN_S,
        "ScaleInCooldown": SCALE_IN_COOLDOWN_S,
        "DisableScaleIn": False,
    }


def test_a_second_run_changes_nothing(aws: Aws, settings: Settings) -> None:
    """Given a complete bootstrap, when running it again, then no change and the same resources."""
    bootstrap(aws, settings)
    put_image(aws, settings.repository, TAG)
    bootstrap(aws, settings)
    before = snapshot(aws, settings)

    again = bootstrap(aws, settings)

    assert (again.changes, again.waiting) == ([], None)
    assert snapshot(aws, settings) == before
    assert len(before["revisions"]) == 1


def test_changed_autoscaling_settings_are_applied_and_nothing_else(
    aws: Aws, settings: Settings
) -> None:
    """Given a bootstrapped service, when max count and CPU target change, then only those do."""
    bootstrap(aws, settings)
    put_image(aws, settings.repository, TAG)
    bootstrap(aws, settings)
    wider = settings.model_copy(update={"max_count": 8, "target_cpu": 70.0})

    report = bootstrap(aws, wider)

    assert report.changes == [
        f"autoscaling target {settings.autoscaling_resource}: 2-8 tasks",
        f"scaling policy {settings.scaling_policy}: average CPU 70%",
    ]
    after = snapshot(aws, settings)
    assert after["targets"][0]["MaxCapacity"] == 8
    assert after["policies"][0]["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 70.0
    assert after["service"][0]["desiredCount"] == 2


def test_scale_sets_the_desired_count_within_the_bounds(aws: Aws, settings: Settings) -> None:
    """Given 2 tasks, when scaling to 4, then 4 are wanted; scaling again is a no-op."""
    bootstrap(aws, settings)
    put_image(aws, settings.repository, TAG)
    bootstrap(aws, settings)
    four = settings.model_copy(update={"desired_count": 4})

    assert scale(aws, four) == [f"service {settings.service}: desired count 2 -> 4"]
    assert scale(aws, four) == []
    (service,) = aws.ecs.describe_services(cluster=settings.cluster, services=[settings.service])[
        "services"
    ]
    assert service["desiredCount"] == 4


def test_scale_before_bootstrap_says_so(aws: Aws, settings: Settings) -> None:
    """Given no service, when scaling, then the error says to bootstrap."""
    with pytest.raises(NotBootstrappedError, match="run bootstrap"):
        scale(aws, settings)


def test_existing_repository_gets_scan_on_push_turned_on(aws: Aws, settings: Settings) -> None:
    """Given a repository made by hand without scanning, when bootstrapping, then it scans."""
    aws.ecr.create_repository(repositoryName=settings.repository)

    report = bootstrap(aws, settings)

    assert report.changes[:2] == [
        f"ECR repository {settings.repository}: scan on push turned on",
        f"ECR repository {settings.repository}: lifecycle policy",
    ]
    found = aws.ecr.describe_repositories(repositoryNames=[settings.repository])["repositories"]
    assert found[0]["imageScanningConfiguration"] == {"scanOnPush": True}


def test_no_image_tag_leaves_the_service_for_later(aws: Aws, settings: Settings) -> None:
    """Given no image tag, when bootstrapping, then it says what waits for one."""
    report = bootstrap(aws, settings.model_copy(update={"image_tag": None}))

    assert report.waiting == (
        "no DEPLOY_IMAGE_TAG (--image-tag): the task definition and service wait for it"
    )


def test_no_model_wheel_leaves_the_service_for_later(aws: Aws, settings: Settings) -> None:
    """Given the image but no model wheel, when bootstrapping, then no task definition yet."""
    bootstrap(aws, settings)
    put_image(aws, settings.repository, TAG)

    report = bootstrap(aws, settings.model_copy(update={"model_wheel": None}))

    assert report.waiting == (
        "no DEPLOY_MODEL_WHEEL (--model-wheel): the task definition and service wait for the"
        " published wheel, whose model's sha256 the API is told"
    )
    found = aws.ecs.list_task_definitions(familyPrefix=settings.task_family)
    assert found["taskDefinitionArns"] == []


def test_a_wheel_without_a_model_is_refused_before_any_change(
    aws: Aws, settings: Settings, tmp_path: Path
) -> None:
    """Given a file that is no model wheel, when bootstrapping, then an error, nothing made."""
    broken = tmp_path / settings.model_wheel.name  # type: ignore[union-attr]
    broken.write_bytes(b"not a zip file")

    with pytest.raises(ModelWheelError, match="is not a readable wheel"):
        bootstrap(aws, settings.model_copy(update={"model_wheel": broken}))

    names = {r["repositoryName"] for r in aws.ecr.describe_repositories()["repositories"]}
    assert settings.repository not in names


def test_creating_the_service_without_subnets_is_refused(aws: Aws, settings: Settings) -> None:
    """Given no subnets, when the service would be created, then SettingsError naming them."""
    no_network = settings.model_copy(update={"subnets": (), "security_groups": ()})
    bootstrap(aws, no_network)
    put_image(aws, settings.repository, TAG)

    with pytest.raises(SettingsError, match=r"DEPLOY_SUBNETS .* DEPLOY_SECURITY_GROUPS"):
        bootstrap(aws, no_network)

    assert aws.ecs.list_services(cluster=settings.cluster)["serviceArns"] == []


def test_target_group_puts_the_container_port_behind_the_load_balancer(
    aws: Aws, settings: Settings
) -> None:
    """Given a target group, when creating the service, then port 8001 is registered in it."""
    arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/mlapi/0123456789abcdef"
    balanced = settings.model_copy(update={"target_group_arn": arn})
    bootstrap(aws, balanced)
    put_image(aws, settings.repository, TAG)

    bootstrap(aws, balanced)

    (service,) = aws.ecs.describe_services(cluster=settings.cluster, services=[settings.service])[
        "services"
    ]
    assert service["loadBalancers"] == [
        {"targetGroupArn": arn, "containerName": "mlapi", "containerPort": 8001}
    ]
