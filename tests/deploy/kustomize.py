"""A renderer for the subset of kustomize that deploy/k8s uses, so that the tests can validate
what `kubectl apply -k DIR` would apply without kustomize or kubectl installed (neither comes
from Debian's packages or PyPI).

    from kustomize import render
    objects = render(pathlib.Path("deploy/k8s/overlays/cpu"))   # list of dicts

Supported kustomization fields, with kustomize's semantics:
  resources          files (one or more YAML documents) and directories holding a kustomization
  namespace          set on every object (all objects here are namespaced)
  images             name -> newName / newTag / digest, on the containers and initContainers of
                     pod templates (Deployment, StatefulSet, DaemonSet, Job, Pod)
  patches            `path` + `target` (kind, name) holding a JSON 6902 patch (a YAML list of
                     operations, applied with the `jsonpatch` package); no strategic merge
  configMapGenerator name + files ("key=path" or "path") + options.disableNameSuffixHash /
                     labels / annotations; the name-suffix hash itself is not implemented, so
                     disableNameSuffixHash must be true
Anything else raises UnsupportedKustomization: a kustomization that uses more must extend
this file first (test_manifests.py compares its output with `kubectl kustomize` where kubectl
is installed).
"""

from __future__ import annotations

import copy
import pathlib

import jsonpatch
import yaml

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "patches", "configMapGenerator"}
POD_TEMPLATE_PATHS = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "Pod": ("spec",),
}


class UnsupportedKustomization(Exception):
    pass


def kustomization_file(directory: pathlib.Path) -> pathlib.Path:
    for name in KUSTOMIZATION_NAMES:
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"no kustomization file in {directory}")


def load_documents(path: pathlib.Path) -> list[dict]:
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def _within(root: pathlib.Path, path: pathlib.Path) -> None:
    # kustomize's default load restrictor: files (not bases) must lie under the kustomization.
    if root.resolve() not in [path.resolve(), *path.resolve().parents]:
        raise UnsupportedKustomization(f"{path} is outside {root} (kustomize's LoadRestrictionsRootOnly)")


def render(directory: pathlib.Path) -> list[dict]:
    directory = pathlib.Path(directory)
    (k,) = load_documents(kustomization_file(directory))
    unknown = set(k) - SUPPORTED
    if unknown:
        raise UnsupportedKustomization(f"{directory}: fields {sorted(unknown)} are not implemented here")
    if k.get("kind", "Kustomization") != "Kustomization":
        raise UnsupportedKustomization(f"{directory}: kind {k.get('kind')}")

    objects: list[dict] = []
    for res in k.get("resources", []):
        path = directory / res
        if path.is_dir():
            objects += render(path)
        else:
            _within(directory, path)
            objects += load_documents(path)

    for gen in k.get("configMapGenerator", []):
        objects.append(_config_map(directory, gen))

    for patch in k.get("patches", []):
        objects = _apply_patch(directory, patch, objects)

    for image in k.get("images", []):
        for obj in objects:
            _set_image(obj, image)

    if "namespace" in k:
        for obj in objects:
            obj.setdefault("metadata", {})["namespace"] = k["namespace"]

    _check_unique(objects, directory)
    return objects


def _config_map(directory: pathlib.Path, gen: dict) -> dict:
    unknown = set(gen) - {"name", "files", "options"}
    options = gen.get("options", {})
    unknown |= set(options) - {"disableNameSuffixHash", "labels", "annotations"}
    if unknown:
        raise UnsupportedKustomization(f"configMapGenerator fields {sorted(unknown)}")
    if not options.get("disableNameSuffixHash"):
        raise UnsupportedKustomization("configMapGenerator without disableNameSuffixHash (the hash is not implemented)")
    data = {}
    for spec in gen.get("files", []):
        key, _, rel = spec.partition("=") if "=" in spec else (pathlib.Path(spec).name, "", spec)
        path = directory / rel
        _within(directory, path)
        data[key] = path.read_text()
    meta: dict = {"name": gen["name"]}
    if options.get("labels"):
        meta["labels"] = dict(options["labels"])
    if options.get("annotations"):
        meta["annotations"] = dict(options["annotations"])
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def _apply_patch(directory: pathlib.Path, patch: dict, objects: list[dict]) -> list[dict]:
    unknown = set(patch) - {"path", "target"}
    target = patch.get("target", {})
    unknown |= set(target) - {"kind", "name"}
    if unknown or "path" not in patch or not target:
        raise UnsupportedKustomization(f"patch {patch}: only `path` with a `target` of kind/name is implemented")
    path = directory / patch["path"]
    _within(directory, path)
    ops = yaml.safe_load(path.read_text())
    if not isinstance(ops, list):
        raise UnsupportedKustomization(f"{path}: strategic-merge patches are not implemented (JSON 6902 lists only)")
    matched = 0
    out = []
    for obj in objects:
        if all(obj.get("kind") == target["kind"] if field == "kind" else obj["metadata"].get("name") == target["name"]
               for field in target):
            obj = jsonpatch.JsonPatch(ops).apply(copy.deepcopy(obj))
            matched += 1
        out.append(obj)
    if matched == 0:
        raise ValueError(f"{path}: target {target} matches no object")  # kustomize fails here too
    return out


def _split_image(image: str) -> tuple[str, str]:
    """'registry:5000/name:tag' -> ('registry:5000/name', ':tag'); '@digest' likewise."""
    if "@" in image:
        name, _, digest = image.partition("@")
        return name, "@" + digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon:]
    return image, ""


def _set_image(obj: dict, image: dict) -> None:
    unknown = set(image) - {"name", "newName", "newTag", "digest"}
    if unknown:
        raise UnsupportedKustomization(f"images fields {sorted(unknown)}")
    spec_path = POD_TEMPLATE_PATHS.get(obj.get("kind"))
    if spec_path is None:
        return
    spec = obj
    for key in spec_path:
        spec = spec.get(key, {})
    for field in ("containers", "initContainers"):
        for c in spec.get(field, []):
            name, tag = _split_image(c.get("image", ""))
            if name != image["name"]:
                continue
            if "newName" in image:
                name = image["newName"]
            if "digest" in image:
                tag = "@" + image["digest"]
            elif "newTag" in image:
                tag = ":" + str(image["newTag"])
            c["image"] = name + tag


def _check_unique(objects: list[dict], directory: pathlib.Path) -> None:
    seen = set()
    for obj in objects:
        key = (obj.get("apiVersion"), obj.get("kind"), obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if key in seen:
            raise ValueError(f"{directory}: {key} appears twice")  # kustomize: "may not add resource with an already registered id"
        seen.add(key)


def key(obj: dict) -> tuple:
    return (obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
