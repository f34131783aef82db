"""Fixtures for the deployment tier (deploy/): rendered kustomizations, `inferd serve --help`,
and one live stack shared by the live tests: `inferd serve` started with the CPU overlay's
arguments, a stand-in for NVIDIA's dcgm-exporter, and a real Prometheus (Debian package,
tests/e2e/prometheus.py) scraping both with the job of deploy/prometheus/scrape-inferd.yaml.
"""

from __future__ import annotations

import copy
import os
import pathlib
import re
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from deploy_helpers import (DEPLOY, KUSTOMIZATIONS, K8S, POD_NAME, ROOT, ConfiguredPrometheus,  # noqa: E402
                            FakeDcgmExporter, LiveStack, Option, post_json, container, find_prometheus, flag_values,
                            free_port, local_command, pod_meta_labels, render, the)


@pytest.fixture(scope="session")
def build_dir():
    """$INFERD_BUILD_DIR (relative to the repo root), default build/release, as tests/e2e."""
    build = pathlib.Path(os.environ.get("INFERD_BUILD_DIR", ROOT / "build" / "release"))
    return build if build.is_absolute() else ROOT / build


@pytest.fixture(scope="session")
def inferd_bin(build_dir):
    exe = build_dir / "src" / "cli" / "inferd"
    if not exe.exists():
        pytest.fail(f"inferd binary not found at {exe}: build first (scripts/build.sh)")
    return exe


@pytest.fixture(scope="session")
def rendered():
    """{kustomization dir relative to deploy/k8s: [objects]} for every kustomization."""
    return {k: render(K8S / k) for k in KUSTOMIZATIONS}


@pytest.fixture(scope="session")
def serve_options(inferd_bin):
    """{'--name': Option} for every option `inferd serve --help` lists (aliases included)."""
    text = subprocess.run([str(inferd_bin), "serve", "--help"], check=True, capture_output=True,
                          text=True).stdout
    options = {}
    for line in text.splitlines():
        m = re.match(r"^  (-\S+)(?:\s+(\S+))?", line)
        if not m:
            continue
        names = tuple(re.sub(r"\{.*\}$", "", n) for n in m.group(1).split(","))
        takes_value = bool(m.group(2) and re.match(r"^(TEXT|INT|UINT|FLOAT)\b", m.group(2)))
        opt = Option(names, takes_value)
        for n in names:
            options[n] = opt
    assert "--port" in options and options["--port"].takes_value, text
    assert "--disable-access-log" in options and not options["--disable-access-log"].takes_value, text
    return options


@pytest.fixture(scope="session")
def live_stack(inferd_bin, rendered, tmp_path_factory):
    try:
        find_prometheus()
    except RuntimeError as e:
        pytest.skip(f"{e} (the live deploy tests need a real Prometheus)")
    cpu = rendered["overlays/cpu"]
    deployment = the(cpu, "Deployment")
    namespace = deployment["metadata"]["namespace"]
    model_name = flag_values(container(deployment)["args"])["--served-model-name"]
    port_name = container(deployment)["ports"][0]["name"]

    port = free_port()
    log_path = tmp_path_factory.mktemp("deploy") / "serve.log"
    log = open(log_path, "wb")
    cmd = local_command(inferd_bin, deployment, port)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    dcgm = FakeDcgmExporter(namespace)
    prom = None
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{' '.join(cmd)} exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"inferd serve not ready after 120 s:\n{log_path.read_text()}")
            time.sleep(0.1)

        # The job of deploy/prometheus/scrape-inferd.yaml, as it is, but for its service
        # discovery: a static target with the meta labels that kubernetes_sd_configs gives a
        # pod of the Deployment, plus a pod of another app that the job must drop. 1 s scrapes.
        (job,) = yaml.safe_load((DEPLOY / "prometheus" / "scrape-inferd.yaml").read_text())["scrape_configs"]
        job = copy.deepcopy(job)
        assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
        job["scrape_interval"] = "1s"
        job["scrape_timeout"] = "1s"
        job["static_configs"] = [
            {"targets": [f"127.0.0.1:{port}"],
             "labels": pod_meta_labels(namespace, POD_NAME, "inferd", port_name, "inferd")},
            {"targets": [dcgm.address],
             "labels": pod_meta_labels(namespace, "other-app-0", "other-app", "http", "other")},
        ]
        dcgm_job = {"job_name": "dcgm-exporter", "honor_labels": True, "static_configs": [{"targets": [dcgm.address]}]}
        prom = ConfiguredPrometheus([job, dcgm_job], job=job["job_name"])
        prom.start()
        prom.wait_for_up()

        # Load: concurrent completions, streamed and not, some sharing a long prefix.
        load_start = time.time()
        prefix = "You are a helpful assistant. Answer briefly and precisely. " * 6
        bodies = []
        for i in range(16):
            body = {"model": model_name, "prompt": (prefix if i % 2 else "") + f"Question {i}: name a colour.",
                    "max_tokens": 12, "temperature": 0, "ignore_eos": True}
            if i % 4 == 3:
                body["stream"] = True
            bodies.append(body)
        post_json(url + "/v1/completions", bodies[1])  # first alone: its prefix is then cached
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda b: post_json(url + "/v1/completions", b), bodies[:1] + bodies[2:]))
        load_end = time.time()
        prom.wait_for(f'sum(inferd:request_success_total{{model_name="{model_name}"}})',
                      lambda r: len(r) == 1 and r[0][1] == len(bodies), timeout=30)
        with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
            metrics_text = r.read().decode()
        yield LiveStack(url, port, model_name, namespace, POD_NAME, prom, load_start, load_end, len(bodies),
                        metrics_text)
    finally:
        if prom is not None:
            prom.stop()
        dcgm.stop()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
