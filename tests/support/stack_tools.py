"""The stack's tools for the test suites (promtool, amtool, prometheus, PostgreSQL 15): as
installed, or else from the image docker-compose.yml runs them from, through Docker, so the
version is the stack's; with neither, the test fails with one line saying what to install.

TOOLS_FROM_IMAGES=1 takes the images even where a tool is installed. On a machine whose users
share out ports and names, STACK_TEST_PORTS (FIRST-LAST) bounds the host ports given out here
and STACK_TEST_PROJECT_PREFIX starts the names of the containers started here.

The suites import this module by name: pytest's ``pythonpath`` (tox.ini, mlapi's and deploy's
pyproject.toml) puts tests/support on the path.
"""

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
FROM_IMAGES = "TOOLS_FROM_IMAGES"


@dataclass(frozen=True)
class Tool:
    """A program of the stack's, where it may be installed, and the image that has it."""

    command: str
    #: names an installed one, overriding the PATH
    variable: str
    #: the Debian package that installs it
    package: str
    #: the docker-compose.yml service whose image has it on its PATH
    service: str
    #: where the package puts it, off the PATH: then only there (a PATH may hold another
    #: version's), unless $VARIABLE names another
    default: str | None = None


PROMTOOL = Tool("promtool", "PROMTOOL", "prometheus", "prometheus")
AMTOOL = Tool("amtool", "AMTOOL", "prometheus-alertmanager", "alertmanager")
PROMETHEUS = Tool("prometheus", "PROMETHEUS", "prometheus", "prometheus")
PG_CTL = Tool("pg_ctl", "PG_CTL", "postgresql-15", "postgres", "/usr/lib/postgresql/15/bin/pg_ctl")


def installed(tool: Tool) -> str | None:
    """The installed tool: $VARIABLE, or else on the PATH or at the package's place; None
    where it is not, or where TOOLS_FROM_IMAGES=1."""
    if os.environ.get(FROM_IMAGES) == "1":
        return None
    if os.environ.get(tool.variable):
        return os.environ[tool.variable]
    if tool.default is None:
        return shutil.which(tool.command)
    return tool.default if Path(tool.default).is_file() else None


def compose_image(service: str) -> str:
    """The image docker-compose.yml runs the service from."""
    with COMPOSE_FILE.open(encoding="utf-8") as stream:
        image: str = yaml.safe_load(stream)["services"][service]["image"]
    return image


def docker_works() -> bool:
    """Whether a Docker engine answers here."""
    docker = shutil.which("docker")
    return docker is not None and (
        subprocess.run([docker, "info"], capture_output=True, check=False).returncode == 0
    )


def image(tool: Tool) -> str:
    """The image to run the tool from; without Docker, fails the test with one line saying what
    to install."""
    if docker_works():
        return compose_image(tool.service)
    message = (
        f"{tool.command} not found: install it (`apt-get install -y --no-install-recommends "
        f"{tool.package}`) or Docker (the tests then run it from the {tool.service} image of "
        f"docker-compose.yml), or set {tool.variable} to its path"
    )
    if os.environ.get(FROM_IMAGES) == "1":
        message = f"{FROM_IMAGES}=1, but no Docker engine answers to run {tool.command} from"
    pytest.fail(message, pytrace=False)


#: The tool from an image, with /tmp, the temporary directory, the repository and the working
#: directory seen where they are, as the installed tool would see them, and as the caller's user.
WRAPPER = """#!/bin/sh
# {command} from {image}
name="{prefix}{command}-$$-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
run() {{
  exec docker run --rm -i --name "$name" --network {network} --user "$(id -u):$(id -g)" \\
    {environment}{mounts} -v "{root}:{root}:ro" "$@"
}}
case "$PWD" in
  {seen}) run -w "$PWD" --entrypoint {command} {image} "$@" ;;
  *) run -v "$PWD:$PWD" -w "$PWD" --entrypoint {command} {image} "$@" ;;
esac
"""


def from_image(
    tool: Tool,
    directory: Path,
    network: Literal["none", "host"] = "none",
    environment: tuple[str, ...] = (),
) -> str:
    """An executable in directory that runs the tool from its image: with no network (a
    checker), or on the host's (a server, reached and reaching on 127.0.0.1 as installed),
    passing it the named variables of its environment."""
    shared = sorted({"/tmp", os.path.realpath(tempfile.gettempdir())})
    seen = " | ".join(f'"{p}" | "{p}"/*' for p in (str(ROOT), *shared))
    path = directory / tool.command
    path.write_text(
        WRAPPER.format(
            command=tool.command,
            image=image(tool),
            network=network,
            prefix=container_prefix(),
            environment="".join(f"-e {name} " for name in environment),
            mounts=" ".join(f'-v "{p}:{p}"' for p in shared),
            root=ROOT,
            seen=seen,
        ),
        encoding="utf-8",
    )
    path.chmod(0o755)
    return str(path)


def executable(
    tool: Tool,
    directory: Path,
    network: Literal["none", "host"] = "none",
    environment: tuple[str, ...] = (),
) -> str:
    """The installed tool, or else one that runs it from the stack's image (``from_image``)."""
    return installed(tool) or from_image(tool, directory, network, environment)


def container_prefix() -> str:
    """How the names of the containers the tests start begin."""
    return os.environ.get("STACK_TEST_PROJECT_PREFIX", "yieldstack")


def container_name(what: str) -> str:
    """A name of its own for a container the tests start."""
    return f"{container_prefix()}{what}-{secrets.token_hex(4)}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at this moment: any, or one of STACK_TEST_PORTS
    (FIRST-LAST) on a machine whose users share out the ports."""
    span = os.environ.get("STACK_TEST_PORTS")
    candidates = [0] * 100
    if span:
        first, last = (int(part) for part in span.split("-"))
        candidates = list(range(first, last + 1))
    for candidate in candidates:
        with socket.socket() as probe:
            try:
                probe.bind((host, candidate))
            except OSError:
                continue
            port: int = probe.getsockname()[1]
            if port not in _given:
                _given.add(port)
                return port
    raise RuntimeError(f"no free port in STACK_TEST_PORTS={span}")


_given: set[int] = set()
