"""Every Prometheus metric of the service, each created once, here.

Import this module only after ``PROMETHEUS_MULTIPROC_DIR`` is set (``app.serve`` does that
first): prometheus_client decides at creation whether a value lives in a per-process file.
"""

from collections.abc import Iterable, Mapping
from typing import Any, Final

import numpy as np
from prometheus_client import Counter, Gauge, Histogram
from prometheus_fastapi_instrumentator import metrics as http_metrics

from yield_model.columns import FEATURE_COLUMNS

#: Request latency buckets, in seconds: single records take milliseconds, 10,000 take seconds.
HTTP_LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INFERENCE_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
RECORD_BUCKETS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
#: Every 0.025 from 0.6 to 1.05: published yields run 0.62-1.0, most of them 0.87-0.95.
YIELD_BUCKETS: Final = tuple(round(0.6 + 0.025 * i, 3) for i in range(19))
MISSING_REASONS: Final = ("absent", "unparseable")

# HTTP requests: the instrumentator's standard names (http_requests_total,
# http_request_duration_seconds, http_request_size_bytes, http_response_size_bytes), created
# here once so that building a second app in one process does not drop them.
_http = http_metrics.default(latency_lowr_buckets=HTTP_LATENCY_BUCKETS)
assert _http is not None, "HTTP metrics were already registered by someone else"
HTTP_INSTRUMENTATION: Final = _http

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
# Info metrics are not supported across processes; a gauge at 1 whose value every worker
# writes, aggregated by max, gives one series however many workers there are.
MODEL_INFO = Gauge(
    "mlapi_model_info",
    "The model being served: always 1, with its name and version as labels.",
    ["model_name", "model_version", "api_version"],
    multiprocess_mode="max",
)


def announce_model(model_name: str, model_version: str, api_version: str) -> None:
    """Publish the model info and start every model series at zero.

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


def record_prediction(
    model_version: str,
    predictions: Iterable[float],
    inference_seconds: float,
    absent: Mapping[str, int],
    unparseable: Mapping[str, int],
) -> None:
    """Count one prediction request: its records, model time, yields and missing inputs."""
    values = np.fromiter(predictions, dtype=np.float64)
    PREDICTIONS.labels(model_version).inc(len(values))
    INFERENCE_SECONDS.labels(model_version).observe(inference_seconds)
    RECORDS_PER_REQUEST.labels(model_version).observe(len(values))
    observe_many(PREDICTED_YIELD.labels(model_version), values)
    for reason, counts in (("absent", absent), ("unparseable", unparseable)):
        for feature, count in counts.items():
            if count:
                INPUTS_MISSING.labels(model_version, feature, reason).inc(count)


def observe_many(histogram: Histogram, values: np.ndarray[Any, np.dtype[np.float64]]) -> None:
    """Observe many values at once: one write per bucket instead of one per value.

    prometheus_client has no bulk observe, and in multiprocess mode every write goes to a
    memory-mapped file (~5 µs each); a 10,000-record request would spend 50 ms here. This
    does what ``observe`` does (non-cumulative bucket counts, ``le`` inclusive, plus the sum);
    a test compares the two.
    """
    finite = values[np.isfinite(values)]
    bounds = np.asarray(histogram._upper_bounds, dtype=np.float64)
    counts = np.bincount(np.searchsorted(bounds, finite, side="left"), minlength=len(bounds))
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(int(count))
    histogram._sum.inc(float(finite.sum()))
