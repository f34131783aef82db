"""The Prometheus harness (prometheus.py) and the exposition format of ServerMetrics.

tests/tools/metrics_render_tool prints the /metrics text of a ServerMetrics with fixed
observations; that text is read by three independent parsers: prometheus_client's, Go's
strict expfmt parser (promtool check metrics) and a real Prometheus that scrapes it.
"""

import http.server
import math
import shutil
import subprocess
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from prometheus import PrometheusHarness, is_close

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # metrics::kContentType
MODEL = "test-model"
ESCAPED_VALUE = 'back\\slash "quoted"\nnext line'  # as set in metrics_render_tool.cc


@pytest.fixture(scope="module")
def metrics_text(build_dir):
    tool = build_dir / "tests" / "tools" / "metrics_render_tool"
    if not tool.exists():
        pytest.fail(f"{tool} not found: build it (ninja -C {build_dir} metrics_render_tool)")
    return subprocess.run([str(tool)], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def metrics_server(metrics_text):
    """Serves metrics_text at http://127.0.0.1:<port>/metrics; yields "127.0.0.1:<port>"."""
    body = metrics_text.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_harness_scrapes_prometheus_itself():
    with PrometheusHarness(job="self") as prom:  # no target: Prometheus's own /metrics
        prom.wait_for_up()
        (labels, value), = prom.wait_for("prometheus_build_info")
        assert value == 1
        assert labels["job"] == "self" and labels["instance"] == f"127.0.0.1:{prom.port}"
        assert labels["version"].startswith("2.") or labels["version"].startswith("3.")
        assert prom.value('count(up{job="self"} == 1)') == 1
        assert prom.value("nonexistent_metric") is None
        with pytest.raises(RuntimeError, match="parse error"):
            prom.query("sum(")
        assert prom.targets()[0]["health"] == "up"
    assert prom._proc is None and prom._dir is None  # stopped and cleaned up


def test_text_parses_with_prometheus_client(metrics_text):
    fams = {f.name: f for f in text_string_to_metric_families(metrics_text)}
    types = {name: f.type for name, f in fams.items()}
    # prometheus_client names a counter family without "_total"; the samples keep it.
    assert types == {
        "inferd:num_requests_running": "gauge",
        "inferd:num_requests_waiting": "gauge",
        "inferd:kv_cache_usage_perc": "gauge",
        "inferd:prompt_tokens": "counter",
        "inferd:generation_tokens": "counter",
        "inferd:request_success": "counter",
        "inferd:num_preemptions": "counter",
        "inferd:prefix_cache_queries": "counter",
        "inferd:prefix_cache_hits": "counter",
        "inferd:time_to_first_token_seconds": "histogram",
        "inferd:inter_token_latency_seconds": "histogram",
        "inferd:e2e_request_latency_seconds": "histogram",
        "inferd:request_queue_time_seconds": "histogram",
        "inferd_test_escaping": "gauge",
    }

    def samples(family):
        return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in fams[family].samples}

    m = (("model_name", MODEL),)
    assert samples("inferd:num_requests_running") == {("inferd:num_requests_running", m): 3}
    assert samples("inferd:num_requests_waiting") == {("inferd:num_requests_waiting", m): 2}
    assert samples("inferd:kv_cache_usage_perc") == {("inferd:kv_cache_usage_perc", m): 0.375}
    for family, value in (("inferd:prompt_tokens", 1234), ("inferd:generation_tokens", 567),
                          ("inferd:num_preemptions", 1), ("inferd:prefix_cache_queries", 1000),
                          ("inferd:prefix_cache_hits", 250)):
        assert samples(family) == {(family + "_total", m): value}
    assert samples("inferd:request_success") == {
        ("inferd:request_success_total", (("finished_reason", r), ("model_name", MODEL))): n
        for r, n in (("stop", 6), ("length", 3), ("abort", 1))}

    ttft = fams["inferd:time_to_first_token_seconds"].samples
    buckets = [(s.labels["le"], s.value) for s in ttft if s.name.endswith("_bucket")]
    assert [le for le, _ in buckets] == [
        "0.001", "0.005", "0.01", "0.02", "0.04", "0.06", "0.08", "0.1", "0.25", "0.5", "0.75",
        "1", "2.5", "5", "7.5", "10", "20", "40", "80", "160", "640", "2560", "+Inf"]
    counts = dict(buckets)
    assert (counts["0.04"], counts["0.06"], counts["0.25"], counts["2.5"], counts["5"], counts["+Inf"]) == (0, 4, 8, 8, 9, 9)
    values = [v for _, v in buckets]
    assert values == sorted(values)  # cumulative
    by_name = {s.name: s.value for s in ttft if not s.name.endswith("_bucket")}
    assert by_name["inferd:time_to_first_token_seconds_count"] == 9
    assert math.isclose(by_name["inferd:time_to_first_token_seconds_sum"], 4 * 0.05 + 4 * 0.2 + 3.0)

    itl = {(s.name, s.labels.get("le")): s.value for s in fams["inferd:inter_token_latency_seconds"].samples}
    assert itl[("inferd:inter_token_latency_seconds_bucket", "0.01")] == 0
    assert itl[("inferd:inter_token_latency_seconds_bucket", "0.025")] == 100
    assert itl[("inferd:inter_token_latency_seconds_count", None)] == 100
    assert math.isclose(itl[("inferd:inter_token_latency_seconds_sum", None)], 2.0)

    e2e = {(s.name, s.labels.get("le")): s.value for s in fams["inferd:e2e_request_latency_seconds"].samples}
    assert e2e[("inferd:e2e_request_latency_seconds_count", None)] == 10
    assert e2e[("inferd:e2e_request_latency_seconds_bucket", "1")] == 7  # 6 x 1.0 + 1 x 0.1
    q = {(s.name, s.labels.get("le")): s.value for s in fams["inferd:request_queue_time_seconds"].samples}
    assert q[("inferd:request_queue_time_seconds_bucket", "0.3")] == 7  # 6 x 0.01 + 1 x 0.1
    assert q[("inferd:request_queue_time_seconds_count", None)] == 10

    (esc,) = fams["inferd_test_escaping"].samples
    assert esc.labels == {"value": ESCAPED_VALUE} and esc.value == 7
    assert fams["inferd_test_escaping"].documentation == 'Label values with \\ backslash, " quote and\nnewline.'


