"""The release as CircleCI runs it, end to end: one model from training to the task definition.

Against moto's HTTP server (S3, ECR, ECS, ...), a real pypiserver and a real image registry
(the CNCF distribution registry standing in for ECR's registry endpoint, which moto lacks),
the release jobs' commands run in a copy of the repository: check-version, build the model
wheel from MODEL_TRAINING_DATA (an s3:// URI, as in the CircleCI context), publish, docker
build with MODEL_SOURCE=wheel, push, bootstrap, deploy. Then the task definition ECS would
run is read back, the image it names is pulled from the registry, and the model file in it
must be the published wheel's (as downloaded from the index) and the one the task definition
tells the API to expect; started with another expected sha256 the image exits instead.

The training file is a slice of the plant's published file when ../shared/data has it; else
the generated data, published with --allow-generated-model (said in the test's output). Moto
keeps image manifests but no registry: the manifest the registry holds is recorded in moto's
ECR with put_image, which is what lets bootstrap and deploy see the pushed image.
"""

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import docker
import pytest
import requests
from checkout import copy_checkout
from conftest import API_KEYS, REGION, client
from distribution_registry import registry_binary, running_registry
from model_wheels import VERSION, model_sha256_of
from package_index import PASSWORD, USER, Index

from yield_deploy.aws import Aws, connect
from yield_deploy.push import ecr_login
from yield_deploy.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PLANT_FILE = Path(
    os.environ.get("JINNAN_TRAINING_FILE")
    or ROOT.parent / "shared" / "data" / "jinnan_round1_train_20181227.csv"
)
#: Batches of the plant's file the release test trains on: enough for 5-fold CV, quick.
TRAINING_ROWS = 400
WHEEL = f"model_package/dist/yield_model-{VERSION}-py3-none-any.whl"
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    ]
)
STEP_TIMEOUT_S = 3600

pytestmark = pytest.mark.release


def _plant_slice(path: Path) -> bytes:
    """The header and the first TRAINING_ROWS batches of the plant's file, bytes as they are."""
    lines = PLANT_FILE.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[: TRAINING_ROWS + 1]))
    return path.read_bytes()


class Release:
    """The release jobs' commands, run in the repository copy with the context's variables."""

    def __init__(self, repo: Path, env: dict[str, str]) -> None:
        self.repo = repo
        self.env = env
        self.log: list[str] = []

    def run(self, *command: str, **extra: str) -> str:
        """One step; its output is kept for the failure message."""
        started = time.monotonic()
        done = subprocess.run(
            list(command),
            cwd=self.repo,
            env={**self.env, **extra},
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_S,
            check=False,
        )
        took = time.monotonic() - started
        self.log.append(f"$ {' '.join(command)}  ({took:.0f} s)\n{done.stdout[-2000:]}")
        assert done.returncode == 0, "\n".join(self.log) + done.stderr[-4000:]
        return done.stdout

    def tool(self, *args: str) -> str:
        """python -m yield_deploy, as the release tool's jobs call it."""
        return self.run(sys.executable, "-m", "yield_deploy", *args)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """The distribution registry, wanting the credentials moto's ECR token carries."""
    binary = registry_binary()
    if binary is None:
        message = "no docker-registry binary: apt-get install -y docker-registry"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with running_registry(binary, tmp_path / "registry", "AWS", "123456789012-auth-token") as host:
        yield host


@pytest.fixture
def image_tags(docker_client: docker.DockerClient) -> Iterator[list[str]]:
    """Image tags the test makes, removed afterwards whether it passed or not."""
    tags: list[str] = []
    yield tags
    for tag in tags:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(tag, force=True, noprune=True)


def _published_wheel(index: Index, work: Path) -> Path:
    """The model wheel as pip would download it from the index."""
    auth = (USER, PASSWORD)
    page = requests.get(f"{index.simple_url}yield-model/", auth=auth, timeout=30)
    page.raise_for_status()
    (href,) = re.findall(r'href="([^"]+\.whl)(?:#[^"]*)?"', page.text)
    wheel = work / "downloaded" / href.rsplit("/", 1)[-1]
    wheel.parent.mkdir()
    answer = requests.get(urljoin(page.url, href), auth=auth, timeout=60)
    answer.raise_for_status()
    wheel.write_bytes(answer.content)
    return wheel


