"""A worker's memory under hostile bodies: RSS of a real ``mlapi-serve`` worker (issue 14).

Starts ``mlapi-serve`` with one worker, warms it with valid requests, then sends each hostile
body in turn and reads the worker's ``VmRSS`` from ``/proc`` before and after it, and its peak
(``VmHWM``, reset before each body through ``/proc/PID/clear_refs``). The target: a body the
limits refuse grows the worker's RSS by at most 3x its size, and never past 400 MB. Run it
from the repository root (not part of ``tox``; nothing is asserted)::

    python benchmarks/hostile_memory.py
"""

import argparse
import os
import platform
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
from peers.run import write_section
from serving import serving

from yield_model.columns import FEATURE_COLUMNS
from yield_model.schemas import EXAMPLE_RECORD

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
MARK_START, MARK_END = "<!-- hostile-memory:start -->", "<!-- hostile-memory:end -->"
TARGET_RATIO, TARGET_CEILING_MB = 3.0, 400.0
MB = 1_000_000
UUID = "0193a5c2-7e41-7c3a-9d51-4f2b8e0a6c11"


def _inputs(records: bytes) -> bytes:
    return b'{"inputs": [' + records + b"]}"


def _empty_records() -> bytes:
    return _inputs(b",".join([b"{}"] * (30 * MB // 3)))


def _invalid_records() -> bytes:
    # every field of 10,000 records (the limit) of the wrong type: 440,000 bad values
    return orjson.dumps({"inputs": [dict.fromkeys(FEATURE_COLUMNS, True)] * 10_000})


def _padded_record() -> bytes:
    return _inputs(orjson.dumps(EXAMPLE_RECORD) + b" " * (30 * MB))


def _long_text() -> bytes:
    return _inputs(orjson.dumps({**EXAMPLE_RECORD, "A20": "x" * (30 * MB)}))


def _empty_arrays() -> bytes:
    return _inputs(b",".join([b"[]"] * (30 * MB // 3)))


def _feedback_list() -> bytes:
    item = orjson.dumps({"prediction_id": UUID, "actual_yield": 0.9})
    return b'{"feedback": [' + b",".join([item] * (30 * MB // (len(item) + 1))) + b"]}"


def _empty_feedback() -> bytes:
    return b'{"feedback": [' + b",".join([b"{}"] * (30 * MB // 3)) + b"]}"


def _valid_records() -> bytes:
    # the largest batch the limits accept, for sizing a worker (not a refused body)
    return orjson.dumps({"inputs": [EXAMPLE_RECORD] * 10_000})


def _invalid_feedback() -> bytes:
    # 10,000 items (the limit), each with a yield out of range
    return orjson.dumps({"feedback": [{"prediction_id": UUID, "actual_yield": 2}] * 10_000})


#: Bodies sent at once in the rows that say so: as many as the issue's six concurrent uploads.
AT_ONCE = 6

#: name, path, body builder, how many are sent at once
BODIES: tuple[tuple[str, str, Callable[[], bytes], int], ...] = (
    ("30 MB of `{}` records", "/api/v1/predict", _empty_records, 1),
    ("30 MB of `[]` records", "/api/v1/predict", _empty_arrays, 1),
    ("10,000 records, every value invalid", "/api/v1/predict", _invalid_records, 1),
    ("one record padded with 30 MB of spaces", "/api/v1/predict", _padded_record, 1),
    ("one record with a 30 MB string", "/api/v1/predict", _long_text, 1),
    (f"{AT_ONCE} records with a 30 MB string, at once", "/api/v1/predict", _long_text, AT_ONCE),
    ("10,000 valid records", "/api/v1/predict", _valid_records, 1),
    (
        f"{AT_ONCE} bodies of 10,000 valid records, at once",
        "/api/v1/predict",
        _valid_records,
        AT_ONCE,
    ),
    ("30 MB of feedback items", "/api/v1/feedback", _feedback_list, 1),
    ("30 MB of `{}` feedback items", "/api/v1/feedback", _empty_feedback, 1),
    ("10,000 feedback items, every yield invalid", "/api/v1/feedback", _invalid_feedback, 1),
)


@dataclass(frozen=True)
class Measured:
    """One hostile body's effect on the worker."""

    name: str
    body_mb: float
    #: the answers' status and error code, e.g. ``422 invalid_input``, with their counts
    answers: dict[str, int]
    rss_growth_mb: float
    peak_growth_mb: float

    @property
    def allowed_mb(self) -> float:
        """The target for one body; bodies sent at once are a worker's sizing, not a target."""
        return min(TARGET_RATIO * self.body_mb, TARGET_CEILING_MB)

    @property
    def accepted(self) -> str:
        """What the target column says of a row without a target."""
        return "at once" if sum(self.answers.values()) > 1 else "accepted"

    @property
    def refused(self) -> bool:
        return sum(self.answers.values()) == 1 and not next(iter(self.answers)).startswith("2")


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def _worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    (pid,) = children
    return int(pid)


def _answer(client: httpx.Client, path: str, body: bytes) -> str:
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    code = response.json()["detail"]["code"] if response.status_code >= 400 else ""
    return f"{response.status_code} {code}".strip()


def _measure(
    client: httpx.Client, pid: int, name: str, path: str, body: bytes, *, copies: int
) -> Measured:
    time.sleep(0.5)
    before = _status_kb(pid, "VmRSS")
    _reset_peak(pid)
    with ThreadPoolExecutor(copies) as pool:
        answers = Counter(pool.map(lambda _: _answer(client, path, body), range(copies)))
    time.sleep(0.5)
    after, peak = _status_kb(pid, "VmRSS"), _status_kb(pid, "VmHWM")
    return Measured(
        name, len(body) / MB, dict(answers), (after - before) / 1e3, (peak - before) / 1e3
    )


def _fresh_worker(client: httpx.Client, master: int) -> int:
    """Replace the worker (gunicorn starts another), wait for it, warm it; its pid."""
    old = _worker_pid(master)
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 180
    while True:
        try:
            pid = _worker_pid(master)
            if pid != old and client.get("/api/v1/health").status_code == 200:
                break
        except (ValueError, httpx.TransportError):  # no worker yet, or not listening
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("no new worker")
        time.sleep(0.2)
    for _ in range(3):  # warm: valid 1,000-record batches, as a worker in service has seen
        client.post("/api/v1/predict", json={"inputs": [EXAMPLE_RECORD] * 1000})
    return pid


def run() -> tuple[list[Measured], float]:
    """Start the server, send every body; the results and the worker's RSS after warm-up."""
    settings = {
        "MLAPI_WORKERS": "1",
        # A key is checked before the body is read: without keys every body reaches the
        # limits, the case where the memory is spent (a caller who holds a key).
        "MLAPI_AUTH": "disabled",
    }
    with (
        serving(settings, "bounded-bench-") as server,
        httpx.Client(base_url=server.url, timeout=300) as client,
    ):
        results, warm = [], 0.0
        for name, path, build, copies in BODIES:
            body = build()
            # Each body to a fresh worker: one that had grown its heap for an earlier
            # body would serve the next from memory it already holds.
            pid = _fresh_worker(client, server.process.pid)
            warm = max(warm, _status_kb(pid, "VmRSS") / 1e3)
            results.append(_measure(client, pid, name, path, body, copies=copies))
            del body
    return results, warm


def section(results: list[Measured], warm_mb: float, load: tuple[float, float]) -> str:
    """This benchmark's README section."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        MARK_START,
        "## A worker's memory under hostile bodies (issue 14)",
        "",
        "`hostile_memory.py` runs `mlapi-serve` with one worker and, for each body below, has",
        "gunicorn start a fresh worker (the previous one is killed), warms it with three valid",
        "1,000-record batches, sends it the body and reads the worker's",
        "`VmRSS` from `/proc` before and after it, and its peak `VmHWM` (reset before each body",
        "through `/proc/PID/clear_refs`). Target: a body the limits refuse grows a worker's RSS",
        f"by at most {TARGET_RATIO:g}x its size and never past {TARGET_CEILING_MB:g} MB.",
        "Run from the repository root (not part of `tox`; nothing is asserted):",
        "",
        "    python benchmarks/hostile_memory.py",
        "",
        f"### Last run: {stamp}",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; load average {load[0]:.1f} at the start, {load[1]:.1f} "
        f"at the end. A worker's RSS after warm-up: at most {warm_mb:.0f} MB.",
        "",
        "| body | MB | answer | RSS growth MB | peak growth MB | allowed MB | target |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for m in results:
        met = "met" if max(m.rss_growth_mb, m.peak_growth_mb) <= m.allowed_mb else "**not met**"
        answers = ", ".join(
            answer if count == 1 else f"{count}x {answer}" for answer, count in m.answers.items()
        )
        lines.append(
            f"| {m.name} | {m.body_mb:.1f} | {answers} | {m.rss_growth_mb:.1f} | "
            f"{m.peak_growth_mb:.1f} | {m.allowed_mb:.0f} | {met if m.refused else m.accepted} |"
        )
    lines += ["", MARK_END]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    results, warm = run()
    text = section(results, warm, (load_before, os.getloadavg()[0]))
    print(text)
    write_section(args.readme, text + "\n", MARK_START, MARK_END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
