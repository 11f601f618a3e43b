"""The prediction log's secret against moto: in the task definition, readable by ECS, required."""

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import DATABASE_URL, TAG, put_image

from yield_deploy import taskdef
from yield_deploy.api_keys import METRICS_READ_POLICY
from yield_deploy.api_keys import READ_POLICY as KEYS_READ_POLICY
from yield_deploy.autoscaling import scale
from yield_deploy.aws import Aws
from yield_deploy.bootstrap import bootstrap
from yield_deploy.database import READ_POLICY
from yield_deploy.errors import SettingsError
from yield_deploy.rollout import deploy
from yield_deploy.settings import Settings

MISSING_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mlapi/missing-AbCdEf"


def _bootstrapped(aws: Aws, settings: Settings) -> dict[str, Any]:
    """Bootstrap before and after the push; the service's task definition as registered."""
    bootstrap(aws, settings)
    put_image(aws, settings.repository, TAG)
    bootstrap(aws, settings)
    (service,) = aws.ecs.describe_services(cluster=settings.cluster, services=[settings.service])[
        "services"
    ]
    found = aws.ecs.describe_task_definition(taskDefinition=service["taskDefinition"])
    definition: dict[str, Any] = found["taskDefinition"]
    return definition


def _read_policy(aws: Aws, settings: Settings) -> Any:
    document = aws.iam.get_role_policy(RoleName=settings.execution_role, PolicyName=READ_POLICY)[
        "PolicyDocument"
    ]
    return json.loads(document) if isinstance(document, str) else document


def _nothing_created(aws: Aws, settings: Settings) -> bool:
    try:
        aws.ecr.describe_repositories(repositoryNames=[settings.repository])
    except ClientError as error:
        return error.response["Error"]["Code"] == "RepositoryNotFoundException"
    return False


def test_the_task_definition_passes_the_url_as_a_secret_only(aws: Aws, settings: Settings) -> None:
    """Given the secret, when the service is created, then its URL reaches the task as a secret."""
    definition = _bootstrapped(aws, settings)

    container = taskdef.container_of(definition, settings.container)
    assert container["secrets"] == [
        {"name": "MLAPI_PREDICTION_LOG_URL", "valueFrom": settings.database_secret_arn},
        # and the API keys' (tests/test_api_keys.py)
        {"name": "MLAPI_API_KEYS", "valueFrom": settings.api_keys_secret_arn},
    ]
    names = [item["name"] for item in container["environment"]]
    assert "MLAPI_PREDICTION_LOG_URL" not in names
    assert "postgresql://" not in json.dumps(definition)


def test_the_execution_role_may_read_exactly_that_secret(aws: Aws, settings: Settings) -> None:
    """Given the secret, then the role's inline policy reads that ARN and does nothing else."""
    _bootstrapped(aws, settings)

    role = settings.execution_role
    # (the others are the API keys' and the metrics key's, tests/test_api_keys.py)
    assert sorted(aws.iam.list_role_policies(RoleName=role)["PolicyNames"]) == [
        KEYS_READ_POLICY,
        METRICS_READ_POLICY,
        READ_POLICY,
    ]
    assert _read_policy(aws, settings) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadPredictionLogUrl",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": settings.database_secret_arn,
            }
        ],
    }


def test_a_customer_key_is_decrypted_through_secrets_manager_only(
    aws: Aws, settings: Settings
) -> None:
    """Given a secret under a customer key named by alias, then Decrypt on that key's ARN only."""
    key = aws.kms.create_key(Description="prediction log URL")["KeyMetadata"]
    alias = f"alias/{settings.service}"
    aws.kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    arn = aws.secretsmanager.create_secret(
        Name=f"{settings.service}/url", SecretString=DATABASE_URL, KmsKeyId=alias
    )["ARN"]

    bootstrap(aws, settings.model_copy(update={"database_secret_arn": arn}))

    assert _read_policy(aws, settings)["Statement"] == [
        {
            "Sid": "ReadPredictionLogUrl",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": arn,
        },
        {
            "Sid": "DecryptPredictionLogUrl",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": key["Arn"],
            "Condition": {
                "StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}
            },
        },
    ]


def test_another_secret_replaces_the_first_in_the_policy(aws: Aws, settings: Settings) -> None:
    """Given a role that may read one secret, when another is set, then it may read only that."""
    bootstrap(aws, settings)
    other = aws.secretsmanager.create_secret(
        Name=f"{settings.service}/other", SecretString=DATABASE_URL
    )["ARN"]

    report = bootstrap(aws, settings.model_copy(update={"database_secret_arn": other}))

    assert report.changes == [f"IAM role {settings.execution_role}: may read secret {other}"]
    assert [s["Resource"] for s in _read_policy(aws, settings)["Statement"]] == [other]


