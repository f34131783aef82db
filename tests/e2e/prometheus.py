"""A real Prometheus server for end-to-end tests of /metrics.

PrometheusHarness starts /usr/bin/prometheus (Debian package `prometheus`, installed by
scripts/install-deps.sh) in a temporary directory with a generated config that scrapes one
target every second, on a free 127.0.0.1 port of its own (never 9090, so a system service
does not matter), and queries it through the HTTP API:

    from prometheus import PrometheusHarness

    with PrometheusHarness(target="127.0.0.1:8000") as prom:   # scrapes /metrics every 1s
        prom.wait_for_up()                                       # first scrape succeeded
        prom.wait_for('inferd:num_requests_running', lambda r: r and r[0][1] == 0)
        value = prom.value('sum(inferd:request_success_total)')  # float, or None if empty

query() returns a list of (labels, value) pairs, one per series of an instant vector (or a
single pair with empty labels for a scalar); values are floats ("NaN", "+Inf" included).
Only the standard library is used, so it runs under any python3.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable, Optional

Result = list[tuple[dict[str, str], float]]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_prometheus() -> str:
    """Path of the prometheus binary: $PROMETHEUS_BIN, /usr/bin/prometheus, or on PATH."""
    for cand in (os.environ.get("PROMETHEUS_BIN"), "/usr/bin/prometheus", shutil.which("prometheus")):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise RuntimeError("prometheus binary not found: run scripts/install-deps.sh (Debian package `prometheus`)")


class PrometheusHarness:
    """One Prometheus process scraping `target` ("host:port"; None = Prometheus itself).

    Use as a context manager, or call start() and stop(). `url` is its base URL.
    """

    def __init__(self, target: Optional[str] = None, metrics_path: str = "/metrics",
                 scrape_interval: str = "1s", job: str = "inferd", binary: Optional[str] = None,
                 startup_timeout: float = 60.0):
        self.target = target
        self.metrics_path = metrics_path
        self.scrape_interval = scrape_interval
        self.job = job
        self.binary = binary or find_prometheus()
        self.startup_timeout = startup_timeout
        self.port: Optional[int] = None
        self.url: Optional[str] = None
        self._dir: Optional[str] = None
        self._proc: Optional[subprocess.Popen] = None
        self._log = None

    # ---- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> "PrometheusHarness":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="inferd-prom-")
        for attempt in range(3):  # the free port can be taken between probe and bind
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            if self._launch():
                return
            self._kill()
        self.stop()
        raise RuntimeError(f"prometheus did not start:\n{self.log_tail()}")

    def scrape_configs(self) -> list:
        """The scrape_configs of prometheus.yml: one static target (subclasses may replace)."""
        target = self.target or f"127.0.0.1:{self.port}"
        return [{"job_name": self.job, "metrics_path": self.metrics_path, "static_configs": [{"targets": [target]}]}]

    def _launch(self) -> bool:
        config = os.path.join(self._dir, "prometheus.yml")
        # JSON is YAML: no YAML library needed.
        with open(config, "w") as f:
            json.dump({
                "global": {"scrape_interval": self.scrape_interval, "scrape_timeout": self.scrape_interval,
                           "evaluation_interval": self.scrape_interval},
                "scrape_configs": self.scrape_configs(),
            }, f, indent=1)
        self._log = open(os.path.join(self._dir, "prometheus.log"), "wb")
        self._proc = subprocess.Popen(
            [self.binary, f"--config.file={config}",
             f"--storage.tsdb.path={os.path.join(self._dir, 'data')}",
             f"--web.listen-address=127.0.0.1:{self.port}",
             "--web.enable-lifecycle", "--log.level=info"],
            cwd=self._dir, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.1)
        return False

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        self._kill()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def log_tail(self, n: int = 40) -> str:
        if self._dir is None:
            return ""
        try:
            with open(os.path.join(self._dir, "prometheus.log"), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    # ---- HTTP API -------------------------------------------------------------------------

    def api(self, path: str, **params) -> dict:
        """GET /api/v1/<path>; returns `data` of a successful response, raises otherwise."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:  # 400/422 carry the PromQL error as JSON
            body = json.loads(e.read() or b"{}")
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus {path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, promql: str) -> Result:
        """Evaluates an instant query now: [(labels, value)], one per series."""
        data = self.api("query", query=promql)
        kind, result = data["resultType"], data["result"]
        if kind == "vector":
            return [(s["metric"], float(s["value"][1])) for s in result]
        if kind in ("scalar", "string"):
            return [({}, float(result[1]))]
        raise RuntimeError(f"query {promql!r}: unsupported result type {kind}")

    def value(self, promql: str) -> Optional[float]:
        """The value of a query with at most one series (None when it has none)."""
        res = self.query(promql)
        if len(res) > 1:
            raise AssertionError(f"{promql!r} has {len(res)} series: {res}")
        return res[0][1] if res else None

    def wait_for(self, promql: str, predicate: Callable[[Result], bool] = bool,
                 timeout: float = 30.0, interval: float = 0.25) -> Result:
        """Polls `promql` until predicate(result) is true; returns that result.

        Raises AssertionError with the last result, the targets' health and Prometheus's log
        when `timeout` seconds pass first. The default predicate waits for any series.
        """
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            try:
                last = self.query(promql)
                if predicate(last):
                    return last
            except RuntimeError as e:  # e.g. a PromQL error: keep it for the message
                last = e
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting on {promql!r}; last result: {last}\n"
                    f"targets: {self.targets()}\nprometheus log:\n{self.log_tail()}")
            time.sleep(interval)

    def targets(self) -> list[dict]:
        """Active scrape targets with health ("up"/"down"/"unknown") and lastError."""
        try:
            return [{k: t.get(k) for k in ("scrapeUrl", "health", "lastError", "lastScrape")}
                    for t in self.api("targets")["activeTargets"]]
        except (RuntimeError, OSError) as e:
            return [{"error": str(e)}]

    def wait_for_up(self, timeout: float = 30.0) -> None:
        """Waits until the target has been scraped successfully (up == 1)."""
        self.wait_for(f'up{{job="{self.job}"}}', lambda r: len(r) == 1 and r[0][1] == 1, timeout)


def is_close(a: Optional[float], b: float, rel: float = 1e-9, abs_tol: float = 1e-12) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)
