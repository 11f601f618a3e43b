"""Helpers the API tests share: metric scrapes, running servers, generated records.

A module of its own rather than conftest.py, so that tests import it by a name no other
test directory uses (pytest may run several directories' tests in one process).
"""

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

from yield_model import datasets
from yield_model.columns import FEATURE_COLUMNS


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
        return Scrape(httpx.get(f"{self.url}/metrics", timeout=30).text)

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
