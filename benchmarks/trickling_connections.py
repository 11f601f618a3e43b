"""Probes while 2,000 connections trickle their headers: latency of a real ``mlapi-serve``.

Starts ``mlapi-serve`` as the README does (one process per CPU unless ``--workers``), measures
probes (``GET /api/v1/health`` and a one-record ``POST /api/v1/predict``, each on a fresh
connection, as a balancer's health check and a plant client open them) with nothing else
connected, then opens ``--connections`` connections that send a request's headers a byte
every second and never end them, and measures the probes again while they are held. Target
(issue 14): the probes' p99 stays under 50 ms while the slow connections are held, and none
fails. Run from the repository root (not part of ``tox``; nothing is asserted)::

    python benchmarks/trickling_connections.py
"""

import argparse
import contextlib
import http.client
import os
import platform
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from peers.run import write_section
from serving import serving

from mlapi.keys import key_line
from yield_model.schemas import EXAMPLE_RECORD

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
MARK_START, MARK_END = "<!-- trickling:start -->", "<!-- trickling:end -->"
TARGET_P99_MS = 50.0
KEY = "mlapi_" + os.urandom(32).hex()


@dataclass(frozen=True)
class Probes:
    """Latencies of one kind of probe, in ms, and how many failed."""

    name: str
    held: int
    latencies_ms: list[float]
    failures: int

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _probe(port: int, path: str, body: bytes | None) -> float:
    """One probe on a fresh connection; its latency in ms (raises when it fails).

    ``http.client``: a client whose own set-up (httpx builds an SSL context per client)
    would be most of what is measured.
    """
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET" if body is None else "POST", path, body, headers)
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status != 200:
        raise http.client.HTTPException(f"{path}: {response.status}")
    return elapsed


def _probes(port: int, held: int, count: int) -> list[Probes]:
    record = orjson.dumps({"inputs": [EXAMPLE_RECORD]})
    results = []
    for name, path, body in (
        ("GET /api/v1/health", "/api/v1/health", None),
        ("POST /api/v1/predict, one record", "/api/v1/predict", record),
    ):
        latencies, failures = [], 0
        for _ in range(count):
            try:
                latencies.append(_probe(port, path, body))
            except (OSError, http.client.HTTPException):
                failures += 1
            time.sleep(0.02)
        results.append(Probes(name, held, latencies, failures))
    return results


class Trickle:
    """Connections that send a request's headers a byte a second, never ending them."""

    def __init__(self, port: int, count: int) -> None:
        self.sockets: list[socket.socket] = []
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: mlapi\r\nX-Slow: ")
            self.sockets.append(sock)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            for sock in self.sockets:
                with contextlib.suppress(OSError):  # closed by the server: counted at the end
                    sock.sendall(b"x")

    def still_open(self) -> int:
        """How many the server has not closed."""
        alive = 0
        for sock in self.sockets:
            sock.setblocking(False)
            try:
                alive += sock.recv(1, socket.MSG_PEEK) != b""
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        return alive

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()


def run(connections: int, probes: int, workers: str | None) -> tuple[list[Probes], int]:
    """Probes before and while the connections are held; and how many stayed open."""
    settings = {"MLAPI_API_KEYS": key_line(KEY, ("predict",), "trickling-benchmark")}
    if workers:
        settings["MLAPI_WORKERS"] = workers
    with serving(settings, "trickling-bench-") as server:
        port = server.port
        results = _probes(port, 0, probes)
        trickle = Trickle(port, connections)
        try:
            time.sleep(3)  # a few bytes on every connection first
            results += _probes(port, connections, probes)
            alive = trickle.still_open()
        finally:
            trickle.close()
    return results, alive


def section(results: list[Probes], alive: int, load: tuple[float, float]) -> str:
    """This benchmark's README section."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        MARK_START,
        "## Probes while 2,000 connections trickle their headers (issue 14)",
        "",
        "`trickling_connections.py` starts `mlapi-serve` as the README does and measures probes,",
        "each on a fresh connection (`GET /api/v1/health`, as a balancer checks; a one-record",
        "predict, as the plant's software sends), first alone, then while connections send a",
        "request's headers a byte a second and never end them. Target: the probes' p99 under",
        f"{TARGET_P99_MS:g} ms while the slow connections are held, and none fails.",
        "Run from the repository root (not part of `tox`; nothing is asserted):",
        "",
        "    python benchmarks/trickling_connections.py",
        "",
        f"### Last run: {stamp}",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; load average {load[0]:.1f} at the start, {load[1]:.1f} "
        f"at the end. Slow connections still open when the probes ended: {alive}.",
        "",
        "| probe | slow connections held | probes | failed | p50 ms | p99 ms | target |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        p99 = r.quantile(0.99)
        met = "met" if p99 < TARGET_P99_MS and not r.failures else "**not met**"
        lines.append(
            f"| {r.name} | {r.held:,} | {len(r.latencies_ms) + r.failures} | {r.failures} | "
            f"{statistics.median(r.latencies_ms):.1f} | {p99:.1f} | {met if r.held else ''} |"
        )
    lines += ["", MARK_END]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--workers", help="MLAPI_WORKERS (default: the service's own)")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args()
    start_load = os.getloadavg()[0]
    results, alive = run(args.connections, args.probes, args.workers)
    text = section(results, alive, (start_load, os.getloadavg()[0]))
    print(text)
    write_section(args.readme, text, MARK_START, MARK_END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
