"""The stack, for real: predictions and their measured yields through the API, then every
query of the "Yield model API" dashboard asked of the live Prometheus, each required to return
data, and every SQL query of it run on the live PostgreSQL as Grafana's read-only role; the
predictions and feedback on record in PostgreSQL; a shifted batch read as drift, its alert
delivered by Alertmanager to a webhook and resolved by a usual batch; the API killed and started
again, losing nothing.

The queries are read from the dashboard file, so a panel added there is tested here.
"""

import csv
import io
import json
import math
import re
import shlex
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import production_agent
import pytest
import stack_tools
import yaml
from compose_stack import SqlResult, Stack, WebhookReceiver, psql, try_psql, wait_healthy

from yield_deploy import metrics_agent

ROOT = Path(__file__).resolve().parents[2]
API_DASHBOARD = ROOT / "grafana" / "dashboards" / "yield-model-api.json"
DATA_WITHIN_S = 300
ALERT_WITHIN_S = 300
RECORDS = 60
# The shifted batch fills the drift window (MLAPI_DRIFT_WINDOW, 1000 by default) by itself.
SHIFTED_RECORDS = 1000
# Engineered features the generator's shifted variant moves (yield_model.datasets), and those
# that follow: total_hours, the sum of every step's duration, B4's among them, and the clock
# times of the steps after B4, which start later (yield_model.datasets.SHIFTED_CLOCKS).
SHIFTED = {"A6", "B14", "B4_duration"}
DERIVED = {"total_hours", "B5", "B7", "B9_start", "B10_start", "B11_start"}
# The one series a working API cannot make non-zero on purpose: server errors.
MAY_BE_ZERO = {"server errors (5xx)", "5xx ratio"}
# Predicted yields are recorded in a histogram spanning 0.6-1.05; the usual range is 0.87-1.0
# (the alert MlapiPredictedYieldOutOfRange fires when the mean leaves it).
YIELD_SPAN = (0.6, 1.05)
USUAL_MEAN = (0.87, 1.0)
# The drift thresholds the README documents (yield_model.drift): watch, act.
PSI_WATCH, PSI_ACT = 0.1, 0.25
# The roles of docker-compose.yml's postgres service: the API's (the owner) and Grafana's.
API_ROLE, GRAFANA_ROLE = "mlapi", "grafana"
POSTGRES_TYPE = "grafana-postgresql-datasource"
# Grafana's $__timeFilter(column), as its PostgreSQL data source expands it.
TIME_FILTER = re.compile(r"\$__timeFilter\((\w+(?:\.\w+)?)\)")
# What each SQL panel of the API dashboard shows, by title: its columns, in order.
SQL_PANEL_COLUMNS = {
    "Latest predictions and their measured yields": [
        "time",
        "sample_id",
        "model_version",
        "predicted_yield",
        "measured_yield",
        "error",
        "measured_at",
        "prediction_id",
    ],
}


def version_of(path: str) -> str:
    return (ROOT / path).read_text(encoding="utf-8").strip()


MODEL_VERSION = version_of("model_package/yield_model/VERSION")
API_VERSION = version_of("mlapi/mlapi/VERSION")


def rate_interval() -> str:
    """Grafana's $__rate_interval for the provisioned data source: four scrape intervals."""
    paths = (ROOT / "grafana" / "provisioning" / "datasources").glob("*.y*ml")
    sources = [s for path in paths for s in yaml.safe_load(path.read_text())["datasources"]]
    (source,) = [s for s in sources if s["type"] == "prometheus"]
    seconds = re.fullmatch(r"(\d+)s", source["jsonData"]["timeInterval"])
    assert seconds, "timeInterval is expected in seconds"
    return f"{4 * int(seconds[1])}s"


def dashboard_queries() -> Iterator[tuple[str, str, str]]:
    """(where, legend, PromQL) of every target, variables replaced by this stack's values."""
    dashboard = json.loads(API_DASHBOARD.read_text(encoding="utf-8"))
    # (the datasource variable names the data source to ask, not part of a query)
    values = {
        "__rate_interval": rate_interval(),
        "model_version": MODEL_VERSION,
        "datasource": "",
    }
    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert names <= set(values), f"no test value for dashboard variables {names - set(values)}"
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            if target["datasource"]["type"] != "prometheus":
                continue
            expr = re.sub(r"\$(\w+)", lambda m: values[m[1]], target["expr"])
            yield f"{panel['title']} / {target['legendFormat']}", target["legendFormat"], expr


