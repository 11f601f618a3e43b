"""The API's keys on ECS: the secret holding its key file, the secret holding the key the
Prometheus agent scrapes it with, and who may read them.

Mirrors the prediction log's secret (yield_deploy.database): the task definition passes each
secret's value as a container secret, and the execution role may read those secrets only.
"""

from yield_deploy.aws import Aws
from yield_deploy.database import DatabaseSecret, describe_named_secret, ensure_secret_access
from yield_deploy.errors import SettingsError
from yield_deploy.settings import Settings

#: The API's setting the secret's value (the key file's content) is given to the container as.
KEYS_VARIABLE = "MLAPI_API_KEYS"
#: The execution role's inline policy that lets ECS read the secret when it starts a task.
READ_POLICY = "read-api-keys"
#: The execution role's inline policy for the agent's metrics key.
METRICS_READ_POLICY = "read-metrics-key"
GUIDE = "README: API keys on ECS"


def require_api_keys(settings: Settings) -> None:
    """Refuse a task definition without keys: the API would refuse to start."""
    if settings.api_keys_secret_arn is not None:
        return
    raise SettingsError(
        "DEPLOY_API_KEYS_SECRET_ARN (--api-keys-secret-arn) is not set: the API serves no"
        " route but its health check without API keys, and refuses to start without them."
        f" Make the key file (python -m mlapi.keys new) and put it in a secret ({GUIDE})"
    )


def describe_secret(aws: Aws, settings: Settings) -> DatabaseSecret:
    """The keys' secret, checked to exist and to be named by its complete ARN."""
    require_api_keys(settings)
    assert settings.api_keys_secret_arn is not None
    return describe_named_secret(
        aws, settings.api_keys_secret_arn, "DEPLOY_API_KEYS_SECRET_ARN", GUIDE
    )


def ensure_access(aws: Aws, settings: Settings, secret: DatabaseSecret, changes: list[str]) -> None:
    """Let the execution role read exactly the keys' secret."""
    ensure_secret_access(aws, settings, secret, changes, policy=READ_POLICY, what="ApiKeys")


def container_secrets(settings: Settings) -> list[dict[str, str]]:
    """The container's ``secrets`` entry for the keys."""
    require_api_keys(settings)
    return [{"name": KEYS_VARIABLE, "valueFrom": str(settings.api_keys_secret_arn)}]


def require_metrics_key(settings: Settings) -> None:
    """Refuse a task definition whose Prometheus agent would have no key to scrape with."""
    if settings.metrics_key_secret_arn is not None:
        return
    raise SettingsError(
        "DEPLOY_METRICS_KEY_SECRET_ARN (--metrics-key-secret-arn) is not set: the Prometheus"
        " agent beside the API scrapes /metrics with a key of the metrics scope, kept in a"
        f" secret of its own ({GUIDE})"
    )


def describe_metrics_secret(aws: Aws, settings: Settings) -> DatabaseSecret:
    """The metrics key's secret, checked as the key file's is."""
    require_metrics_key(settings)
    assert settings.metrics_key_secret_arn is not None
    return describe_named_secret(
        aws, settings.metrics_key_secret_arn, "DEPLOY_METRICS_KEY_SECRET_ARN", GUIDE
    )


def ensure_metrics_access(
    aws: Aws, settings: Settings, secret: DatabaseSecret, changes: list[str]
) -> None:
    """Let the execution role read exactly the metrics key's secret."""
    ensure_secret_access(
        aws, settings, secret, changes, policy=METRICS_READ_POLICY, what="MetricsKey"
    )