@pytest.mark.parametrize(("desired", "most"), [(2, 5), (1, 2)])
def test_several_tasks_without_the_secret_are_refused_saying_why(
    aws: Aws, settings: Settings, desired: int, most: int
) -> None:
    """Given no secret and room for several tasks, then refused, and nothing is created."""
    shared = settings.model_copy(
        update={
            "database_secret_arn": None,
            "desired_count": desired,
            "min_count": 1,
            "max_count": most,
        }
    )

    with pytest.raises(SettingsError) as refused:
        bootstrap(aws, shared)

    message = str(refused.value)
    assert message.startswith(
        f"the service may run {most} tasks (DEPLOY_DESIRED_COUNT {desired}, DEPLOY_MAX_COUNT"
        f" {most}) but DEPLOY_DATABASE_SECRET_ARN (--database-secret-arn) is not set"
    )
    assert "each task keeps its own SQLite prediction log on its ephemeral storage" in message
    assert "answered unknown" in message
    assert "every deploy erases the log" in message
    assert _nothing_created(aws, settings)


def test_one_task_without_the_secret_keeps_its_log_in_the_task(
    aws: Aws, settings: Settings
) -> None:
    """Given no secret and one task at most, then the service is created with no secret."""
    single = settings.model_copy(
        update={"database_secret_arn": None, "desired_count": 1, "min_count": 1, "max_count": 1}
    )

    definition = _bootstrapped(aws, single)

    # only the API keys' secret
    (secret,) = definition["containerDefinitions"][0]["secrets"]
    assert secret["name"] == "MLAPI_API_KEYS"
    role = settings.execution_role
    assert sorted(aws.iam.list_role_policies(RoleName=role)["PolicyNames"]) == [
        KEYS_READ_POLICY,
        METRICS_READ_POLICY,
    ]


def test_a_secret_that_does_not_exist_is_refused(aws: Aws, settings: Settings) -> None:
    """Given the ARN of no secret, then refused with the ARN, and nothing is created."""
    with pytest.raises(SettingsError) as refused:
        bootstrap(aws, settings.model_copy(update={"database_secret_arn": MISSING_SECRET}))

    assert str(refused.value) == (
        f"DEPLOY_DATABASE_SECRET_ARN names no secret in Secrets Manager: {MISSING_SECRET};"
        " create it with aws secretsmanager create-secret"
        " (README: The prediction log on PostgreSQL)"
    )
    assert _nothing_created(aws, settings)


def test_a_secret_scheduled_for_deletion_is_refused(aws: Aws, settings: Settings) -> None:
    """Given a secret being deleted, then refused: ECS could not read it for long."""
    arn = aws.secretsmanager.create_secret(
        Name=f"{settings.service}/deleted", SecretString=DATABASE_URL
    )["ARN"]
    aws.secretsmanager.delete_secret(SecretId=arn, RecoveryWindowInDays=7)

    with pytest.raises(SettingsError, match="names a secret scheduled for deletion"):
        bootstrap(aws, settings.model_copy(update={"database_secret_arn": arn}))

    assert _nothing_created(aws, settings)


def test_scale_and_a_template_deploy_without_the_secret_are_refused(
    aws: Aws, settings: Settings
) -> None:
    """Given a service on the secret, when scaling or redeploying without it, then refused."""
    _bootstrapped(aws, settings)
    revisions = aws.ecs.list_task_definitions(familyPrefix=settings.task_family)
    unshared = settings.model_copy(update={"database_secret_arn": None})

    with pytest.raises(SettingsError, match=r"DEPLOY_DATABASE_SECRET_ARN .* is not set"):
        scale(aws, unshared.model_copy(update={"desired_count": 4}))
    with pytest.raises(SettingsError, match=r"DEPLOY_DATABASE_SECRET_ARN .* is not set"):
        deploy(aws, unshared, from_template=True)

    (service,) = aws.ecs.describe_services(cluster=settings.cluster, services=[settings.service])[
        "services"
    ]
    assert service["desiredCount"] == 2
    after = aws.ecs.list_task_definitions(familyPrefix=settings.task_family)
    assert after["taskDefinitionArns"] == revisions["taskDefinitionArns"]
