"""The AWS clients of one region, and the look-ups several commands share."""

import json
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from yield_deploy.errors import NotBootstrappedError
from yield_deploy.settings import Settings

#: Who may assume the task's roles: ECS, for the service's tasks.
ECS_TASKS_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


@dataclass(frozen=True)
class Aws:
    """boto3 clients (untyped: boto3's stubs are per-service extras) and the region's partition."""

    ecr: Any
    ecs: Any
    logs: Any
    iam: Any
    autoscaling: Any
    secretsmanager: Any
    kms: Any
    amp: Any
    sns: Any
    partition: str


def connect(settings: Settings) -> Aws:
    """Clients for the settings' region, at their endpoint if one is set."""
    session = boto3.session.Session(region_name=settings.region)
    extra = {"endpoint_url": settings.endpoint_url} if settings.endpoint_url else {}
    return Aws(
        ecr=session.client("ecr", **extra),
        ecs=session.client("ecs", **extra),
        logs=session.client("logs", **extra),
        iam=session.client("iam", **extra),
        autoscaling=session.client("application-autoscaling", **extra),
        secretsmanager=session.client("secretsmanager", **extra),
        kms=session.client("kms", **extra),
        amp=session.client("amp", **extra),
        sns=session.client("sns", **extra),
        partition=session.get_partition_for_region(settings.region),
    )


def error_code(error: ClientError) -> str:
    """The AWS error code of a failed call."""
    return str(error.response.get("Error", {}).get("Code", ""))


def repository_uri(aws: Aws, settings: Settings) -> str:
    """The ECR repository's URI (registry host/name), which images are named by."""
    try:
        found = aws.ecr.describe_repositories(repositoryNames=[settings.repository])
    except ClientError as error:
        if error_code(error) == "RepositoryNotFoundException":
            raise NotBootstrappedError(
                f"ECR repository {settings.repository!r} does not exist: run bootstrap"
            ) from None
        raise
    return str(found["repositories"][0]["repositoryUri"])


def image_exists(aws: Aws, settings: Settings, tag: str) -> bool:
    """Whether the repository holds an image with this tag."""
    try:
        aws.ecr.describe_images(repositoryName=settings.repository, imageIds=[{"imageTag": tag}])
    except ClientError as error:
        if error_code(error) == "ImageNotFoundException":
            return False
        raise
    return True


def active_service(aws: Aws, settings: Settings) -> dict[str, Any] | None:
    """The ECS service as described, or None when it does not exist or was deleted."""
    try:
        found = aws.ecs.describe_services(cluster=settings.cluster, services=[settings.service])
    except ClientError as error:
        if error_code(error) == "ClusterNotFoundException":
            return None
        raise
    for service in found.get("services", []):
        if service.get("status") == "ACTIVE":
            described: dict[str, Any] = service
            return described
    return None


def ensure_ecs_role(aws: "Aws", name: str, description: str, changes: list[str]) -> Any:
    """The IAM role ``name``, which ECS tasks may assume, created if it is missing."""
    try:
        return aws.iam.get_role(RoleName=name)["Role"]
    except ClientError as error:
        if error_code(error) != "NoSuchEntity":
            raise
    role = aws.iam.create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps(ECS_TASKS_TRUST), Description=description
    )["Role"]
    changes.append(f"IAM role {name}")
    return role


def ensure_role_policy(
    aws: "Aws", role: str, policy: str, wanted: dict[str, Any], changes: list[str], *, change: str
) -> None:
    """Give ``role`` the inline ``policy`` document ``wanted`` unless it has exactly that one;
    ``change`` is what the put is reported as."""
    try:
        document = aws.iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
    except ClientError as error:
        if error_code(error) != "NoSuchEntity":
            raise
        document = None
    # boto3 gives the stored document decoded; moto, as text.
    current = json.loads(document) if isinstance(document, str) else document
    if current != wanted:
        aws.iam.put_role_policy(RoleName=role, PolicyName=policy, PolicyDocument=json.dumps(wanted))
        changes.append(change)
