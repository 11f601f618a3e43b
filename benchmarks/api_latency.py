"""Benchmark the API against the in-process floor, in one run, on this machine (issue 3).

Measures, interleaved call by call so that the machine's load hits every kind alike:

- single-record requests to a real ``mlapi-serve`` (p50, p99);
- the same record predicted in-process by ``make_prediction`` (the floor);
- a bare uvicorn round trip to a trivial Starlette app (the HTTP floor);
- 1,000-record batches through the API and in-process (throughput, records/s).

Then times the steps the API adds (JSON parsing, validation, response building, metrics) and
writes the results and ratios to ``benchmarks/README.md``. Run it from the repository root with
the API and the model package installed::

    python benchmarks/api_latency.py            # ~3-5 minutes

It is not part of the test suite and asserts nothing: the targets are reported, not enforced.
"""

import argparse
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import portpicker
from prometheus_client.parser import text_string_to_metric_families

from mlapi.keys import key_line, new_key
from yield_model.columns import TARGET_COLUMN
from yield_model.datasets import generate
from yield_model.predict import load_model, make_prediction
from yield_model.schemas import validate_request

HERE = Path(__file__).resolve().parent
SINGLE_TARGET = 1.5  # single-record p50 at most 1.5x (in-process floor + bare round trip)
BATCH_TARGET = 0.8  # batch throughput at least 0.8x in-process
#: This benchmark rewrites only its own section of the README; peers/run.py writes another.
MARK_START, MARK_END = "<!-- api-latency:start -->", "<!-- api-latency:end -->"


@dataclass
class Context:
    """What the report says about the run besides the timings."""

    load_before: float
    load_after: float
    body_bytes: int
    response_bytes: int


@dataclass
class Samples:
    """Seconds per call of each kind of measurement."""

    times: dict[str, list[float]] = field(default_factory=dict)
    #: Bytes of the last request and response body of an HTTP batch.
    batch_bytes: tuple[int, int] = (0, 0)
    #: Client seconds of each HTTP request, by its request id.
    client_by_id: dict[str, float] = field(default_factory=dict)
    #: Per HTTP kind: (seconds, requests) of model time the server itself measured.
    model_time: dict[str, tuple[float, int]] = field(default_factory=dict)

    def server_model_seconds(self, kind: str) -> float:
        seconds, count = self.model_time.get(kind, (float("nan"), 1))
        return seconds / count

    def add(self, kind: str, seconds: float) -> None:
        self.times.setdefault(kind, []).append(seconds)

    def p(self, kind: str, q: float) -> float:
        return float(np.percentile(self.times[kind], q))


def _records(n: int, seed: int) -> list[dict[str, Any]]:
    """Rows of a generated file as the plant would send them: text cells, nulls for blanks."""
    frame = generate(n, seed).frame.drop(columns=[TARGET_COLUMN])
    frame = frame.astype(object).where(frame.notna(), None)
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    sys.exit(f"server at {url} not up after 180 s")


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _inference_totals(client: httpx.Client, url: str) -> tuple[float, int]:
    """The server's mlapi_model_inference_seconds sum and count, over all series."""
    seconds, count = 0.0, 0
    for family in text_string_to_metric_families(client.get(url).text):
        for sample in family.samples:
            if sample.name == "mlapi_model_inference_seconds_sum":
                seconds += sample.value
            elif sample.name == "mlapi_model_inference_seconds_count":
                count += int(sample.value)
    return seconds, count


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _server_durations(log: Path) -> dict[str, float]:
    """Seconds the server logged for each benchmark request, by request id."""
    out = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        if '"bench-' in line:
            entry = orjson.loads(line)
            out[entry["request_id"]] = entry["duration_ms"] / 1000
    return out