def dashboard_sql() -> Iterator[tuple[str, str]]:
    """(panel title, SQL) of every PostgreSQL target, for the last hour up to now."""
    dashboard = json.loads(API_DASHBOARD.read_text(encoding="utf-8"))
    now = datetime.now(UTC)
    start, end = (t.strftime("%Y-%m-%dT%H:%M:%S.%fZ") for t in (now - timedelta(hours=1), now))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            if target["datasource"]["type"] == POSTGRES_TYPE:
                sql = TIME_FILTER.sub(
                    lambda m: f"{m[1]} BETWEEN '{start}' AND '{end}'", target["rawSql"]
                )
                assert "$" not in sql, f"{panel['title']}: a macro this test does not expand"
                yield panel["title"], sql


def as_api(stack: Stack, sql: str) -> SqlResult:
    return psql(stack, sql, user=API_ROLE, password=stack.env["POSTGRES_PASSWORD"])


def as_grafana(stack: Stack, sql: str) -> SqlResult:
    return psql(stack, sql, user=GRAFANA_ROLE, password=stack.env["POSTGRES_GRAFANA_PASSWORD"])


def has_data(result: list[dict[str, Any]], may_be_zero: bool) -> bool:
    """Whether an instant query's result holds a finite value, positive unless it may be zero."""
    values = [float(series["value"][1]) for series in result]
    finite = [value for value in values if math.isfinite(value)]
    return bool(finite) and (may_be_zero or any(value > 0 for value in finite))


class Batch(NamedTuple):
    """Generated records as the published files have them, and their true yields by sample id."""

    records: list[dict[str, str | None]]
    yields: dict[str, float]


def generated_batch(stack: Stack, rows: int, seed: int, *, shifted: bool = False) -> Batch:
    """A test file and its answers, written by the data generator inside the image."""
    container = stack.container("mlapi")
    data, answers = f"/tmp/stack-{seed}.csv", f"/tmp/stack-{seed}-answers.csv"
    command = [
        "python", "-m", "yield_model.datasets", "test", "--out", data, "--answers", answers,
        "--rows", str(rows), "--seed", str(seed), "--encoding", "utf-8",
    ]  # fmt: skip
    generated = container.exec_run([*command, *(["--shifted"] if shifted else [])])
    assert generated.exit_code == 0, generated.output.decode(errors="replace")
    texts = []
    for path in (data, answers):
        read = container.exec_run(["cat", path])
        assert read.exit_code == 0
        texts.append(read.output.decode("utf-8"))
    rows_read = csv.DictReader(io.StringIO(texts[0]))
    records = [{key: value or None for key, value in row.items()} for row in rows_read]
    yields = {sample: float(y) for sample, y in csv.reader(io.StringIO(texts[1]))}
    return Batch(records, yields)


@pytest.fixture(scope="module")
def batch(stack: Stack) -> Batch:
    """RECORDS records of the generator's test file (seed 1), with their true yields."""
    return generated_batch(stack, RECORDS, seed=1)


@pytest.fixture(scope="module")
def records(batch: Batch) -> list[dict[str, str | None]]:
    """The batch's records."""
    return batch.records


@pytest.fixture(scope="module")
def recorded_errors() -> list[float]:
    """|predicted - true yield| of every feedback the API recorded in this module."""
    return []


_client_keys: dict[str, str] = {}


def client_key(stack: Stack) -> str:
    """The client key mlapi-keys made on the first start, read as the README says."""
    if stack.project in _client_keys:
        return _client_keys[stack.project]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (line,) = [ln for ln in readme.splitlines() if ln.startswith("KEY=$(docker compose exec ")]
    command = shlex.split(line.removeprefix("KEY=$(").removesuffix(")"))
    read = stack.container("mlapi").exec_run(command[len(["docker", "compose", "exec", "mlapi"]) :])
    assert read.exit_code == 0, read.output.decode(errors="replace")
    key = _client_keys[stack.project] = read.output.decode().strip()
    return key


