#!/usr/bin/env python3
"""The JSON-schema corpus (tests/e2e/schema_corpus/) as a benchmark against `inferd serve`:

1. compile cost per schema: the latency of a 1-token request with a schema the server has not
   seen (grammar compile + prefill) against the same request once the grammar is cached (the
   prompt is sent unconstrained first, so both hit the prefix cache); sequential, one at a time.
2. pass rates: every schema greedy and sampled, concurrently (tests/e2e/test_schema_corpus.py's
   requests and checks), counted per outcome; for outputs cut by max_tokens, where in the
   document the model was when it ran out (the JSON path and the schema node there).

    python3 bench/schema_corpus.py [--base-url http://127.0.0.1:8000] [--skip-compile] [--skip-pass]
        [--max-tokens 512] [--modes greedy,sampled] [--only NAME,...] [--json report.json]

Without --base-url it starts `inferd serve` (build/release, $INFERD_BUILD_DIR, $INFERD_MODEL)
as the e2e tests do. Compile timings need a server that has not seen the schemas (a fresh one).
"""
import argparse
import collections
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
import test_schema_corpus as corpus  # noqa: E402  (the corpus, requests and checks)


def start_server():
    build = pathlib.Path(os.environ.get("INFERD_BUILD_DIR", ROOT / "build" / "release"))
    build = build if build.is_absolute() else ROOT / build
    model = os.environ.get("INFERD_MODEL") or os.path.expanduser("~/.cache/inferd/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tempfile.NamedTemporaryFile(prefix="schema-corpus-serve-", suffix=".log", delete=False)
    proc = subprocess.Popen([str(build / "src" / "cli" / "inferd"), "serve", model, "--host", "127.0.0.1", "--port",
                             str(port), "--served-model-name", "smollm2", "--kv-cache-memory", "256MiB",
                             "--max-model-len", "2048", "--disable-log-stats"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        if proc.poll() is not None:
            sys.exit(f"inferd serve exited with {proc.returncode}; log: {log.name}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=2):
                return proc, base
        except Exception:
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"inferd serve not ready; log: {log.name}")


def compile_times(base_url, names):
    import openai
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="x", timeout=600, max_retries=0)
    rows = []
    for name in names:
        kw = corpus.request_kwargs(name, corpus.CORPUS[name], "greedy", max_tokens=1)
        free = {k: v for k, v in kw.items() if k != "response_format"}
        client.chat.completions.create(**free)  # the prompt into the prefix cache
        times = []
        status = "ok"
        for _ in range(2):  # new schema, then cached
            t = time.perf_counter()
            try:
                client.chat.completions.create(**kw)
            except openai.APIStatusError as e:
                status = f"{e.status_code}: {str(e)[:200]}"
            times.append(time.perf_counter() - t)
        rows.append({"schema": name, "new_s": times[0], "cached_s": times[1], "compile_s": times[0] - times[1],
                     "status": status})
        print(f"{name:45s} new {times[0] * 1000:8.1f} ms  cached {times[1] * 1000:7.1f} ms  "
              f"compile ~{(times[0] - times[1]) * 1000:8.1f} ms  {status if status != 'ok' else ''}", flush=True)
    c = [r["compile_s"] for r in rows if r["status"] == "ok"]
    if c:
        q = statistics.quantiles(c, n=20, method="inclusive") if len(c) >= 2 else [c[0]] * 19
        print(f"compile time over {len(c)} schemas: median {statistics.median(c) * 1000:.1f} ms, "
              f"p95 {q[18] * 1000:.1f} ms, max {max(c) * 1000:.1f} ms ({max(rows, key=lambda r: r['compile_s'])['schema']}), "
              f"total {sum(c):.1f} s; cached median {statistics.median(r['cached_s'] for r in rows) * 1000:.1f} ms")
    return rows


def where_truncated(text):
    """(JSON path, what was being written) at the end of a truncated JSON text."""
    stack, path, state, key_next, i = [], [], "value", False, 0
    buf = ""
    while i < len(text):
        ch = text[i]
        if state in ("string", "key"):
            if ch == "\\":
                buf += text[i:i + 2]
                i += 2
                continue
            if ch == '"':
                if state == "key":
                    path[-1] = buf
                state, buf = "after", ""
            else:
                buf += ch
        elif ch in "{[":
            stack.append(ch)
            path.append(None if ch == "{" else 0)
            state = "key?" if ch == "{" else "value"
        elif ch in "}]":
            stack.pop()
            path.pop()
            state = "after"
        elif ch == ",":
            if stack and stack[-1] == "[":
                path[-1] += 1
                state = "value"
            else:
                state = "key?"
        elif ch == ":":
            state = "value"
        elif ch == '"':
            state, buf = ("key" if state == "key?" else "string"), ""
        elif ch in " \t\r\n":
            pass
        else:
            state = "number/literal"
        i += 1
    what = {"string": "inside a string", "key": "inside a key", "number/literal": "in a number or literal",
            "key?": "between members", "value": "before a value", "after": "after a value"}[state]
    if text.endswith("\n" * 8) or text.endswith(" " * 16):
        what += " (whitespace run)"
    return "/" + "/".join(str(p) for p in path if p is not None), what


def node_at(schema, path):
    """The schema node at a JSON path (first matching anyOf/oneOf branch; $refs followed)."""
    root = schema

    def deref(n):
        for _ in range(20):
            if isinstance(n, dict) and "$ref" in n:
                parts = n["$ref"].lstrip("#/").split("/")
                n = root
                for p in parts:
                    n = n[p]
            else:
                break
        return n
    node = deref(schema)
    for part in [p for p in path.split("/") if p]:
        node = deref(node)
        for comb in ("anyOf", "oneOf", "allOf"):
            if isinstance(node, dict) and comb in node:
                branches = [deref(b) for b in node[comb]]
                node = next((b for b in branches if part in b.get("properties", {}) or
                             (part.isdigit() and b.get("type") == "array")), branches[0])
        if not isinstance(node, dict):
            return {}
        if part.isdigit() and ("items" in node or "prefixItems" in node):
            pi = node.get("prefixItems", [])
            node = pi[int(part)] if int(part) < len(pi) else node.get("items", {})
        else:
            node = node.get("properties", {}).get(part, node.get("additionalProperties", {}))
        node = deref(node)
    keep = ("type", "format", "pattern", "maxLength", "minimum", "maximum", "maxItems", "enum", "anyOf", "oneOf")
    return {k: v for k, v in node.items() if k in keep} if isinstance(node, dict) else {}


def pass_rates(base_url, names, modes, max_tokens):
    records, seconds = corpus.run_corpus(base_url, names=names, modes=modes, max_tokens=max_tokens)
    print(f"\n{len(records)} requests ({len(names or corpus.CORPUS)} schemas x {len(modes)} modes, max_tokens "
          f"{max_tokens}) in {seconds:.1f} s, {sum(r.get('completion_tokens') or 0 for r in records)} completion tokens")
    by_mode = collections.defaultdict(collections.Counter)
    for r in records:
        by_mode[r["mode"]][r["kind"]] += 1
    for mode, counts in by_mode.items():
        total = sum(counts.values())
        print(f"  {mode:8s} pass {counts['pass']}/{total} ({100 * counts['pass'] / total:.1f}%)  " +
              "  ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k != "pass"))
    for r in records:
        if r["kind"] == "pass":
            continue
        line = f"  {r['mode']:8s} {r['schema']:42s} {r['kind']:10s} "
        if r["kind"] == "length":
            path, what = where_truncated(r["content"] or "")
            r["truncated_at"] = {"path": path, "what": what, "node": node_at(corpus.CORPUS[r["schema"]], path)}
            line += f"at {path} {what}: {json.dumps(r['truncated_at']['node'])[:120]}"
        else:
            line += (r.get("reason") or "")[:160]
        print(line)
    return records, seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url")
    ap.add_argument("--skip-compile", action="store_true")
    ap.add_argument("--skip-pass", action="store_true")
    ap.add_argument("--max-tokens", type=int, default=corpus.MAX_TOKENS)
    ap.add_argument("--modes", default=",".join(corpus.MODES))
    ap.add_argument("--only", help="comma-separated schema names (file stems)")
    ap.add_argument("--json", help="write every result here")
    a = ap.parse_args()
    names = a.only.split(",") if a.only else sorted(corpus.CORPUS)
    proc = None
    base = a.base_url
    if not base:
        proc, base = start_server()
    try:
        out = {}
        if not a.skip_compile:
            out["compile"] = compile_times(base, names)
        if not a.skip_pass:
            out["records"], out["seconds"] = pass_rates(base, names, tuple(a.modes.split(",")), a.max_tokens)
        if a.json:
            pathlib.Path(a.json).write_text(json.dumps(out, indent=1))
    finally:
        if proc:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
