"""grafana/dashboards: well-formed, tied to the provisioned data sources, queries that parse and
name only metrics and tables that exist.

Whether the API dashboard's queries (PromQL and SQL) return data is the stack test's job
(tests/stack); the Containers dashboard cannot be run against cAdvisor here, so its queries are
evaluated by promtool on series shaped like cAdvisor's.
"""

import itertools
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pglast
import pglast.visitors
import promql_parser
import pytest
import yaml

API = "yield-model-api.json"
CONTAINERS = "containers.json"
# Grafana's plugin ids of the two provisioned data sources.
PROMETHEUS_TYPE = "prometheus"
POSTGRES_TYPE = "grafana-postgresql-datasource"

# The API's metrics (mlapi/mlapi/metrics.py), with the series each type exposes.
API_COUNTERS = {
    "mlapi_predictions_total",
    "mlapi_inputs_missing_total",
    "mlapi_inputs_out_of_range_total",
    "mlapi_feedback_total",
    "mlapi_feedback_rejected_total",
    "http_requests_total",
}
API_HISTOGRAMS = {
    "mlapi_model_inference_seconds",
    "mlapi_prediction_records",
    "mlapi_predicted_yield_ratio",
    "mlapi_prediction_absolute_error_ratio",
    "mlapi_prediction_log_write_seconds",
    "http_request_duration_seconds",
}
API_SUMMARIES = {
    "mlapi_prediction_squared_error_ratio",
    "http_request_size_bytes",
    "http_response_size_bytes",
}
API_GAUGES = {
    "mlapi_model_info",
    "mlapi_mae_alert_threshold_ratio",
    "mlapi_recent_half_mse_ratio",
    "mlapi_recent_feedback_records",
    "mlapi_input_drift_psi",
    "mlapi_predicted_yield_drift_psi",
    "mlapi_drift_window_records",
    "mlapi_monitor_last_run_timestamp_seconds",
    "mlapi_prediction_log_rows",
}
API_METRICS = (
    API_COUNTERS
    | API_GAUGES
    | {f"{h}_{s}" for h in API_HISTOGRAMS for s in ("bucket", "sum", "count")}
    | {f"{h}_{s}" for h in API_SUMMARIES for s in ("sum", "count")}
)
# The prediction log's tables (mlapi/mlapi/prediction_log/postgres.py, MIGRATIONS).
LOG_TABLES = {"predictions", "feedback"}
# Grafana's SQL macros, as its PostgreSQL data source expands them (the stack test expands them
# the same way): $__timeFilter(column) is column BETWEEN the range's start AND its end.
TIME_FILTER = re.compile(r"\$__timeFilter\((\w+(?:\.\w+)?)\)")
SQL_RANGE = ("2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z")
# Written by Prometheus itself for every scrape target.
PROMETHEUS_METRICS = {"up"}