def auth(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {client_key(stack)}"}


def predict(stack: Stack, inputs: list[dict[str, Any]]) -> httpx.Response:
    return httpx.post(
        f"{stack.api_url}/api/v1/predict", json={"inputs": inputs}, headers=auth(stack), timeout=60
    )


def test_every_route_but_health_needs_a_key(stack: Stack) -> None:
    unknown = str(uuid.uuid4())
    routes = [
        ("GET", "/api/v1/model"),
        ("POST", "/api/v1/predict"),
        ("POST", "/api/v1/feedback"),
        ("GET", f"/api/v1/predictions/{unknown}"),
        ("GET", "/metrics"),
    ]
    for method, path in routes:
        answer = httpx.request(method, f"{stack.api_url}{path}", json={}, timeout=30)
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.headers["WWW-Authenticate"] == "Bearer"
    # The client key may predict and read, but not scrape: that is Prometheus' key
    found = httpx.get(f"{stack.api_url}/api/v1/predictions/{unknown}", headers=auth(stack))
    assert found.status_code == 404
    scraped = httpx.get(f"{stack.api_url}/metrics", headers=auth(stack))
    assert scraped.status_code == 403


def test_health_reports_the_packaged_model(stack: Stack) -> None:
    answer = httpx.get(f"{stack.api_url}/api/v1/health")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["status"], body["model_version"], body["api_version"]) == (
        "ok",
        MODEL_VERSION,
        API_VERSION,
    )