def _steps(records: list[dict[str, Any]]) -> dict[str, float]:
    """Median seconds of each step of a prediction, in-process."""
    from mlapi import metrics
    from mlapi.api import prediction_results
    from mlapi.prediction_log import new_prediction_ids

    model = load_model()
    body = orjson.dumps({"inputs": records})
    result = model.predict_json(body)
    ids = new_prediction_ids(len(records))

    steps: dict[str, Callable[[], object]] = {
        "validate the body (package)": lambda: validate_request(body),
        "model.predict_json (package, validation included)": lambda: model.predict_json(body),
        "metrics": lambda: metrics.record_prediction(
            "bench",
            result.predictions,
            0.01,
            absent=result.absent,
            unparseable=result.unparseable,
            out_of_range=result.out_of_range,
        ),
        "build + serialise response": lambda: prediction_results(result, ids),
    }
    repeats = 31 if len(records) == 1 else 7
    return {
        name: statistics.median(_timed(call) for _ in range(repeats))
        for name, call in steps.items()
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write benchmarks/README.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--singles", type=int, default=40, help="single requests per round")
    parser.add_argument("--batches", type=int, default=3, help="batches per round")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--readme", type=Path, default=HERE / "README.md")
    args = parser.parse_args(argv)

    records = _records(args.batch_size, seed=11)
    single = [records[0]]
    model = load_model()
    work = Path(tempfile.mkdtemp(prefix="mlapi-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLAPI_")}
    api_port, bare_port = portpicker.pick_unused_port(), portpicker.pick_unused_port()
    api_log, bare_log = work / "api.log", work / "bare.log"
    # As in production: every request bears a key, checked against the key file.
    key = new_key()
    (work / "api-keys").write_text(key_line(key, ["predict", "metrics"], "bench") + "\n")
    api = _start(
        [str(Path(sys.executable).with_name("mlapi-serve"))],
        env
        | {
            "MLAPI_HOST": "127.0.0.1",
            "MLAPI_PORT": str(api_port),
            "MLAPI_WORKERS": "1",
            "MLAPI_MULTIPROC_DIR": str(work / "metrics"),
            # A fresh prediction log per run, not the user's own.
            "MLAPI_PREDICTION_LOG_URL": f"sqlite://{work / 'predictions.db'}",
            "MLAPI_API_KEYS_FILE": str(work / "api-keys"),
        },
        api_log,
    )
    bare = _start(
        [sys.executable, "-m", "uvicorn", "bare_app:app", "--app-dir", str(HERE),
         "--host", "127.0.0.1", "--port", str(bare_port), "--log-level", "warning",
         "--no-access-log"],
        env,
        bare_log,
    )  # fmt: skip
    load_before = os.getloadavg()[0]
    try:
        _wait_healthy(f"http://127.0.0.1:{api_port}/api/v1/health", api, api_log)
        _wait_healthy(f"http://127.0.0.1:{bare_port}/", bare, bare_log)
        samples = _measure(args, (api_port, bare_port), single, records, model, key=key)
    finally:
        _stop(api)
        _stop(bare)
    load_after = os.getloadavg()[0]
    server = _server_durations(api_log)
    steps = (_steps(single), _steps(records))
    context = Context(load_before, load_after, *samples.batch_bytes)
    report = _report(args, samples, server, steps, context)
    write_section(args.readme, report)
    print(report)
    return 0


def _measure(
    args: argparse.Namespace,
    ports: tuple[int, int],
    single: list[dict[str, Any]],
    records: list[dict[str, Any]],
    model: Any,
    *,
    key: str,
) -> Samples:
    api_url = f"http://127.0.0.1:{ports[0]}/api/v1/predict"
    bare_url = f"http://127.0.0.1:{ports[1]}/"
    metrics_url = f"http://127.0.0.1:{ports[0]}/metrics"
    single_body = orjson.dumps({"inputs": single})
    batch_body = orjson.dumps({"inputs": records})
    headers = {"content-type": "application/json"}
    samples = Samples()
    auth = {"Authorization": f"Bearer {key}"}
    with (
        httpx.Client(timeout=120, headers=auth) as api_client,
        httpx.Client(timeout=120) as bare_client,
    ):

        def api_call(body: bytes, request_id: str) -> None:
            response = api_client.post(
                api_url, content=body, headers=headers | {"X-Request-ID": request_id}
            )
            response.raise_for_status()
            if body is batch_body:
                samples.batch_bytes = (len(body), len(response.content))

        blocks: dict[str, Callable[[int], object]] = {
            "http single": lambda i: api_call(single_body, f"bench-single-{i}"),
            "in-process single": lambda i: make_prediction(single, model=model),
            "bare round trip": lambda i: bare_client.post(
                bare_url, content=single_body, headers=headers
            ).raise_for_status(),
            "http batch": lambda i: api_call(batch_body, f"bench-batch-{i}"),
            "in-process batch": lambda i: make_prediction(records, model=model),
        }
        for kind, block in blocks.items():  # warm-up, not recorded
            for i in range(2 if "batch" in kind else 20):
                block(-1 - i)
        # Each group runs its kinds back to back in a shuffled order, so that the i-th sample
        # of every kind in a group was taken under the same machine load: ratios can be paired.
        groups = (
            (("http single", "in-process single", "bare round trip"), args.singles),
            (("http batch", "in-process batch"), args.batches),
        )
        counter = 0
        shuffle = random.Random(0).shuffle
        for round_number in range(args.rounds):
            for kinds, repeats in groups:
                before = _inference_totals(api_client, metrics_url)
                for _ in range(repeats):
                    order = list(kinds)
                    shuffle(order)
                    for kind in order:
                        counter += 1
                        started = time.perf_counter()
                        blocks[kind](counter)
                        seconds = time.perf_counter() - started
                        samples.add(kind, seconds)
                        if kind.startswith("http"):
                            request_id = f"bench-{kind.split()[1]}-{counter}"
                            samples.client_by_id[request_id] = seconds
                after = _inference_totals(api_client, metrics_url)
                seconds, count = samples.model_time.get(kinds[0], (0.0, 0))
                samples.model_time[kinds[0]] = (
                    seconds + after[0] - before[0],
                    count + after[1] - before[1],
                )
            print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr)
    return samples


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def _breakdown(
    samples: Samples,
    server: dict[str, float],
    steps: tuple[dict[str, float], dict[str, float]],
) -> dict[str, tuple[float, float]]:
    """Rows of the time split, means over the same requests: (single, batch) seconds each."""
    rows: dict[str, list[float]] = {}
    for kind, step in (("single", steps[0]), ("batch", steps[1])):
        ids = [i for i in samples.client_by_id if i.startswith(f"bench-{kind}-") and i in server]
        client = statistics.fmean(samples.client_by_id[i] for i in ids)
        on_server = statistics.fmean(server[i] for i in ids)
        model = samples.server_model_seconds(f"http {kind}")
        validation = step["validate records (package)"]
        translation = step["parse JSON body"] + step["build + serialise response"]
        values = {
            "client round trip": client,
            "outside the server: client, loopback, HTTP parsing": client - on_server,
            "inside the server (logged)": on_server,
            "- model.predict (server-measured)": model,
            "- record validation (package)": validation,
            "- JSON parsing + response building": translation,
            "- the rest: routing, thread hop, middleware, metrics, log": (
                on_server - model - validation - translation
            ),
            "in-process floor, make_prediction": statistics.fmean(
                samples.times[f"in-process {kind}"]
            ),
            "bare uvicorn round trip": statistics.fmean(samples.times["bare round trip"]),
        }
        for name, value in values.items():
            rows.setdefault(name, []).append(value)
    return {name: (v[0], v[1]) for name, v in rows.items()}


