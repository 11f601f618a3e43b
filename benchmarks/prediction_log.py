"""Benchmark the prediction log on PostgreSQL against SQLite, in one run (issue 13).

Starts a PostgreSQL 15 server of its own in a temporary directory (the tests' ``PostgresServer``,
with the server's own durability defaults: an fsync of the WAL per commit), then in every round
starts ``mlapi-serve`` (one worker) on a fresh SQLite file, on a fresh PostgreSQL database
and, for reference, on a fresh SQLite file with ``MLAPI_PREDICTION_LOG_SYNC=full`` (an fsync
per commit, as PostgreSQL does), in alternating order (SQLite, PostgreSQL, SQLite full; SQLite
full, PostgreSQL, SQLite; ...) so that the machine's load hits all alike, and loads each with
wrk: one record at concurrency 1 (p50, p99), 1,000 records at concurrency 2 (rows/s). Every
answer must be a 2xx, and after the loads the log must hold exactly the rows the server
answered (the sum of the records of the 2xx predictions in its request log), or the run
stops. The report takes medians over rounds and is written to its own section of
``benchmarks/README.md``.

Run from the repository root with the API's test extras installed (needs ``wrk`` and Debian's
``postgresql-15``; as root, the server runs as the ``postgres`` user)::

    python benchmarks/prediction_log.py             # ~6 minutes

Not part of tox and asserts nothing: the targets are reported, not enforced.
"""

import argparse
import importlib.metadata
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import orjson
import portpicker
import psycopg
from peers.run import (
    BATCH,
    BENCH_KEY,
    Results,
    Server,
    _cpu_seconds,
    _records,
    _start,
    _stop,
    _tree,
    _wrk,
    write_section,
)

from mlapi.keys import key_line
from mlapi.prediction_log import open_prediction_log

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The tests' PostgreSQL server, one implementation of starting it.
sys.path[:0] = [str(ROOT / "mlapi" / "tests"), str(ROOT / "tests" / "support")]
from mlapi_support import PostgresServer, Scrape  # noqa: E402

README = HERE / "README.md"
MARK_START, MARK_END = "<!-- prediction-log:start -->", "<!-- prediction-log:end -->"
#: sqlite-full, the same durability as PostgreSQL's (an fsync per commit), is for reference.
BACKENDS = ("sqlite", "postgresql", "sqlite-full")
NAMES = {
    "sqlite": "SQLite (default sync `normal`)",
    "postgresql": "PostgreSQL 15",
    "sqlite-full": "SQLite, sync `full` (reference)",
}
#: One-record p50 at most SQLite's + this many ms; 1,000-record rows/s at least this x SQLite's.
P50_MARGIN_MS, ROWS_RATIO = 0.5, 0.8
WRITE_SECONDS = "mlapi_prediction_log_write_seconds"


def _server(backend: str, url: str, work: Path, bodies: dict[str, Path]) -> Server:
    """mlapi-serve, one worker, on the log at url."""
    port = portpicker.pick_unused_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLAPI_", "PROMETHEUS_"))}
    # As in production: every request bears a key (wrk sends BENCH_KEY).
    keys = work / f"{backend}-api-keys"
    keys.write_text(key_line(BENCH_KEY, ["predict", "metrics"], "bench") + "\n")
    env = base | {
        "MLAPI_API_KEYS_FILE": str(keys),
        "MLAPI_HOST": "127.0.0.1",
        "MLAPI_PORT": str(port),
        "MLAPI_WORKERS": "1",
        "MLAPI_MULTIPROC_DIR": str(work / f"{backend}-metrics"),
        "MLAPI_PREDICTION_LOG_URL": url,
        "MLAPI_PREDICTION_LOG_SYNC": "full" if backend == "sqlite-full" else "normal",
    }
    return Server(
        backend,
        [str(Path(sys.executable).with_name("mlapi-serve"))],
        env,
        work,
        f"http://127.0.0.1:{port}/api/v1/health",
        f"http://127.0.0.1:{port}/api/v1/predict",
        bodies,
        lambda answer: [p["predicted_yield"] for p in answer["predictions"]],
    )


