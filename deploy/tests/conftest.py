"""Fixtures of the release tool's tests: a moto server, a network in it, settings pointed at it."""

import json
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import docker
import pytest
from model_wheels import ModelWheels, build_model_wheels
from moto.server import ThreadedMotoServer
from package_index import Index, running_index

from yield_deploy.aws import Aws, connect
from yield_deploy.settings import Settings, get_settings

REGION = "eu-west-1"

# moto's server logs every request it answers; failures should show the test's own output.
logging.getLogger("werkzeug").setLevel(logging.WARNING)
TAG = "0.1.0"
DATABASE_URL = "postgresql://mlapi:not-a-real-password@mlapi-log.example:5432/mlapi"
#: A key file's content, as python -m mlapi.keys prints its lines: hashes and scopes only.
API_KEYS = "predict,feedback,read sha256:" + "ab" * 32 + " client\n"
#: The key the Prometheus agent scrapes with, as python -m mlapi.keys new writes it.
METRICS_KEY = "mlapi_not-a-real-metrics-key"
ROOT = Path(__file__).resolve().parents[2]


def pytest_addoption(parser: pytest.Parser) -> None:
    """--require-docker: fail, not skip, the tests that need a Docker engine."""
    parser.addoption(
        "--require-docker",
        action="store_true",
        help="fail instead of skipping when no Docker engine answers (CI with an engine)",
    )


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto server on a free loopback port for the session."""
    with pytest.MonkeyPatch.context() as patch:
        # The task execution role gets an AWS-managed policy, which moto only knows if asked.
        patch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        # MOTO_TEST_PORT: on a machine whose users share out the ports; else any free one.
        port = int(os.environ.get("MOTO_TEST_PORT", "0"))
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
        server.stop()


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials, and no DEPLOY_* or AWS_* setting of the developer's leaking in."""
    for name in list(os.environ):
        if name.startswith(("DEPLOY_", "AWS_", "TWINE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@dataclass(frozen=True)
class Network:
    """Subnets and a security group for the service's tasks."""

    subnets: tuple[str, str]
    security_group: str


@pytest.fixture(scope="session")
def network(moto_endpoint: str) -> Network:
    """A VPC with two subnets and a security group in moto, shared by the session's tests."""
    ec2 = client("ec2", moto_endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = tuple(
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"]
        for i in (1, 2)
    )
    group = ec2.create_security_group(GroupName="mlapi", Description="API", VpcId=vpc)["GroupId"]
    return Network(subnets=(subnets[0], subnets[1]), security_group=group)


def client(service: str, endpoint: str) -> Any:
    """A boto3 client of moto, for what the tests set up outside the tool."""
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="session")
def database_secret(moto_endpoint: str) -> str:
    """The ARN of a secret in moto holding a PostgreSQL URL, as the README creates it."""
    created = client("secretsmanager", moto_endpoint).create_secret(
        Name="mlapi/prediction-log-url", SecretString=DATABASE_URL
    )
    return str(created["ARN"])


@pytest.fixture(scope="session")
def api_keys_secret(moto_endpoint: str) -> str:
    """The ARN of a secret in moto holding the API's key file, as the README creates it."""
    created = client("secretsmanager", moto_endpoint).create_secret(
        Name="mlapi/api-keys", SecretString=API_KEYS
    )
    return str(created["ARN"])


@pytest.fixture(scope="session")
def metrics_key_secret(moto_endpoint: str) -> str:
    """The ARN of a secret in moto holding the Prometheus agent's metrics key."""
    created = client("secretsmanager", moto_endpoint).create_secret(
        Name="mlapi/metrics-key", SecretString=METRICS_KEY
    )
    return str(created["ARN"])


@pytest.fixture(scope="session")
def model_wheels(tmp_path_factory: pytest.TempPathFactory) -> ModelWheels:
    """Model wheels of the repository's version, trained from a file and on generated data."""
    return build_model_wheels(tmp_path_factory.mktemp("model-wheels"))


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    """A private index: pypiserver on loopback, every action behind a password, no fallback."""
    with running_index(tmp_path) as running:
        yield running


@pytest.fixture
def settings(
    moto_endpoint: str,
    network: Network,
    database_secret: str,
    api_keys_secret: str,
    metrics_key_secret: str,
    *,
    model_wheels: ModelWheels,
) -> Settings:
    """Settings of a deployment into moto that decides quickly, with names no other test uses.

    The server is shared rather than reset between tests: a reset makes moto rebuild its
    backends, seconds per test.
    """
    unique = secrets.token_hex(3)
    return Settings(
        region=REGION,
        endpoint_url=moto_endpoint,
        cluster=f"yield-{unique}",
        service=f"mlapi-{unique}",
        repository=f"yield/mlapi-{unique}",
        subnets=",".join(network.subnets),
        security_groups=network.security_group,
        image_tag=TAG,
        model_wheel=model_wheels.from_file,
        desired_count=2,
        min_count=2,
        max_count=5,
        target_cpu=55,
        stability_timeout=2,
        poll_interval=0.05,
        database_secret_arn=database_secret,
        api_keys_secret_arn=api_keys_secret,
        metrics_key_secret_arn=metrics_key_secret,
        # The repository's files, wherever pytest runs from
        alert_rules_file=ROOT / "prometheus" / "alerts.yml",
        alert_routes_file=ROOT / "alertmanager" / "alertmanager.yml",
    )


@pytest.fixture
def aws(settings: Settings) -> Aws:
    """Clients pointed at moto."""
    return connect(settings)


@pytest.fixture
def tasks_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Services moto creates from now on run 2 tasks, the settings' desired count (else none)."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "2")


def put_image(aws: Aws, repository: str, tag: str) -> str:
    """Record an image under `tag` in moto's ECR (moto keeps manifests, not layers); its digest."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 2,
            "digest": "sha256:" + tag.encode().hex().ljust(64, "0")[:64],
        },
        "layers": [],
    }
    image = aws.ecr.put_image(
        repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag
    )["image"]
    return str(image["imageId"]["imageDigest"])


@pytest.fixture
def docker_client(request: pytest.FixtureRequest) -> docker.DockerClient:
    """A client of the local Docker engine; skipped without one, unless --require-docker or CI."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        # CI starts an engine before the tests (.ci/run), so there a missing one is a failure.
        if request.config.getoption("--require-docker") or os.environ.get("CI") == "true":
            pytest.fail(f"no Docker engine answers: {error}")
        pytest.skip(
            f"no Docker engine answers ({error}); start one with ../shared/tools/docker-offline"
        )
    return client


def workspace_id(aws: Aws, settings: Settings) -> str:
    """The id of the one workspace with the settings' alias."""
    found = aws.amp.list_workspaces(alias=settings.workspace_alias)["workspaces"]
    (workspace,) = [w for w in found if w["alias"] == settings.workspace_alias]
    return str(workspace["workspaceId"])


def workspace_arn(aws: Aws, settings: Settings) -> str:
    """The ARN of that workspace."""
    found = aws.amp.describe_workspace(workspaceId=workspace_id(aws, settings))
    return str(found["workspace"]["arn"])