def test_the_default_image_serves_a_model_its_card_says_is_of_generated_data(
    stack: Stack,
) -> None:
    # The image's default MODEL_SOURCE=build trains on generated data: a release never ships it
    answer = httpx.get(f"{stack.api_url}/api/v1/model", headers=auth(stack), timeout=30)
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert (data["origin"], data["source"]) == (
        "generated",
        "generated by yield_model.datasets: 1396 rows, seed 0",
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
    answer = predict(stack, [{"A1": True}])  # a boolean is no cell value
    assert 400 <= answer.status_code < 500
    assert answer.json()["detail"]["errors"]


def test_prometheus_runs_every_alert_rule(stack: Stack) -> None:
    rules = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    expected = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    # A rule's health is "unknown" until its group is first evaluated (evaluation_interval
    # after Prometheus loads it): wait for that, not for the first scrape.
    deadline = time.monotonic() + DATA_WITHIN_S
    while True:
        answer = httpx.get(f"{stack.prometheus_url}/api/v1/rules", params={"type": "alert"})
        loaded = [rule for group in answer.json()["data"]["groups"] for rule in group["rules"]]
        health = {rule["health"] for rule in loaded}
        if "unknown" not in health or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert {rule["name"] for rule in loaded} == expected
    assert health == {"ok"}, [(r["name"], r["health"], r.get("lastError")) for r in loaded]


def feedback(stack: Stack, items: list[tuple[str, float]]) -> list[dict[str, Any]]:
    body = {"feedback": [{"prediction_id": i, "actual_yield": y} for i, y in items]}
    answer = httpx.post(
        f"{stack.api_url}/api/v1/feedback", json=body, headers=auth(stack), timeout=60
    )
    assert answer.status_code == 200, answer.text
    results: list[dict[str, Any]] = answer.json()["results"]
    return results


def send_traffic(stack: Stack, batch: Batch, recorded_errors: list[float]) -> None:
    """Predictions of several sizes, one unreadable value, one out of the training range and one
    invalid request; then the true yields of the largest, one id the API never gave and one
    second value."""
    for size in (1, 7, 20):
        answer = predict(stack, batch.records[:size])
        assert answer.status_code == 200
    unreadable = {**batch.records[0], "A5": "after lunch"}
    unread = predict(stack, [unreadable])
    assert unread.status_code == 200, unread.text
    assert unread.json()["predictions"][0]["warnings"]
    # and a typo far outside what the model was trained on, which its guard treats as missing
    typo = predict(stack, [{**batch.records[0], "B14": 5000}])
    assert typo.status_code == 200, typo.text
    assert any("outside the training range" in w for w in typo.json()["predictions"][0]["warnings"])
    assert predict(stack, [{"A1": True}]).status_code == 422
    predictions = answer.json()["predictions"]
    items = [(p["prediction_id"], batch.yields[p["sample_id"]]) for p in predictions]
    results = feedback(stack, [*items, (str(uuid.uuid4()), 0.9), (items[0][0], 0.5)])
    assert [r["status"] for r in results] == ["recorded"] * 20 + ["unknown", "duplicate"]
    recorded_errors.extend(
        abs(p["predicted_yield"] - y) for p, (_, y) in zip(predictions, items, strict=True)
    )


def query(stack: Stack, expr: str) -> list[dict[str, Any]]:
    """An instant query's result, from the stack's Prometheus."""
    return query_at(stack.prometheus_url, expr)


def query_at(url: str, expr: str) -> list[dict[str, Any]]:
    """An instant query's result, from the Prometheus at url."""
    answer = httpx.get(f"{url}/api/v1/query", params={"query": expr})
    assert answer.status_code == 200, f"{expr}: {answer.text}"
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def panels_without_data(
    stack: Stack, batch: Batch, recorded_errors: list[float], prometheus_url: str
) -> list[str]:
    """The API dashboard's queries that still have no data at ``prometheus_url`` after
    traffic was sent for up to DATA_WITHIN_S; empty once every one has it."""
    queries = list(dashboard_queries())
    assert len(queries) >= 20
    empty: list[str] = []
    deadline = time.monotonic() + DATA_WITHIN_S
    while time.monotonic() < deadline:
        send_traffic(stack, batch, recorded_errors)
        # Rates need two scrapes that saw the traffic; keep sending until every panel has it.
        time.sleep(5)
        empty = [
            where
            for where, legend, expr in queries
            if not has_data(query_at(prometheus_url, expr), legend in MAY_BE_ZERO)
        ]
        if not empty:
            break
    return empty


def test_every_api_dashboard_query_returns_data(
    stack: Stack, batch: Batch, recorded_errors: list[float]
) -> None:
    empty = panels_without_data(stack, batch, recorded_errors, stack.prometheus_url)
    assert not empty, f"no data after {DATA_WITHIN_S}s for: {empty}"


def test_the_error_panel_shows_the_mae_of_the_feedback_sent(
    stack: Stack, recorded_errors: list[float]
) -> None:
    # Given every feedback sent so far, once Prometheus has scraped all of it
    assert recorded_errors
    deadline = time.monotonic() + DATA_WITHIN_S
    while time.monotonic() < deadline:
        counted = query(stack, 'sum(mlapi_feedback_total{job="mlapi"})')
        if counted and float(counted[0]["value"][1]) == len(recorded_errors):
            break
        time.sleep(2)
    # When the panel's MAE query is asked
    (mae,) = [expr for _, legend, expr in dashboard_queries() if legend.startswith("MAE,")]
    (series,) = query(stack, mae)
    # Then it is the mean absolute error of those predictions
    assert series["metric"] == {"model_version": MODEL_VERSION}
    assert float(series["value"][1]) == pytest.approx(
        sum(recorded_errors) / len(recorded_errors), rel=1e-9
    )


def test_a_shifted_batch_drifts_the_shifted_features_only(stack: Stack) -> None:
    # Given a batch of the generator's shifted variant that fills the drift window
    shifted = generated_batch(stack, SHIFTED_RECORDS, seed=7, shifted=True)
    assert predict(stack, shifted.records).status_code == 200
    sent = time.time()
    # When the API's drift job has run since, and Prometheus has scraped what it found
    # (the job's gauges and its finishing time come in one scrape)
    last_run = f'mlapi_monitor_last_run_timestamp_seconds{{model_version="{MODEL_VERSION}"}}'
    deadline = time.monotonic() + DATA_WITHIN_S
    while not any(float(s["value"][1]) > sent for s in query(stack, last_run)):
        assert time.monotonic() < deadline, "the drift job did not run after the batch"
        time.sleep(2)
    found = query(stack, f'mlapi_input_drift_psi{{model_version="{MODEL_VERSION}"}}')
    psi = {s["metric"]["feature"]: float(s["value"][1]) for s in found}
    # Then the shifted features are past the act threshold, and no other feature moved
    assert all(psi[name] > PSI_ACT for name in SHIFTED), {n: psi.get(n) for n in SHIFTED}
    others = {name: value for name, value in psi.items() if name not in SHIFTED | DERIVED}
    assert len(others) > 50
    assert max(others.values()) < PSI_WATCH, sorted(others.items(), key=lambda kv: -kv[1])[:3]


def test_prometheus_sends_to_the_alertmanager_of_the_stack(stack: Stack) -> None:
    answer = httpx.get(f"{stack.prometheus_url}/api/v1/alertmanagers")
    active = [a["url"] for a in answer.json()["data"]["activeAlertmanagers"]]
    assert active == ["http://alertmanager:9093/api/v2/alerts"]
    # and Alertmanager runs the rendered routing, with the webhook from the environment
    status = httpx.get(f"{stack.alertmanager_url}/api/v2/status").json()
    config = yaml.safe_load(status["config"]["original"])
    for receiver in config["receivers"]:
        (webhook,) = receiver["webhook_configs"]
        assert webhook["url"] == stack.env["ALERT_WEBHOOK_URL"]


def drift_alerts(body: dict[str, Any], status: str) -> dict[str, dict[str, Any]]:
    """The MlapiInputDrift alerts of a webhook body with this status, by feature."""
    return {
        alert["labels"]["feature"]: alert
        for alert in body["alerts"]
        if alert["labels"]["alertname"] == "MlapiInputDrift" and alert["status"] == status
    }


def test_a_drift_alert_reaches_the_webhook_and_then_its_resolution(
    stack: Stack, webhook: WebhookReceiver
) -> None:
    rules = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    (rule,) = [
        r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "MlapiInputDrift"
    ]
    # Given a batch of the generator's shifted variant that fills the drift window
    shifted = generated_batch(stack, SHIFTED_RECORDS, seed=7, shifted=True)
    assert predict(stack, shifted.records).status_code == 200
    # When the drift job, Prometheus' rules and Alertmanager's routing have had their turn
    # (the earlier tests' small batches may have drifted other features before: their alerts
    # resolve as the shifted batch fills the window). The notification may already have come:
    # test_a_shifted_batch_drifts_the_shifted_features_only sent this very batch before, and
    # Alertmanager notifies a group again only when its alerts change, so every body counts
    # (only a shifted batch in the window drifts these features).
    body = webhook.wait_for(
        lambda b: SHIFTED <= set(drift_alerts(b, "firing")) <= SHIFTED | DERIVED,
        ALERT_WITHIN_S,
        f"MlapiInputDrift firing for {sorted(SHIFTED)}",
        since=0,
    )
    # Then the alert arrives at the warning receiver, one per drifted feature, with the
    # rule's labels and annotations
    assert (body["receiver"], body["status"]) == ("warning", "firing")
    assert body["groupLabels"] == {"alertname": "MlapiInputDrift", "model_version": MODEL_VERSION}
    fired = drift_alerts(body, "firing")
    for feature, alert in fired.items():
        assert alert["labels"] == {
            "alertname": "MlapiInputDrift",
            "severity": "warning",
            "model_version": MODEL_VERSION,
            "feature": feature,
        }
        annotations = alert["annotations"]
        assert re.fullmatch(
            rf"Input {feature} of model {re.escape(MODEL_VERSION)} has drifted: PSI \d+\.\d\d",
            annotations["summary"],
        ), annotations["summary"]
        assert annotations["description"] == rule["annotations"]["description"]
        assert annotations["dashboard"] == (
            f"/d/yield-model-api/yield-model-api?var-model_version={MODEL_VERSION}"
        )
    # while the production rule, loaded too, waits out its `for:`
    answer = httpx.get(f"{stack.prometheus_url}/api/v1/rules", params={"type": "alert"})
    states = {
        (group["name"], r["name"]): r["state"]
        for group in answer.json()["data"]["groups"]
        for r in group["rules"]
    }
    assert states[("mlapi", "MlapiInputDrift")] == "pending"
    # When a batch of the usual inputs takes the shifted one's place in the drift window
    mark = webhook.received()
    usual = generated_batch(stack, SHIFTED_RECORDS, seed=8)
    assert predict(stack, usual.records).status_code == 200
    # Then each alert's resolution arrives too
    for feature in fired:
        resolved = webhook.wait_for(
            lambda b, feature=feature: feature in drift_alerts(b, "resolved"),
            ALERT_WITHIN_S,
            f"resolved MlapiInputDrift of {feature}",
            since=mark,
        )
        assert resolved["receiver"] == "warning"
        alert = drift_alerts(resolved, "resolved")[feature]
        assert alert["labels"] == fired[feature]["labels"]
        assert alert["startsAt"] == fired[feature]["startsAt"]
        assert alert["endsAt"] > alert["startsAt"]


def test_nothing_acknowledged_is_lost_when_the_api_is_killed(stack: Stack, batch: Batch) -> None:
    # Given predictions and feedback the API acknowledged
    answer = predict(stack, batch.records[:10])
    assert answer.status_code == 200
    predictions = answer.json()["predictions"]
    items = [(p["prediction_id"], batch.yields[p["sample_id"]]) for p in predictions[:4]]
    assert {r["status"] for r in feedback(stack, items)} == {"recorded"}
    # When the container is killed (SIGKILL) and started again
    killed = stack.run("kill", "mlapi")
    assert killed.returncode == 0, killed.stderr
    started = stack.run("start", "mlapi")
    assert started.returncode == 0, started.stderr
    wait_healthy(stack, "mlapi")
    # Then every prediction is still there, with its feedback
    fed_back = dict(items)
    for prediction in predictions:
        prediction_id = prediction["prediction_id"]
        found = httpx.get(
            f"{stack.api_url}/api/v1/predictions/{prediction_id}", headers=auth(stack), timeout=30
        )
        assert found.status_code == 200, found.text
        body = found.json()
        assert body["predicted_yield"] == prediction["predicted_yield"]
        expected = fed_back.get(prediction_id)
        assert (body["feedback"] or {}).get("actual_yield") == expected


def test_the_readme_way_to_copy_the_log_out_works(stack: Stack) -> None:
    # The command mlapi/README.md gives, run in the service's container as it runs
    readme = (ROOT / "mlapi" / "README.md").read_text(encoding="utf-8")
    (line,) = [ln for ln in readme.splitlines() if ln.startswith("docker compose exec mlapi ")]
    command = shlex.split(line)[len(["docker", "compose", "exec", "mlapi"]) :]
    container = stack.container("mlapi")
    copied = container.exec_run(command)
    assert copied.exit_code == 0, copied.output.decode(errors="replace")
    count = (
        "import sqlite3; db = sqlite3.connect('/tmp/predictions.db');"
        " print(db.execute('SELECT count(*) FROM predictions').fetchone()[0])"
    )
    counted = container.exec_run(["python", "-c", count])
    assert counted.exit_code == 0, counted.output.decode(errors="replace")
    assert int(counted.output) >= SHIFTED_RECORDS


def test_model_version_variable_lists_the_served_model(stack: Stack) -> None:
    answer = httpx.get(
        f"{stack.prometheus_url}/api/v1/label/model_version/values",
        params={"match[]": "mlapi_model_info"},
    )
    assert answer.json()["data"] == [MODEL_VERSION]


def test_predictions_and_feedback_are_on_record_in_postgresql(stack: Stack, batch: Batch) -> None:
    # Given a prediction request of 5 records, and the measured yield of 2 of them
    answer = predict(stack, batch.records[-5:])
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    measured = {p["prediction_id"]: batch.yields[p["sample_id"]] for p in predictions[:2]}
    assert {r["status"] for r in feedback(stack, list(measured.items()))} == {"recorded"}
    # When the log is read in PostgreSQL, as the API's role
    ids = ", ".join(f"'{p['prediction_id']}'" for p in predictions)
    stored = as_api(
        stack,
        "SELECT id, sample_id, model_version, predicted_yield FROM predictions"
        f" WHERE id IN ({ids}) ORDER BY seq",
    )
    fed_back = as_api(
        stack, f"SELECT prediction_id, actual_yield FROM feedback WHERE prediction_id IN ({ids})"
    )
    # Then each prediction is one row, as answered, and each feedback one row
    assert stored.rows == [
        [p["prediction_id"], p["sample_id"], MODEL_VERSION, repr(p["predicted_yield"])]
        for p in predictions
    ]
    assert {key: float(value) for key, value in fed_back.rows} == measured


def test_every_api_dashboard_sql_query_runs_as_grafana(stack: Stack, batch: Batch) -> None:
    # Given the newest predictions, the measured yields of 3 of them
    answer = predict(stack, batch.records[:6])
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    measured = {p["prediction_id"]: batch.yields[p["sample_id"]] for p in predictions[:3]}
    assert {r["status"] for r in feedback(stack, list(measured.items()))} == {"recorded"}
    queries = dict(dashboard_sql())
    assert set(queries) == set(SQL_PANEL_COLUMNS)
    # When every SQL query of the dashboard runs as Grafana's data source runs it
    results = {title: as_grafana(stack, sql) for title, sql in queries.items()}
    # Then each has its columns, and the table starts with those predictions, newest first
    for title, result in results.items():
        assert result.columns == SQL_PANEL_COLUMNS[title], title
        assert result.rows, title
    table = results["Latest predictions and their measured yields"]
    column = table.columns.index
    newest = table.rows[: len(predictions)]
    assert [row[column("prediction_id")] for row in newest] == [
        p["prediction_id"] for p in reversed(predictions)
    ]
    for row, prediction in zip(newest, reversed(predictions), strict=True):
        predicted = prediction["predicted_yield"]
        assert float(row[column("predicted_yield")]) == predicted
        assert row[column("sample_id")] == prediction["sample_id"]
        actual = measured.get(prediction["prediction_id"])
        if actual is None:
            assert (row[column("measured_yield")], row[column("error")]) == ("", "")
        else:
            assert float(row[column("measured_yield")]) == actual
            assert float(row[column("error")]) == predicted - actual
            assert row[column("measured_at")]


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM predictions",
        "UPDATE feedback SET actual_yield = 0",
        "CREATE TABLE notes (x int)",
        "SET default_transaction_read_only = off; DELETE FROM feedback",
    ],
)
def test_grafana_role_changes_nothing(stack: Stack, statement: str) -> None:
    before = as_api(
        stack, "SELECT (SELECT count(*) FROM predictions), (SELECT count(*) FROM feedback)"
    )
    refused = try_psql(
        stack, statement, user=GRAFANA_ROLE, password=stack.env["POSTGRES_GRAFANA_PASSWORD"]
    )
    assert refused.returncode != 0
    assert "permission denied" in refused.stderr or "read-only transaction" in refused.stderr
    after = as_api(
        stack, "SELECT (SELECT count(*) FROM predictions), (SELECT count(*) FROM feedback)"
    )
    assert after.rows == before.rows


