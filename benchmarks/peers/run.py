"""Serve the same trained pipeline four ways and load each with wrk, in one run (issues 7, 12).

The four servers, each in its own virtualenv under ``--build-dir``, one at a time, with the
same number of worker processes (``--workers``, one by default: a server is compared process for
process):

- ``mlapi``: this project's service, started as its README says (``mlapi-serve``);
- ``bare``: a bare Starlette app under uvicorn calling ``pipeline.predict`` (``bare_pipeline.py``);
- ``mlserver``: MLServer with its scikit-learn runtime (``mlserver-sklearn``), the records sent
  column by column with the pandas content type, as that runtime expects;
- ``bentoml``: a BentoML service calling ``pipeline.predict`` (``bento_service.py``).

Every round starts each server in turn (in a rotating order), checks that its answers equal
the in-process pipeline's to the bit, then runs three loads with wrk: one record at
concurrency 1 (latency), one record at concurrency 8 (throughput), 1,000 records at
concurrency 2 (rows/s); it records the server's CPU time per request and its memory, then
stops it. The report takes medians over rounds and is written to ``benchmarks/README.md``.

Run from the repository root (needs ``wrk``: ``apt-get install -y wrk``; the first run builds
the virtualenvs, a few minutes)::

    python benchmarks/peers/run.py             # ~15 minutes

Not part of tox and asserts nothing: the targets are reported, not enforced.
"""

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import orjson
import portpicker

from yield_model.columns import FEATURE_COLUMNS, TARGET_COLUMN
from yield_model.config import model_file_name
from yield_model.datasets import generate
from yield_model.persistence import default_model_path
from yield_model.predict import records_to_frame
from yield_model.schemas import validate_records

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
README = HERE.parent / "README.md"
MARK_START, MARK_END = "<!-- peers:start -->", "<!-- peers:end -->"
KINDS = ("mlapi", "bare", "mlserver", "bentoml")
BATCH = 1000
#: The same numerical stack everywhere, so that every server computes what this one does.
SHARED = ("numpy", "pandas", "scikit-learn", "joblib", "scipy")
PEER_PACKAGES = {
    "mlapi": ["-e", str(ROOT / "model_package"), "-e", str(ROOT / "mlapi")],
    "bare": ["-e", str(ROOT / "model_package"), "starlette", "uvicorn[standard]", "orjson"],
    # uvloop 0.22 breaks MLServer's parallel workers (SeldonIO/MLServer#2286).
    "mlserver": [
        "-e", str(ROOT / "model_package"),
        "mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop==0.21.0",
    ],
    # 1.4.40 does not install from this machine's package mirror (a certifi pin).
    "bentoml": ["-e", str(ROOT / "model_package"), "bentoml==1.4.39"],
}  # fmt: skip
VERSIONS = {
    "mlapi": ["mlapi", "fastapi", "starlette", "uvicorn", "gunicorn", "pydantic"],
    "bare": ["starlette", "uvicorn", "orjson"],
    "mlserver": ["mlserver", "mlserver-sklearn", "fastapi", "uvicorn", "uvloop"],
    "bentoml": ["bentoml", "starlette", "uvicorn"],
}
TARGETS = (
    "single-record p50 <= 0.25x the better peer's",
    "single-record throughput at concurrency 8 >= 3x the better peer's",
    "1,000-record rows/s >= 1.5x MLServer's",
)


@dataclass(frozen=True)
class Load:
    """One wrk load: which body, how many connections."""

    name: str
    body: str  # "single" or "batch"
    connections: int


LOADS = (
    Load("single_c1", "single", 1),
    Load("single_c8", "single", 8),
    Load("batch_c2", "batch", 2),
)


@dataclass
class Server:
    """How to start one kind of server and talk to it."""

    kind: str
    command: list[str]
    env: dict[str, str]
    cwd: Path
    ready_url: str
    predict_url: str
    bodies: dict[str, Path]
    read: Callable[[Any], list[float]]
    #: Files removed before each start, so that every round starts from the same state.
    fresh: Sequence[Path] = ()


