"""The autoscaling chain, live: Prometheus scrapes `inferd serve` with the relabelling of
deploy/prometheus/scrape-inferd.yaml (a static target carrying the meta labels that
Kubernetes service discovery gives a pod), and each HorizontalPodAutoscaler metric of the
overlays is looked up the way prometheus-adapter does with
deploy/k8s/prometheus-adapter/rules.yaml: series discovery (seriesQuery, /api/v1/series),
naming (name.matches / name.as), resource association (overrides) and the metricsQuery
template with the label matchers the adapter builds for a pods request. The GPU metric comes
from a dcgm-exporter stand-in (conftest.py); everything else from the live server."""

import math
import re

import pytest

from deploy_helpers import OVERLAYS, ROUTER_POD_NAME, adapter_name, adapter_rules, the


def test_scrape_job_keeps_inferd_pods_and_labels_them(live_stack):
    prom = live_stack.prom
    ups = prom.query('up{job="inferd"}')
    assert sorted(labels["pod"] for labels, _ in ups) == sorted([live_stack.pod, ROUTER_POD_NAME])  # server, router
    for labels, value in ups:
        assert value == 1
        assert labels["namespace"] == live_stack.namespace and labels["container"] == "inferd"
        assert labels["component"] == ("router" if labels["pod"] == ROUTER_POD_NAME else "server")
        assert not any(k.startswith("__") for k in labels if k != "__name__"), labels  # meta labels dropped
    # The pod of another app (label app.kubernetes.io/name=other-app) was dropped by `keep`.
    active = [t for t in prom.api("targets")["activeTargets"] if t["labels"].get("job") == "inferd"]
    assert len(active) == 2
    (labels, _), = prom.query(f'inferd:num_requests_waiting{{model_name="{live_stack.model_name}"}}')
    assert (labels["namespace"], labels["pod"]) == (live_stack.namespace, live_stack.pod)


def discover(prom, rules):
    """{API metric name: (rule, Prometheus series name)} for the pod resource, as the adapter's
    discovery builds it from each rule's seriesQuery, seriesFilters, name and overrides."""
    found = {}
    for rule in rules:
        series = prom.api("series", **{"match[]": rule["seriesQuery"]})
        for s in series:
            name = s["__name__"]
            filters = rule.get("seriesFilters") or []
            if not all((re.search(f["is"], name) is not None) if "is" in f else (re.search(f["isNot"], name) is None)
                       for f in filters):
                continue
            api = adapter_name(rule, name)
            if api is None:
                continue
            overrides = rule["resources"]["overrides"]
            resources = {v["resource"]: label for label, v in overrides.items() if label in s}
            if "pod" not in resources or "namespace" not in resources:
                continue
            assert found.get(api, (rule, name)) == (rule, name), f"{api} from two rules or series names"
            found[api] = (rule, name)
    return found


def metrics_query(rule, series, namespace, pods):
    """The metricsQuery template rendered as the adapter's Build does for a pods request:
    LabelMatchers `namespace="NS",pod="P"` (pod=~"P1|P2" for several), GroupBy `pod`."""
    ov = {v["resource"]: label for label, v in rule["resources"]["overrides"].items()}
    pod_matcher = f'{ov["pod"]}="{pods[0]}"' if len(pods) == 1 else f'{ov["pod"]}=~"{"|".join(pods)}"'
    args = {"Series": series, "LabelMatchers": f'{ov["namespace"]}="{namespace}",{pod_matcher}', "GroupBy": ov["pod"]}
    out = re.sub(r"<<\s*\.(\w+)\s*>>", lambda m: args[m.group(1)], rule["metricsQuery"])
    assert "<<" not in out, out
    return out, ov["pod"]


@pytest.mark.parametrize("kdir", OVERLAYS)
def test_adapter_serves_every_hpa_metric_for_the_pod(rendered, kdir, live_stack):
    prom = live_stack.prom
    found = discover(prom, adapter_rules(rendered))
    hpa = the(rendered[kdir], "HorizontalPodAutoscaler")
    for metric in hpa["spec"]["metrics"]:
        assert metric["type"] == "Pods"
        api = metric["pods"]["metric"]["name"]
        assert api in found, f"{kdir}: no adapter rule serves {api} (served: {sorted(found)})"
        rule, series = found[api]
        # One pod, and the pod among others (the adapter asks for all pods of the target).
        for pods in ([live_stack.pod], [live_stack.pod, "inferd-6d5f8b7c9d-zzzzz"]):
            query, pod_label = metrics_query(rule, series, hpa["metadata"]["namespace"], pods)
            result = prom.query(query)
            assert [labels for labels, _ in result] == [{pod_label: live_stack.pod}], (query, result)
            (_, value), = result
            assert math.isfinite(value) and value >= 0, (query, value)
            if api == "DCGM_FI_DEV_GPU_UTIL":
                assert value == 50  # the pod's two GPUs at 42 % and 58 %; the idle GPU has no pod
        # Another namespace sees nothing.
        query, _ = metrics_query(rule, series, "elsewhere", [live_stack.pod])
        assert prom.query(query) == []