def test_grafana_role_needs_its_password(stack: Stack) -> None:
    refused = try_psql(stack, "SELECT 1", user=GRAFANA_ROLE, password="not-the-password")
    assert refused.returncode != 0
    assert "password authentication failed" in refused.stderr


def test_the_ecs_agent_remote_writes_what_every_api_dashboard_query_needs(
    stack: Stack, batch: Batch, recorded_errors: list[float], tmp_path: Path
) -> None:
    # Given the ECS task's Prometheus agent (production_agent.py says what differs), scraping
    # the API with Prometheus' key and writing into a Prometheus that only receives
    binary = production_agent.prometheus_binary(tmp_path)
    read = stack.container("prometheus").exec_run(
        ["cat", "/var/lib/mlapi-metrics-key/prometheus.key"]
    )
    assert read.exit_code == 0, read.output.decode(errors="replace")
    port = int(stack.env["MLAPI_HOST_PORT"])
    with production_agent.running(binary, tmp_path, port, read.output.decode().strip()) as remote:
        # When the API has traffic
        empty = panels_without_data(stack, batch, recorded_errors, remote.receiver_url)
        # Then every query of the dashboard has data in the receiver, the task's series apart
        assert not empty, f"no remote-written data after {DATA_WITHIN_S}s for: {empty}"
        (up,) = query_at(remote.receiver_url, "up")
        assert up["metric"] == {
            "job": "mlapi",
            "instance": f"127.0.0.1:{port}",
            "task": "stack-test-task",
            "__name__": "up",
        }
        assert up["value"][1] == "1"
        # and the alert rules, as the workspace runs them, evaluate on it
        answer = httpx.get(f"{remote.receiver_url}/api/v1/rules")
        rules = [rule for group in answer.json()["data"]["groups"] for rule in group["rules"]]
        assert rules
        assert {rule["health"] for rule in rules} == {"ok"}