@dataclass
class Results:
    """Per kind and metric, one value per round; versions per kind."""

    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    versions: dict[str, dict[str, str]] = field(default_factory=dict)

    def add(self, kind: str, metric: str, value: float) -> None:
        self.values.setdefault(kind, {}).setdefault(metric, []).append(value)

    def median(self, kind: str, metric: str) -> float:
        return statistics.median(self.values[kind][metric])


# ---------------------------------------------------------------------------- virtualenvs


def _venv(build: Path, kind: str) -> Path:
    """The kind's virtualenv, built (or rebuilt when its requirements changed) first."""
    path = build / "venvs" / kind
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in SHARED]
    requirements = [*PEER_PACKAGES[kind], *pins]
    stamp = hashlib.sha256("\n".join(requirements).encode()).hexdigest()
    marker = path / "bench-requirements.sha256"
    if marker.is_file() and marker.read_text() == stamp:
        return path
    print(f"building the {kind} virtualenv in {path}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True)
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, *requirements], check=True)
    marker.write_text(stamp)
    return path


def _versions(venv: Path, names: Sequence[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys; "
        "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    )
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code, *names, *SHARED],
        check=True,
        capture_output=True,
        text=True,
    )
    versions: dict[str, str] = json.loads(done.stdout)
    return versions


# ---------------------------------------------------------------------------- requests


def _records(n: int, seed: int) -> list[dict[str, Any]]:
    """Rows of a generated file as the plant sends them: text cells, nulls for blanks."""
    frame = generate(n, seed).frame.drop(columns=[TARGET_COLUMN])
    frame = frame.astype(object).where(frame.notna(), None)
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _v2_body(records: list[dict[str, Any]]) -> bytes:
    """The Open Inference (V2) request MLServer's pandas codec turns into the raw frame.

    Every column is BYTES (text), a blank is "" (the parser reads both as missing), and the
    columns go in the order the pipeline was fitted with.
    """
    inputs = [
        {
            "name": column,
            "shape": [len(records)],
            "datatype": "BYTES",
            "data": ["" if r.get(column) is None else str(r[column]) for r in records],
        }
        for column in FEATURE_COLUMNS
    ]
    return orjson.dumps({"parameters": {"content_type": "pd"}, "inputs": inputs})


#: mlapi's API key for the run (the other servers ignore the header, which every one gets).
BENCH_KEY = "mlapi_" + os.urandom(32).hex()


def _post(url: str, body: bytes) -> Any:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {BENCH_KEY}"}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")
        return orjson.loads(response.read())


# ---------------------------------------------------------------------------- servers


