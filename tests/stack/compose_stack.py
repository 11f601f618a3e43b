"""Driving docker-compose.yml from the tests: the compose command, the running stack, waits."""

import csv
import fcntl
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
from docker.models.containers import Container
from docker.models.networks import Network
from stack_tools import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
# Bounds on waiting, so that a broken stack fails the run instead of hanging it.
HEALTHY_WITHIN_S = 300
BUILD_WITHIN_S = 3600


@dataclass(frozen=True)
class Stack:
    """A running mlapi + PostgreSQL + Prometheus + Alertmanager of docker-compose.yml, with
    the test's override file (tests/stack/conftest.py) on top."""

    compose: list[str]
    project: str
    env_file: Path
    override: Path
    env: dict[str, str]
    api_url: str
    prometheus_url: str
    alertmanager_url: str
    docker: Any

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run a compose command on this stack's project."""
        return subprocess.run(
            [
                *self.compose,
                "--env-file",
                str(self.env_file),
                "-p",
                self.project,
                "-f",
                str(COMPOSE_FILE),
                "-f",
                str(self.override),
                *args,
            ],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=ROOT,
            timeout=timeout,
            check=False,
        )

    def container(self, service: str) -> Container:
        """The service's container, found by the labels both compose versions set."""
        (found,) = self.docker.containers.list(
            all=True,
            filters={
                "label": [
                    f"com.docker.compose.project={self.project}",
                    f"com.docker.compose.service={service}",
                ]
            },
        )
        return found


@dataclass(frozen=True)
class SqlResult:
    """What psql printed for a query: its column names and rows, every value as text."""

    columns: list[str]
    rows: list[list[str]]


def psql(stack: Stack, sql: str, *, user: str, password: str) -> SqlResult:
    """Run one SQL statement on the stack's database as ``user``, over the compose network as
    the other services connect, with psql in the postgres container; fails the test on an
    error."""
    done = try_psql(stack, sql, user=user, password=password)
    assert done.returncode == 0, f"{sql}\n{done.stderr}"
    header, *rows = csv.reader(io.StringIO(done.stdout))
    return SqlResult(header, rows)


def try_psql(
    stack: Stack, sql: str, *, user: str, password: str
) -> subprocess.CompletedProcess[str]:
    """psql's exit status, output and errors for one statement (see ``psql``)."""
    command = [
        "psql", "--no-psqlrc", "--csv", "--set=ON_ERROR_STOP=1", "--host=postgres",
        f"--username={user}", "--dbname=mlapi", "--command", sql,
    ]  # fmt: skip
    code, (out, err) = stack.container("postgres").exec_run(
        command, environment={"PGPASSWORD": password}, demux=True
    )
    return subprocess.CompletedProcess(
        command, code, (out or b"").decode(), (err or b"").decode(errors="replace")
    )


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail when CI promised a Docker engine."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def compose_command() -> list[str] | None:
    """`docker compose` (v2) if it answers, else `docker-compose` (v1), else None."""
    docker_cli = shutil.which("docker")
    if docker_cli:
        probe = subprocess.run([docker_cli, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker_cli, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


#: Linux's ioctl for an interface's IPv4 address (<linux/sockios.h>).
SIOCGIFADDR = 0x8915


def bridge_gateway(bridge: Network) -> str:
    """The host's address on Docker's default bridge, the one ``host-gateway`` names: the
    network's gateway where Docker reports it, else the address of its interface (an engine
    started on an existing docker0 reports only the subnet)."""
    reported = {c["Gateway"] for c in bridge.attrs["IPAM"]["Config"] if c.get("Gateway")}
    if reported:
        (gateway,) = reported
        return str(gateway)
    interface = bridge.attrs["Options"]["com.docker.network.bridge.name"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("256s", interface.encode()[:15])
        answer = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, request)
    return socket.inet_ntoa(answer[20:24])


class WebhookReceiver:
    """An HTTP server that keeps every JSON body POSTed to it: Alertmanager's webhook."""

    def __init__(self, host: str) -> None:
        self.bodies: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.keep(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, free_port(host)), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def keep(self, body: dict[str, Any]) -> None:
        """Record a body received, waking whoever waits for one."""
        with self._changed:
            self.bodies.append(body)
            self._changed.notify_all()

    def received(self) -> int:
        """How many bodies have come so far: a mark for ``wait_for``'s ``since``."""
        with self._changed:
            return len(self.bodies)

    def wait_for(
        self, found: Callable[[dict[str, Any]], bool], within_s: float, what: str, since: int
    ) -> dict[str, Any]:
        """The first body received after the first ``since`` for which ``found`` holds,
        waiting up to ``within_s``."""
        deadline = time.monotonic() + within_s
        with self._changed:
            while True:
                for body in self.bodies[since:]:
                    if found(body):
                        return body
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"no {what} within {within_s}s; received: {self.bodies}")
                self._changed.wait(left)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def wait_healthy(stack: Stack, service: str) -> None:
    """Wait until Docker reports the service's healthcheck as passing."""
    deadline = time.monotonic() + HEALTHY_WITHIN_S
    while time.monotonic() < deadline:
        container = stack.container(service)
        state = container.attrs["State"]
        health = state.get("Health", {}).get("Status")
        if health == "healthy":
            return
        if health == "unhealthy" or state["Status"] == "exited":
            logs = container.logs(tail=50).decode(errors="replace")
            pytest.fail(f"{service} is {health or state['Status']}:\n{logs}")
        time.sleep(2)
    pytest.fail(f"{service} was not healthy within {HEALTHY_WITHIN_S}s")


def wait_scraped(stack: Stack) -> None:
    """Wait until Prometheus has scraped the API successfully."""
    deadline = time.monotonic() + HEALTHY_WITHIN_S
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(
                f"{stack.prometheus_url}/api/v1/query", params={"query": 'up{job="mlapi"} == 1'}
            )
            if answer.status_code == 200 and answer.json()["data"]["result"]:
                return
        except httpx.TransportError:
            pass
        time.sleep(2)
    pytest.fail(f"Prometheus did not scrape the API within {HEALTHY_WITHIN_S}s")