def test_the_ecs_agent_runs_from_the_prometheus_image_where_prometheus_is_not_installed(
    stack: Stack, batch: Batch, recorded_errors: list[float], tmp_path: Path
) -> None:
    # Given the agent and its receiver from the stack's prometheus image, even where installed
    # (before the tests that stop the API)
    binary = stack_tools.from_image(
        stack_tools.PROMETHEUS, tmp_path, "host", (metrics_agent.TASK_VARIABLE,)
    )
    read = stack.container("prometheus").exec_run(
        ["cat", "/var/lib/mlapi-metrics-key/prometheus.key"]
    )
    assert read.exit_code == 0, read.output.decode(errors="replace")
    port = int(stack.env["MLAPI_HOST_PORT"])
    with production_agent.running(binary, tmp_path, port, read.output.decode().strip()) as remote:
        # When the API has traffic
        deadline = time.monotonic() + DATA_WITHIN_S
        up: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not up:
            send_traffic(stack, batch, recorded_errors)
            time.sleep(5)
            up = query_at(remote.receiver_url, 'up{job="mlapi"}')
        # Then the containers scraped the API's host port and wrote it into the receiver, with
        # the task's label from the environment, as the installed binary does
        assert up, f"no remote-written up series after {DATA_WITHIN_S}s"
        assert up[0]["metric"]["task"] == "stack-test-task"
        assert up[0]["value"][1] == "1"
        version = httpx.get(f"{remote.receiver_url}/api/v1/status/buildinfo").json()["data"]
        # (a Debian build of the same release says 2.42.0+ds)
        release = str(version["version"]).split("+")[0]
        assert stack_tools.compose_image("prometheus").endswith(f":v{release}")