# Every metric name cAdvisor documents, from the tables "Prometheus container metrics" and
# "Prometheus hardware metrics" of google/cadvisor, docs/storage/prometheus.md.
CADVISOR_DOCUMENTED = {
    "container_accelerator_duty_cycle",
    "container_accelerator_memory_total_bytes",
    "container_accelerator_memory_used_bytes",
    "container_cpu_cfs_periods_total",
    "container_cpu_cfs_throttled_periods_total",
    "container_cpu_cfs_throttled_seconds_total",
    "container_cpu_load_average_10s",
    "container_cpu_schedstat_run_periods_total",
    "container_cpu_schedstat_run_seconds_total",
    "container_cpu_schedstat_runqueue_seconds_total",
    "container_cpu_system_seconds_total",
    "container_cpu_usage_seconds_total",
    "container_cpu_user_seconds_total",
    "container_cpu_user_seconds",
    "container_cpu_kernel_seconds",
    "container_file_descriptors",
    "container_fs_inodes_free",
    "container_fs_inodes_total",
    "container_fs_io_current",
    "container_fs_io_time_seconds_total",
    "container_fs_io_time_weighted_seconds_total",
    "container_fs_limit_bytes",
    "container_fs_reads_bytes_total",
    "container_fs_reads_total",
    "container_fs_read_seconds_total",
    "container_fs_reads_merged_total",
    "container_fs_sector_reads_total",
    "container_fs_sector_writes_total",
    "container_fs_usage_bytes",
    "container_fs_write_seconds_total",
    "container_fs_writes_bytes_total",
    "container_fs_writes_merged_total",
    "container_fs_writes_total",
    "container_hugetlb_failcnt",
    "container_hugetlb_max_usage_bytes",
    "container_hugetlb_usage_bytes",
    "container_last_seen",
    "container_llc_occupancy_bytes",
    "container_memory_bandwidth_bytes",
    "container_memory_bandwidth_local_bytes",
    "container_memory_cache",
    "container_memory_failcnt",
    "container_memory_failures_total",
    "container_memory_numa_pages",
    "container_memory_max_usage_bytes",
    "container_memory_rss",
    "container_memory_swap",
    "container_memory_mapped_file",
    "container_memory_usage_bytes",
    "container_memory_working_set_bytes",
    "container_network_receive_bytes_total",
    "container_network_receive_packets_dropped_total",
    "container_network_receive_packets_total",
    "container_network_receive_errors_total",
    "container_network_transmit_bytes_total",
    "container_network_transmit_packets_total",
    "container_network_transmit_packets_dropped_total",
    "container_network_transmit_errors_total",
    "container_network_tcp_usage_total",
    "container_network_tcp6_usage_total",
    "container_network_udp_usage_total",
    "container_network_udp6_usage_total",
    "container_perf_events_total",
    "container_perf_metric_scaling_ratio",
    "container_processes",
    "container_referenced_bytes",
    "container_spec_cpu_period",
    "container_spec_cpu_quota",
    "container_spec_cpu_shares",
    "container_spec_memory_limit_bytes",
    "container_spec_memory_swap_limit_bytes",
    "container_spec_memory_reservation_limit_bytes",
    "container_start_time_seconds",
    "container_tasks_state",
    "container_perf_uncore_events_total",
    "container_perf_uncore_events_scaling_ratio",
    "machine_cpu_cache_capacity_bytes",
    "machine_cpu_cores",
    "machine_cpu_physical_cores",
    "machine_cpu_sockets",
    "machine_dimm_capacity_bytes",
    "machine_dimm_count",
    "machine_memory_bytes",
    "machine_node_hugepages_count",
    "machine_node_memory_capacity_bytes",
    "machine_nvm_avg_power_budget_watts",
    "machine_nvm_capacity",
    "machine_thread_siblings_count",
}

# Unit ids this project uses, as Grafana names them (packages/grafana-data/src/valueFormats/
# categories.ts), plus Grafana's custom "suffix:<text>" units.
GRAFANA_UNITS = {"none", "short", "percentunit", "s", "reqps", "bytes", "Bps"}
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")
# Grafana's own interval variables, and the values Grafana gives them for a 15s scrape interval.
BUILTIN_VARIABLES = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows and the panels inside collapsed rows included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every Prometheus target and of every variable's label_values
    selector."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            if target["datasource"]["type"] == PROMETHEUS_TYPE:
                yield f"{panel['title']} {target['refId']}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "datasource":
            continue
        match = LABEL_VALUES.match(variable["definition"])
        assert match, f"variable {variable['name']} is not a label_values() query"
        yield f"variable {variable['name']}", match["selector"]


def sql_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, target) of every PostgreSQL target."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            if target["datasource"]["type"] == POSTGRES_TYPE:
                yield f"{panel['title']} {target['refId']}", target


def expanded_sql(sql: str) -> str:
    """The SQL with Grafana's macros expanded for the range SQL_RANGE."""
    start, end = SQL_RANGE
    sql = TIME_FILTER.sub(lambda m: f"{m[1]} BETWEEN '{start}' AND '{end}'", sql)
    assert "$" not in sql, f"a Grafana macro or variable the tests do not expand in {sql!r}"
    return sql


