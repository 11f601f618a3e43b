"""Push the API image to ECR: log in with an ECR token, tag, push each tag."""

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from yield_deploy.aws import Aws
from yield_deploy.errors import PushError
from yield_deploy.settings import Settings


@dataclass(frozen=True)
class Login:
    """Registry credentials from ECR's GetAuthorizationToken (valid for 12 hours)."""

    registry: str
    username: str
    password: str

    def auth_config(self) -> dict[str, str]:
        """The credentials as the Docker engine takes them for a push."""
        return {"username": self.username, "password": self.password}


def ecr_login(aws: Aws) -> Login:
    """Credentials for the account's registry (what `aws ecr get-login-password` prints)."""
    data = aws.ecr.get_authorization_token()["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    if not password:
        raise PushError("ECR returned an authorization token without a password")
    return Login(urlparse(data["proxyEndpoint"]).netloc, username, password)


def push(
    aws: Aws, settings: Settings, docker: Any, local_image: str, tags: list[str]
) -> dict[str, str]:
    """Tag a local image for the repository and push every tag; the digest of each tag."""
    if not tags:
        raise PushError("nothing to push: give at least one --tag")
    login = ecr_login(aws)
    target = f"{settings.registry or login.registry}/{settings.repository}"
    image = docker.images.get(local_image)
    digests = {}
    for tag in tags:
        image.tag(target, tag=tag)
        digests[tag] = _push_one(docker, target, tag, login)
    return digests


def _push_one(docker: Any, target: str, tag: str, login: Login) -> str:
    # The engine reports a refused push inside the progress stream, not as an HTTP error.
    digest = ""
    for line in docker.api.push(
        target, tag=tag, auth_config=login.auth_config(), stream=True, decode=True
    ):
        if "error" in line:
            detail = line.get("errorDetail", {}).get("message") or line["error"]
            raise PushError(f"pushing {target}:{tag} failed: {detail}")
        digest = line.get("aux", {}).get("Digest", digest)
    if not digest:
        raise PushError(f"pushing {target}:{tag} ended without a digest")
    return str(digest)