def _report(
    args: argparse.Namespace,
    samples: Samples,
    server: dict[str, float],
    steps: tuple[dict[str, float], dict[str, float]],
    context: Context,
) -> str:
    steps_single, steps_batch = steps
    http_p50, inproc_p50, bare_p50 = (
        samples.p("http single", 50),
        samples.p("in-process single", 50),
        samples.p("bare round trip", 50),
    )
    single_ratio = http_p50 / (inproc_p50 + bare_p50)
    t = {kind: np.asarray(times) for kind, times in samples.times.items()}
    single_paired = float(
        np.median(t["http single"] / (t["in-process single"] + t["bare round trip"]))
    )
    batch_paired = float(np.median(t["in-process batch"] / t["http batch"]))
    size = args.batch_size
    http_rate = size / statistics.median(samples.times["http batch"])
    inproc_rate = size / statistics.median(samples.times["in-process batch"])
    batch_ratio = http_rate / inproc_rate
    batch_http = statistics.median(samples.times["http batch"])
    batch_inproc = statistics.median(samples.times["in-process batch"])

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    lines = [
        MARK_START,
        "## The API against the in-process floor (issue 3)",
        "",
        "`api_latency.py` measures the prediction API against the same work done in-process by",
        "`yield_model.predict.make_prediction` (the floor) and against a bare uvicorn round trip",
        "(`bare_app.py`, a Starlette app that reads the body and answers a constant). All kinds",
        "run interleaved in one run, call by call in shuffled order, so that machine load hits",
        "them alike. The API runs as in production (`mlapi-serve`, gunicorn + uvicorn worker,",
        "JSON request logs, Prometheus multiprocess metrics) with one worker, the fair match",
        "for one in-process caller; the client is `httpx` over a kept-alive connection.",
        "",
        "Run from the repository root (not part of `tox`; nothing is asserted):",
        "",
        "    python benchmarks/api_latency.py",
        "",
        f"### Last run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; load average {context.load_before:.1f} at the start, "
        f"{context.load_after:.1f} at the end (a shared machine: other jobs ran too). "
        f"{args.rounds} rounds of {args.singles} single-record requests and {args.batches} "
        f"{size:,}-record batches per kind; records from the package's generator (seed 11).",
        "",
        "| measurement | p50 ms | p99 ms |",
        "|---|---:|---:|",
    ]
    for kind in ("http single", "in-process single", "bare round trip"):
        lines.append(f"| {kind} | {_ms(samples.p(kind, 50))} | {_ms(samples.p(kind, 99))} |")
    lines += [
        "",
        f"| {size:,}-record batch | median ms | records/s |",
        "|---|---:|---:|",
        f"| http batch | {_ms(batch_http)} | {http_rate:,.0f} |",
        f"| in-process batch | {_ms(batch_inproc)} | {inproc_rate:,.0f} |",
        "",
        "| target | ratio | |",
        "|---|---:|---|",
        f"| single p50 / (in-process p50 + bare p50) <= {SINGLE_TARGET} | {single_ratio:.2f} "
        f"| {verdict(single_ratio <= SINGLE_TARGET)} |",
        f"| batch throughput http / in-process >= {BATCH_TARGET} | {batch_ratio:.2f} "
        f"| {verdict(batch_ratio >= BATCH_TARGET)} |",
        "",
        "The same ratios taken pair by pair (each HTTP call against the in-process call made",
        "right before or after it, so both saw the same load), median over pairs: single",
        f"{single_paired:.2f}, batch throughput {batch_paired:.2f}.",
        "",
        "### Where the time goes",
        "",
        "Means over the same requests (means add up; medians do not): the client's time, what",
        "the server logged for each (middleware to last byte), the model time the server",
        "measured itself (`mlapi_model_inference_seconds`), and the API's own steps timed",
        "in-process (medians, from the table further down):",
        "",
        f"| ms | 1 record | {size:,} records |",
        "|---|---:|---:|",
    ]
    rows = _breakdown(samples, server, steps)
    for name, (one, many) in rows.items():
        lines.append(f"| {name} | {_ms(one)} | {_ms(many)} |")
    lines += [
        "",
        f"A batch's body is {context.body_bytes / 1e6:.2f} MB in and "
        f"{context.response_bytes / 1e6:.2f} MB out. The in-process floor, `make_prediction`,",
        "is validation plus `model.predict`: the package's work, which dominates both cases.",
        "What HTTP adds is, for one record, the round trip and a fixed cost per request",
        "(routing, the thread hop that keeps prediction off the event loop, middleware,",
        "metrics, the log line); for a batch, also parsing the JSON body and building the",
        "answer. The last server row is a remainder: it also absorbs any difference between",
        "validation timed here and in the server, which shares the CPUs with the client.",
        "",
        "Steps of one request, timed in-process (median ms):",
        "",
        f"| step | 1 record | {size:,} records |",
        "|---|---:|---:|",
    ]
    for name, seconds in steps_single.items():
        lines.append(f"| {name} | {_ms(seconds)} | {_ms(steps_batch[name])} |")
    lines += ["", MARK_END]
    return "\n".join(lines)


def write_section(readme: Path, section: str) -> None:
    """Replace this benchmark's section of the README (or append it), keeping the others."""
    text = readme.read_text(encoding="utf-8") if readme.is_file() else "# Benchmarks\n"
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        text = head + section + rest.split(MARK_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    readme.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
