"""Every Prometheus metric of the service, each created once, here.

Import this module only after ``PROMETHEUS_MULTIPROC_DIR`` is set (``mlapi.serve`` does that
first): prometheus_client decides at creation whether a value lives in a per-process file.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from prometheus_client import Counter, Gauge, Histogram, Summary
from prometheus_fastapi_instrumentator import metrics as http_metrics

from mlapi.prediction_log import FeedbackOutcome
from yield_model import drift
from yield_model.columns import FEATURE_COLUMNS

#: Request latency buckets, in seconds: from one record to a batch of MLAPI_MAX_RECORDS.
HTTP_LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INFERENCE_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
RECORD_BUCKETS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
#: Every 0.025 from 0.6 to 1.05: published yields run 0.62-1.0, most of them 0.87-0.95.
YIELD_BUCKETS: Final = tuple(round(0.6 + 0.025 * i, 3) for i in range(19))
MISSING_REASONS: Final = ("absent", "unparseable")
#: Absolute errors of yields: the default model's holdout MAE is 0.010; 0.5 is a wrong unit.
ERROR_BUCKETS: Final = (
    0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5,
)  # fmt: skip
LOG_WRITE_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
)  # fmt: skip
FEEDBACK_REJECTIONS: Final = ("unknown", "duplicate")
#: Why a request was refused by mlapi.auth: no Authorization header, one that is not
#: "Bearer KEY", a key that is not in the key file, a key without the route's scope.
AUTH_FAILURE_REASONS: Final = ("missing", "malformed", "invalid", "forbidden")

# HTTP requests: the instrumentator's standard names (http_requests_total,
# http_request_duration_seconds, http_request_size_bytes, http_response_size_bytes), created
# here once so that building a second app in one process does not drop them.
_http = http_metrics.default(latency_lowr_buckets=HTTP_LATENCY_BUCKETS)
assert _http is not None, "HTTP metrics were already registered by someone else"
HTTP_INSTRUMENTATION: Final = _http

# A client that hangs up before its body is read is answered 499 (never a 5xx) and counted
# here too, so that aborted uploads are told apart from the service's own failures.
CLIENT_DISCONNECTS = Counter(
    "mlapi_client_disconnects_total",
    "Requests whose client closed the connection before the request body was read.",
    ["handler"],
)
BODY_READ_TIMEOUTS = Counter(
    "mlapi_body_read_timeouts_total",
    "Requests answered 408: the body did not arrive within MLAPI_BODY_READ_TIMEOUT_SECONDS.",
    ["handler"],
)
BODIES_REFUSED_BUSY = Counter(
    "mlapi_bodies_refused_busy_total",
    "Requests answered 503: their body would take the worker past MLAPI_MAX_BODY_BYTES_IN_FLIGHT.",
    ["handler"],
)

PREDICTIONS = Counter("mlapi_predictions_total", "Records predicted.", ["model_version"])
INFERENCE_SECONDS = Histogram(
    "mlapi_model_inference_seconds",
    "Time the model took per prediction request, in seconds.",
    ["model_version"],
    buckets=INFERENCE_BUCKETS,
)
RECORDS_PER_REQUEST = Histogram(
    "mlapi_prediction_records",
    "Records per prediction request.",
    ["model_version"],
    buckets=RECORD_BUCKETS,
)
PREDICTED_YIELD = Histogram(
    "mlapi_predicted_yield_ratio",
    "Predicted yields, as the ratio the data uses (0.92 = 92 %).",
    ["model_version"],
    buckets=YIELD_BUCKETS,
)
INPUTS_MISSING = Counter(
    "mlapi_inputs_missing_total",
    "Input values treated as missing: absent (null or not sent) or unparseable.",
    ["model_version", "feature", "reason"],
)
# The model treats such a value as missing too, but it is no gap in the data feed: a typo, a
# unit mix-up or a sensor fault, which the record's warnings name.
INPUTS_OUT_OF_RANGE = Counter(
    "mlapi_inputs_out_of_range_total",
    "Input values far outside the model's training range (the model card's input_ranges), "
    "treated as missing.",
    ["model_version", "feature"],
)
# Info metrics are not supported across processes; a gauge at 1 whose value every worker
# writes, aggregated by max, gives one series however many workers there are.
MODEL_INFO = Gauge(
    "mlapi_model_info",
    "The model being served: always 1, with its name and version as labels.",
    ["model_name", "model_version", "api_version"],
    multiprocess_mode="max",
)

PREDICTION_LOG_WRITE_SECONDS = Histogram(
    "mlapi_prediction_log_write_seconds",
    "Time a prediction request waited for its predictions to be committed to the log.",
    buckets=LOG_WRITE_BUCKETS,
)

# Accuracy, from feedback: counted by the worker that receives it, summed over workers.
FEEDBACK = Counter(
    "mlapi_feedback_total",
    "Measured yields recorded for logged predictions, by the predicting model's version.",
    ["model_version"],
)
FEEDBACK_REJECTED = Counter(
    "mlapi_feedback_rejected_total",
    "Feedback items not recorded: unknown prediction id, or a second value for a prediction.",
    ["reason"],
)
ABSOLUTE_ERROR = Histogram(
    "mlapi_prediction_absolute_error_ratio",
    "Absolute error |predicted - measured yield| of predictions that got feedback.",
    ["model_version"],
    buckets=ERROR_BUCKETS,
)
# Its sum over its count is the MSE over any window (RMSE: the square root), which the
# absolute-error histogram cannot give.
SQUARED_ERROR = Summary(
    "mlapi_prediction_squared_error_ratio",
    "Squared error (predicted - measured yield)^2 of predictions that got feedback.",
    ["model_version"],
)
# Every worker sets the same value; "max" makes it one series.
MAE_ALERT_THRESHOLD = Gauge(
    "mlapi_mae_alert_threshold_ratio",
    "MLAPI_MAE_ALERT_THRESHOLD: the mean absolute error above which MlapiHighMAE fires.",
    multiprocess_mode="max",
)

# Written by the monitoring job, which one process runs: "livemostrecent" makes each one
# series, whichever process holds the job, and drops a dead process's values.
RECENT_HALF_MSE = Gauge(
    "mlapi_recent_half_mse_ratio",
    "Half the mean squared error (the competition's score) over the latest feedbacks "
    "(MLAPI_ACCURACY_WINDOW), in squared yield ratio.",
    ["model_version"],
    multiprocess_mode="livemostrecent",
)
RECENT_FEEDBACK = Gauge(
    "mlapi_recent_feedback_records",
    "Feedbacks mlapi_recent_half_mse_ratio is computed over.",
    ["model_version"],
    multiprocess_mode="livemostrecent",
)
INPUT_DRIFT = Gauge(
    "mlapi_input_drift_psi",
    "Population stability index of an engineered input feature: the latest predictions "
    "(MLAPI_DRIFT_WINDOW) against the training data. Above 0.1: watch; above 0.25: act.",
    ["model_version", "feature"],
    multiprocess_mode="livemostrecent",
)
PREDICTED_YIELD_DRIFT = Gauge(
    "mlapi_predicted_yield_drift_psi",
    "Population stability index of the predicted yield: the latest predictions against the "
    "model's predictions on its training data.",
    ["model_version"],
    multiprocess_mode="livemostrecent",
)
DRIFT_WINDOW = Gauge(
    "mlapi_drift_window_records",
    "Predictions the drift indices were computed over.",
    ["model_version"],
    multiprocess_mode="livemostrecent",
)
MONITOR_LAST_RUN = Gauge(
    "mlapi_monitor_last_run_timestamp_seconds",
    "Unix time the monitoring job last finished: the drift and accuracy gauges are that old.",
    ["model_version"],
    multiprocess_mode="livemostrecent",
)
PREDICTION_LOG_ROWS = Gauge(
    "mlapi_prediction_log_rows",
    "Rows in the prediction log, per table (predictions, feedback), after retention.",
    ["table"],
    multiprocess_mode="livemostrecent",
)

# Never labelled with the key or its name: a guessed key would become a series.
AUTH_FAILURES = Counter(
    "mlapi_auth_failures_total",
    "Requests refused for their API key: missing, malformed, invalid (401) or forbidden (403).",
    ["reason"],
)
for _reason in AUTH_FAILURE_REASONS:
    AUTH_FAILURES.labels(_reason)


def record_auth_failure(reason: str) -> None:
    """Count a request refused for its API key."""
    AUTH_FAILURES.labels(reason).inc()


def announce_model(
    model_name: str, model_version: str, api_version: str, guarded: Iterable[str] = ()
) -> None:
    """Publish the model info and start every model series at zero; ``guarded`` names the
    inputs whose out-of-range values the model counts.

    Series that exist from the start read 0 rather than "no data" in dashboards and alerts.
    """
    MODEL_INFO.labels(model_name, model_version, api_version).set(1)
    PREDICTIONS.labels(model_version)
    INFERENCE_SECONDS.labels(model_version)
    RECORDS_PER_REQUEST.labels(model_version)
    PREDICTED_YIELD.labels(model_version)
    for feature in FEATURE_COLUMNS:
        for reason in MISSING_REASONS:
            INPUTS_MISSING.labels(model_version, feature, reason)
    for feature in guarded:
        INPUTS_OUT_OF_RANGE.labels(model_version, feature)
    FEEDBACK.labels(model_version)
    ABSOLUTE_ERROR.labels(model_version)
    SQUARED_ERROR.labels(model_version)
    for reason in FEEDBACK_REJECTIONS:
        FEEDBACK_REJECTED.labels(reason)


def announce_mae_alert_threshold(threshold: float) -> None:
    """Publish the MAE alert threshold, so that the alert rule and dashboard read the setting."""
    MAE_ALERT_THRESHOLD.set(threshold)


def record_prediction(
    model_version: str,
    predictions: Sequence[float],
    inference_seconds: float,
    *,
    absent: Mapping[str, int],
    unparseable: Mapping[str, int],
    out_of_range: Mapping[str, int],
) -> None:
    """Count one prediction request: its records, model time, yields, missing inputs and
    inputs outside the training range."""
    PREDICTIONS.labels(model_version).inc(len(predictions))
    INFERENCE_SECONDS.labels(model_version).observe(inference_seconds)
    RECORDS_PER_REQUEST.labels(model_version).observe(len(predictions))
    predicted_yield = PREDICTED_YIELD.labels(model_version)
    for value in predictions:
        # NaN would land in no bucket yet poison the sum; an infinity would make the sum
        # infinite for good. Neither is a yield.
        if math.isfinite(value):
            predicted_yield.observe(value)
    for reason, counts in (("absent", absent), ("unparseable", unparseable)):
        for feature, count in counts.items():
            if count:
                INPUTS_MISSING.labels(model_version, feature, reason).inc(count)
    for feature, count in out_of_range.items():
        if count:
            INPUTS_OUT_OF_RANGE.labels(model_version, feature).inc(count)


def record_feedback(outcomes: Iterable[FeedbackOutcome]) -> None:
    """Count feedback items; observe the error of each one recorded."""
    for outcome in outcomes:
        if outcome.status != "recorded":
            FEEDBACK_REJECTED.labels(outcome.status).inc()
            continue
        # a recorded outcome always has them
        assert outcome.model_version is not None
        assert outcome.predicted_yield is not None
        assert outcome.actual_yield is not None
        error = outcome.predicted_yield - outcome.actual_yield
        FEEDBACK.labels(outcome.model_version).inc()
        ABSOLUTE_ERROR.labels(outcome.model_version).observe(abs(error))
        SQUARED_ERROR.labels(outcome.model_version).observe(error**2)


def record_recent_accuracy(model_version: str, half_mse: float, feedbacks: int) -> None:
    """Publish the half-MSE over the latest feedbacks, and how many there were."""
    RECENT_HALF_MSE.labels(model_version).set(half_mse)
    RECENT_FEEDBACK.labels(model_version).set(feedbacks)


def record_drift(model_version: str, scores: Mapping[str, float], window: int) -> None:
    """Publish the drift indices of a window: per input feature, and of the predicted yield."""
    for name, psi in scores.items():
        if name == drift.PREDICTED_YIELD:
            PREDICTED_YIELD_DRIFT.labels(model_version).set(psi)
        else:
            INPUT_DRIFT.labels(model_version, name).set(psi)
    DRIFT_WINDOW.labels(model_version).set(window)


def record_log_rows(counts: Mapping[str, int]) -> None:
    """Publish the row count of each table of the prediction log."""
    for table, rows in counts.items():
        PREDICTION_LOG_ROWS.labels(table).set(rows)


def record_client_disconnect(handler: str) -> None:
    """Count a request whose client hung up before its body was read."""
    CLIENT_DISCONNECTS.labels(handler).inc()


def record_body_read_timeout(handler: str) -> None:
    """Count a request whose body did not arrive in time."""
    BODY_READ_TIMEOUTS.labels(handler).inc()


def record_body_refused_busy(handler: str) -> None:
    """Count a request whose body did not fit in the worker's bytes in flight."""
    BODIES_REFUSED_BUSY.labels(handler).inc()


def record_log_write(seconds: float) -> None:
    """Observe how long a request waited for the prediction log."""
    PREDICTION_LOG_WRITE_SECONDS.observe(seconds)


def record_monitor_run(model_version: str, finished_at: float) -> None:
    """Publish when the monitoring job last finished."""
    MONITOR_LAST_RUN.labels(model_version).set(finished_at)
