"""Fixtures for the deployment tier (deploy/): rendered kustomizations, `inferd serve --help`,
and one live stack shared by the live tests: `inferd serve` started with the CPU overlay's
arguments, `inferd router` with the overlay's router arguments in front of it and of a flaky
replica (the load goes through the router), a stand-in for NVIDIA's dcgm-exporter, and a
real Prometheus (Debian package, tests/e2e/prometheus.py) scraping them with the job of
deploy/prometheus/scrape-inferd.yaml.
"""

from __future__ import annotations

import copy
import pathlib
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "support"))

import inferd_build  # noqa: E402
from deploy_helpers import (DEPLOY, KUSTOMIZATIONS, K8S, POD_NAME, ROUTER_POD_NAME,  # noqa: E402
                            ConfiguredPrometheus, FakeDcgmExporter, FlakyReplica, LiveStack, Option, post_json, container, find_prometheus, flag_values,
                            free_port, local_command, pod_meta_labels, render, the)


@pytest.fixture(scope="session")
def build_dir():
    return inferd_build.build_dir()


@pytest.fixture(scope="session")
def inferd_bin(build_dir):
    return inferd_build.inferd_binary(build_dir)


@pytest.fixture(scope="session")
def rendered():
    """{kustomization dir relative to deploy/k8s: [objects]} for every kustomization."""
    return {k: render(K8S / k) for k in KUSTOMIZATIONS}


