"""deploy/: the Kubernetes manifests (rendered as `kubectl apply -k` would: kustomize.py),
checked with the `kubernetes-validate` package in strict mode, cross-checked against each
other and against `inferd serve --help`; deploy/Dockerfile parsed and checked against the
repository, the binary's shared libraries and a live server (its HEALTHCHECK)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from fnmatch import fnmatch

import kubernetes_validate
import pytest
import yaml

from deploy_helpers import (DEPLOY, K8S, KUSTOMIZATIONS, OVERLAYS, ROOT, adapter_name, adapter_rules, container,
                            flag_values, model_path, render, the)
from kustomize import key, kustomization_file, load_documents

# The oldest Kubernetes the manifests promise (docs/deploy.md) and the newest the package knows.
K8S_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
DOCKERFILE = DEPLOY / "Dockerfile"


def deployments(rendered):
    return [(k, the(objs, "Deployment")) for k, objs in rendered.items()
            if any(o["kind"] == "Deployment" for o in objs)]


def pod_spec(d):
    return d["spec"]["template"]["spec"]


# ---- every manifest is valid Kubernetes ------------------------------------------------------

@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("kdir", KUSTOMIZATIONS)
def test_rendered_objects_validate_strictly(rendered, kdir, version):
    objects = rendered[kdir]
    assert objects, kdir
    errors = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{key(obj)}: {e}")
        except kubernetes_validate.SchemaNotFoundError as e:
            errors.append(f"{key(obj)}: no schema: {e}")
    assert not errors, "\n".join(errors)


def test_validation_is_strict():
    """The check above rejects what a typo makes (an unknown field), not only bad types."""
    d = the(render(K8S / "overlays" / "cpu"), "Deployment")
    container(d)["readinessprobe"] = container(d).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessprobe"):
        kubernetes_validate.validate(d, K8S_VERSIONS[0], strict=True)


def test_every_manifest_file_is_in_a_kustomization():
    """No YAML file under deploy/k8s escapes the validation: each is a kustomization, or a
    resource, patch or generator file that one of them names."""
    named = set()
    for kdir in KUSTOMIZATIONS:
        d = K8S / kdir
        (k,) = load_documents(kustomization_file(d))
        named |= {(d / r).resolve() for r in k.get("resources", []) if not (d / r).is_dir()}
        named |= {(d / p["path"]).resolve() for p in k.get("patches", [])}
        named |= {(d / f.split("=")[-1]).resolve() for g in k.get("configMapGenerator", []) for f in g["files"]}
    for path in K8S.rglob("*"):
        if path.suffix in (".yaml", ".yml") and path.name != "kustomization.yaml":
            assert path.resolve() in named, f"{path.relative_to(ROOT)} is in no kustomization"


@pytest.mark.parametrize("kdir", KUSTOMIZATIONS)
def test_renderer_matches_kubectl_kustomize(rendered, kdir):
    """kustomize.py renders what `kubectl kustomize` (kustomize built into kubectl) renders."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed (not in Debian 12 or PyPI): kustomize.py's output not cross-checked")
    out = subprocess.run([kubectl, "kustomize", str(K8S / kdir)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    theirs = {key(o): o for o in yaml.safe_load_all(out.stdout) if o}
    ours = {key(o): o for o in rendered[kdir]}
    assert sorted(ours) == sorted(theirs)
    for k in ours:
        assert ours[k] == theirs[k], k


# ---- cross-references between the objects ---------------------------------------------------

@pytest.mark.parametrize("kdir", OVERLAYS)
def test_selectors_and_ports(rendered, kdir):
    objs = rendered[kdir]
    d, svc, pdb = the(objs, "Deployment"), the(objs, "Service"), the(objs, "PodDisruptionBudget")
    labels = d["spec"]["template"]["metadata"]["labels"]
    selector = d["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert svc["spec"]["selector"].items() <= labels.items()
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    ns = d["metadata"]["namespace"]
    assert all(o["metadata"].get("namespace") == ns for o in objs), "one namespace for the whole variant"
    c = container(d)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    flags = flag_values(c["args"])
    assert int(flags["--port"]) in ports.values() and flags["--host"] == "0.0.0.0"
    (sp,) = svc["spec"]["ports"]
    assert ports.get(sp["targetPort"], sp["targetPort"]) == int(flags["--port"])
    ann = d["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/path"] == "/metrics"
    assert int(ann["prometheus.io/port"]) == int(flags["--port"])


@pytest.mark.parametrize("kdir", OVERLAYS)
def test_probes_hit_health_on_the_server_port(rendered, kdir):
    d = the(rendered[kdir], "Deployment")
    c = container(d)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    port = int(flag_values(c["args"])["--port"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/health", probe
        assert ports.get(get["port"], get["port"]) == port, probe
        assert get.get("scheme", "HTTP") == "HTTP"
    s = c["startupProbe"]
    assert s["periodSeconds"] * s["failureThreshold"] >= 600, "the startup probe must allow long model loads"
    live = c["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] >= 30, "liveness must not kill a busy server quickly"


@pytest.mark.parametrize("kdir", OVERLAYS)
def test_hpa_targets_the_deployment_and_the_adapter_serves_its_metrics(rendered, kdir):
    objs = rendered[kdir]
    d, hpa = the(objs, "Deployment"), the(objs, "HorizontalPodAutoscaler")
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["apiVersion"], ref["kind"], ref["name"]) == (d["apiVersion"], d["kind"], d["metadata"]["name"])
    assert "replicas" not in d["spec"], "the HPA owns the replica count; `kubectl apply` would reset it"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    served = adapter_metric_names(rendered)
    names = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert "inferd_num_requests_waiting" in names
    for n in names:
        assert n in served, f"HPA metric {n} is served by no prometheus-adapter rule ({sorted(served)})"


def adapter_metric_names(rendered):
    """{API name: Prometheus name} for the rules whose seriesQuery names one metric."""
    out = {}
    for rule in adapter_rules(rendered):
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{", rule["seriesQuery"])
        assert m, f"seriesQuery without a metric name: {rule['seriesQuery']}"
        api = adapter_name(rule, m.group(1))
        assert api, rule
        assert api not in out, f"two rules serve {api}"
        out[api] = m.group(1)
        ov = rule["resources"]["overrides"]
        assert ov["pod"] == {"resource": "pod"} and ov["namespace"] == {"resource": "namespace"}, rule
        assert "<<.Series>>" in rule["metricsQuery"] and "<<.LabelMatchers>>" in rule["metricsQuery"]
        assert "by (<<.GroupBy>>)" in rule["metricsQuery"]
    return out


def test_adapter_configmap_is_the_rules_file(rendered):
    (cm,) = rendered["prometheus-adapter"]
    assert cm["metadata"]["name"] == "inferd-adapter-rules" and list(cm["data"]) == ["config.yaml"]
    assert cm["data"]["config.yaml"] == (K8S / "prometheus-adapter" / "rules.yaml").read_text()
    assert adapter_metric_names(rendered) == {"inferd_num_requests_waiting": "inferd:num_requests_waiting",
                                              "DCGM_FI_DEV_GPU_UTIL": "DCGM_FI_DEV_GPU_UTIL"}


def test_prometheus_scrape_job_matches_the_deployment(rendered):
    """deploy/prometheus/scrape-inferd.yaml keeps the pods of both Deployments, the servers'
    and the routers' (by label and port name), and sets the namespace and pod labels the
    adapter rules use, and `component`. Its relabelling runs for real in test_autoscaling.py."""
    (job,) = yaml.safe_load((DEPLOY / "prometheus" / "scrape-inferd.yaml").read_text())["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    keep = {r["source_labels"][0]: r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    targets = {r.get("target_label"): r["source_labels"] for r in job["relabel_configs"] if r.get("target_label")}
    assert {"namespace", "pod", "component"} <= targets.keys()
    assert targets["component"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_component"]
    components = set()
    for name in ("inferd", "inferd-router"):
        d = the(rendered["overlays/cpu"], "Deployment", name)
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert re.fullmatch(keep["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
                            labels["app.kubernetes.io/name"]), name
        assert re.fullmatch(keep["__meta_kubernetes_pod_container_port_name"],
                            container(d)["ports"][0]["name"]), name
        assert job["metrics_path"] == d["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"]
        components.add(labels["app.kubernetes.io/component"])
    assert components == {"server", "router"}


# ---- the command line: flags that `inferd serve` accepts -------------------------------------

def check_command_line(args, options, command="serve"):
    """Problems with an `inferd <command>` argument list (args[0] == command), [] when none."""
    problems = []
    assert args[0] == command, args
    i = 1
    while i < len(args):
        a = args[i]
        if a.startswith("-"):
            name, eq, _ = a.partition("=")
            opt = options.get(name)
            if opt is None:
                problems.append(f"{name}: not an option of `inferd {command}`")
            elif opt.takes_value and not eq:
                i += 1
                if i >= len(args) or args[i].startswith("--"):
                    problems.append(f"{name}: needs a value")
            elif eq and not opt.takes_value:
                problems.append(f"{name}: a flag, takes no value")
        i += 1
    return problems


@pytest.mark.parametrize("kdir", [k for k in KUSTOMIZATIONS if k == "base" or k.startswith("overlays/")])
def test_args_are_options_of_inferd_serve(rendered, kdir, serve_options):
    d = the(rendered[kdir], "Deployment")
    c = container(d)
    assert "command" not in c, "the image's ENTRYPOINT is inferd"
    assert not check_command_line(c["args"], serve_options)
    # Every $(VAR) is an env var of the container (the kubelet leaves unknown ones as text).
    env = {e["name"] for e in c.get("env", [])}
    for a in c["args"]:
        for var in re.findall(r"\$\((\w+)\)", a):
            assert var in env, f"{a}: {var} is not in the container's env"


def test_dockerfile_cmd_is_options_of_inferd_serve(serve_options):
    df = parse_dockerfile()
    assert df.runtime.json("ENTRYPOINT") == ["/usr/local/bin/inferd"]
    cmd = df.runtime.json("CMD")
    assert not check_command_line(cmd, serve_options)


def test_checker_catches_bad_flags(serve_options):
    assert check_command_line(["serve", "--prot=8000", "--port", "--host=x", "--disable-access-log=1"],
                              serve_options) == ["--prot: not an option of `inferd serve`", "--port: needs a value",
                                                 "--disable-access-log: a flag, takes no value"]


# ---- resources and variants -------------------------------------------------------------------

def test_cpu_variant_threads_follow_the_cpu_limit(rendered):
    d = the(rendered["overlays/cpu"], "Deployment")
    c = container(d)
    res = c["resources"]
    assert res["requests"] == res["limits"], "Guaranteed QoS: requests == limits"
    assert str(int(res["limits"]["cpu"])) == str(res["limits"]["cpu"]), "whole cores"
    flags = flag_values(c["args"])
    assert flags["--device"] == "cpu"
    m = re.fullmatch(r"\$\((\w+)\)", flags["--threads"])
    assert m, flags["--threads"]
    (env,) = [e for e in c["env"] if e["name"] == m.group(1)]
    ref = env["valueFrom"]["resourceFieldRef"]
    assert ref == {"containerName": c["name"], "resource": "limits.cpu", "divisor": "1"}
    assert "nvidia.com/gpu" not in res["limits"]


def test_gpu_variant_asks_for_a_gpu(rendered):
    objs = rendered["overlays/gpu"]
    d, hpa = the(objs, "Deployment"), the(objs, "HorizontalPodAutoscaler")
    c = container(d)
    assert int(c["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert c["resources"]["requests"]["nvidia.com/gpu"] == c["resources"]["limits"]["nvidia.com/gpu"]
    flags = flag_values(c["args"])
    assert flags["--device"] == "cuda" and 0 < float(flags["--gpu-memory-utilization"]) <= 1
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod_spec(d)["tolerations"]
    assert c["image"].endswith("-cuda"), "the CUDA build of deploy/Dockerfile (INFERD_PRESET=cuda)"
    metrics = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"]]
    assert metrics == ["inferd_num_requests_waiting", "DCGM_FI_DEV_GPU_UTIL"]
    s = c["startupProbe"]
    assert s["periodSeconds"] * s["failureThreshold"] >= 1200


@pytest.mark.parametrize("kdir", OVERLAYS)
def test_shutdown_fits_the_grace_period(rendered, kdir):
    d = the(rendered[kdir], "Deployment")
    c = container(d)
    cmd = c["lifecycle"]["preStop"]["exec"]["command"]
    assert cmd[0] == "sleep"
    drain = float(flag_values(c["args"])["--shutdown-timeout"])
    assert float(cmd[1]) + drain < pod_spec(d)["terminationGracePeriodSeconds"]


@pytest.mark.parametrize("kdir", OVERLAYS)
def test_runs_as_the_images_non_root_user(rendered, kdir):
    d = the(rendered[kdir], "Deployment")
    sc = pod_spec(d)["securityContext"]
    uid, gid = parse_dockerfile().runtime.last("USER").split(":")
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == int(uid) != 0 and sc["runAsGroup"] == int(gid)
    c = container(d)
    csc = c["securityContext"]
    assert csc["allowPrivilegeEscalation"] is False and csc["capabilities"]["drop"] == ["ALL"]
    assert csc["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod_spec(d)["volumes"]}
    assert "emptyDir" in vols[mounts["/tmp"]], "a writable /tmp on a read-only root"


@pytest.mark.parametrize("kdir", OVERLAYS)
def test_model_path(rendered, kdir):
    """--model is the image's embedded model, or a file on a volume mounted over /models."""
    d = the(rendered[kdir], "Deployment")
    c = container(d)
    assert c["args"][1].startswith("--model=")
    model = flag_values(c["args"])["--model"]
    mounts = [m for m in c["volumeMounts"] if model.startswith(m["mountPath"].rstrip("/") + "/")]
    if mounts:
        (m,) = mounts
        (vol,) = [v for v in pod_spec(d)["volumes"] if v["name"] == m["name"]]
        claim = vol["persistentVolumeClaim"]["claimName"]
        assert any(o["kind"] == "PersistentVolumeClaim" and o["metadata"]["name"] == claim
                   for o in rendered[kdir]), claim
        assert m.get("readOnly") is True
    else:
        env = dict(parse_dockerfile().runtime.env())
        assert model == env["INFERD_MODEL"]
        assert os.path.basename(model) == os.path.basename(model_path())


# ---- deploy/Dockerfile ------------------------------------------------------------------------

class Stage:
    def __init__(self, name, base):
        self.name, self.base, self.instructions = name, base, []

    def all(self, op):
        return [arg for o, arg in self.instructions if o == op]

    def last(self, op):
        found = self.all(op)
        assert found, f"stage {self.name}: no {op}"
        return found[-1]

    def json(self, op):
        return json.loads(self.last(op))

    def env(self):
        for arg in self.all("ENV"):
            for item in shlex.split(arg):
                k, _, v = item.partition("=")
                yield k, v


class Dockerfile:
    def __init__(self, global_args, stages):
        self.global_args, self.stages = global_args, stages
        self.runtime = stages[-1]

    def stage(self, name):
        (s,) = [s for s in self.stages if s.name == name]
        return s


def parse_dockerfile(path=DOCKERFILE) -> Dockerfile:
    instructions, cur = [], ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue  # comments (and the syntax directive), also inside continuations
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        cur += line
        if cur.strip():
            op, _, arg = cur.strip().partition(" ")
            instructions.append((op.upper(), arg.strip()))
        cur = ""
    assert not cur.strip(), "dangling line continuation"
    global_args, stages = {}, []
    for op, arg in instructions:
        if op == "FROM":
            m = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", arg, re.I)
            assert m, f"every stage is named: FROM {arg}"
            base = re.sub(r"\$\{(\w+)\}", lambda v: global_args[v.group(1)], m.group(1))
            stages.append(Stage(m.group(2), base))
        elif not stages:
            assert op == "ARG", f"{op} before the first FROM"
            k, _, v = arg.partition("=")
            global_args[k] = v
        else:
            stages[-1].instructions.append((op, arg))
    return Dockerfile(global_args, stages)


def dockerignore_excludes(path: str) -> bool:
    """Whether .dockerignore keeps `path` (relative to the context) out of the build context:
    the last matching pattern wins, `!` re-includes, a pattern matching a parent directory
    matches everything under it (Docker's rules, for the patterns used here)."""
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.strip().startswith("#")]
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for p in patterns:
        neg = p.startswith("!")
        pat = p.lstrip("!").strip("/")
        if any(fnmatch(pre, pat) for pre in prefixes):
            excluded = not neg
    return excluded


def test_dockerfile_stages():
    df = parse_dockerfile()
    assert [s.name for s in df.stages] == ["builder", "model", "runtime"]
    assert df.stage("builder").base == "debian:12" and df.runtime.base == "debian:12-slim"
    names = set()
    for s in df.stages:
        for arg in s.all("COPY"):
            m = re.search(r"--from=(\S+)", arg)
            if m:
                assert m.group(1) in names, f"COPY --from={m.group(1)}: no earlier stage of that name"
        names.add(s.name)
    # Build arguments: the CMake presets it may name exist, and the options it sets.
    presets = json.loads((ROOT / "CMakePresets.json").read_text())
    configure = {p["name"] for p in presets["configurePresets"]}
    build = {p["name"] for p in presets["buildPresets"]}
    args = dict(a.partition("=")[::2] for a in df.stage("builder").all("ARG"))
    assert args["INFERD_PRESET"] == "release"
    assert {"release", "cuda"} <= configure & build
    cmake = (ROOT / "CMakeLists.txt").read_text()
    for opt in re.findall(r"-D(\w+)=", " ".join(df.stage("builder").all("RUN"))):
        assert f"option({opt} " in cmake, opt


def test_dockerfile_copies_exist_and_pass_dockerignore():
    df = parse_dockerfile()
    sources = []
    for s in df.stages:
        for arg in s.all("COPY"):
            tokens = shlex.split(arg)
            if any(t.startswith("--from=") for t in tokens):
                continue
            sources += [t for t in tokens[:-1] if not t.startswith("--")]
    assert sources
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
        assert not dockerignore_excludes(src), f"COPY {src}: excluded by .dockerignore"
    assert dockerignore_excludes("build/release/src/cli/inferd") and dockerignore_excludes(".git")
    # The scripts it runs are there and executable, and install-deps.sh knows --serve.
    runs = " ".join(a for s in df.stages for a in s.all("RUN"))
    for script in set(re.findall(r"(?:\./)?(scripts/[\w-]+\.sh)", runs)) | {"scripts/fetch-model.sh"}:
        assert os.access(ROOT / script, os.X_OK), script
    assert '"--serve"' in (ROOT / "scripts" / "install-deps.sh").read_text()


def test_dockerfile_runtime_user_model_and_port(rendered):
    rt = parse_dockerfile().runtime
    uid, gid = rt.last("USER").split(":")
    assert uid.isdigit() and int(uid) != 0, "numeric non-root USER (runAsNonRoot can check it)"
    env = dict(rt.env())
    assert env["INFERD_MODEL"].startswith("/models/")
    assert any("/models/" in c and "--from=model" in c for c in rt.all("COPY"))
    d = the(rendered["overlays/cpu"], "Deployment")
    port = container(d)["ports"][0]["containerPort"]
    assert rt.last("EXPOSE") == str(port)
    assert f"/dev/tcp/127.0.0.1/{port}" in rt.last("HEALTHCHECK")
    assert "--start-period=" in rt.last("HEALTHCHECK")


def test_dockerfile_runtime_packages_cover_the_binarys_libraries(inferd_bin):
    """Every shared library `inferd` loads (ldd) comes from a package the runtime stage
    installs, or from one that debian:12-slim has (libc6, libgcc-s1)."""
    if shutil.which("dpkg") is None:
        pytest.skip("dpkg not available: cannot map libraries to Debian packages")
    rt = parse_dockerfile().runtime
    install = " ".join(rt.all("RUN")).split("apt-get install", 1)[1].split("&&")[0]
    packages = {t for t in install.split() if not t.startswith("-")}
    out = subprocess.run(["ldd", str(inferd_bin)], capture_output=True, text=True, check=True).stdout
    libs = re.findall(r"=>\s+(/\S+)", out)
    assert libs
    missing = []
    for lib in libs:
        owner = None
        for cand in {lib, os.path.realpath(lib), lib.replace("/usr/lib/", "/lib/"), lib.replace("/lib/", "/usr/lib/", 1),
                     os.path.realpath(lib).replace("/usr/lib/", "/lib/")}:
            r = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
            if r.returncode == 0:
                owner = r.stdout.split(":")[0].strip()
                break
        assert owner, f"{lib}: no Debian package owns it"
        if owner not in packages | {"libc6", "libgcc-s1"}:
            missing.append(f"{lib} ({owner})")
    assert not missing, f"runtime stage lacks: {missing}"


def test_dockerfile_healthcheck_against_a_live_server(live_stack):
    """The HEALTHCHECK command (bash /dev/tcp, no curl in the image) succeeds against a ready
    server and fails where nothing listens."""
    hc = parse_dockerfile().runtime.last("HEALTHCHECK")
    cmd = json.loads(hc[hc.index("CMD") + 3:].strip())
    assert cmd[:2] == ["bash", "-c"]

    def run(port):
        script = cmd[2].replace("/dev/tcp/127.0.0.1/8000", f"/dev/tcp/127.0.0.1/{port}")
        return subprocess.run(["bash", "-c", script], capture_output=True, timeout=10).returncode

    assert run(live_stack.server_port) == 0
    from deploy_helpers import free_port
    assert run(free_port()) != 0


# ---- docs/deploy.md ---------------------------------------------------------------------------

def test_docs_name_real_paths_and_commands(rendered):
    text = (ROOT / "docs" / "deploy.md").read_text()
    for path in set(re.findall(r"(?<![\w/])(deploy/[\w./-]+\w)", text)):
        assert (ROOT / path).exists(), f"docs/deploy.md names {path}, which does not exist"
    applied = re.findall(r"kubectl apply -k ([\w./-]+\w)", text)
    assert applied
    for d in applied:
        assert (ROOT / d / "kustomization.yaml").exists(), d
    (cm,) = rendered["prometheus-adapter"]
    assert f"rules.existing={cm['metadata']['name']}" in text
    assert "inferd_num_requests_waiting" in text and "DCGM_FI_DEV_GPU_UTIL" in text


# ---- the router in front of the replicas (docs/router.md) -------------------------------------

@pytest.mark.parametrize("kdir", OVERLAYS)
def test_router_finds_the_replicas_through_the_headless_service(rendered, kdir):
    objs = rendered[kdir]
    server, router = the(objs, "Deployment"), the(objs, "Deployment", "inferd-router")
    headless = the(objs, "Service", "inferd-replicas")
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is False
    assert headless["spec"]["selector"].items() <= server["spec"]["template"]["metadata"]["labels"].items()
    c = container(router)
    flags = flag_values(c["args"])
    name, port = flags["--backend-dns"].split(":")
    assert name == headless["metadata"]["name"]
    (hp,) = headless["spec"]["ports"]
    assert int(port) == hp["port"]
    server_ports = {p["name"]: p["containerPort"] for p in container(server)["ports"]}
    assert server_ports.get(hp["targetPort"], hp["targetPort"]) == int(flag_values(container(server)["args"])["--port"])
    # The router's own pods are not backends of themselves.
    router_labels = router["spec"]["template"]["metadata"]["labels"]
    assert not headless["spec"]["selector"].items() <= router_labels.items()


@pytest.mark.parametrize("kdir", OVERLAYS)
def test_every_selector_picks_the_pods_of_one_deployment(rendered, kdir):
    """The server's and the router's pods share app.kubernetes.io/name: each Service, PDB and
    Deployment selector must still pick one Deployment's pods (a server Service that also
    picked routers would send clients in a loop; two Deployments on one selector fight)."""
    objs = rendered[kdir]
    pods = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
            for d in objs if d["kind"] == "Deployment"}
    assert sorted(pods) == ["inferd", "inferd-router"]
    owner = {"inferd": "inferd", "inferd-replicas": "inferd", "inferd-router": "inferd-router"}
    for o in objs:
        if o["kind"] == "Service":
            sel = o["spec"]["selector"]
        elif o["kind"] in ("Deployment", "PodDisruptionBudget"):
            sel = o["spec"]["selector"]["matchLabels"]
        else:
            continue
        picked = [name for name, labels in pods.items() if sel.items() <= labels.items()]
        assert picked == [owner[o["metadata"]["name"]]], (key(o), picked)


@pytest.mark.parametrize("kdir", OVERLAYS)
def test_router_service_probes_and_budget(rendered, kdir):
    objs = rendered[kdir]
    router = the(objs, "Deployment", "inferd-router")
    svc, pdb = the(objs, "Service", "inferd-router"), the(objs, "PodDisruptionBudget", "inferd-router")
    labels = router["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert pdb["spec"]["selector"]["matchLabels"] == router["spec"]["selector"]["matchLabels"]
    assert router["spec"]["replicas"] >= 2 and pdb["spec"]["maxUnavailable"] == 1
    c = container(router)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    port = int(flag_values(c["args"])["--port"])
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"
    assert c["livenessProbe"]["httpGet"]["path"] == "/metrics", "liveness must not follow the replicas' health"
    for probe in ("readinessProbe", "livenessProbe"):
        p = c[probe]["httpGet"]["port"]
        assert ports.get(p, p) == port
    ann = router["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and int(ann["prometheus.io/port"]) == port
    assert "nvidia.com/gpu" not in c["resources"].get("limits", {}), "the router needs no GPU"
    sc = pod_spec(router)["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0
    assert c["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("kdir", [k for k in KUSTOMIZATIONS if k == "base" or k.startswith("overlays/")])
def test_router_args_are_options_of_inferd_router(rendered, kdir, router_options):
    c = container(the(rendered[kdir], "Deployment", "inferd-router"))
    assert "command" not in c
    assert not check_command_line(c["args"], router_options, command="router")
    assert check_command_line(["router", "--backend-dsn=x:1"], router_options, command="router") == [
        "--backend-dsn: not an option of `inferd router`"]