def _write_totals(server: Server) -> tuple[float, float]:
    """The server's prediction log write histogram: seconds and requests so far."""
    metrics_url = server.ready_url.replace("/api/v1/health", "/metrics")
    request = urllib.request.Request(metrics_url, headers={"Authorization": f"Bearer {BENCH_KEY}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        scrape = Scrape(response.read().decode())
    return scrape.value(f"{WRITE_SECONDS}_sum"), scrape.value(f"{WRITE_SECONDS}_count")


def _answered(log: Path) -> tuple[int, int, int]:
    """From the server's request log: predict requests answered 2xx, their records, others."""
    ok = records = others = 0
    for line in log.read_text(encoding="utf-8").splitlines():
        if not line.startswith("{"):
            continue
        entry = orjson.loads(line)
        if entry.get("path") != "/api/v1/predict":
            continue
        if 200 <= entry["status"] < 300:
            ok += 1
            records += entry["record_count"] or 0
        else:
            others += 1
    return ok, records, others


def _round(
    server: Server, args: argparse.Namespace, results: Results, log: Path, pids: list[int]
) -> None:
    """Start the server, warm it up, run the two loads, stop it, check the log's rows."""
    process = _start(server, log)
    backend = server.kind
    received = 0.0  # records in the 2xx answers wrk counted
    try:
        for body in ("single", "batch"):  # warm-up, not recorded
            summary = _wrk(server.predict_url, server.bodies[body], 2, args.warmup)
            received += summary["requests"] * (1 if body == "single" else BATCH)
        for name, body, connections, seconds in (
            ("single_c1", "single", 1, args.duration),
            ("batch_c2", "batch", 2, args.duration * 1.5),
        ):
            watched = _tree(process.pid) + [p for pid in pids for p in _tree(pid)]
            cpu_before = _cpu_seconds(watched)
            write_before = _write_totals(server)
            summary = _wrk(server.predict_url, server.bodies[body], connections, seconds)
            write_after = _write_totals(server)
            cpu_after = _cpu_seconds(watched)
            if summary["non_2xx"] or summary["socket_errors"] or not summary["requests"]:
                sys.exit(f"{backend} {name}: {summary}")
            requests = summary["requests"]
            received += requests * (1 if body == "single" else BATCH)
            cpu = sum(cpu_after[p] - cpu_before.get(p, 0.0) for p in cpu_after)
            writes = write_after[1] - write_before[1]
            write_ms = 1000 * (write_after[0] - write_before[0]) / (writes or 1)
            results.add(backend, f"{name}_rps", requests / (summary["duration_us"] / 1e6))
            results.add(backend, f"{name}_p50_ms", summary["p50_us"] / 1000)
            results.add(backend, f"{name}_p99_ms", summary["p99_us"] / 1000)
            results.add(backend, f"{name}_cpu_ms", 1000 * cpu / requests)
            results.add(backend, f"{name}_write_ms", write_ms)
    finally:
        _stop(process)  # gracefully: requests wrk left in flight finish first
    ok, answered, others = _answered(log)
    if others:
        sys.exit(f"{backend}: {others} predict requests were not answered 2xx; see {log}")
    prediction_log = open_prediction_log(server.env["MLAPI_PREDICTION_LOG_URL"])
    try:
        rows = prediction_log.counts()["predictions"]
    finally:
        prediction_log.close()
    # wrk stops at its deadline without reading the answers still in flight: the server
    # answered those too, so it may have answered a little more than wrk counted.
    if rows != answered or answered < received:
        sys.exit(
            f"{backend}: the log holds {rows:,} rows; the server answered {answered:,} records "
            f"in {ok:,} requests, wrk counted {received:,}"
        )
    results.add(backend, "rows", rows)
    results.add(backend, "received", received)


def _wal_syncs(postgres_url: str) -> tuple[int, float]:
    """The server's WAL flushes (fsyncs) and their milliseconds since the last call."""
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        row = connection.execute("SELECT wal_sync, wal_sync_time FROM pg_stat_wal").fetchone()
        connection.execute("SELECT pg_stat_reset_shared('wal')")
    return (int(row[0]), float(row[1])) if row else (0, 0.0)


def _versions(postgres_url: str) -> str:
    with psycopg.connect(postgres_url) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    server_version = row[0].split()[0] if row else "?"
    packages = ", ".join(
        f"{name} {importlib.metadata.version(name)}"
        for name in ("mlapi", "psycopg", "psycopg-pool", "gunicorn", "uvicorn")
    )
    return f"PostgreSQL {server_version}, SQLite {sqlite3.sqlite_version}; {packages}"


def _report(args: argparse.Namespace, results: Results, started: datetime, loads: str) -> str:
    med = results.median
    p50_gap = med("postgresql", "single_c1_p50_ms") - med("sqlite", "single_c1_p50_ms")
    rows_ratio = med("postgresql", "batch_c2_rps") / med("sqlite", "batch_c2_rps")
    verdict = [
        "met" if ok else "**not met**"
        for ok in (p50_gap <= P50_MARGIN_MS, rows_ratio >= ROWS_RATIO)
    ]
    lines = [
        MARK_START,
        "## The prediction log: PostgreSQL against SQLite (issue 13)",
        "",
        "`prediction_log.py` starts a PostgreSQL 15 server of its own (Debian's binaries, in a "
        "temporary directory, on a Unix socket, with the server's durability defaults: "
        "`fsync` and `synchronous_commit` on, so every answered prediction has had its WAL "
        "flushed) and runs `mlapi-serve` with one worker, per round, on a fresh SQLite log (the "
        "default `MLAPI_PREDICTION_LOG_SYNC=normal`: WAL, durable against a crash of the "
        "service, not of the machine), on a fresh PostgreSQL database and, for reference, on "
        "a fresh SQLite log with `MLAPI_PREDICTION_LOG_SYNC=full` (an fsync per commit, "
        "PostgreSQL's durability), in alternating order (SQLite, PostgreSQL, SQLite full; "
        "SQLite full, PostgreSQL, SQLite; ...). The targets compare PostgreSQL with the "
        "default SQLite. Each is loaded with "
        "wrk (`peers/wrk_post.lua`): one record at concurrency 1, 1,000 records at "
        "concurrency 2, bodies as the plant sends records (text cells, null for blanks; "
        "the package's generator, seed 11). Every answer had to be a 2xx, and after the loads "
        "the log had to hold exactly the rows the server answered (the records of every 2xx "
        "prediction in its request log, warm-ups included), or the run stops. The table "
        "gives medians over rounds. Log write is the server's own "
        f"`{WRITE_SECONDS}` (the wait for the commit) per request; CPU is the user + system "
        "time of the service's processes and, for PostgreSQL, the database server's, per "
        "request.",
        "",
        "Run from the repository root (not part of `tox`; nothing is asserted; needs `wrk` "
        "and `postgresql-15`):",
        "",
        "    python benchmarks/prediction_log.py",
        "",
        f"### Last run: {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, wrk ({args.wrk_version}); {args.rounds} rounds of "
        f"{args.duration:g} s of one-record load and {args.duration * 1.5:g} s of "
        f"1,000-record load per backend; {loads}. A shared machine: other jobs ran too, so "
        "compare within this run.",
        "",
        "| log | 1 rec c=1 p50 ms | p99 ms | req/s | log write ms | CPU ms/req "
        "| 1,000 rec c=2 rows/s | p50 ms | log write ms | CPU ms/req | rows logged |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for backend in BACKENDS:
        rows = sum(results.values[backend]["rows"])
        lines.append(
            f"| {NAMES[backend]} | {med(backend, 'single_c1_p50_ms'):.2f} "
            f"| {med(backend, 'single_c1_p99_ms'):.2f} | {med(backend, 'single_c1_rps'):,.0f} "
            f"| {med(backend, 'single_c1_write_ms'):.2f} "
            f"| {med(backend, 'single_c1_cpu_ms'):.2f} "
            f"| {BATCH * med(backend, 'batch_c2_rps'):,.0f} "
            f"| {med(backend, 'batch_c2_p50_ms'):.1f} | {med(backend, 'batch_c2_write_ms'):.2f} "
            f"| {med(backend, 'batch_c2_cpu_ms'):.1f} | {rows:,} |"
        )
    lines += [
        "",
        "| target (within this run) | PostgreSQL | SQLite | | |",
        "|---|---:|---:|---:|---|",
        f"| one-record p50 at most SQLite's + {P50_MARGIN_MS} ms "
        f"| {med('postgresql', 'single_c1_p50_ms'):.2f} ms "
        f"| {med('sqlite', 'single_c1_p50_ms'):.2f} ms | {p50_gap:+.2f} ms | {verdict[0]} |",
        f"| 1,000-record rows/s at least {ROWS_RATIO}x SQLite's "
        f"| {BATCH * med('postgresql', 'batch_c2_rps'):,.0f}/s "
        f"| {BATCH * med('sqlite', 'batch_c2_rps'):,.0f}/s | {rows_ratio:.2f}x | {verdict[1]} |",
        "",
        "Per round, in the order run (one-record p50 ms / 1,000-record rows/s): "
        + "; ".join(f"{backend} {p:.2f} / {BATCH * b:,.0f}" for backend, p, b in args.order)
        + ".",
        "",
        "PostgreSQL's WAL flushes (`pg_stat_wal`, `track_wal_io_timing`), median over rounds "
        f"of the mean: {med('postgresql', 'wal_sync_ms'):.2f} ms each.",
        "",
        f"Versions: {args.versions}.",
        "",
        MARK_END,
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Start PostgreSQL, run the rounds, write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds per 1-record load")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up load")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    missing = PostgresServer.missing()
    if missing is not None:
        sys.exit(missing)
    args.wrk_version = (
        subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        .stdout.split(" [")[0]
        .strip()
    )
    work = Path(tempfile.mkdtemp(prefix="mlapi-logbench-"))
    records = _records(BATCH, seed=11)
    bodies = {"single": work / "single.json", "batch": work / "batch.json"}
    bodies["single"].write_bytes(orjson.dumps({"inputs": records[:1]}))
    bodies["batch"].write_bytes(orjson.dumps({"inputs": records}))

    postgres = PostgresServer(durable=True)
    postgres.start()
    results = Results()
    args.order = []
    try:
        args.versions = _versions(postgres.url())
        with psycopg.connect(postgres.url(), autocommit=True) as connection:
            # Times each WAL flush (pg_stat_wal): what a durable commit waits for.
            connection.execute("ALTER SYSTEM SET track_wal_io_timing = on")
            connection.execute("SELECT pg_reload_conf()")
        postmaster = int((postgres.root / "data" / "postmaster.pid").read_text().split()[0])
        load_before = os.getloadavg()[0]
        for number in range(args.rounds):
            # SQLite, PostgreSQL, SQLite full; then the other way round; ...
            for backend in BACKENDS if number % 2 == 0 else BACKENDS[::-1]:
                print(f"round {number + 1}: {backend}", file=sys.stderr)
                if backend == "postgresql":
                    url, pids = postgres.new_database(), [postmaster]
                    _wal_syncs(postgres.url())  # from zero
                else:
                    url = f"sqlite://{work / f'{backend}-{number}' / 'predictions.db'}"
                    pids = []
                server = _server(backend, url, work, bodies)
                _round(server, args, results, work / f"{backend}-{number}.log", pids)
                if backend == "postgresql":
                    syncs, sync_ms = _wal_syncs(postgres.url())
                    results.add(backend, "wal_sync_ms", sync_ms / (syncs or 1))
                values = results.values[backend]
                args.order.append(
                    (backend, values["single_c1_p50_ms"][-1], values["batch_c2_rps"][-1])
                )
        load_after = os.getloadavg()[0]
    finally:
        postgres.stop()
    loads = f"load average {load_before:.1f} at the start, {load_after:.1f} at the end"
    print(json.dumps(results.values, indent=1), file=sys.stderr)
    section = _report(args, results, started, loads)
    write_section(args.readme, section, MARK_START, MARK_END)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
