"""push: ECR login from GetAuthorizationToken, tags, and a real push by the Docker engine.

ECR's registry endpoint cannot run here (moto has no registry, no registry image can be
pulled): the image goes to oci_registry, which speaks the same API and checks the Basic
credentials ECR's token carries. The registry host is the one thing that differs from ECR.
"""

import base64
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from oci_registry import digest_of, running_registry

from yield_deploy.aws import Aws
from yield_deploy.errors import PushError
from yield_deploy.push import ecr_login, push
from yield_deploy.settings import Settings

# What moto's GetAuthorizationToken hands out for its default account.
MOTO_LOGIN = ("AWS", "123456789012-auth-token")


def test_ecr_login_decodes_the_token_into_registry_and_credentials(aws: Aws) -> None:
    """Given moto's ECR, when logging in, then user, password and registry come from the token."""
    login = ecr_login(aws)

    assert (login.username, login.password) == MOTO_LOGIN
    assert login.registry == "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    assert login.auth_config() == {"username": "AWS", "password": "123456789012-auth-token"}


@pytest.fixture
def tiny_image(docker_client: docker.DockerClient, tmp_path: Path) -> Iterator[str]:
    """A one-file image built FROM scratch (nothing to pull); removed with its tags afterwards."""
    (tmp_path / "hello.txt").write_text(secrets.token_hex(16))  # a layer no other test shares
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\n")
    name = f"yield-deploy-push-test:{secrets.token_hex(4)}"
    image, _ = docker_client.images.build(path=str(tmp_path), tag=name, rm=True)
    yield name
    for tag in docker_client.images.get(image.id).tags:
        docker_client.images.remove(tag, force=True)


def test_push_sends_every_tag_with_the_ecr_credentials(
    aws: Aws, settings: Settings, docker_client: docker.DockerClient, tiny_image: str
) -> None:
    """Given a registry that wants ECR's credentials, when pushing two tags, then both land."""
    with running_registry(*MOTO_LOGIN) as (host, store):
        at_registry = settings.model_copy(update={"registry": host})

        digests = push(aws, at_registry, docker_client, tiny_image, ["0.1.0", "0a1b2c3d"])

    repository = settings.repository
    version = store.manifests[(repository, "0.1.0")]
    commit = store.manifests[(repository, "0a1b2c3d")]
    assert version == commit
    assert digests == {"0.1.0": digest_of(version[1]), "0a1b2c3d": digest_of(version[1])}
    manifest = json.loads(version[1])
    # Every blob the manifest names arrived, and each was checked against its digest.
    named = [manifest["config"]["digest"]] + [layer["digest"] for layer in manifest["layers"]]
    assert len(manifest["layers"]) == 1
    assert all(store.blobs[digest] for digest in named)
    assert store.refused_logins == 0
    local_tags = docker_client.images.get(tiny_image).tags
    assert f"{host}/{repository}:0.1.0" in local_tags
    assert f"{host}/{repository}:0a1b2c3d" in local_tags


def test_push_fails_when_the_registry_refuses_the_credentials(
    aws: Aws, settings: Settings, docker_client: docker.DockerClient, tiny_image: str
) -> None:
    """Given a registry wanting other credentials, when pushing, then PushError, nothing stored.

    About 50 s: the engine retries a refused upload with growing pauses before it gives up,
    as it does against ECR with an expired token.
    """
    with running_registry("AWS", "another-token") as (host, store):
        at_registry = settings.model_copy(update={"registry": host})

        with pytest.raises(PushError, match=r"pushing .*:0\.1\.0 failed"):
            push(aws, at_registry, docker_client, tiny_image, ["0.1.0"])

    assert store.refused_logins > 0
    assert store.manifests == {}


def test_push_without_tags_is_refused(aws: Aws, settings: Settings) -> None:
    """Given no tag, when pushing, then nothing is asked of ECR or Docker."""
    with pytest.raises(PushError, match="at least one --tag"):
        push(aws, settings, docker=None, local_image="any", tags=[])


def test_token_without_password_is_refused(settings: Settings) -> None:
    """Given a malformed token, when logging in, then PushError rather than an empty password."""

    class Ecr:
        def get_authorization_token(self) -> dict[str, list[dict[str, str]]]:
            token = base64.b64encode(b"AWS").decode()
            return {
                "authorizationData": [{"authorizationToken": token, "proxyEndpoint": "https://x"}]
            }

    broken = Aws(
        ecr=Ecr(),
        ecs=None,
        logs=None,
        iam=None,
        autoscaling=None,
        secretsmanager=None,
        kms=None,
        amp=None,
        sns=None,
        partition="aws",
    )
    with pytest.raises(PushError, match="without a password"):
        ecr_login(broken)
