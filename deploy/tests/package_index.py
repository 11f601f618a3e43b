"""A private package index for the tests: pypiserver on loopback, every action behind a
password, no fallback to PyPI."""

import base64
import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from ports import free_port

USER, PASSWORD = "release", "index-secret-7"


@dataclass(frozen=True)
class Index:
    """A running pypiserver: where to upload, where pip reads, where the files land."""

    upload_url: str
    simple_url: str
    packages: Path

    @property
    def simple_url_with_password(self) -> str:
        """The simple API with the credentials in it, as pip takes them."""
        return self.simple_url.replace("http://", f"http://{USER}:{PASSWORD}@")


@contextmanager
def running_index(folder: Path) -> Iterator[Index]:
    """pypiserver serving ``folder``/packages until the block ends."""
    packages = folder / "packages"
    packages.mkdir()
    # {SHA} is one of the htpasswd schemes pypiserver checks (through passlib).
    digest = base64.b64encode(hashlib.sha1(PASSWORD.encode()).digest()).decode()
    (folder / "htpasswd").write_text(f"{USER}:{{SHA}}{digest}\n")
    port = free_port()
    log = (folder / "pypiserver.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable, "-m", "pypiserver", "run",
            "--host", "127.0.0.1", "--port", str(port),
            "--authenticate", "update,download,list",
            "--passwords", str(folder / "htpasswd"),
            "--disable-fallback",
            str(packages),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                said = (folder / "pypiserver.log").read_text(errors="replace")
                raise RuntimeError(f"pypiserver did not start on port {port}:\n{said}")
            time.sleep(0.05)
        yield Index(base + "/", base + "/simple/", packages)
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