def test_mlapi_down_pages_and_holds_back_the_alerts_it_explains(
    stack: Stack, webhook: WebhookReceiver
) -> None:
    # Given the API stopped
    mark = webhook.received()
    stopped = stack.run("stop", "mlapi")
    assert stopped.returncode == 0, stopped.stderr
    try:
        # Then MlapiDown reaches the critical receiver
        down = webhook.wait_for(
            lambda b: any(
                a["labels"]["alertname"] == "MlapiDown" and a["status"] == "firing"
                for a in b["alerts"]
            ),
            ALERT_WITHIN_S,
            "MlapiDown firing",
            since=mark,
        )
        assert down["receiver"] == "critical"
        (alert,) = down["alerts"]
        assert (alert["labels"]["severity"], alert["labels"]["job"]) == ("critical", "mlapi")
        assert alert["annotations"]["dashboard"] == "/d/yield-model-api/yield-model-api"
        # When, while it lasts, an alert it explains comes (posted as Prometheus posts one:
        # a failed scrape makes the API's own series stale, so none is left firing here)
        now = datetime.now(UTC)
        explained = {"alertname": "MlapiHighErrorRatio", "severity": "critical"}
        posted = httpx.post(
            f"{stack.alertmanager_url}/api/v2/alerts",
            json=[
                {
                    "labels": explained,
                    "annotations": {"summary": "held back"},
                    "startsAt": now.isoformat(),
                    "endsAt": (now + timedelta(minutes=5)).isoformat(),
                }
            ],
        )
        assert posted.status_code == 200, posted.text
        # Then Alertmanager holds it back, and sends it to no one
        held = httpx.get(
            f"{stack.alertmanager_url}/api/v2/alerts",
            params={"filter": 'alertname="MlapiHighErrorRatio"'},
        ).json()
        assert [(a["labels"], a["status"]["state"]) for a in held] == [(explained, "suppressed")]
        assert held[0]["status"]["inhibitedBy"]
        # (well past the test's group wait and interval, stack_override.TEST_TIMING)
        time.sleep(15)
        assert not [
            a
            for b in webhook.bodies[mark:]
            for a in b["alerts"]
            if a["labels"]["alertname"] == "MlapiHighErrorRatio"
        ]
    finally:
        started = stack.run("start", "mlapi")
        assert started.returncode == 0, started.stderr
        wait_healthy(stack, "mlapi")


# Last: it stops the API.
def test_api_stops_gracefully_on_sigterm(stack: Stack) -> None:
    stopped = stack.run("stop", "mlapi")
    assert stopped.returncode == 0, stopped.stderr
    state = stack.container("mlapi").attrs["State"]
    # A SIGKILL after the grace period would leave 137.
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)