def _file_in_image(docker_client: docker.DockerClient, image: str, path: str) -> bytes:
    """A file of an image, read from a container that never starts."""
    container = docker_client.containers.create(image)
    try:
        stream, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            (member,) = archive.getmembers()
            extracted = archive.extractfile(member)
            assert extracted is not None
            return extracted.read()
    finally:
        container.remove(force=True)


def _becomes_healthy(container: docker.models.containers.Container, check: list[str]) -> bool:
    """Whether the task definition's own health check passes within its start period."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        container.reload()
        if container.status == "exited":
            return False
        if container.exec_run(check).exit_code == 0:
            return True
        time.sleep(1)
    return False


@pytest.mark.usefixtures("tasks_start")
def test_the_release_deploys_the_published_model(
    tmp_path: Path,
    settings: Settings,
    moto_endpoint: str,
    index: Index,
    *,
    registry: str,
    docker_client: docker.DockerClient,
    image_tags: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Given the release's services, when the release jobs run, then the task definition names
    an image whose model is the published wheel's, and which it tells the API to expect."""
    started = time.monotonic()
    repo = copy_checkout(tmp_path / "repo")
    commit = secrets.token_hex(20)
    image = f"mlapi:{commit}"
    pushed_as = [f"{registry}/{settings.repository}:{tag}" for tag in (VERSION, commit)]
    image_tags += [image, *pushed_as]
    # The CircleCI context: the training data in S3, the index, AWS (moto) and its names
    s3 = client("s3", moto_endpoint)
    bucket = f"plant-data-{secrets.token_hex(3)}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    context = {
        **os.environ,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "TWINE_REPOSITORY_URL": index.upload_url,
        "DEPLOY_INDEX_URL": index.simple_url,
        "TWINE_USERNAME": USER,
        "TWINE_PASSWORD": PASSWORD,
        "DEPLOY_REGION": REGION,
        "DEPLOY_ENDPOINT_URL": moto_endpoint,
        "DEPLOY_CLUSTER": settings.cluster,
        "DEPLOY_SERVICE": settings.service,
        "DEPLOY_REPOSITORY": settings.repository,
        "DEPLOY_SUBNETS": ",".join(settings.subnets),
        "DEPLOY_SECURITY_GROUPS": ",".join(settings.security_groups),
        "DEPLOY_DATABASE_SECRET_ARN": str(settings.database_secret_arn),
        "DEPLOY_API_KEYS_SECRET_ARN": str(settings.api_keys_secret_arn),
        "DEPLOY_METRICS_KEY_SECRET_ARN": str(settings.metrics_key_secret_arn),
        "DEPLOY_REGISTRY": registry,
        "DEPLOY_STABILITY_TIMEOUT": "60",
        "DEPLOY_POLL_INTERVAL": "0.2",
    }
    context.pop("MODEL_TRAINING_DATA", None)
    publish_flags: list[str] = []
    if PLANT_FILE.is_file():
        data = _plant_slice(tmp_path / "train.csv")
        s3.put_object(Bucket=bucket, Key="jinnan/train.csv", Body=data)
        context["MODEL_TRAINING_DATA"] = f"s3://{bucket}/jinnan/train.csv"
    else:
        # No plant data on this machine: generated data, which publish must be told to take
        publish_flags = ["--allow-generated-model"]
        with capsys.disabled():
            print(f"\n{PLANT_FILE} is missing: the release test publishes generated data")
    release = Release(repo, context)

    # The one-time setup (README): the first bootstrap makes the repository a release pushes to
    release.tool("bootstrap")
    # When the release jobs run, in order
    release.tool("check-version", f"v{VERSION}")
    release.run("bash", "scripts/build-model-wheel.sh", "model_package/dist")
    release.tool("publish", WHEEL, *publish_flags)
    release.run(
        "docker", "build", "-q", "-f", "mlapi/Dockerfile", "--build-arg", "MODEL_SOURCE=wheel",
        "-t", image, ".",
    )  # fmt: skip
    built_id = docker_client.images.get(image).id
    pushed = release.tool("push", image, "--tag", VERSION, "--tag", commit)
    aws = connect(settings)
    login = ecr_login(aws)
    digest = _record_in_moto_ecr(aws, settings, registry, (VERSION, commit))
    release.tool("bootstrap", "--image-tag", VERSION, "--model-wheel", WHEEL)
    deployed = release.tool("deploy", "--image-tag", VERSION, "--model-wheel", WHEEL)

    # Then the task definition the service runs names the version's image and its model
    service = aws.ecs.describe_services(cluster=settings.cluster, services=[settings.service])
    revision = service["services"][0]["taskDefinition"]
    assert f"already running {aws_image(aws, settings)}:{VERSION} ({revision})" in deployed
    definition = aws.ecs.describe_task_definition(taskDefinition=revision)["taskDefinition"]
    (container,) = [c for c in definition["containerDefinitions"] if c["name"] == "mlapi"]
    environment = {e["name"]: e["value"] for e in container["environment"]}
    named = container["image"]
    assert named == f"{aws_image(aws, settings)}:{VERSION}"
    assert f"pushed {settings.repository}:{VERSION} {digest}" in pushed
    # the image that reference names, pulled back from the registry (the test's local tags
    # gone): only the registry's host differs from ECR's
    for made in image_tags:
        docker_client.images.remove(made, noprune=True)
    path, _, tag = named.partition("/")[2].rpartition(":")
    repository = f"{registry}/{path}"
    pulled = docker_client.images.pull(repository, tag=tag, auth_config=login.auth_config())
    assert pulled.id == built_id
    reference = f"{repository}:{tag}"
    model_path = docker_client.containers.run(
        reference,
        ["python", "-c", "from yield_model.persistence import *; print(default_model_path())"],
        remove=True,
    )
    in_image = _file_in_image(docker_client, reference, model_path.decode().strip())
    published = _published_wheel(index, tmp_path)
    card = json.loads(
        zipfile.ZipFile(published).read(
            f"yield_model/trained_models/yield_model_v{VERSION}.card.json"
        )
    )
    # its model is the published wheel's, which the task definition tells the API to expect
    assert published.read_bytes() == (repo / WHEEL).read_bytes()
    assert sha256_hex(in_image) == model_sha256_of(published) == card["model_sha256"]
    assert environment["MLAPI_MODEL_SHA256"] == card["model_sha256"]
    if PLANT_FILE.is_file():
        assert card["data"]["origin"] == "file"
        assert card["data"]["source"] == context["MODEL_TRAINING_DATA"]
        assert card["data"]["sha256"] == sha256_hex((tmp_path / "train.csv").read_bytes())
    else:
        assert card["data"]["origin"] == "generated"
    # And the image starts with the task definition's environment, and only with it
    task_environment = {**environment, "MLAPI_API_KEYS": API_KEYS}
    check = container["healthCheck"]["command"][1:]
    wrong = {**task_environment, "MLAPI_MODEL_SHA256": "0" * 64}
    refused = docker_client.containers.run(reference, environment=wrong, detach=True)
    try:
        assert refused.wait(timeout=120)["StatusCode"] == 1
        assert f"not {'0' * 64} (the sha256 given)" in refused.logs().decode()
    finally:
        refused.remove(force=True)
    serving = docker_client.containers.run(reference, environment=task_environment, detach=True)
    try:
        assert _becomes_healthy(serving, check), serving.logs().decode()[-3000:]
    finally:
        serving.remove(force=True)
    with capsys.disabled():
        print(f"\nrelease test: {time.monotonic() - started:.0f} s\n" + "\n".join(release.log))


def _record_in_moto_ecr(aws: Aws, settings: Settings, registry: str, tags: tuple[str, ...]) -> str:
    """Put the manifest the registry holds into moto's ECR under each tag; its digest.

    What a push to ECR leaves in its API, which moto cannot receive: it has no registry.
    """
    login = ecr_login(aws)
    manifest = requests.get(
        f"http://{registry}/v2/{settings.repository}/manifests/{tags[0]}",
        auth=(login.username, login.password),
        headers={"Accept": MANIFEST_TYPES},
        timeout=30,
    )
    manifest.raise_for_status()
    for tag in tags:
        aws.ecr.put_image(
            repositoryName=settings.repository,
            imageManifest=manifest.text,
            imageManifestMediaType=manifest.headers["Content-Type"],
            imageTag=tag,
        )
    return str(manifest.headers["Docker-Content-Digest"])


def aws_image(aws: Aws, settings: Settings) -> str:
    """The repository's URI in ECR, as the task definition names images."""
    found = aws.ecr.describe_repositories(repositoryNames=[settings.repository])
    return str(found["repositories"][0]["repositoryUri"])


def sha256_hex(data: bytes) -> str:
    """The sha256 of bytes, in hex."""
    return hashlib.sha256(data).hexdigest()
