"""The stack, for real: predictions through the API, then every query of the "Yield model API"
dashboard asked of the live Prometheus, each required to return data.

The queries are read from the dashboard file, so a panel added there is tested here.
"""

import csv
import io
import json
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from compose_stack import Stack

ROOT = Path(__file__).resolve().parents[2]
API_DASHBOARD = ROOT / "grafana" / "dashboards" / "yield-model-api.json"
DATA_WITHIN_S = 300
RECORDS = 60
# The one series a working API cannot make non-zero on purpose: server errors.
MAY_BE_ZERO = {"server errors (5xx)", "5xx ratio"}
# Predicted yields are recorded in a histogram spanning 0.6-1.05; the usual range is 0.87-1.0
# (the alert MlapiPredictedYieldOutOfRange fires when the mean leaves it).
YIELD_SPAN = (0.6, 1.05)
USUAL_MEAN = (0.87, 1.0)


def version_of(path: str) -> str:
    return (ROOT / path).read_text(encoding="utf-8").strip()


MODEL_VERSION = version_of("model_package/yield_model/VERSION")
API_VERSION = version_of("mlapi/app/VERSION")


def rate_interval() -> str:
    """Grafana's $__rate_interval for the provisioned data source: four scrape intervals."""
    (path,) = (ROOT / "grafana" / "provisioning" / "datasources").glob("*.y*ml")
    (source,) = yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]
    seconds = re.fullmatch(r"(\d+)s", source["jsonData"]["timeInterval"])
    assert seconds, "timeInterval is expected in seconds"
    return f"{4 * int(seconds[1])}s"


def dashboard_queries() -> Iterator[tuple[str, str, str]]:
    """(where, legend, PromQL) of every target, variables replaced by this stack's values."""
    dashboard = json.loads(API_DASHBOARD.read_text(encoding="utf-8"))
    values = {"__rate_interval": rate_interval(), "model_version": MODEL_VERSION}
    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert names <= set(values), f"no test value for dashboard variables {names - set(values)}"
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = re.sub(r"\$(\w+)", lambda m: values[m[1]], target["expr"])
            yield f"{panel['title']} / {target['legendFormat']}", target["legendFormat"], expr


def has_data(result: list[dict[str, Any]], may_be_zero: bool) -> bool:
    """Whether an instant query's result holds a finite value, positive unless it may be zero."""
    values = [float(series["value"][1]) for series in result]
    finite = [value for value in values if math.isfinite(value)]
    return bool(finite) and (may_be_zero or any(value > 0 for value in finite))


@pytest.fixture(scope="module")
def records(stack: Stack) -> list[dict[str, str | None]]:
    """Records in the published files' format, written by the data generator inside the image."""
    container = stack.container("mlapi")
    generated = container.exec_run(
        [
            "python", "-m", "yield_model.datasets", "test",
            "--out", "/tmp/stack-test.csv", "--answers", "/tmp/stack-answers.csv",
            "--rows", str(RECORDS), "--encoding", "utf-8",
        ]
    )  # fmt: skip
    assert generated.exit_code == 0, generated.output.decode(errors="replace")
    read = container.exec_run(["cat", "/tmp/stack-test.csv"])
    assert read.exit_code == 0
    rows = csv.DictReader(io.StringIO(read.output.decode("utf-8")))
    return [{key: value or None for key, value in row.items()} for row in rows]


def predict(stack: Stack, inputs: list[dict[str, Any]]) -> httpx.Response:
    return httpx.post(f"{stack.api_url}/api/v1/predict", json={"inputs": inputs}, timeout=60)


def test_health_reports_the_packaged_model(stack: Stack) -> None:
    answer = httpx.get(f"{stack.api_url}/api/v1/health")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["status"], body["model_version"], body["api_version"]) == (
        "ok",
        MODEL_VERSION,
        API_VERSION,
    )


def test_predict_answers_one_plausible_yield_per_record(
    stack: Stack, records: list[dict[str, str | None]]
) -> None:
    answer = predict(stack, records)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_version"] == MODEL_VERSION
    predictions = body["predictions"]
    assert [p["sample_id"] for p in predictions] == [r["样本id"] for r in records]
    yields = [p["predicted_yield"] for p in predictions]
    assert all(YIELD_SPAN[0] <= y <= YIELD_SPAN[1] for y in yields), yields
    assert USUAL_MEAN[0] <= sum(yields) / len(yields) <= USUAL_MEAN[1]


def test_invalid_input_is_refused_with_a_client_error(stack: Stack) -> None:
    answer = predict(stack, [{"A1": "three hundred"}])
    assert 400 <= answer.status_code < 500
    assert answer.json()["detail"]["errors"]


def test_prometheus_runs_every_alert_rule(stack: Stack) -> None:
    rules = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    expected = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    answer = httpx.get(f"{stack.prometheus_url}/api/v1/rules", params={"type": "alert"})
    loaded = [rule for group in answer.json()["data"]["groups"] for rule in group["rules"]]
    assert {rule["name"] for rule in loaded} == expected
    assert {rule["health"] for rule in loaded} == {"ok"}


def send_traffic(stack: Stack, records: list[dict[str, str | None]]) -> None:
    """Predictions of several sizes, one unreadable value and one invalid request."""
    for size in (1, 7, 20):
        assert predict(stack, records[:size]).status_code == 200
    unreadable = {**records[0], "A5": "after lunch"}
    answer = predict(stack, [unreadable])
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0]["warnings"]
    assert predict(stack, [{"A1": "three hundred"}]).status_code < 500


def test_every_api_dashboard_query_returns_data(
    stack: Stack, records: list[dict[str, str | None]]
) -> None:
    queries = list(dashboard_queries())
    assert len(queries) >= 20
    empty: list[str] = []
    deadline = time.monotonic() + DATA_WITHIN_S
    while time.monotonic() < deadline:
        send_traffic(stack, records)
        # Rates need two scrapes that saw the traffic; keep sending until every panel has it.
        time.sleep(5)
        empty = []
        for where, legend, expr in queries:
            answer = httpx.get(f"{stack.prometheus_url}/api/v1/query", params={"query": expr})
            assert answer.status_code == 200, f"{where}: {answer.text}"
            if not has_data(answer.json()["data"]["result"], legend in MAY_BE_ZERO):
                empty.append(where)
        if not empty:
            break
    assert not empty, f"no data after {DATA_WITHIN_S}s for: {empty}"


def test_model_version_variable_lists_the_served_model(stack: Stack) -> None:
    answer = httpx.get(
        f"{stack.prometheus_url}/api/v1/label/model_version/values",
        params={"match[]": "mlapi_model_info"},
    )
    assert answer.json()["data"] == [MODEL_VERSION]


# Last: it stops the API.
def test_api_stops_gracefully_on_sigterm(stack: Stack) -> None:
    stopped = stack.run("stop", "mlapi")
    assert stopped.returncode == 0, stopped.stderr
    state = stack.container("mlapi").attrs["State"]
    # A SIGKILL after the grace period would leave 137.
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)