def _servers(build: Path, model_path: Path, workers: int, bodies: dict[str, Path]) -> list[Server]:
    run = build / "run"
    venvs = {kind: _venv(build, kind) for kind in KINDS}
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLAPI_", "PROMETHEUS_"))}
    servers = []
    for kind in KINDS:
        port = portpicker.pick_unused_port()
        url = f"http://127.0.0.1:{port}"
        bin_dir = venvs[kind] / "bin"
        env = base | {"BENCH_MODEL_PATH": str(model_path), "BENCH_WORKERS": str(workers)}
        own = {"single": bodies["single"], "batch": bodies["batch"]}
        if kind == "mlapi":
            # As in production: every request bears a key, checked against the key file.
            keys = run / "mlapi-api-keys"
            keys.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256(BENCH_KEY.encode()).hexdigest()
            keys.write_text(f"predict sha256:{digest} bench\n")
            env |= {
                "MLAPI_API_KEYS_FILE": str(keys),
                "MLAPI_HOST": "127.0.0.1",
                "MLAPI_PORT": str(port),
                "MLAPI_WORKERS": str(workers),
                "MLAPI_MULTIPROC_DIR": str(run / "mlapi-metrics"),
                "MLAPI_PREDICTION_LOG_URL": f"sqlite://{run / 'mlapi-predictions.db'}",
            }
            server = Server(
                kind, [str(bin_dir / "mlapi-serve")], env, run,
                f"{url}/api/v1/health", f"{url}/api/v1/predict", own,
                lambda answer: [p["predicted_yield"] for p in answer["predictions"]],
                fresh=[run / f"mlapi-predictions.db{suffix}" for suffix in ("", "-wal", "-shm")],
            )  # fmt: skip
        elif kind == "bare":
            command = [
                str(bin_dir / "uvicorn"), "bare_pipeline:app", "--app-dir", str(HERE),
                "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                "--log-level", "warning", "--no-access-log",
            ]  # fmt: skip
            server = Server(
                kind, command, env, run, f"{url}/health", f"{url}/", own, lambda answer: answer
            )
        elif kind == "mlserver":
            folder = _mlserver_folder(run / "mlserver", model_path, port, workers)
            server = Server(
                kind, [str(bin_dir / "mlserver"), "start", str(folder)], env, folder,
                f"{url}/v2/models/yield/ready", f"{url}/v2/models/yield/infer",
                {"single": bodies["v2_single"], "batch": bodies["v2_batch"]},
                lambda answer: answer["outputs"][0]["data"],
            )  # fmt: skip
        else:
            command = [
                str(bin_dir / "bentoml"), "serve", "bento_service:YieldModel",
                "--working-dir", str(HERE), "--host", "127.0.0.1", "--port", str(port),
            ]  # fmt: skip
            env |= {"BENTOML_DO_NOT_TRACK": "True"}
            server = Server(
                kind,
                command,
                env,
                run,
                f"{url}/readyz",
                f"{url}/predict",
                own,
                lambda answer: answer,
            )
        servers.append(server)
    return servers


def _mlserver_folder(folder: Path, model_path: Path, port: int, workers: int) -> Path:
    """MLServer's settings and model settings: the sklearn runtime on the model file."""
    model_dir = folder / "yield"
    model_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        "http_port": port,
        "grpc_port": portpicker.pick_unused_port(),
        "metrics_port": portpicker.pick_unused_port(),
        "parallel_workers": workers,
        "debug": False,
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    model = {
        "name": "yield",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(model_path), "version": "v1"},
    }
    (model_dir / "model-settings.json").write_text(json.dumps(model))
    return folder


def _start(server: Server, log: Path) -> subprocess.Popen[bytes]:
    server.cwd.mkdir(parents=True, exist_ok=True)
    for path in server.fresh:
        path.unlink(missing_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            server.command,
            env=server.env,
            cwd=server.cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
        )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{server.kind} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(server.ready_url, timeout=2) as response:
                if response.status == 200:
                    return process
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    _stop(process)
    sys.exit(f"{server.kind} not ready after 240 s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        process.wait()


def _tree(pid: int) -> list[int]:
    """The process and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _cpu_seconds(pids: Sequence[int]) -> dict[int, float]:
    """User + system CPU seconds of each process so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return seconds


def _memory_mb(pids: Sequence[int]) -> tuple[float, float]:
    """RSS and PSS (shared pages split between the processes sharing them), summed, in MB."""
    rss = pss = 0
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            name, _, value = line.partition(":")
            if name == "Rss":
                rss += int(value.split()[0])
            elif name == "Pss":
                pss += int(value.split()[0])
    return rss / 1024, pss / 1024


# ---------------------------------------------------------------------------- loads


def _wrk(url: str, body: Path, connections: int, seconds: float) -> dict[str, float]:
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s", "--timeout", "30s",
        "-s", str(HERE / "wrk_post.lua"), url,
    ]  # fmt: skip
    done = subprocess.run(
        command,
        env=os.environ | {"WRK_BODY": str(body), "WRK_AUTHORIZATION": f"Bearer {BENCH_KEY}"},
        check=True,
        capture_output=True,
        text=True,
    )
    summary: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


