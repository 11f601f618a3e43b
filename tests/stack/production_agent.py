"""The ECS task's Prometheus agent, run here for real: Prometheus (as installed, or else from
the stack's image) in agent mode with the configuration yield_deploy renders for the sidecar,
scraping the stack's API and remote-writing into a second local Prometheus that stands in for
the AMP workspace.

What differs from the task, and why: the write is not signed (SigV4 needs AWS; the config
is rendered for a plain URL, which is what metrics_agent.config does without a region), the
scrape target is the API's host port instead of 127.0.0.1:8001 inside the task, and the files
live in a temporary directory instead of the image's /prometheus.
"""

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import stack_tools
import yaml
from compose_stack import ROOT, free_port

from yield_deploy import metrics_agent

READY_WITHIN_S = 120


def prometheus_binary(directory: Path) -> str:
    """prometheus as installed, or else from the stack's image on the host's network, as
    stack_tools finds it."""
    return stack_tools.executable(
        stack_tools.PROMETHEUS, directory, "host", (metrics_agent.TASK_VARIABLE,)
    )


@dataclass(frozen=True)
class Pipeline:
    """A running agent and the receiver it writes to."""

    receiver_url: str
    agent_url: str


@contextmanager
def running(binary: str, directory: Path, api_port: int, metrics_key: str) -> Iterator[Pipeline]:
    """Start the receiver (loading prometheus/alerts.yml, as the workspace does) and the agent;
    stop both after."""
    receiver_port, agent_port = free_port(), free_port()
    receiver_config = directory / "receiver.yml"
    receiver_config.write_text(
        yaml.safe_dump(
            {
                "global": {"evaluation_interval": "15s"},
                "rule_files": [str(ROOT / "prometheus" / "alerts.yml")],
            }
        ),
        encoding="utf-8",
    )
    key_file = directory / "metrics.key"
    key_file.write_text(metrics_key, encoding="utf-8")
    agent_config = directory / "agent.yml"
    config = metrics_agent.config(
        f"http://127.0.0.1:{receiver_port}/api/v1/write",
        port=api_port,
        sigv4_region=None,
        key_file=str(key_file),
    )
    agent_config.write_text(json.dumps(config), encoding="utf-8")
    receiver = [
        binary,
        f"--config.file={receiver_config}",
        f"--storage.tsdb.path={directory / 'receiver-data'}",
        f"--web.listen-address=127.0.0.1:{receiver_port}",
        "--web.enable-remote-write-receiver",
    ]
    agent = [
        binary,
        *metrics_agent.flags(
            str(agent_config), str(directory / "agent-data"), f"127.0.0.1:{agent_port}"
        ),
    ]
    env = {**os.environ, metrics_agent.TASK_VARIABLE: "stack-test-task"}
    logs = [(directory / f"{name}.log").open("wb") for name in ("receiver", "agent")]
    processes = [
        subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        for command, log in zip((receiver, agent), logs, strict=True)
    ]
    try:
        pipeline = Pipeline(f"http://127.0.0.1:{receiver_port}", f"http://127.0.0.1:{agent_port}")
        for url, process in zip(
            (pipeline.receiver_url, pipeline.agent_url), processes, strict=True
        ):
            wait_ready(url, process, directory)
        yield pipeline
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()


def wait_ready(url: str, process: subprocess.Popen[bytes], directory: Path) -> None:
    deadline = time.monotonic() + READY_WITHIN_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            logs = "\n".join(p.read_text() for p in directory.glob("*.log"))
            pytest.fail(f"{process.args[1:3]} exited {process.returncode}:\n{logs[-4000:]}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    pytest.fail(f"{url} was not ready within {READY_WITHIN_S}s")
