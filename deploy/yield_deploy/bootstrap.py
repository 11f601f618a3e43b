"""Create what a first deployment needs, leaving alone whatever already exists as set."""

import json
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from yield_deploy import api_keys, monitoring, taskdef
from yield_deploy.autoscaling import ensure_autoscaling
from yield_deploy.aws import (
    Aws,
    active_service,
    ensure_ecs_role,
    error_code,
    image_exists,
    repository_uri,
)
from yield_deploy.database import describe_secret, ensure_secret_access, require_shared_log
from yield_deploy.errors import SettingsError
from yield_deploy.settings import Settings

# Images of failed or abandoned builds go after a week; of the tagged ones (two tags, version
# and commit, per release), the newest 100 stay. ECR wants the "any" rule evaluated last.
LIFECYCLE_POLICY = {
    "rules": [
        {
            "rulePriority": 1,
            "description": "expire untagged images after 7 days",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 7,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 2,
            "description": "keep the newest 100 images",
            "selection": {
                "tagStatus": "any",
                "countType": "imageCountMoreThan",
                "countNumber": 100,
            },
            "action": {"type": "expire"},
        },
    ]
}
EXECUTION_POLICY = "policy/service-role/AmazonECSTaskExecutionRolePolicy"
#: The cluster's CloudWatch Container Insights: CPU, memory, network per task and container.
CONTAINER_INSIGHTS = {"name": "containerInsights", "value": "enabled"}


@dataclass
class Report:
    """What bootstrap changed, what it could not create yet, and what it left out as set."""

    changes: list[str] = field(default_factory=list)
    waiting: str | None = None
    notes: list[str] = field(default_factory=list)


def bootstrap(aws: Aws, settings: Settings) -> Report:
    """Make sure every resource exists as set; a second run changes nothing.

    Settings that cannot work are refused before anything changes.
    """
    require_shared_log(settings)
    model_sha256 = None if settings.model_wheel is None else taskdef.expected_model_sha256(settings)
    secret = describe_secret(aws, settings)
    keys_secret = api_keys.describe_secret(aws, settings)
    metrics_secret = api_keys.describe_metrics_secret(aws, settings)
    if settings.alert_topic_arn is not None:
        monitoring.check_topic(aws, settings)
    report = Report()
    ensure_repository(aws, settings, report.changes)
    ensure_log_group(aws, settings, report.changes)
    role_arn = ensure_execution_role(aws, settings, report.changes)
    if secret is not None:
        ensure_secret_access(aws, settings, secret, report.changes)
    api_keys.ensure_access(aws, settings, keys_secret, report.changes)
    api_keys.ensure_metrics_access(aws, settings, metrics_secret, report.changes)
    workspace = monitoring.ensure_workspace(aws, settings, report.changes)
    monitoring.ensure_rules(aws, settings, workspace, report.changes)
    if settings.alert_topic_arn is not None:
        monitoring.ensure_topic_policy(aws, settings, workspace, report.changes)
        monitoring.ensure_alert_manager(aws, settings, workspace, report.changes)
    else:
        report.notes.append(
            "no DEPLOY_ALERT_TOPIC_ARN (--alert-topic-arn): the workspace evaluates the alert"
            " rules but sends their alerts to no one"
        )
    task_role_arn = monitoring.ensure_task_role(aws, settings, workspace, report.changes)
    ensure_cluster(aws, settings, report.changes)
    if active_service(aws, settings) is None:
        roles = Roles(execution=role_arn, task=task_role_arn)
        report.waiting = create_service(
            aws, settings, roles, workspace, report.changes, model_sha256=model_sha256
        )
    if report.waiting is None:
        report.changes += ensure_autoscaling(aws, settings)
    return report


def ensure_repository(aws: Aws, settings: Settings, changes: list[str]) -> None:
    """The ECR repository, scanning on push, with the lifecycle policy."""
    name = settings.repository
    try:
        found = aws.ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    except ClientError as error:
        if error_code(error) != "RepositoryNotFoundException":
            raise
        aws.ecr.create_repository(
            repositoryName=name, imageScanningConfiguration={"scanOnPush": True}
        )
        changes.append(f"ECR repository {name} (scan on push)")
    else:
        if not found.get("imageScanningConfiguration", {}).get("scanOnPush"):
            aws.ecr.put_image_scanning_configuration(
                repositoryName=name, imageScanningConfiguration={"scanOnPush": True}
            )
            changes.append(f"ECR repository {name}: scan on push turned on")
    try:
        text = aws.ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"]
        current = json.loads(text)
    except ClientError as error:
        if error_code(error) != "LifecyclePolicyNotFoundException":
            raise
        current = None
    if current != LIFECYCLE_POLICY:
        aws.ecr.put_lifecycle_policy(
            repositoryName=name, lifecyclePolicyText=json.dumps(LIFECYCLE_POLICY)
        )
        changes.append(f"ECR repository {name}: lifecycle policy")


def ensure_log_group(aws: Aws, settings: Settings, changes: list[str]) -> None:
    """The CloudWatch log group of the containers, with its retention."""
    name = settings.log_group
    pages = aws.logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=name)
    found = [
        group for page in pages for group in page["logGroups"] if group["logGroupName"] == name
    ]
    if not found:
        aws.logs.create_log_group(logGroupName=name)
        changes.append(f"log group {name}")
    if not found or found[0].get("retentionInDays") != settings.log_retention_days:
        aws.logs.put_retention_policy(
            logGroupName=name, retentionInDays=settings.log_retention_days
        )
        changes.append(f"log group {name}: kept {settings.log_retention_days} days")


