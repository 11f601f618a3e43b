"""``mlapi-serve``: check the settings and the model, then run N workers under gunicorn.

Order matters: the metrics directory is emptied and ``PROMETHEUS_MULTIPROC_DIR`` set before
anything imports prometheus_client, so every worker writes its metrics to files there and
``/metrics`` reports the sum over workers.
"""

import os

# One OpenMP and BLAS thread per worker: the workers are the parallelism. Set before numpy
# and scikit-learn load their thread pools; an explicit OMP_NUM_THREADS still wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import shutil
import sys
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from pydantic import ValidationError
from uvicorn_worker import UvicornWorker

from mlapi.logs import logging_config
from mlapi.prediction_log import PredictionLogError, open_prediction_log
from mlapi.settings import Settings, describe_settings_error, get_settings
from yield_model.predict import load_model

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class StartupError(Exception):
    """The service cannot start; the message says why."""


def prepare_multiproc_dir(directory: Path) -> None:
    """Create the metrics directory, or empty it of a previous run's metric files."""
    directory.mkdir(parents=True, exist_ok=True)
    entries = list(directory.iterdir())
    # Only prometheus_client's own files are removed: pointed at the wrong directory by
    # mistake, the service refuses to start rather than delete someone's files.
    foreign = [e.name for e in entries if not (e.is_file() and e.suffix == ".db")]
    if foreign:
        raise StartupError(
            f"MLAPI_MULTIPROC_DIR={directory} holds files that are not metric files "
            f"({', '.join(sorted(foreign)[:5])}); point it at an empty or dedicated directory"
        )
    for entry in entries:
        entry.unlink()


def check_model(settings: Settings) -> None:
    """Load the model once before forking workers, so a broken one stops the start."""
    try:
        load_model(settings.model_path, settings.model_sha256)
    except Exception as exc:  # any failure to load means: do not serve
        raise StartupError(f"the model cannot be loaded: {exc}") from exc


def check_prediction_log(settings: Settings) -> None:
    """Create or migrate the prediction log before forking workers, so that one process
    migrates it and a bad location stops the start.

    Opened and closed again here: the workers open their own connections after the fork.
    """
    try:
        log = open_prediction_log(settings.prediction_log_url, settings.prediction_log_sync, 1)
        try:
            log.check_writable()
        finally:
            log.close()
    except PredictionLogError as exc:
        raise StartupError(f"{exc} (set MLAPI_PREDICTION_LOG_URL to a writable log)") from exc


def worker_class(settings: Settings) -> type[UvicornWorker]:
    """uvicorn-worker's worker with the uvicorn settings gunicorn has no option for."""

    class Worker(UvicornWorker):  # type: ignore[misc]
        # CONFIG_KWARGS is the worker's own extension point (its h11 variant sets it too).
        CONFIG_KWARGS = {  # noqa: RUF012
            **UvicornWorker.CONFIG_KWARGS,
            "server_header": False,  # no banner naming the server and its version
            "limit_concurrency": settings.max_connections,
        }

    return Worker


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    """gunicorn's settings for these service settings."""
    host = f"[{settings.host}]" if ":" in settings.host else settings.host

    def child_exit(server: Any, worker: Any) -> None:
        # Imported here, in the master, only after PROMETHEUS_MULTIPROC_DIR is set.
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]

    return {
        "bind": [f"{host}:{settings.port}"],
        "workers": settings.workers,
        "worker_class": worker_class(settings),
        "graceful_timeout": settings.graceful_timeout,
        # A worker's heartbeat stops while its lifespan loads the model; on a busy machine
        # that can take seconds, which must not look like a hung worker.
        "timeout": 60,
        # uvicorn-worker passes it on as uvicorn's keep-alive timeout
        "keepalive": settings.keepalive_seconds,
        "child_exit": child_exit,
        "logconfig_dict": logging_config(settings),
        "accesslog": None,
        "loglevel": settings.log_level,
        "proc_name": "mlapi",
        "control_socket_disable": True,
    }


class Server(BaseApplication):  # type: ignore[misc]
    """gunicorn, configured from the settings, serving ``create_app`` in each worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        for key, value in gunicorn_options(self.settings).items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Imported in the worker: app.main creates the metrics, which must see the
        # multiprocess directory set by main().
        from mlapi.main import create_app

        return create_app(self.settings)


def main() -> int:
    """Start the service; returns the exit status when it cannot start."""
    try:
        settings = get_settings()
    except ValidationError as exc:
        print(f"mlapi-serve: invalid settings:\n{describe_settings_error(exc)}", file=sys.stderr)
        return 2
    try:
        prepare_multiproc_dir(settings.multiproc_dir)
        os.environ[MULTIPROC_ENV] = str(settings.multiproc_dir)
        check_model(settings)
        check_prediction_log(settings)
    except (StartupError, OSError) as exc:
        print(f"mlapi-serve: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        Server(settings).run()  # returns when gunicorn stops; on failure it exits itself
    finally:
        if "multiproc_dir" not in settings.model_fields_set:  # this instance's own
            shutil.rmtree(settings.multiproc_dir, ignore_errors=True)
    return 0