def command_options(inferd_bin, command):
    """{'--name': Option} for every option `inferd <command> --help` lists (aliases included)."""
    text = subprocess.run([str(inferd_bin), command, "--help"], check=True, capture_output=True,
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
def serve_options(inferd_bin):
    return command_options(inferd_bin, "serve")


@pytest.fixture(scope="session")
def router_options(inferd_bin):
    return command_options(inferd_bin, "router")


def pod_labels(deployment):
    return deployment["spec"]["template"]["metadata"]["labels"]


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

    port, router_port = free_port(), free_port()
    logdir = tmp_path_factory.mktemp("deploy")
    log_path, router_log_path = logdir / "serve.log", logdir / "router.log"
    log, router_log = open(log_path, "wb"), open(router_log_path, "wb")
    # The overlay's server, with speculation on (the dashboard's acceptance panel reads it).
    cmd = [*local_command(inferd_bin, deployment, port),
           '--speculative-config={"method": "ngram", "num_speculative_tokens": 3, "adaptive": false}']
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    # The overlay's router in front of it and of a flaky replica (connection dropped on every
    # completion: upstream errors, retries, an opening circuit), with a per-key limit of one
    # request that one extra request of the load exceeds (a 429).
    flaky = FlakyReplica()
    router_d = the(cpu, "Deployment", "inferd-router")
    router_cmd = [*local_command(inferd_bin, router_d, router_port, backends=[url, flaky.url]),
                  "--rate-limit-rps=0.001", "--rate-limit-burst=1", "--circuit-failure-threshold=2",
                  "--health-check-interval=0.5"]
    router = subprocess.Popen(router_cmd, stdout=router_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    router_url = f"http://127.0.0.1:{router_port}"
    dcgm = FakeDcgmExporter(namespace)
    prom = None
    try:
        for what, u, p, lp in (("inferd serve", url, proc, log_path), ("inferd router", router_url, router, router_log_path)):
            deadline = time.monotonic() + 120
            while True:
                if p.poll() is not None:
                    pytest.fail(f"{what} exited with {p.returncode}:\n{lp.read_text()}")
                try:
                    with urllib.request.urlopen(u + "/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"{what} not ready after 120 s:\n{lp.read_text()}")
                time.sleep(0.1)

        # The job of deploy/prometheus/scrape-inferd.yaml, as it is, but for its service
        # discovery: static targets with the meta labels that kubernetes_sd_configs gives a
        # pod of each Deployment, plus a pod of another app that the job must drop. 1 s scrapes.
        (job,) = yaml.safe_load((DEPLOY / "prometheus" / "scrape-inferd.yaml").read_text())["scrape_configs"]
        job = copy.deepcopy(job)
        assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
        job["scrape_interval"] = "1s"
        job["scrape_timeout"] = "1s"
        router_port_name = container(router_d)["ports"][0]["name"]
        job["static_configs"] = [
            {"targets": [f"127.0.0.1:{port}"],
             "labels": pod_meta_labels(namespace, POD_NAME, pod_labels(deployment), port_name, "inferd")},
            {"targets": [f"127.0.0.1:{router_port}"],
             "labels": pod_meta_labels(namespace, ROUTER_POD_NAME, pod_labels(router_d), router_port_name, "inferd")},
            {"targets": [dcgm.address],
             "labels": pod_meta_labels(namespace, "other-app-0", {"app.kubernetes.io/name": "other-app"},
                                       "http", "other")},
        ]
        dcgm_job = {"job_name": "dcgm-exporter", "honor_labels": True, "static_configs": [{"targets": [dcgm.address]}]}
        prom = ConfiguredPrometheus([job, dcgm_job], job=job["job_name"])
        prom.start()
        prom.wait_for(f'sum(up{{job="{job["job_name"]}"}})', lambda r: len(r) == 1 and r[0][1] == 2, timeout=30)

        # Load through the router: concurrent completions, streamed and not, some sharing a
        # long prefix, each with its own API key; then one more on a used key (429).
        #
        # Which router panels get data from what (each must return a finite value):
        # answers, TTFB, load, routing decisions: the load itself; upstream errors, retries,
        # circuit state and transitions: the flaky replica; rate limits: the 429 at the end.
        # The canary panel (weight, rollbacks, promotions) gets none of these events: no canary
        # runs here (one would cost a second model load on a 2-core CI runner). It shows the
        # router's own series, which exist at 0 from its start (the router creates every series
        # at 0, as it does per backend): a true "weight 0, no rollback", not a `or vector(0)`
        # that would also hide a metric renamed away. test_metric_names_are_exported_by_the_server
        # checks that the names are the router's.
        load_start = time.time()
        prefix = "You are a helpful assistant. Answer briefly and precisely. " * 6
        bodies = []
        for i in range(16):
            body = {"model": model_name, "prompt": (prefix if i % 2 else "") + f"Question {i}: name a colour.",
                    "max_tokens": 12, "temperature": 0, "ignore_eos": True}
            if i % 4 == 3:
                body["stream"] = True
            bodies.append(body)
        # A prompt that repeats itself, so that prompt lookup proposes drafts.
        bodies.append({"model": model_name, "prompt": "red green blue yellow " * 8 + "red green",
                       "max_tokens": 12, "temperature": 0, "ignore_eos": True})

        def send(i, key=None):
            return post_json(router_url + "/v1/completions", bodies[i],
                             headers={"Authorization": f"Bearer {key or f'key-{i}'}"})
        spec_q = f'sum(inferd:spec_decode_num_draft_tokens_total{{model_name="{model_name}"}})'
        send(1)  # first alone: its prefix is then cached
        # The server creates its spec_decode_* series at the first draft, holding that draft's
        # count already: a rate needs a later increase. One drafting request alone, scraped,
        # then the load (its own drafting request increases the counters).
        send(len(bodies) - 1, key="key-spec-first")
        drafts = prom.wait_for(spec_q, lambda r: len(r) == 1 and r[0][1] > 0, timeout=30)[0][1]
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(send, [0, *range(2, len(bodies))]))
        try:
            send(0)
            pytest.fail("the router let a second request of key-0 through a limit of one")
        except urllib.error.HTTPError as e:
            assert e.code == 429
        load_end = time.time()
        num_requests = len(bodies) + 1
        prom.wait_for(f'sum(inferd:request_success_total{{model_name="{model_name}"}})',
                      lambda r: len(r) == 1 and r[0][1] == num_requests, timeout=30)
        prom.wait_for(spec_q, lambda r: len(r) == 1 and r[0][1] > drafts, timeout=30)
        prom.wait_for("sum(inferd_router_rate_limited_total)", lambda r: len(r) == 1 and r[0][1] == 1, timeout=30)
        with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
            metrics_text = r.read().decode()
        with urllib.request.urlopen(router_url + "/metrics", timeout=5) as r:
            metrics_text += r.read().decode()
        yield LiveStack(router_url, url, port, model_name, namespace, POD_NAME, prom, load_start, load_end,
                        num_requests, metrics_text)
    finally:
        if prom is not None:
            prom.stop()
        dcgm.stop()
        flaky.stop()
        for p in (router, proc):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        log.close()
        router_log.close()
