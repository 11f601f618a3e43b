"""The monitoring job: retention, input drift and recent accuracy, from the prediction log.

Every worker starts a ``Monitor`` thread, but only the one holding the log's monitoring lock
(a lock on a file beside an SQLite log, an advisory lock in PostgreSQL) runs the job: the
numbers are computed once, from every worker's predictions, and exported once. When that
process dies the kernel or the server releases its lock and another worker's thread takes
over at its next tick. The job reads through a log of its own, so that a predict never waits
for it.
"""

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from mlapi import metrics
from mlapi.prediction_log import PredictionLog
from mlapi.settings import Settings
from yield_model.drift import window_drift
from yield_model.errors import InvalidInputError
from yield_model.predict import TrainedModel

logger = logging.getLogger("mlapi.monitor")

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class MonitorRun:
    """What one run of the job found."""

    pruned: int
    drift_window: int
    drift: dict[str, float] | None
    feedbacks: int
    half_mse: float | None


class Monitor:
    """Runs the monitoring job every interval, in the one process that holds the lock."""

    def __init__(self, log: PredictionLog, model: TrainedModel, settings: Settings) -> None:
        self.log = log
        self.model = model
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._leading = False

    def run_once(self, now: float | None = None) -> MonitorRun:
        """Apply retention, then export drift and recent accuracy of the served model."""
        settings, version = self.settings, self.model.version
        pruned = self.log.prune(
            time.time() if now is None else now,
            settings.prediction_log_max_age_days * SECONDS_PER_DAY,
            settings.prediction_log_max_rows,
        )
        metrics.record_log_rows(self.log.counts())

        window = self.log.recent_predictions(version, settings.drift_window)
        drift = None
        # Below the minimum, sampling noise alone reads as drift (yield_model.drift).
        if len(window.inputs) >= settings.drift_min_records:
            try:
                drift = window_drift(self.model, window.inputs, window.predictions)
            except InvalidInputError as exc:  # logged by an older service, say
                logger.warning("drift not computed: logged inputs no longer validate: %s", exc)
            else:
                metrics.record_drift(version, drift, len(window.inputs))

        predicted, actual = self.log.recent_feedback(version, settings.accuracy_window)
        half_mse = None
        if len(actual):
            half_mse = float(np.mean((predicted - actual) ** 2) / 2)
            metrics.record_recent_accuracy(version, half_mse, len(actual))
        metrics.record_monitor_run(version, time.time())
        return MonitorRun(pruned, len(window.inputs), drift, len(actual), half_mse)

    def start(self) -> None:
        """Run the job every ``monitor_interval_seconds`` from now on, if this process leads."""
        self._thread = threading.Thread(target=self._loop, name="mlapi-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (a run in progress finishes first) and give up the lead."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.log.resign()
        self._leading = False

    def leads(self) -> bool:
        """Whether this process runs the job: it holds, or has just taken, the lock."""
        leading = self.log.try_lead()
        if leading and not self._leading:
            logger.info("this process runs the monitoring job", extra={"job": "monitor"})
        self._leading = leading
        return leading

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.monitor_interval_seconds):
            try:
                if self.leads():
                    self.run_once()
            except Exception:  # the job must outlive a bad run; the next one may succeed
                logger.exception("the monitoring job failed; it runs again in one interval")