def ensure_execution_role(aws: Aws, settings: Settings, changes: list[str]) -> str:
    """The role ECS pulls the image and writes the logs with; its ARN."""
    name = settings.execution_role
    policy_arn = f"arn:{aws.partition}:iam::aws:{EXECUTION_POLICY}"
    description = f"ECS pulls the image of {settings.service} and writes its logs"
    role = ensure_ecs_role(aws, name, description, changes)
    attached = aws.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
    if policy_arn not in {policy["PolicyArn"] for policy in attached}:
        aws.iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
        changes.append(f"IAM role {name}: AmazonECSTaskExecutionRolePolicy attached")
    return str(role["Arn"])


def ensure_cluster(aws: Aws, settings: Settings, changes: list[str]) -> None:
    """The ECS cluster, with Container Insights on."""
    found = aws.ecs.describe_clusters(clusters=[settings.cluster], include=["SETTINGS"])
    active = [cluster for cluster in found["clusters"] if cluster["status"] == "ACTIVE"]
    if not active:
        aws.ecs.create_cluster(clusterName=settings.cluster, settings=[CONTAINER_INSIGHTS])
        changes.append(f"ECS cluster {settings.cluster} (Container Insights)")
    elif CONTAINER_INSIGHTS not in active[0].get("settings", []):
        aws.ecs.update_cluster(cluster=settings.cluster, settings=[CONTAINER_INSIGHTS])
        changes.append(f"ECS cluster {settings.cluster}: Container Insights turned on")


@dataclass(frozen=True)
class Roles:
    """The ARNs of the task's two roles: ECS's (image, logs, secrets) and its containers'."""

    execution: str
    task: str


def create_service(
    aws: Aws,
    settings: Settings,
    roles: Roles,
    workspace: monitoring.Workspace,
    changes: list[str],
    *,
    model_sha256: str | None,
) -> str | None:
    """The Fargate service on the family's newest revision (or the template's first one, for
    the image whose model has ``model_sha256``).

    Returns why it could not be created yet, or None once it exists.
    """
    revision = _newest_revision(aws, settings)
    if revision is None:
        if settings.image_tag is None:
            return "no DEPLOY_IMAGE_TAG (--image-tag): the task definition and service wait for it"
        if model_sha256 is None:
            return (
                "no DEPLOY_MODEL_WHEEL (--model-wheel): the task definition and service wait"
                " for the published wheel, whose model's sha256 the API is told"
            )
        if not image_exists(aws, settings, settings.image_tag):
            return (
                f"image {settings.repository}:{settings.image_tag} is not in ECR yet: push it, "
                "then run bootstrap again to create the task definition and the service"
            )
        image = f"{repository_uri(aws, settings)}:{settings.image_tag}"
        spec = taskdef.render(
            settings,
            image,
            roles.execution,
            roles.task,
            workspace.remote_write_url,
            model_sha256=model_sha256,
        )
        revision = aws.ecs.register_task_definition(**spec)["taskDefinition"]["taskDefinitionArn"]
        changes.append(f"task definition {revision} ({image})")
    if not settings.subnets or not settings.security_groups:
        raise SettingsError(
            "creating the service needs DEPLOY_SUBNETS (--subnets) and"
            " DEPLOY_SECURITY_GROUPS (--security-groups)"
        )
    aws.ecs.create_service(**_service_spec(settings, revision))
    changes.append(
        f"ECS service {settings.service} in {settings.cluster}: {settings.desired_count} tasks"
    )
    return None


def _newest_revision(aws: Aws, settings: Settings) -> str | None:
    found = aws.ecs.list_task_definitions(
        familyPrefix=settings.task_family, status="ACTIVE", sort="DESC", maxResults=1
    )["taskDefinitionArns"]
    return str(found[0]) if found else None


def _service_spec(settings: Settings, revision: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "cluster": settings.cluster,
        "serviceName": settings.service,
        "taskDefinition": revision,
        "desiredCount": settings.desired_count,
        "launchType": "FARGATE",
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": list(settings.subnets),
                "securityGroups": list(settings.security_groups),
                "assignPublicIp": "ENABLED" if settings.assign_public_ip else "DISABLED",
            }
        },
        # Rolling updates that never drop below the desired count. The circuit breaker fails a
        # deployment whose tasks keep failing and returns the service to its last completed
        # deployment even if the deploy command is no longer there to roll it back.
        "deploymentConfiguration": {
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "minimumHealthyPercent": 100,
            "maximumPercent": 200,
        },
        "propagateTags": "TASK_DEFINITION",
        "enableExecuteCommand": False,
    }
    if settings.target_group_arn:
        spec["loadBalancers"] = [
            {
                "targetGroupArn": settings.target_group_arn,
                "containerName": settings.container,
                "containerPort": taskdef.container_port(),
            }
        ]
        # The load balancer's checks get the time the container's own check gets to load the
        # model before the first 200.
        spec["healthCheckGracePeriodSeconds"] = taskdef.start_period()
    return spec