def test_text_passes_promtool_strict_parser(metrics_text):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    proc = subprocess.run([promtool, "check", "metrics"], input=metrics_text, capture_output=True, text=True)
    problems = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    # The only lint finding allowed is the one vLLM's names have too: ':' in metric names.
    other = [p for p in problems if not p.endswith("metric names should not contain ':'")]
    assert not other, "\n".join(problems)
    assert len(problems) == 13  # the 13 inferd: families


def test_prometheus_ingests_text(metrics_server, metrics_text):
    with PrometheusHarness(target=metrics_server, job="inferd") as prom:
        prom.wait_for_up()
        # Every sample line made it into the TSDB.
        n_samples = sum(1 for line in metrics_text.splitlines() if line and not line.startswith("#"))
        assert prom.value('scrape_samples_scraped{job="inferd"}') == n_samples
        assert prom.targets()[0]["lastError"] == ""

        def v(q):
            return prom.wait_for(q, lambda r: len(r) == 1)[0]

        labels, value = v('inferd:request_success_total{finished_reason="stop"}')
        assert value == 6
        assert labels == {"__name__": "inferd:request_success_total", "finished_reason": "stop",
                          "model_name": MODEL, "job": "inferd", "instance": metrics_server}
        assert v('inferd:request_success_total{finished_reason="length"}')[1] == 3
        assert v("sum(inferd:request_success_total)")[1] == 10
        assert v("inferd:num_requests_running")[1] == 3
        assert v("inferd:num_requests_waiting")[1] == 2
        assert v("inferd:kv_cache_usage_perc")[1] == 0.375
        assert v("inferd:prompt_tokens_total")[1] == 1234
        assert v("inferd:generation_tokens_total")[1] == 567
        assert v("inferd:num_preemptions_total")[1] == 1
        assert v("inferd:prefix_cache_hits_total / inferd:prefix_cache_queries_total")[1] == 0.25
        assert v("inferd:time_to_first_token_seconds_count")[1] == 9
        assert is_close(v("inferd:time_to_first_token_seconds_sum")[1], 4.0)
        # 9 TTFTs: 4 in (0.04, 0.06], 4 in (0.1, 0.25], 1 in (2.5, 5]. The median (rank 4.5)
        # interpolates linearly inside (0.1, 0.25]: 0.1 + 0.15 * 0.5 / 4.
        assert is_close(v("histogram_quantile(0.5, inferd:time_to_first_token_seconds_bucket)")[1],
                        0.1 + 0.15 * 0.5 / 4)
        assert is_close(v("histogram_quantile(0.99, inferd:time_to_first_token_seconds_bucket)")[1],
                        2.5 + 2.5 * (0.99 * 9 - 8))
        assert is_close(v("histogram_quantile(0.5, inferd:inter_token_latency_seconds_bucket)")[1],
                        0.01 + 0.015 * 0.5)
        assert v("count(inferd:e2e_request_latency_seconds_bucket)")[1] == 22  # 21 bounds + Inf
        # The escaped label value comes back byte for byte.
        labels, value = v("inferd_test_escaping")
        assert labels["value"] == ESCAPED_VALUE and value == 7
