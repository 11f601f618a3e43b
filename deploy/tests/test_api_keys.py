"""The API keys' secret against moto: in the task definition, readable by ECS, required."""

import json
from typing import Any

import pytest
from conftest import API_KEYS, TAG, put_image

from yield_deploy import taskdef
from yield_deploy.api_keys import METRICS_READ_POLICY, READ_POLICY
from yield_deploy.aws import Aws
from yield_deploy.bootstrap import bootstrap
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


def test_the_task_definition_passes_the_key_file_as_a_secret_only(
    aws: Aws, settings: Settings
) -> None:
    """Given the secret, when the service is created, then the keys reach the task as one."""
    definition = _bootstrapped(aws, settings)

    container = taskdef.container_of(definition, settings.container)
    assert {"name": "MLAPI_API_KEYS", "valueFrom": settings.api_keys_secret_arn} in container[
        "secrets"
    ]
    names = [item["name"] for item in container["environment"]]
    assert not {"MLAPI_API_KEYS", "MLAPI_API_KEYS_FILE", "MLAPI_AUTH"} & set(names)
    assert "sha256:" not in json.dumps(definition)


def test_the_execution_role_may_read_exactly_the_keys_secret(aws: Aws, settings: Settings) -> None:
    """Given the secret, then the role's inline policy for it reads that ARN and nothing else."""
    _bootstrapped(aws, settings)

    document = aws.iam.get_role_policy(RoleName=settings.execution_role, PolicyName=READ_POLICY)[
        "PolicyDocument"
    ]
    policy = json.loads(document) if isinstance(document, str) else document
    assert policy == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadApiKeys",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": settings.api_keys_secret_arn,
            }
        ],
    }
    # the secret's value is the key file the API reads
    value = aws.secretsmanager.get_secret_value(SecretId=settings.api_keys_secret_arn)
    assert value["SecretString"] == API_KEYS


def test_a_service_without_keys_is_refused_saying_why(aws: Aws, settings: Settings) -> None:
    """Given no keys' secret, then bootstrap refuses before creating anything."""
    keyless = settings.model_copy(update={"api_keys_secret_arn": None})

    with pytest.raises(SettingsError) as refused:
        bootstrap(aws, keyless)

    message = str(refused.value)
    assert message.startswith("DEPLOY_API_KEYS_SECRET_ARN (--api-keys-secret-arn) is not set")
    assert "refuses to start without them" in message
    names = [r["repositoryName"] for r in aws.ecr.describe_repositories()["repositories"]]
    assert settings.repository not in names


def test_a_keys_secret_that_does_not_exist_is_refused(aws: Aws, settings: Settings) -> None:
    """Given the ARN of no secret, then refused naming the variable and the ARN."""
    with pytest.raises(SettingsError) as refused:
        bootstrap(aws, settings.model_copy(update={"api_keys_secret_arn": MISSING_SECRET}))

    assert str(refused.value) == (
        f"DEPLOY_API_KEYS_SECRET_ARN names no secret in Secrets Manager: {MISSING_SECRET};"
        " create it with aws secretsmanager create-secret (README: API keys on ECS)"
    )


def test_a_template_deploy_without_keys_is_refused(aws: Aws, settings: Settings) -> None:
    """Given a service with keys, when redeploying from the template without them, refused."""
    _bootstrapped(aws, settings)
    revisions = aws.ecs.list_task_definitions(familyPrefix=settings.task_family)

    with pytest.raises(SettingsError, match=r"DEPLOY_API_KEYS_SECRET_ARN .* is not set"):
        deploy(aws, settings.model_copy(update={"api_keys_secret_arn": None}), from_template=True)

    after = aws.ecs.list_task_definitions(familyPrefix=settings.task_family)
    assert after["taskDefinitionArns"] == revisions["taskDefinitionArns"]


def test_a_service_without_the_metrics_key_is_refused_saying_why(
    aws: Aws, settings: Settings
) -> None:
    """Given no metrics key's secret, then bootstrap refuses before creating anything."""
    with pytest.raises(SettingsError) as refused:
        bootstrap(aws, settings.model_copy(update={"metrics_key_secret_arn": None}))

    message = str(refused.value)
    assert message.startswith("DEPLOY_METRICS_KEY_SECRET_ARN (--metrics-key-secret-arn) is not set")
    names = [r["repositoryName"] for r in aws.ecr.describe_repositories()["repositories"]]
    assert settings.repository not in names


def test_the_execution_role_may_read_the_metrics_key_and_the_agent_gets_it(
    aws: Aws, settings: Settings
) -> None:
    """Given the metrics key's secret, then ECS may read exactly it and gives it to the agent."""
    definition = _bootstrapped(aws, settings)

    agent = taskdef.container_of(definition, "prometheus-agent")
    assert agent["secrets"] == [
        {"name": "MLAPI_METRICS_KEY", "valueFrom": settings.metrics_key_secret_arn}
    ]
    # The API's container never sees the key itself, only the key file's hashes
    api = taskdef.container_of(definition, settings.container)
    assert settings.metrics_key_secret_arn not in {s["valueFrom"] for s in api["secrets"]}
    document = aws.iam.get_role_policy(
        RoleName=settings.execution_role, PolicyName=METRICS_READ_POLICY
    )["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    assert document["Statement"] == [
        {
            "Sid": "ReadMetricsKey",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": settings.metrics_key_secret_arn,
        }
    ]
