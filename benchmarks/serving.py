"""A local ``mlapi-serve`` for the benchmarks that measure a real server: its own temporary
directory, port and SQLite log, started, waited for and stopped."""

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import portpicker

HEALTHY_WITHIN_S = 180


@dataclass(frozen=True)
class Server:
    """A running ``mlapi-serve``."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def serving(settings: dict[str, str], prefix: str) -> Iterator[Server]:
    """``mlapi-serve`` with ``settings`` (``MLAPI_*`` variables) over this process's
    environment without its own ``MLAPI_*``; healthy when entered, stopped at exit."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    port = portpicker.pick_unused_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLAPI_", "PROMETHEUS_"))}
    env = base | {
        "MLAPI_HOST": "127.0.0.1",
        "MLAPI_PORT": str(port),
        "MLAPI_MULTIPROC_DIR": str(work / "metrics"),
        "MLAPI_PREDICTION_LOG_URL": f"sqlite://{work / 'predictions.db'}",
        "MLAPI_LOG_LEVEL": "warning",
        **settings,
    }
    with (work / "server.log").open("w") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("mlapi-serve"))], env=env, stdout=out, stderr=out
        )
    server = Server(process, port)
    try:
        deadline = time.monotonic() + HEALTHY_WITHIN_S
        while True:
            try:
                if httpx.get(f"{server.url}/api/v1/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlapi-serve did not become healthy; its log: {work}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=60)
