"""Shared pieces of the deployment-tier tests (tests/deploy): paths, the kustomizations,
small accessors for rendered objects, and the parts of the live stack (conftest.py's
live_stack): a dcgm-exporter stand-in, a Prometheus with our own scrape configuration, and
the CPU overlay's command line made runnable on this machine."""

from __future__ import annotations

import http.server
import json
import os
import pathlib
import re
import sys
import threading
import urllib.request
from dataclasses import dataclass

import yaml


ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
sys.path.insert(0, str(ROOT / "tests" / "e2e"))  # prometheus.py, the Prometheus harness
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from kustomize import render  # noqa: E402,F401  (re-exported)
from prometheus import PrometheusHarness, find_prometheus, free_port  # noqa: E402,F401  (re-exported)

# Every kustomization under deploy/k8s (the directories `kubectl apply -k` takes).
KUSTOMIZATIONS = sorted(str(p.parent.relative_to(K8S)) for p in K8S.rglob("kustomization.yaml"))
OVERLAYS = [k for k in KUSTOMIZATIONS if k.startswith("overlays/")]

# Where the live stack says the server runs, as Kubernetes would label it.
POD_NAME = "inferd-6d5f8b7c9d-x2k4p"
ROUTER_POD_NAME = "inferd-router-7c9d6d5f8b-q8w3z"


def model_path() -> str:
    return os.environ.get("INFERD_MODEL") or os.path.expanduser(
        "~/.cache/inferd/models/SmolLM2-135M-Instruct.Q4_1.gguf")


def the(objects, kind, name="inferd"):
    """The one object of this kind and name (the server's unless named: `inferd-router`...)."""
    (obj,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def container(deployment, name="inferd"):
    (c,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return c


def flag_values(args):
    """{'--flag': value or None} of a command line in the `--flag=value` / `--flag` style."""
    out = {}
    for a in args:
        if a.startswith("--"):
            name, eq, value = a.partition("=")
            out[name] = value if eq else None
    return out


# ---- `inferd serve --help` ------------------------------------------------------------------

@dataclass
class Option:
    names: tuple
    takes_value: bool


# ---- the live stack --------------------------------------------------------------------------

class FakeDcgmExporter:
    """Serves /metrics in dcgm-exporter's format: DCGM_FI_DEV_GPU_UTIL per GPU, labelled with the
    pod holding the GPU (two GPUs of POD_NAME at 42 % and 58 %) and one idle GPU with no pod.
    A stand-in: no GPU here. The labels are those dcgm-exporter documents for its Kubernetes
    mapping (gpu, UUID, device, modelName, Hostname, container, namespace, pod)."""

    def __init__(self, namespace):
        def line(gpu, util, pod, ns, cont):
            return (f'DCGM_FI_DEV_GPU_UTIL{{gpu="{gpu}",UUID="GPU-0000000{gpu}-aaaa-bbbb-cccc-dddddddddddd",'
                    f'device="nvidia{gpu}",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-1",'
                    f'container="{cont}",namespace="{ns}",pod="{pod}"}} {util}\n')
        body = ("# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n"
                + line(0, 42, POD_NAME, namespace, "inferd") + line(1, 58, POD_NAME, namespace, "inferd")
                + line(2, 0, "", "", "")).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class FlakyReplica:
    """A replica that passes /health but drops every completion request without an answer
    (the connection closes): what a crashing or overloaded pod looks like to the router. A
    stand-in for a fault, so that the router panels (upstream errors, retries, circuit
    transitions) have data in the live stack."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b"" if self.path in ("/health", "/metrics") else b"not found"
                self.send_response(200 if not body else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                self.close_connection = True  # no status line: the router sees a reset

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class ConfiguredPrometheus(PrometheusHarness):
    """PrometheusHarness with a scrape configuration of our own (a list of scrape_configs)
    instead of its single static target; the rest (ports, API, clean-up) is the harness's."""

    def __init__(self, scrape_configs, **kw):
        super().__init__(target="unused:1", **kw)
        self._scrape_configs = scrape_configs

    def scrape_configs(self) -> list:
        return self._scrape_configs


def pod_meta_labels(namespace, pod, pod_labels, port_name, container_name):
    """The __meta_kubernetes_* labels Prometheus's kubernetes_sd_configs (role: pod) gives a
    target, for the labels that deploy/prometheus/scrape-inferd.yaml relabels: one
    __meta_kubernetes_pod_label_<name> per pod label, the name's non-alphanumerics as `_`."""
    out = {"__meta_kubernetes_namespace": namespace, "__meta_kubernetes_pod_name": pod,
           "__meta_kubernetes_pod_container_port_name": port_name,
           "__meta_kubernetes_pod_container_name": container_name}
    for k, v in pod_labels.items():
        out["__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", k)] = v
    return out


def local_command(inferd_bin, deployment, port, backends=()):
    """The CPU overlay's container command line, made runnable here: the embedded model's
    local path, 127.0.0.1 and a free port, and $(VAR) expanded as the kubelet does (a
    resourceFieldRef on limits.cpu gives the limit; capped at this machine's cores). For the
    router: --backend-dns (the headless Service) becomes a --backend per URL in `backends`."""
    c = container(deployment)
    env = {}
    for e in c.get("env", []):
        ref = e.get("valueFrom", {}).get("resourceFieldRef")
        if ref:
            assert ref["resource"] == "limits.cpu" and str(ref.get("divisor", "1")) == "1", e
            env[e["name"]] = str(min(int(c["resources"]["limits"]["cpu"]), os.cpu_count() or 1))
        else:
            env[e["name"]] = e["value"]
    args = []
    for a in c["args"]:
        a = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env[m.group(1)], a)
        if a.startswith("--model="):
            a = "--model=" + model_path()
        elif a.startswith("--host="):
            a = "--host=127.0.0.1"
        elif a.startswith("--port="):
            a = f"--port={port}"
        elif a.startswith("--backend-dns="):
            args += [f"--backend={b}" for b in backends]
            continue
        args.append(a)
    return [str(inferd_bin), *args]


@dataclass
class LiveStack:
    router_url: str
    server_url: str
    server_port: int
    model_name: str
    namespace: str
    pod: str
    prom: PrometheusHarness
    load_start: float
    load_end: float
    requests: int
    metrics_text: str


def post_json(url, body, timeout=120, headers=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


# ---- prometheus-adapter, as its pkg/naming does it ---------------------------------------------

def adapter_rules(rendered):
    (cm,) = [o for o in rendered["prometheus-adapter"] if o["kind"] == "ConfigMap"]
    return yaml.safe_load(cm["data"]["config.yaml"])["rules"]


def go_expand(template, match):
    """Go's regexp Expand for $1, ${1}, ${name} and $$ (how prometheus-adapter applies `as`)."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        g = m.group(1) or m.group(2)
        return match.group(int(g) if g.isdigit() else g) or ""
    return re.sub(r"\$\$|\$\{(\w+)\}|\$(\w+)", sub, template)


def adapter_name(rule, series_name):
    """The custom-metrics API name a rule gives a Prometheus series name, or None: as
    prometheus-adapter's MetricNameForSeries (name.matches, default ".*"; name.as, default
    $0 without capture groups and $1 with one)."""
    name = rule.get("name", {})
    m = re.search(name.get("matches") or ".*", series_name)
    if not m:
        return None
    template = name.get("as") or {0: "$0", 1: "$1"}[m.re.groups]
    return go_expand(template, m)
