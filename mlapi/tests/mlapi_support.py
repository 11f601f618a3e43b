"""Helpers the API tests share: metric scrapes, running servers, generated records.

A module of its own rather than conftest.py, so that tests import it by a name no other
test directory uses (pytest may run several directories' tests in one process).
"""

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import psycopg
import pytest
import stack_tools
from prometheus_client.parser import text_string_to_metric_families

import mlapi
import yield_model
from mlapi.keys import SCOPES, key_line
from yield_model import datasets
from yield_model.columns import FEATURE_COLUMNS

#: The tests' API key, with every scope, in the key file every app and server of the tests
#: reads (``write_test_key_file``); its header goes with every request that needs a key.
TEST_KEY = "mlapi_tests-key-with-every-scope"
AUTH = {"Authorization": f"Bearer {TEST_KEY}"}
#: The versions of the packages installed, which the service reports: never written out, so
#: that a release changes only the VERSION files.
MODEL_VERSION: str = yield_model.__version__
API_VERSION: str = mlapi.__version__


def write_test_key_file(path: Path) -> Path:
    """A key file holding the tests' key."""
    path.write_text(key_line(TEST_KEY, list(SCOPES), "tests") + "\n", encoding="utf-8")
    return path


class Scrape:
    """One read of /metrics, looked up by sample name and exact labels."""

    def __init__(self, text: str) -> None:
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 if the series does not exist (yet)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def series(self, name: str) -> list[dict[str, str]]:
        """The label sets of every sample of this name."""
        return [dict(labels) for (n, labels) in self.samples if n == name]


class RunningServer:
    """An ``mlapi-serve`` process and where to reach it."""

    def __init__(self, process: subprocess.Popen[str], port: int, log: Path) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.log = log

    def scrape(self) -> Scrape:
        return Scrape(httpx.get(f"{self.url}/metrics", headers=AUTH, timeout=30).text)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8")

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]


def generated_records(rows: int, seed: int, *, shifted: bool = False) -> list[dict[str, Any]]:
    """Records of the package's data generator, cells as the published files have them."""
    frame = datasets.generate(rows, seed, shifted=shifted).frame[list(FEATURE_COLUMNS)]
    return [
        {str(name): None if pd.isna(value) else value for name, value in row.items()}
        for row in frame.to_dict("records")
    ]


class Postgres(ABC):
    """A PostgreSQL 15 server of the tests' own, for the session: databases made on demand."""

    def __init__(self) -> None:
        self._databases = 0

    @abstractmethod
    def start(self) -> None:
        """Start the server and wait until it answers."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the server and remove its data."""

    @abstractmethod
    def url(self, database: str = "postgres") -> str:
        """The URL of a database of this server."""

    def new_database(self) -> str:
        """The URL of a new, empty database."""
        self._databases += 1
        name = f"log_{self._databases}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}".encode())
        return self.url(name)


def start_postgres() -> Postgres:
    """A PostgreSQL 15 server, started: the installed one's binaries, or else the stack's
    postgres image through Docker (stack_tools); with neither, the test fails saying what to
    install."""
    pg_ctl = stack_tools.installed(stack_tools.PG_CTL)
    server: Postgres
    if pg_ctl:
        server = PostgresServer(Path(pg_ctl).parent)
    else:
        server = PostgresContainer(stack_tools.image(stack_tools.PG_CTL))
    server.start()
    return server


class PostgresServer(Postgres):
    """A server in a temporary directory, on a Unix socket only, from installed binaries
    (Debian's postgresql-15); as root, run as the ``postgres`` user (the server refuses to run
    as root). ``durable`` keeps the server's own defaults (an fsync of the WAL per commit, as
    in production: what the benchmarks measure); without it fsync is off, since a crash of the
    machine is not what the tests check.
    """

    BINDIR = Path(stack_tools.PG_CTL.default or "").parent

    def __init__(self, bindir: Path = BINDIR, *, durable: bool = False) -> None:
        super().__init__()
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="mlapi-pg-"))
        self.durable = durable
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    @classmethod
    def missing(cls) -> str | None:
        """Why no server can be started here from the installed binaries, or None."""
        if not (cls.BINDIR / "pg_ctl").exists():
            return f"no PostgreSQL 15 in {cls.BINDIR} (apt-get install postgresql-15)"
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                return "running as root and there is no postgres user to run the server as"
        return None

    def _run(self, tool: str, *args: str) -> None:
        command = [*self._as_user, str(self.bindir / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stdout}{done.stderr}")

    def start(self) -> None:
        data = self.root / "data"
        self._run(
            "initdb",
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        options = f"-k {self.root} -c listen_addresses='' -c max_connections=300"
        if not self.durable:
            options += " -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(data),
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-o",
            options,
            "start",
        )

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """The URL of a database of this server."""
        return f"postgresql://postgres@/{database}?host={self.root}"


class PostgresContainer(Postgres):
    """The same server from the stack's postgres image, as a container published on a free
    loopback port, fsync off, trusting connections (nothing but the tests can reach it)."""

    READY_WITHIN_S = 120

    def __init__(self, image: str) -> None:
        super().__init__()
        self.image = image
        self.name = stack_tools.container_name("mlapi-tests-postgres")
        self.port = stack_tools.free_port()

    def start(self) -> None:
        subprocess.run(
            ["docker", "run", "--detach", "--name", self.name,
             "--publish", f"127.0.0.1:{self.port}:5432",
             # a password for the superuser, which the image's set-up wants, though never asked
             "--env", "POSTGRES_HOST_AUTH_METHOD=trust",
             "--env", f"POSTGRES_PASSWORD={secrets.token_urlsafe(16)}", self.image,
             "postgres", "-c", "max_connections=300", "-c", "fsync=off"],
            capture_output=True, text=True, check=True, timeout=120,
        )  # fmt: skip
        deadline = time.monotonic() + self.READY_WITHIN_S
        while True:
            try:
                # The image's entrypoint restarts the server after its first set-up: ready
                # means it answers a query on the published port.
                with psycopg.connect(self.url(), connect_timeout=5) as connection:
                    connection.execute("SELECT 1")
                return
            except psycopg.OperationalError as error:
                if time.monotonic() > deadline:
                    logs = subprocess.run(
                        ["docker", "logs", "--tail", "40", self.name],
                        capture_output=True, text=True, check=False,
                    )  # fmt: skip
                    self.stop()
                    raise RuntimeError(
                        f"{self.image} did not answer within {self.READY_WITHIN_S}s ({error}):"
                        f"\n{logs.stdout}{logs.stderr}"
                    ) from error
                time.sleep(1)

    def stop(self) -> None:
        subprocess.run(
            ["docker", "rm", "--force", "--volumes", self.name],
            capture_output=True, check=False, timeout=120,
        )  # fmt: skip

    def url(self, database: str = "postgres") -> str:
        """The URL of a database of this server."""
        # with a query, as the other's URL has, so that tests can add options with "&"
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}?sslmode=disable"


#: The backends every parametrised log test runs against.
BACKENDS = ("sqlite", "postgresql")


def new_log_url(request: pytest.FixtureRequest, backend: str, directory: Path) -> str:
    """The URL of a new, empty log of the backend: a file in directory, or a new database of
    the session's server (fixture ``postgres_server``)."""
    if backend == "sqlite":
        return f"sqlite://{directory / 'log' / 'predictions.db'}"
    server: Postgres = request.getfixturevalue("postgres_server")
    return server.new_database()
