"""Helpers the API tests share: metric scrapes, running servers, generated records.

A module of its own rather than conftest.py, so that tests import it by a name no other
test directory uses (pytest may run several directories' tests in one process).
"""

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import psycopg
import pytest
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


class PostgresServer:
    """A PostgreSQL server of the tests' own, in a temporary directory, on a Unix socket only.

    Started from Debian's postgresql-15 binaries; as root, run as the ``postgres`` user (the
    server refuses to run as root). ``durable`` keeps the server's own defaults (an fsync of
    the WAL per commit, as in production: what the benchmarks measure); without it fsync is
    off, since a crash of the machine is not what the tests check.
    """

    BINDIR = Path("/usr/lib/postgresql/15/bin")

    def __init__(self, *, durable: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mlapi-pg-"))
        self.durable = durable
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._databases = 0

    @classmethod
    def missing(cls) -> str | None:
        """Why no server can be started here, or None."""
        if not (cls.BINDIR / "pg_ctl").exists():
            return f"no PostgreSQL 15 in {cls.BINDIR} (apt-get install postgresql-15)"
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                return "running as root and there is no postgres user to run the server as"
        return None

    def _run(self, tool: str, *args: str) -> None:
        command = [*self._as_user, str(self.BINDIR / tool), *args]
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

    def new_database(self) -> str:
        """The URL of a new, empty database."""
        self._databases += 1
        name = f"log_{self._databases}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}".encode())
        return self.url(name)


#: The backends every parametrised log test runs against.
BACKENDS = ("sqlite", "postgresql")


def new_log_url(request: pytest.FixtureRequest, backend: str, directory: Path) -> str:
    """The URL of a new, empty log of the backend: a file in directory, or a new database of
    the session's server (fixture ``postgres_server``)."""
    if backend == "sqlite":
        return f"sqlite://{directory / 'log' / 'predictions.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()
