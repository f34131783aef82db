#!/usr/bin/env python3
"""Fails when a source under src/ includes a layer above its own (docs/model-families.md,
docs/architecture.md): dependencies point one way,
util -> format -> tokenizer -> model -> ops -> backend -> sched -> engine -> server -> router -> cli,
with chat, kv, sample and spec (speculative-decoding proposers) as leaves on util that any
layer above them may use, and structured (grammars over the vocabulary) on tokenizer, for
engine and above.
backend/cpu (the kernels) sees formats and the op batch types, never models.
The public API (include/inferd/*.h) and its test as an outside program
(tests/unit/engine/test_public_api.cc) include only public headers and system headers.
Usage: scripts/check-layering.py [repo root]; exit 1 with one line per violation."""

import re
import sys
from pathlib import Path

# Directory -> the top-level include directories its files may include (besides itself and
# the public include/inferd).
ALLOWED = {
    "util": set(),
    "format": {"util"},
    "tokenizer": {"format", "util"},
    "structured": {"tokenizer", "format", "util"},
    "chat": {"util"},
    "kv": {"util"},
    "sample": {"util"},
    "spec": {"util"},
    "model": {"format", "tokenizer", "util"},
    "ops": {"model", "format", "util"},
    "backend/cpu": {"ops", "format", "util"},
    "backend": {"backend", "ops", "model", "format", "tokenizer", "kv", "sample", "util"},
    "sched": {"kv", "sample", "util"},
    "engine": {"spec", "backend", "ops", "model", "format", "tokenizer", "structured", "chat", "kv", "sample", "sched", "util"},
    "server": {"spec", "engine", "backend", "ops", "model", "format", "tokenizer", "structured", "chat", "kv", "sample", "sched", "util"},
    "router": {"server", "util"},
    "cli": {"spec", "server", "router", "engine", "backend", "ops", "model", "format", "tokenizer", "structured", "chat", "kv", "sample", "sched",
            "util"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/([^"]+)"', re.M)


def layer_of(rel: Path) -> str:
    parts = rel.parts
    if parts[0] == "backend" and len(parts) > 2 and parts[1] == "cpu":
        return "backend/cpu"
    return parts[0]


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
    src = root / "src"
    bad = []
    for f in sorted(src.rglob("*")):
        if f.suffix not in (".h", ".cc", ".cu", ".cuh"):
            continue
        layer = layer_of(f.relative_to(src))
        if layer not in ALLOWED:
            bad.append(f"{f.relative_to(root)}: directory '{layer}' has no entry in scripts/check-layering.py")
            continue
        own = layer.split("/")[0]
        for m in INCLUDE.finditer(f.read_text(errors="replace")):
            top, rest = m.group(1), m.group(2)
            if top in ("inferd", own) and not (layer == "backend/cpu" and top == "backend" and not rest.startswith("cpu/")):
                continue
            if top not in ALLOWED[layer]:
                bad.append(f"{f.relative_to(root)}: includes {top}/{rest}, above layer '{layer}'")
    quoted = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
    public = sorted((root / "include" / "inferd").glob("*.h")) + [root / "tests/unit/engine/test_public_api.cc"]
    for f in public:
        for m in quoted.finditer(f.read_text(errors="replace")):
            if not (m.group(1).startswith("inferd/") or m.group(1) == "../model_test_util.h"):
                bad.append(f"{f.relative_to(root)}: includes \"{m.group(1)}\", not a public header")
    for line in bad:
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
