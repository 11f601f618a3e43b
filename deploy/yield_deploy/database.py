"""The prediction log's database on ECS: the secret holding its URL, and who may read it."""

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from yield_deploy.aws import Aws, ensure_role_policy, error_code
from yield_deploy.errors import SettingsError
from yield_deploy.settings import Settings

#: The API's setting the secret's value is given to the container as.
URL_VARIABLE = "MLAPI_PREDICTION_LOG_URL"
#: The execution role's inline policy that lets ECS read the secret when it starts a task.
READ_POLICY = "read-prediction-log-url"


@dataclass(frozen=True)
class DatabaseSecret:
    """The secret as Secrets Manager describes it."""

    arn: str
    #: The customer managed KMS key it is encrypted with; None for aws/secretsmanager.
    kms_key_arn: str | None


def require_shared_log(settings: Settings) -> None:
    """Refuse a service of several tasks that would each keep a prediction log of their own."""
    if settings.database_secret_arn is not None or settings.most_tasks <= 1:
        return
    raise SettingsError(
        f"the service may run {settings.most_tasks} tasks (DEPLOY_DESIRED_COUNT"
        f" {settings.desired_count}, DEPLOY_MAX_COUNT {settings.max_count}) but"
        " DEPLOY_DATABASE_SECRET_ARN (--database-secret-arn) is not set: without it each task"
        " keeps its own SQLite prediction log on its ephemeral storage, so a feedback that"
        " reaches another task than its prediction's is answered unknown, drift is computed per"
        " task, and every deploy erases the log. Create the PostgreSQL database and its secret"
        " (README: Releasing, The prediction log on PostgreSQL), or set DEPLOY_DESIRED_COUNT,"
        " DEPLOY_MIN_COUNT and DEPLOY_MAX_COUNT to 1"
    )


def describe_secret(aws: Aws, settings: Settings) -> DatabaseSecret | None:
    """The secret the settings name, checked to exist and to be readable; None if none is set."""
    arn = settings.database_secret_arn
    if arn is None:
        return None
    return describe_named_secret(
        aws, arn, "DEPLOY_DATABASE_SECRET_ARN", "README: The prediction log on PostgreSQL"
    )


def describe_named_secret(aws: Aws, arn: str, variable: str, guide: str) -> DatabaseSecret:
    """A secret, checked to exist, not to be deleted and to be named by its complete ARN;
    errors name the variable that gave the ARN and where the README says how to create it."""
    try:
        found = aws.secretsmanager.describe_secret(SecretId=arn)
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise
        raise SettingsError(
            f"{variable} names no secret in Secrets Manager: {arn}; create it"
            f" with aws secretsmanager create-secret ({guide})"
        ) from None
    if found.get("DeletedDate") is not None:
        raise SettingsError(
            f"{variable} names a secret scheduled for deletion: {arn};"
            " restore it (aws secretsmanager restore-secret) or name another"
        )
    if found["ARN"] != arn:
        raise SettingsError(
            f"{variable} must be the secret's complete ARN, {found['ARN']}, not {arn}"
        )
    return DatabaseSecret(arn=arn, kms_key_arn=_customer_key(aws, found.get("KmsKeyId")))


def _customer_key(aws: Aws, key_id: str | None) -> str | None:
    # Secrets Manager names the key by id or alias, and omits it for aws/secretsmanager;
    # an IAM policy needs the key's ARN, and an AWS managed key needs no grant.
    if key_id is None:
        return None
    key = aws.kms.describe_key(KeyId=key_id)["KeyMetadata"]
    return str(key["Arn"]) if key.get("KeyManager") == "CUSTOMER" else None


def read_policy(
    settings: Settings, secret: DatabaseSecret, what: str = "PredictionLogUrl"
) -> dict[str, Any]:
    """The execution role's inline policy: read exactly this secret, decrypt with its key."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": f"Read{what}",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": secret.arn,
        }
    ]
    if secret.kms_key_arn is not None:
        statements.append(
            {
                "Sid": f"Decrypt{what}",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": secret.kms_key_arn,
                # Only for Secrets Manager's decryption of the secret, not for any ciphertext.
                "Condition": {
                    "StringEquals": {
                        "kms:ViaService": f"secretsmanager.{settings.region}.amazonaws.com"
                    }
                },
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def ensure_secret_access(
    aws: Aws,
    settings: Settings,
    secret: DatabaseSecret,
    changes: list[str],
    *,
    policy: str = READ_POLICY,
    what: str = "PredictionLogUrl",
) -> None:
    """Give the execution role the read policy unless it already has exactly that one."""
    role = settings.execution_role
    wanted = read_policy(settings, secret, what)
    ensure_role_policy(
        aws, role, policy, wanted, changes, change=f"IAM role {role}: may read secret {secret.arn}"
    )


def container_secrets(settings: Settings) -> list[dict[str, str]]:
    """The container's ``secrets``: the prediction log's URL, when a secret holds it."""
    if settings.database_secret_arn is None:
        return []
    return [{"name": URL_VARIABLE, "valueFrom": settings.database_secret_arn}]
