"""Settings: from DEPLOY_* variables and flags, refused when unsafe, with clear messages."""

import pytest
from pydantic import ValidationError

from yield_deploy.settings import Settings, describe_settings_error, get_settings

REQUIRED = {
    "DEPLOY_REGION": "eu-west-1",
    "DEPLOY_CLUSTER": "yield",
    "DEPLOY_SERVICE": "mlapi",
    "DEPLOY_REPOSITORY": "yield/mlapi",
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The four required variables set, as in the CircleCI context."""
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_names_derive_from_the_service_unless_set(environment: pytest.MonkeyPatch) -> None:
    """Given only the required variables, then the other names follow the service's."""
    settings = Settings()

    assert (settings.region, settings.cluster, settings.repository) == (
        "eu-west-1",
        "yield",
        "yield/mlapi",
    )
    assert settings.task_family == "mlapi"
    assert settings.log_group == "/ecs/mlapi"
    assert settings.execution_role == "mlapi-task-execution"
    assert settings.scaling_policy == "mlapi-cpu-target"
    assert settings.autoscaling_resource == "service/yield/mlapi"


def test_lists_come_comma_separated(environment: pytest.MonkeyPatch) -> None:
    """Given DEPLOY_SUBNETS=a, b then two subnets, spaces dropped."""
    environment.setenv("DEPLOY_SUBNETS", "subnet-0a1, subnet-0b2")
    environment.setenv("DEPLOY_SECURITY_GROUPS", "sg-0c3")

    settings = Settings()

    assert settings.subnets == ("subnet-0a1", "subnet-0b2")
    assert settings.security_groups == ("sg-0c3",)


def test_flags_override_the_environment(environment: pytest.MonkeyPatch) -> None:
    """Given DEPLOY_CLUSTER and a --cluster flag, then the flag wins; the result is cached."""
    first = get_settings(cluster="other", desired_count="3")

    assert (first.cluster, first.desired_count, first.service) == ("other", 3, "mlapi")
    assert get_settings(cluster="other", desired_count="3") is first


def test_missing_names_are_reported_by_variable_and_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given nothing set, then each required setting is named with its variable and flag."""
    with pytest.raises(ValidationError) as error:
        Settings()

    assert describe_settings_error(error.value).splitlines() == [
        "DEPLOY_REGION (--region): Field required",
        "DEPLOY_CLUSTER (--cluster): Field required",
        "DEPLOY_SERVICE (--service): Field required",
        "DEPLOY_REPOSITORY (--repository): Field required",
    ]


def test_the_task_memory_must_hold_its_workers_worst_case(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.setenv("DEPLOY_CPU", "256")
    environment.setenv("DEPLOY_MEMORY", "512")  # a size Fargate runs
    with pytest.raises(ValidationError) as error:
        Settings()
    assert describe_settings_error(error.value).endswith(
        "a task of 256 CPU units runs 1 API worker(s) and the metrics agent, which need 1024 "
        "MiB at worst (640 a worker, 256 beside them, 128 the agent), not 512"
    )
    environment.setenv("DEPLOY_MEMORY", "1024")
    assert Settings().memory == 1024


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "DEPLOY_MEMORY",
            "3000",
            "Fargate runs 512 CPU units with 1024-4096 MiB in steps of 1024, not 3000",
        ),
        ("DEPLOY_CPU", "300", "cpu must be one of 256, 512, 1024, 2048, 4096, 8192, 16384"),
        ("DEPLOY_DESIRED_COUNT", "9", "need min_count <= desired_count <= max_count, got 2, 9, 6"),
        (
            "DEPLOY_LOG_RETENTION_DAYS",
            "10",
            "DEPLOY_LOG_RETENTION_DAYS (--log-retention-days): must be one of",
        ),
        ("DEPLOY_SUBNETS", "subnet-1,sg-2", "expected ids starting with 'subnet-', got sg-2"),
        ("DEPLOY_REGION", "Europe", "DEPLOY_REGION (--region): String should match pattern"),
        ("DEPLOY_CLUSTER", "my cluster", "DEPLOY_CLUSTER (--cluster): String should match pattern"),
        ("DEPLOY_REPOSITORY", "Yield/API", "DEPLOY_REPOSITORY (--repository): String should match"),
        (
            "DEPLOY_TARGET_CPU",
            "0",
            "DEPLOY_TARGET_CPU (--target-cpu): Input should be greater than 0",
        ),
        ("DEPLOY_IMAGE_TAG", "v1/2", "DEPLOY_IMAGE_TAG (--image-tag): String should match pattern"),
        (
            "DEPLOY_DATABASE_SECRET_ARN",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mlapi/url",
            "DEPLOY_DATABASE_SECRET_ARN (--database-secret-arn): String should match pattern",
        ),
        (
            "DEPLOY_DATABASE_SECRET_ARN",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:mlapi/url-AbCdEf",
            "DEPLOY_DATABASE_SECRET_ARN (--database-secret-arn): must be a secret in"
            " DEPLOY_REGION (eu-west-1), not us-east-1",
        ),
        (
            "DEPLOY_API_KEYS_SECRET_ARN",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:mlapi/api-keys-AbCdEf",
            "DEPLOY_API_KEYS_SECRET_ARN (--api-keys-secret-arn): must be a secret in"
            " DEPLOY_REGION (eu-west-1), not us-east-1",
        ),
        (
            "DEPLOY_METRICS_KEY_SECRET_ARN",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:mlapi/metrics-key-AbCdEf",
            "DEPLOY_METRICS_KEY_SECRET_ARN (--metrics-key-secret-arn): must be a secret in"
            " DEPLOY_REGION (eu-west-1), not us-east-1",
        ),
        (
            "DEPLOY_ALERT_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:mlapi-alerts",
            "DEPLOY_ALERT_TOPIC_ARN (--alert-topic-arn): must be a topic in"
            " DEPLOY_REGION (eu-west-1), not us-east-1",
        ),
        (
            "DEPLOY_ALERT_TOPIC_ARN",
            "mlapi-alerts",
            "DEPLOY_ALERT_TOPIC_ARN (--alert-topic-arn): String should match pattern",
        ),
        (
            "DEPLOY_PROMETHEUS_IMAGE",
            "prom/prometheus:latest",
            "DEPLOY_PROMETHEUS_IMAGE (--prometheus-image): String should match pattern",
        ),
        (
            "DEPLOY_RULES_NAMESPACE",
            "-rules",
            "DEPLOY_RULES_NAMESPACE (--rules-namespace): String should match pattern",
        ),
    ],
)
def test_unsafe_values_are_refused(
    environment: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    """Given a value AWS would refuse or that cannot work, then a message naming the setting."""
    environment.setenv(variable, value)

    with pytest.raises(ValidationError) as error:
        Settings()

    assert message in describe_settings_error(error.value)


@pytest.mark.parametrize(("cpu", "workers"), [(256, 1), (512, 1), (1024, 1), (2048, 2), (4096, 4)])
def test_one_worker_per_vcpu(environment: pytest.MonkeyPatch, cpu: int, workers: int) -> None:
    """Given a task size, then the API runs one worker per vCPU, at least one."""
    memory = {256: 1024, 512: 1024, 1024: 2048, 2048: 4096, 4096: 8192}[cpu]
    assert Settings(cpu=cpu, memory=memory).workers == workers