def _check(server: Server, expected: dict[str, list[float]]) -> None:
    """The server's answers equal the in-process pipeline's, to the bit."""
    for name in ("single", "batch"):
        answer = server.read(_post(server.predict_url, server.bodies[name].read_bytes()))
        if answer != expected[name]:
            bad = sum(a != b for a, b in zip(answer, expected[name], strict=False))
            sys.exit(f"{server.kind}: {bad} of {len(expected[name])} {name} predictions differ")


def _round(server: Server, args: argparse.Namespace, results: Results, log: Path) -> None:
    process = _start(server, log)
    try:
        _check(server, args.expected)
        _wrk(server.predict_url, server.bodies["single"], 2, args.warmup)  # warm-up
        _wrk(server.predict_url, server.bodies["batch"], 2, args.warmup)
        for load in LOADS:
            pids = _tree(process.pid)
            cpu_before = _cpu_seconds(pids)
            seconds = args.duration if load.body == "single" else args.duration * 1.5
            summary = _wrk(server.predict_url, server.bodies[load.body], load.connections, seconds)
            cpu_after = _cpu_seconds(pids)
            spent = [cpu_after[pid] - cpu_before.get(pid, 0.0) for pid in cpu_after]
            cpu = sum(spent)
            # One process doing all the work means the load was not spread over the workers.
            results.add(server.kind, f"{load.name}_busiest_share", max(spent) / (cpu or 1.0))
            if summary["non_2xx"] or summary["socket_errors"] or not summary["requests"]:
                sys.exit(f"{server.kind} {load.name}: {summary}")
            rate = summary["requests"] / (summary["duration_us"] / 1e6)
            results.add(server.kind, f"{load.name}_rps", rate)
            results.add(server.kind, f"{load.name}_p50_ms", summary["p50_us"] / 1000)
            results.add(server.kind, f"{load.name}_p99_ms", summary["p99_us"] / 1000)
            results.add(server.kind, f"{load.name}_cpu_ms", 1000 * cpu / summary["requests"])
            results.add(server.kind, f"{load.name}_requests", summary["requests"])
        rss, pss = _memory_mb(_tree(process.pid))
        results.add(server.kind, "rss_mb", rss)
        results.add(server.kind, "pss_mb", pss)
        results.add(server.kind, "processes", len(_tree(process.pid)))
    finally:
        _stop(process)


# ---------------------------------------------------------------------------- report


