"""deploy/grafana/inferd-dashboard.json: its structure, and every panel's every PromQL target
evaluated by a real Prometheus that scraped a live `inferd serve` under load (conftest.py's
live_stack), as Grafana would run it: a range query over the load, the dashboard's variables
substituted."""

import json
import math
import re

import pytest

from deploy_helpers import DEPLOY

DASHBOARD = DEPLOY / "grafana" / "inferd-dashboard.json"
# Grafana's $__rate_interval is max(4 x scrape interval, step + scrape interval); the live
# stack scrapes every second and queries with a 1 s step.
RATE_INTERVAL = "10s"


@pytest.fixture(scope="module")
def dashboard():
    return json.loads(DASHBOARD.read_text())


def panels(dashboard):
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def targets(dashboard):
    return [(p["title"], t) for p in panels(dashboard) for t in p["targets"]]


def grafana_regex_escape(value):
    """A single value of a multi-value variable inside =~"...", as Grafana's Prometheus data
    source escapes it: regex metacharacters get a backslash, doubled for the PromQL string."""
    return re.sub(r"([\\^$*+?.()|\[\]{}])", r"\\\\\1", value)


def substitute(expr, model_name):
    out = expr.replace("$__rate_interval", RATE_INTERVAL).replace("$model_name", grafana_regex_escape(model_name))
    assert "$" not in out, f"unknown variable left in {out!r}"
    return out


def test_dashboard_structure(dashboard):
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["model_name"]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    # Panels within the 24-column grid and not overlapping.
    cells = set()
    for p in dashboard["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panel {p['title']!r} overlaps another at {(x, y)}"
                cells.add((x, y))
    for p in panels(dashboard):
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"] and t["expr"].strip(), p["title"]
            # Every inferd series is filtered by the model variable.
            for m in re.finditer(r"inferd:[a-z0-9_:]+(\{[^}]*\})?", t["expr"]):
                assert m.group(1) and 'model_name=~"$model_name"' in m.group(1), (p["title"], t["expr"])


def test_dashboard_covers_the_issue(dashboard):
    """Throughput, TTFT / ITL quantiles, KV usage, queue, preemptions, speculative-decoding
    acceptance, and the router's backends."""
    exprs = " ".join(t["expr"] for _, t in targets(dashboard))
    for needed in ("inferd:generation_tokens_total", "inferd:prompt_tokens_total",
                   "inferd:time_to_first_token_seconds_bucket", "inferd:inter_token_latency_seconds_bucket",
                   "inferd:kv_cache_usage_perc", "inferd:num_requests_waiting", "inferd:num_requests_running",
                   "inferd:num_preemptions_total", "inferd:request_queue_time_seconds_bucket",
                   "inferd:spec_decode_num_accepted_tokens_total", "inferd:spec_decode_num_draft_tokens_total",
                   "inferd_router_requests_total", "inferd_router_upstream_errors_total", "inferd_router_retries_total",
                   "inferd_router_rate_limited_total", "inferd_router_circuit_state", "inferd_router_backend_in_flight",
                   "inferd_router_time_to_first_byte_seconds_bucket", "inferd_router_canary_weight",
                   "inferd_router_canary_rollbacks_total", "inferd_router_routing_decisions_total"):
        assert needed in exprs, needed
    for q in ("0.5", "0.9", "0.99"):
        assert f"histogram_quantile({q}, sum by (le) (rate(inferd:time_to_first_token_seconds_bucket" in exprs
        assert f"histogram_quantile({q}, sum by (le) (rate(inferd:inter_token_latency_seconds_bucket" in exprs


def test_metric_names_are_exported_by_the_server(dashboard, live_stack):
    """Every metric a panel names is one that the live server's or router's /metrics has."""
    exported = {line.split("{")[0].split(" ")[0] for line in live_stack.metrics_text.splitlines()
                if line and not line.startswith("#")}
    used = {m for _, t in targets(dashboard) for m in re.findall(r"inferd(?::|_router_)[a-z0-9_:]+", t["expr"])}
    assert any(m.startswith("inferd_router_") for m in used)
    assert used and used <= exported, sorted(used - exported)


def test_model_variable_query(dashboard, live_stack):
    """The `model_name` variable (label_values(METRIC, model_name)) lists the served model."""
    (var,) = [v for v in dashboard["templating"]["list"] if v["name"] == "model_name"]
    m = re.fullmatch(r"label_values\(([^,]+),\s*(\w+)\)", var["query"]["query"])
    assert m, var["query"]
    values = live_stack.prom.api(f"label/{m.group(2)}/values", **{"match[]": m.group(1)})
    assert live_stack.model_name in values


def test_every_panel_query_returns_data(dashboard, live_stack):
    prom = live_stack.prom
    start, end = live_stack.load_start - 2, max(live_stack.load_end + 5, live_stack.load_start + 10)
    failures = []
    for title, t in targets(dashboard):
        expr = substitute(t["expr"], live_stack.model_name)
        try:
            data = prom.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step="1")
        except RuntimeError as e:
            failures.append(f"{title} [{t['refId']}]: {expr}: {e}")
            continue
        assert data["resultType"] == "matrix"
        values = [float(v) for series in data["result"] for _, v in series["values"]]
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            failures.append(f"{title} [{t['refId']}]: {expr}: no finite value ({len(data['result'])} series)")
    assert not failures, "\n".join(failures) + f"\nprometheus targets: {prom.targets()}"


def test_values_follow_the_load(dashboard, live_stack):
    """A few panels checked against what the load did: tokens generated, requests finished,
    nothing left running, the prefix cache hit by the shared prefix."""
    prom = live_stack.prom
    m = grafana_regex_escape(live_stack.model_name)
    gen = prom.value(f'sum(inferd:generation_tokens_total{{model_name=~"{m}"}})')
    assert gen == 12 * live_stack.requests  # max_tokens 12, ignore_eos
    assert prom.value(f'sum(inferd:num_requests_running{{model_name=~"{m}"}})') == 0
    assert prom.value(f'sum(inferd:prefix_cache_hits_total{{model_name=~"{m}"}})') > 0
    assert prom.value(f'count(inferd:num_requests_running{{model_name=~"{m}"}})') == 1
