"""`python -m yield_deploy` as the README runs it: DEPLOY_* variables, AWS_ENDPOINT_URL at moto."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REGION, Network, put_image

from yield_deploy.aws import connect
from yield_deploy.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The CLI in a child process, from the repository's root, with only `env` (and PATH)."""
    return subprocess.run(
        [sys.executable, "-m", "yield_deploy", *args],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def cli_env(settings: Settings, network: Network) -> dict[str, str]:
    """The variables the README's moto example sets."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": str(settings.endpoint_url),
        "DEPLOY_REGION": REGION,
        "DEPLOY_CLUSTER": settings.cluster,
        "DEPLOY_SERVICE": settings.service,
        "DEPLOY_REPOSITORY": settings.repository,
        "DEPLOY_SUBNETS": ",".join(network.subnets),
        "DEPLOY_SECURITY_GROUPS": network.security_group,
        "DEPLOY_DATABASE_SECRET_ARN": str(settings.database_secret_arn),
        "DEPLOY_API_KEYS_SECRET_ARN": str(settings.api_keys_secret_arn),
        "DEPLOY_METRICS_KEY_SECRET_ARN": str(settings.metrics_key_secret_arn),
        "DEPLOY_ALERT_RULES_FILE": str(settings.alert_rules_file),
        "DEPLOY_ALERT_ROUTES_FILE": str(settings.alert_routes_file),
        "DEPLOY_MODEL_WHEEL": str(settings.model_wheel),
    }


@pytest.mark.usefixtures("tasks_start")
def test_bootstrap_twice_then_deploy_and_scale(settings: Settings, cli_env: dict[str, str]) -> None:
    """Given moto, when running the README's commands, then they converge and exit 0."""
    aws = connect(settings)

    first = run("bootstrap", env=cli_env)
    assert first.returncode == 0, first.stderr
    assert f"changed: ECR repository {settings.repository} (scan on push)" in first.stdout
    assert "not yet: no DEPLOY_IMAGE_TAG (--image-tag)" in first.stdout

    put_image(aws, settings.repository, "0.1.0")
    second = run("bootstrap", "--image-tag", "0.1.0", env=cli_env)
    assert second.returncode == 0, second.stderr
    assert (
        f"changed: ECS service {settings.service} in {settings.cluster}: 2 tasks" in second.stdout
    )

    third = run("bootstrap", "--image-tag", "0.1.0", env=cli_env)
    assert (third.returncode, third.stdout) == (
        0,
        "nothing to change\nnote: no DEPLOY_ALERT_TOPIC_ARN (--alert-topic-arn): the workspace"
        " evaluates the alert rules but sends their alerts to no one\n",
    )

    put_image(aws, settings.repository, "0.2.0")
    deployed = run("deploy", "--image-tag", "0.2.0", "--poll-interval", "0.05", env=cli_env)
    assert deployed.returncode == 0, deployed.stderr
    assert deployed.stdout.startswith(f"deployed {_uri(settings)}:0.2.0 as ")

    scaled = run("scale", "--desired-count", "4", env=cli_env)
    assert (scaled.returncode, scaled.stdout) == (
        0,
        f"changed: service {settings.service}: desired count 2 -> 4\n",
    )


def test_a_failed_deploy_exits_1_with_the_reason(
    settings: Settings, cli_env: dict[str, str]
) -> None:
    """Given tasks that never start, when deploying, then exit 1, reason and rollback on stderr."""
    aws = connect(settings)
    put_flags = ("--image-tag", "0.1.0")
    run("bootstrap", env=cli_env)
    put_image(aws, settings.repository, "0.1.0")
    assert run("bootstrap", *put_flags, env=cli_env).returncode == 0
    put_image(aws, settings.repository, "0.2.0")

    failed = run(
        "deploy", "--image-tag", "0.2.0", "--stability-timeout", "0.2", "--poll-interval", "0.05",
        env=cli_env,
    )  # fmt: skip

    family = settings.task_family
    prefix = f"arn:aws:ecs:{REGION}:123456789012:task-definition/{family}"
    assert failed.returncode == 1
    assert failed.stderr == (
        f"error: deployment failed: {prefix}:2: not stable within 0.2 s: 0/2 tasks running,"
        f" 1 deployments; rolled the service back to {prefix}:1\n"
    )


def test_bad_settings_exit_2_naming_each(cli_env: dict[str, str]) -> None:
    """Given no region and a bad memory size, then exit 2 and one line per problem."""
    env = {k: v for k, v in cli_env.items() if k != "DEPLOY_REGION"}

    failed = run("deploy", "--memory", "300", env=env)

    assert failed.returncode == 2
    assert failed.stderr.splitlines() == [
        "error: invalid settings:",
        "DEPLOY_REGION (--region): Field required",
    ]


def test_bootstrap_of_several_tasks_without_the_database_exits_2(
    settings: Settings, cli_env: dict[str, str]
) -> None:
    """Given no DEPLOY_DATABASE_SECRET_ARN and 2-6 tasks, then exit 2 with why, nothing made."""
    env = {k: v for k, v in cli_env.items() if k != "DEPLOY_DATABASE_SECRET_ARN"}

    refused = run("bootstrap", env=env)

    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr.startswith(
        "error: the service may run 6 tasks (DEPLOY_DESIRED_COUNT 2, DEPLOY_MAX_COUNT 6) but"
        " DEPLOY_DATABASE_SECRET_ARN (--database-secret-arn) is not set: without it each task"
        " keeps its own SQLite prediction log on its ephemeral storage"
    )
    found = connect(settings).ecr.describe_repositories()["repositories"]
    assert settings.repository not in [repository["repositoryName"] for repository in found]


def test_check_version_exit_status() -> None:
    """Given the repository, then its own version passes and another fails with status 1."""
    version = (ROOT / "mlapi" / "mlapi" / "VERSION").read_text().strip()

    good = run("check-version", f"v{version}", env={})
    bad = run("check-version", "v999.0.0", env={})

    assert (good.returncode, good.stdout) == (0, f"v{version} releases version {version}\n")
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: tag v999.0.0 does not match the project: ")


def _uri(settings: Settings) -> str:
    return f"123456789012.dkr.ecr.{REGION}.amazonaws.com/{settings.repository}"