def _report(args: argparse.Namespace, results: Results, started: datetime, loads: str) -> str:
    med = results.median
    peers = [k for k in KINDS if k not in ("mlapi", "bare")]
    better_p50 = min(peers, key=lambda k: med(k, "single_c1_p50_ms"))
    better_rps = max(peers, key=lambda k: med(k, "single_c8_rps"))
    p50_ratio = med("mlapi", "single_c1_p50_ms") / med(better_p50, "single_c1_p50_ms")
    rps_ratio = med("mlapi", "single_c8_rps") / med(better_rps, "single_c8_rps")
    rows_ratio = med("mlapi", "batch_c2_rps") / med("mlserver", "batch_c2_rps")
    met = (
        p50_ratio <= 0.25,
        rps_ratio >= 3.0,
        rows_ratio >= 1.5,
    )
    names = {
        "mlapi": "this service (`mlapi-serve`)",
        "bare": "bare Starlette + pipeline",
        "mlserver": "MLServer + mlserver-sklearn",
        "bentoml": "BentoML",
    }
    lines = [
        MARK_START,
        "## Against MLServer and BentoML (issue 7)",
        "",
        "`peers/run.py` serves the same trained pipeline file "
        f"(`{model_file_name()}`) four ways, each in its own virtualenv, one at a time, each "
        f"with {args.workers} worker processes, and loads it with wrk: one record at "
        "concurrency 1 (latency), one record at concurrency 8 (throughput), 1,000 records at "
        "concurrency 2 (rows/s). Before loading, every server's answers to a single record "
        "and to the 1,000-record batch are checked equal, to the bit, to the in-process "
        "`pipeline.predict`; during the loads every answer had to be a 2xx (wrk counts the "
        "others) or the run stops. Rounds are interleaved (each round starts every server in "
        "turn, in a rotating order); the table gives medians over rounds. CPU is the server's "
        "processes' user + system time during a load divided by the requests answered; "
        "memory is summed over the server's processes after the loads (PSS splits shared "
        'pages between the processes sharing them). "Busiest process" is the share of '
        "the server's CPU time during the 1,000-record load that its busiest process used: "
        "about 50 % when the two connections went to different workers, near 100 % when "
        "one worker got both (the kernel and the accept loop place connections, not "
        "requests).",
        "",
        "- **this service**: `mlapi-serve` as the README starts it (gunicorn, uvicorn workers, "
        "JSON request log, Prometheus multiprocess metrics, prediction log), body "
        '`{"inputs": [record, ...]}` as the plant sends records (numbers as text).',
        "- **bare**: `peers/bare_pipeline.py`, Starlette under `uvicorn --workers`: the body "
        "to a DataFrame, `pipeline.predict`, the list back; no validation, no metrics.",
        "- **MLServer**: `mlserver start` with `mlserver_sklearn.SKLearnModel` on the joblib "
        "file, `parallel_workers` = the worker count, uvloop 0.21 (0.22 breaks parallel "
        "workers). No custom runtime: the V2 request carries the 42 columns as BYTES with "
        '`"content_type": "pd"`, so MLServer\'s pandas codec builds the raw frame the '
        'pipeline takes; a blank is `""`, which the parser reads as missing, like null.',
        "- **BentoML**: `peers/bento_service.py`, a `@bentoml.service(workers=N)` class whose "
        "sync `@bentoml.api` builds the frame and calls `pipeline.predict`; same body as ours.",
        "",
        "Run from the repository root (not part of `tox`; nothing is asserted; needs `wrk`):",
        "",
        "    python benchmarks/peers/run.py",
        "",
        f"### Last run: {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, wrk ({args.wrk_version}); {args.rounds} rounds of "
        f"{args.duration:g} s per single-record load and {args.duration * 1.5:g} s per batch "
        f"load; {loads}. A shared machine: other jobs ran too, so compare within this run.",
        "",
        "| server | 1 rec c=1 p50 ms | p99 ms | 1 rec c=8 req/s | p99 ms "
        "| 1,000 rec c=2 rows/s | busiest process | CPU ms/req (1 rec, c=8) "
        "| CPU ms/req (1,000) | RSS MB | PSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in KINDS:
        lines.append(
            f"| {names[kind]} | {med(kind, 'single_c1_p50_ms'):.2f} "
            f"| {med(kind, 'single_c1_p99_ms'):.2f} | {med(kind, 'single_c8_rps'):,.0f} "
            f"| {med(kind, 'single_c8_p99_ms'):.2f} | {BATCH * med(kind, 'batch_c2_rps'):,.0f} "
            f"| {100 * med(kind, 'batch_c2_busiest_share'):.0f} % "
            f"| {med(kind, 'single_c8_cpu_ms'):.2f} | {med(kind, 'batch_c2_cpu_ms'):.1f} "
            f"| {med(kind, 'rss_mb'):,.0f} | {med(kind, 'pss_mb'):,.0f} |"
        )
    verdict = ["met" if ok else "**not met**" for ok in met]
    lines += [
        "",
        "| target (ratios within this run) | this service | ratio | |",
        "|---|---:|---:|---|",
        f"| {TARGETS[0]} ({better_p50}: {med(better_p50, 'single_c1_p50_ms'):.2f} ms) "
        f"| {med('mlapi', 'single_c1_p50_ms'):.2f} ms | {p50_ratio:.2f} | {verdict[0]} |",
        f"| {TARGETS[1]} ({better_rps}: {med(better_rps, 'single_c8_rps'):,.0f}/s) "
        f"| {med('mlapi', 'single_c8_rps'):,.0f}/s | {rps_ratio:.2f} | {verdict[1]} |",
        f"| {TARGETS[2]} ({BATCH * med('mlserver', 'batch_c2_rps'):,.0f}/s) "
        f"| {BATCH * med('mlapi', 'batch_c2_rps'):,.0f}/s | {rows_ratio:.2f} | {verdict[2]} |",
        "",
        "Per round (this service's single-record p50 ms / c=8 req/s / batch rows/s): "
        + "; ".join(
            f"{p:.2f} / {r:,.0f} / {BATCH * b:,.0f}"
            for p, r, b in zip(
                results.values["mlapi"]["single_c1_p50_ms"],
                results.values["mlapi"]["single_c8_rps"],
                results.values["mlapi"]["batch_c2_rps"],
                strict=True,
            )
        )
        + ".",
        "",
        "Versions:",
        "",
    ]
    for kind in KINDS:
        shown = ", ".join(f"{k} {v}" for k, v in results.versions[kind].items())
        lines.append(f"- {names[kind]}: {shown}")
    lines += ["", MARK_END]
    return "\n".join(lines)


def write_section(readme: Path, section: str, start: str, end: str) -> None:
    """Replace the marked section of the README (or append it), keeping everything else."""
    text = readme.read_text(encoding="utf-8") if readme.is_file() else "# Benchmarks\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    readme.write_text(text, encoding="utf-8")


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Build the environments, run the rounds, write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds per 1-record load")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up load")
    parser.add_argument("--workers", type=int, default=1, help="worker processes per server")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build" / "peers")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--only", nargs="*", choices=KINDS, help="measure only these (debug)")
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    build: Path = args.build_dir.resolve()
    (build / "run").mkdir(parents=True, exist_ok=True)
    args.wrk_version = (
        subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        .stdout.split(" [")[0]
        .strip()
    )

    records = _records(BATCH, seed=11)
    model_path = default_model_path()
    pipeline = joblib.load(model_path)
    args.expected = {
        name: np.asarray(pipeline.predict(records_to_frame(validate_records(rows)))).tolist()
        for name, rows in (("single", records[:1]), ("batch", records))
    }
    bodies = {}
    for name, body in (
        ("single", orjson.dumps({"inputs": records[:1]})),
        ("batch", orjson.dumps({"inputs": records})),
        ("v2_single", _v2_body(records[:1])),
        ("v2_batch", _v2_body(records)),
    ):
        bodies[name] = build / "run" / f"{name}.json"
        bodies[name].write_bytes(body)

    servers = _servers(build, model_path, args.workers, bodies)
    if args.only:
        servers = [s for s in servers if s.kind in args.only]
    results = Results()
    for server in servers:
        venv = build / "venvs" / server.kind
        results.versions[server.kind] = _versions(venv, VERSIONS[server.kind])
    load_before = os.getloadavg()[0]
    for round_number in range(args.rounds):
        shift = round_number % len(servers)
        for server in servers[shift:] + servers[:shift]:
            print(f"round {round_number + 1}: {server.kind}", file=sys.stderr)
            _round(server, args, results, build / "run" / f"{server.kind}.log")
    load_after = os.getloadavg()[0]
    loads = f"load average {load_before:.1f} at the start, {load_after:.1f} at the end"
    print(json.dumps(results.values, indent=1), file=sys.stderr)
    if args.only:
        return 0
    section = _report(args, results, started, loads)
    write_section(args.readme, section, MARK_START, MARK_END)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