def substituted(dashboard: dict[str, Any], expr: str) -> str:
    """The expression with each Grafana variable replaced as Grafana would for "All"."""
    values = dict(BUILTIN_VARIABLES)
    # (the datasource variable picks the data source; a query has no use for it)
    values.update(
        {v["name"]: v["allValue"] for v in dashboard["templating"]["list"] if v["type"] == "query"}
    )

    def replace(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        assert name in values, f"undefined variable ${name} in {expr!r}"
        return values[name]

    return VARIABLE.sub(replace, expr)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects, from Prometheus' grammar (promql-parser)."""
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"selector without a metric name in {expr!r}"
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def used_metrics(dashboard: dict[str, Any]) -> set[str]:
    return {
        name
        for _, expr in queries(dashboard)
        for name in metric_names(substituted(dashboard, expr))
    }


def test_the_two_dashboards_exist(dashboards: dict[str, dict[str, Any]]) -> None:
    titles = {name: dashboard["title"] for name, dashboard in dashboards.items()}
    assert titles == {API: "Yield model API", CONTAINERS: "Containers"}
    assert len({d["uid"] for d in dashboards.values()}) == 2


@pytest.mark.parametrize("name", [API, CONTAINERS])
def test_panel_ids_are_unique(dashboards: dict[str, dict[str, Any]], name: str) -> None:
    ids = [panel["id"] for panel in panels(dashboards[name])]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("name", [API, CONTAINERS])
def test_panels_do_not_overlap(dashboards: dict[str, dict[str, Any]], name: str) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in panels(dashboards[name]):
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        for x in range(box["x"], box["x"] + box["w"]):
            for y in range(box["y"], box["y"] + box["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


@pytest.mark.parametrize("name", [API, CONTAINERS])
def test_panels_are_grouped_in_rows(dashboards: dict[str, dict[str, Any]], name: str) -> None:
    layout = dashboards[name]["panels"]
    assert layout[0]["type"] == "row"
    rows = [panel for panel in layout if panel["type"] == "row"]
    assert len(rows) >= 3
    # A row with nothing below it before the next row is an empty concern.
    kinds = [panel["type"] == "row" for panel in layout] + [True]
    assert not any(a and b for a, b in itertools.pairwise(kinds))


@pytest.mark.parametrize("name", [API, CONTAINERS])
def test_everything_uses_a_provisioned_datasource(
    dashboards: dict[str, dict[str, Any]], datasources: dict[str, dict[str, Any]], name: str
) -> None:
    dashboard = dashboards[name]
    # Prometheus through the dashboard's variable (the stack's, or production's AMP
    # workspace); the prediction log by its fixed uid
    chosen = {"type": PROMETHEUS_TYPE, "uid": "${datasource}"}
    postgres = {"type": POSTGRES_TYPE, "uid": datasources[POSTGRES_TYPE]["uid"]}
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] in (chosen, postgres), panel["title"]
        for target in panel["targets"]:
            # One data source per panel, and the query in the field that source reads.
            assert target["datasource"] == panel["datasource"], f"{panel['title']}"
            query = "expr" if target["datasource"]["type"] == PROMETHEUS_TYPE else "rawSql"
            assert target[query], f"{panel['title']} {target['refId']}"
    _, *others = dashboard["templating"]["list"]
    for variable in others:
        assert variable["datasource"] == chosen, variable["name"]


@pytest.mark.parametrize("name", [API, CONTAINERS])
def test_the_prometheus_datasource_is_a_variable_defaulting_to_the_stacks(
    dashboards: dict[str, dict[str, Any]], datasources: dict[str, dict[str, Any]], name: str
) -> None:
    source = dashboards[name]["templating"]["list"][0]
    assert (source["type"], source["name"], source["query"]) == (
        "datasource",
        "datasource",
        PROMETHEUS_TYPE,
    )
    # A fixed default: the provisioned Prometheus, by uid, whatever Grafana lists first
    assert source["current"]["value"] == datasources[PROMETHEUS_TYPE]["uid"]
    assert source["current"]["text"] == datasources[PROMETHEUS_TYPE]["name"]
    assert not source["includeAll"]
    assert not source["multi"]


def test_only_the_api_dashboard_reads_the_prediction_log(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    assert [where for where, _ in sql_queries(dashboards[API])] == [
        "Latest predictions and their measured yields A"
    ]
    assert not list(sql_queries(dashboards[CONTAINERS]))


def test_every_sql_query_is_one_select_of_the_log_tables(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    # PostgreSQL's own parser (libpg_query, through pglast).
    for where, target in sql_queries(dashboards[API]):
        assert (target["format"], target["rawQuery"], target["editorMode"]) == (
            "table",
            True,
            "code",
        ), where
        (statement,) = pglast.parse_sql(expanded_sql(target["rawSql"]))
        assert isinstance(statement.stmt, pglast.ast.SelectStmt), where
        tables = pglast.visitors.referenced_relations(statement)
        assert tables, where
        assert tables <= LOG_TABLES, f"{where}: {tables}"


def test_sql_macros_are_expanded_or_refused() -> None:
    assert expanded_sql("SELECT 1 WHERE $__timeFilter(p.created_at)") == (
        "SELECT 1 WHERE p.created_at BETWEEN '2024-01-01T00:00:00Z' AND '2024-01-01T01:00:00Z'"
    )
    with pytest.raises(AssertionError, match="do not expand"):
        expanded_sql("SELECT $__timeGroup(created_at, '1m')")
    with pytest.raises(pglast.parser.ParseError):
        pglast.parse_sql(expanded_sql("SELECT FROM WHERE"))


@pytest.mark.parametrize("name", [API, CONTAINERS])
def test_dashboard_needs_no_import_inputs(root: Path, name: str) -> None:
    # ${DS_...} placeholders and __inputs only work through the UI's import dialog.
    text = (root / "grafana" / "dashboards" / name).read_text(encoding="utf-8")
    assert "${DS_" not in text
    assert "__inputs" not in text


@pytest.mark.parametrize("name", [API, CONTAINERS])
def test_every_panel_has_a_unit(dashboards: dict[str, dict[str, Any]], name: str) -> None:
    for panel in panels(dashboards[name]):
        if panel["type"] == "row":
            continue
        unit = panel["fieldConfig"]["defaults"]["unit"]
        assert unit in GRAFANA_UNITS or unit.startswith("suffix:"), panel["title"]
        assert panel["description"], panel["title"]


def test_heatmap_axis_has_a_unit(dashboards: dict[str, dict[str, Any]]) -> None:
    heatmaps = [p for p in panels(dashboards[API]) if p["type"] == "heatmap"]
    assert heatmaps
    for panel in heatmaps:
        assert panel["options"]["yAxis"]["unit"] in GRAFANA_UNITS


def test_every_query_parses(
    dashboards: dict[str, dict[str, Any]], promtool: str, tmp_path: Path
) -> None:
    # promtool checks each recording rule's expression with Prometheus' own parser.
    rules = [
        {"record": f"dashboard:query_{i}", "expr": substituted(dashboard, expr)}
        for i, (dashboard, expr) in enumerate(
            (dashboard, expr) for dashboard in dashboards.values() for _, expr in queries(dashboard)
        )
    ]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_undefined_variables_are_refused(dashboards: dict[str, dict[str, Any]]) -> None:
    with pytest.raises(AssertionError, match="undefined variable"):
        substituted(dashboards[API], 'rate(x{a=~"$nope"}[5m])')


def test_api_dashboard_uses_only_api_metrics(dashboards: dict[str, dict[str, Any]]) -> None:
    used = used_metrics(dashboards[API])
    assert used <= API_METRICS | PROMETHEUS_METRICS, used - API_METRICS - PROMETHEUS_METRICS


def test_api_dashboard_shows_every_model_metric(dashboards: dict[str, dict[str, Any]]) -> None:
    used = used_metrics(dashboards[API])
    bases = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
    shown = {"http_requests_total", "http_request_duration_seconds"}
    shown |= {
        m
        for m in API_COUNTERS | API_HISTOGRAMS | API_SUMMARIES | API_GAUGES
        if m.startswith("mlapi_")
    }
    assert shown <= bases, shown - bases


def test_containers_dashboard_uses_only_documented_cadvisor_metrics(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    used = used_metrics(dashboards[CONTAINERS])
    assert used
    assert used <= CADVISOR_DOCUMENTED, used - CADVISOR_DOCUMENTED


def test_metric_names_are_read_from_the_grammar() -> None:
    expr = 'sum by (le) (rate(a_bucket{le!="x"}[1m])) / on () group_left () (b or vector(0))'
    assert metric_names(expr) == {"a_bucket", "b"}


# Two containers as cAdvisor reports them over 10 minutes, plus the root cgroup (no name),
# which the dashboard must leave out. Counters grow by a fixed amount per minute.
CADVISOR_SERIES: dict[str, dict[str, str]] = {
    "container_cpu_usage_seconds_total": {"api": "0+30x10", "prom": "0+15x10", "": "0+60x10"},
    "container_cpu_cfs_throttled_seconds_total": {"api": "0+3x10", "prom": "0+0x10"},
    "container_memory_working_set_bytes": {
        "api": "268435456+0x10",
        "prom": "67108864+0x10",
        "": "1e9+0x10",
    },
    "container_memory_rss": {"api": "134217728+0x10", "prom": "33554432+0x10", "": "1e9+0x10"},
    "container_network_receive_bytes_total": {
        "api": "0+61440x10",
        "prom": "0+30720x10",
        "": "0+1e6x10",
    },
    "container_network_transmit_bytes_total": {
        "api": "0+122880x10",
        "prom": "0+6144x10",
        "": "0+1e6x10",
    },
}
# What each Containers panel must show at 10m, per container.
CONTAINER_PANEL_VALUES: dict[str, dict[str, float]] = {
    "CPU usage": {"api": 0.5, "prom": 0.25},  # cores: 30 CPU-seconds per minute is half a core
    "CPU throttled": {"api": 0.05, "prom": 0.0},
    "Memory working set": {"api": 268435456, "prom": 67108864},
    "Memory RSS": {"api": 134217728, "prom": 33554432},
    "Network received": {"api": 1024.0, "prom": 512.0},  # bytes per second
    "Network transmitted": {"api": 2048.0, "prom": 102.4},
}


def cadvisor_labels(metric: str, name: str) -> str:
    """The labels cAdvisor puts on a container's series (network ones per interface)."""
    labels = f'id="/docker/{name or "root"}", name="{name}"'
    return labels + ', interface="eth0"' if "network" in metric else labels


def test_containers_dashboard_computes_per_container_values(
    dashboards: dict[str, dict[str, Any]], promtool: str, tmp_path: Path
) -> None:
    dashboard = dashboards[CONTAINERS]
    series = [
        {"series": f"{metric}{{{cadvisor_labels(metric, name)}}}", "values": values}
        for metric, by_name in CADVISOR_SERIES.items()
        for name, values in by_name.items()
    ]
    checks = []
    titled = {p["title"]: p for p in panels(dashboard) if p["type"] != "row"}
    assert set(titled) == set(CONTAINER_PANEL_VALUES)
    for title, expected in CONTAINER_PANEL_VALUES.items():
        (target,) = titled[title]["targets"]
        checks.append(
            {
                "expr": substituted(dashboard, target["expr"]),
                "eval_time": "10m",
                "exp_samples": [
                    {"labels": f'{{name="{name}"}}', "value": value}
                    for name, value in expected.items()
                ],
            }
        )
    unit_test = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": checks}],
    }
    path = tmp_path / "containers_test.yml"
    path.write_text(yaml.safe_dump(unit_test))
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def alert_thresholds(root: Path) -> dict[str, set[float]]:
    """The numbers each alert compares against, by alert name."""
    groups = yaml.safe_load((root / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    found: dict[str, set[float]] = {}
    for group in groups["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            numbers: set[float] = set()

            def visit(node: promql_parser.Expr, numbers: set[float] = numbers) -> None:
                # A comparison with a series (a threshold the API exports) has no number.
                if (
                    isinstance(node, promql_parser.BinaryExpr)
                    and str(node.op) in {">", "<"}
                    and isinstance(node.rhs, promql_parser.NumberLiteral)
                ):
                    numbers.add(node.rhs.val)

            promql_parser.walk(promql_parser.parse(rule["expr"]), visit)
            found[rule["alert"]] = numbers
    return found


@pytest.mark.parametrize(
    ("panel_title", "alert"),
    [
        ("Server error ratio", "MlapiHighErrorRatio"),
        ("Error ratio", "MlapiHighErrorRatio"),
        ("Predict latency", "MlapiHighLatencyP95"),
        ("Mean predicted yield", "MlapiPredictedYieldOutOfRange"),
        ("Input drift (PSI), 15 worst features", "MlapiInputDrift"),
        ("Input drift over time, 5 worst features", "MlapiInputDrift"),
        ("Inputs outside the training range", "MlapiInputsOutOfRange"),
    ],
)
def test_panel_thresholds_are_the_alert_thresholds(
    dashboards: dict[str, dict[str, Any]], root: Path, panel_title: str, alert: str
) -> None:
    (panel,) = [p for p in panels(dashboards[API]) if p["title"] == panel_title]
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    marked = {step["value"] for step in steps if step["value"] is not None}
    expected = alert_thresholds(root)[alert]
    assert expected
    assert expected <= marked
