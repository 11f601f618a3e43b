"""A real image registry for the release test: the CNCF distribution registry (Debian's
``docker-registry``, apt-get install docker-registry), with htpasswd Basic auth as ECR's
registry API takes AWS:<token>.

It speaks ECR's registry API for pushes and pulls; moto has no registry, so ECR's own
endpoint is the one part of the release that runs elsewhere.
"""

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
import yaml
from passlib.hash import bcrypt
from ports import free_port

#: Where the binary is, if not on PATH as docker-registry (Debian) or registry (upstream).
BINARY_VARIABLE = "DOCKER_REGISTRY"


def registry_binary() -> str | None:
    """The registry's binary, or None if it is not installed."""
    named = os.environ.get(BINARY_VARIABLE)
    return named or shutil.which("docker-registry") or shutil.which("registry")


@contextmanager
def running_registry(binary: str, folder: Path, username: str, password: str) -> Iterator[str]:
    """The registry on a free loopback port, storing in ``folder``; its host:port."""
    folder.mkdir(parents=True, exist_ok=True)
    # bcrypt is the only scheme the registry's htpasswd takes; few rounds: a test's password
    hashed = bcrypt.using(rounds=4).hash(password)
    (folder / "htpasswd").write_text(f"{username}:{hashed}\n")
    host = f"127.0.0.1:{free_port()}"
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(folder / "data")}},
        "http": {"addr": host, "secret": os.urandom(16).hex()},
        "auth": {"htpasswd": {"realm": "release-test", "path": str(folder / "htpasswd")}},
    }
    (folder / "config.yml").write_text(yaml.safe_dump(config))
    log = (folder / "registry.log").open("wb")
    server = subprocess.Popen(
        [binary, "serve", str(folder / "config.yml")], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                # 401 without credentials: up, and asking for them
                if requests.get(f"http://{host}/v2/", timeout=1).status_code == 401:
                    break
            except requests.ConnectionError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the registry did not start: {(folder / 'registry.log').read_text()}"
                )
            time.sleep(0.1)
        yield host
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
