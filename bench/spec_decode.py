#!/usr/bin/env python3
"""Speculative decoding, measured (issue 19): single-stream decode speed with and without
prompt lookup on prompts whose answer repeats the input (code edits, extraction), on chat
prompts that do not, and throughput at 32 concurrent streams; beside llama-server with and
without its n-gram speculation (`--spec-type ngram-simple`) on the same GGUF.

Every configuration is a fresh server, run alone on the machine, one after another; the
repetitions alternate the configurations so that drift in the machine's speed hits all of
them alike. Greedy decoding throughout: with speculation the output must be the same text
(checked for inferd, reported for llama.cpp).

Two comparisons: prompt lookup (`ngram`) on the embedded model, and a draft model: the
embedded Q4_1 model drafting for the same model as F32 (made with llama-quantize; the only
same-tokenizer pair of different sizes that runs here), beside llama-server `-md`.

Single-stream decode tok/s of one request = (completion_tokens - 1) / (time of the last
streamed chunk - time of the first), so prefill is excluded; the table reports the median
over prompts and repetitions. Batch: 32 concurrent requests (the 4 workloads' prompts
repeated), output tokens of all over the wall time.

Usage: bench/spec_decode.py [--method ngram|draft_model] [--inferd BIN] [--llama-server BIN]
                            [--model GGUF] [--draft GGUF] [--reps N] [--max-tokens N]
                            [--no-llamacpp] [--json OUT]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CODE = '''def compute_statistics(values):
    total = 0
    count = 0
    for value in values:
        total += value
        count += 1
    mean = total / count
    variance = 0
    for value in values:
        variance += (value - mean) ** 2
    variance = variance / count
    return mean, variance


def print_report(values):
    mean, variance = compute_statistics(values)
    print("mean:", mean)
    print("variance:", variance)
'''

CLASS = '''class Inventory:
    def __init__(self):
        self.items = {}

    def add(self, name, count):
        if name in self.items:
            self.items[name] += count
        else:
            self.items[name] = count

    def remove(self, name, count):
        if name not in self.items:
            raise KeyError(name)
        self.items[name] -= count
        if self.items[name] <= 0:
            del self.items[name]

    def total(self):
        return sum(self.items.values())
'''

RECORDS = '''Order 1041: customer Alice Moreau, 3 x blue notebook, shipped 2024-03-02 to Lyon.
Order 1042: customer Bob Tanaka, 1 x desk lamp, shipped 2024-03-02 to Osaka.
Order 1043: customer Carla Diaz, 2 x ink cartridge, shipped 2024-03-03 to Madrid.
Order 1044: customer Dmitri Volkov, 5 x pencil set, shipped 2024-03-04 to Riga.
Order 1045: customer Emma Schultz, 1 x office chair, shipped 2024-03-05 to Hamburg.
Order 1046: customer Farid Haddad, 4 x sticky notes, shipped 2024-03-05 to Beirut.
'''

WORKLOADS = {
    "code-edit": [
        "Add a docstring to each function in this Python code and return the whole code:\n\n" + CODE,
        "Rename the method `total` to `count_all` in this class and return the whole class:\n\n" + CLASS,
    ],
    "extraction": [
        "Copy every line of these records that was shipped on 2024-03-05, exactly as written:\n\n" + RECORDS,
        "Rewrite these records as a Markdown list, one order per item, keeping every detail:\n\n" + RECORDS,
    ],
    "chat": [
        "Write a short story about a lighthouse keeper who finds a message in a bottle.",
        "Explain in a few paragraphs why the sky is blue.",
    ],
}

NGRAM = {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_min": 2, "prompt_lookup_max": 5}
DRAFT_TOKENS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; log: {log}\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server not ready after {timeout} s; log: {log}")


class Server:
    def __init__(self, argv: list[str], port: int, log: Path):
        self.port, self.log = port, log
        with open(log, "w") as f:
            self.proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        wait_ready(port, self.proc, log)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def model_name(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10) as r:
        return json.load(r)["data"][0]["id"]


def stream_chat(port: int, prompt: str, max_tokens: int, model: str) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    text, first, last, usage = [], None, None, None
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices", []):
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    now = time.perf_counter()
                    first = first if first is not None else now
                    last = now
                    text.append(piece)
    tokens = usage["completion_tokens"] if usage else None
    decode = None
    if tokens and tokens > 1 and first is not None and last > first:
        decode = (tokens - 1) / (last - first)
    return {"text": "".join(text), "tokens": tokens, "decode_tps": decode, "ttft": (first or start) - start}


def run_config(name: str, argv: list[str], port: int, out_dir: Path, max_tokens: int) -> dict:
    server = Server(argv, port, out_dir / f"{name}.log")
    try:
        model = model_name(port)
        stream_chat(port, "Hello", 8, model)  # warm-up
        single = {}
        for workload, prompts in WORKLOADS.items():
            single[workload] = [stream_chat(port, p, max_tokens, model) for p in prompts]
        prompts = [p for ps in WORKLOADS.values() for p in ps]
        batch_prompts = [prompts[i % len(prompts)] for i in range(32)]
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            results = list(pool.map(lambda p: stream_chat(port, p, max_tokens, model), batch_prompts))
        wall = time.perf_counter() - t0
        batch_tps = sum(r["tokens"] or 0 for r in results) / wall
        return {"single": single, "batch_tps": batch_tps}
    finally:
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inferd", default=os.environ.get("INFERD", ""))
    ap.add_argument("--llama-server", default=os.environ.get("LLAMACPP_SERVER", ""))
    ap.add_argument("--model", default="", help="target model (default: the embedded model; F32 of it for draft_model)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--no-llamacpp", action="store_true")
    ap.add_argument("--method", choices=["ngram", "draft_model"], default="ngram")
    ap.add_argument("--draft", default="", help="draft model (default: the embedded model)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    inferd = args.inferd or next((str(p) for p in sorted(ROOT.glob("build/*/src/cli/inferd"),
                                                          key=lambda p: p.stat().st_mtime, reverse=True)), "")
    if not inferd:
        sys.exit("spec_decode.py: no inferd binary: pass --inferd or build one (scripts/build.sh release)")
    embedded = subprocess.check_output([str(ROOT / "scripts/fetch-model.sh")], text=True).strip()
    llama_bin = ""
    if not args.no_llamacpp or (args.method == "draft_model" and not args.model):
        llama_bin = str(Path(args.llama_server).parent) if args.llama_server else subprocess.check_output(
            ["bash", "-c", f"{ROOT}/scripts/llamacpp.sh --with-bench >&2 && "
             "source ${INFERD_CACHE_DIR:-$HOME/.cache/inferd}/llama.cpp-*/env.sh && echo $LLAMACPP_BIN_DIR"],
            text=True).strip().splitlines()[-1]
    if args.method == "ngram":
        model, draft = args.model or embedded, ""
    else:
        draft = args.draft or embedded
        model = args.model
        if not model:  # the embedded model as F32: the draft's own weights at full precision
            cache = Path(os.environ.get("INFERD_CACHE_DIR", Path.home() / ".cache/inferd")) / "quant"
            cache.mkdir(parents=True, exist_ok=True)
            model = str(cache / "smollm2-135m.f32.gguf")
            if not Path(model).exists():
                subprocess.check_call([str(Path(llama_bin) / "llama-quantize"), "--allow-requantize", embedded, model,
                                       "F32"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    spec_name = "ngram" if args.method == "ngram" else "draft"
    spec_json = NGRAM if args.method == "ngram" else {"method": "draft_model", "model": draft,
                                                       "num_speculative_tokens": DRAFT_TOKENS}
    configs = {
        "inferd": [inferd, "serve", model, "--max-model-len", "2048", "--max-num-seqs", "32",
                   "--threads", str(args.threads), "--disable-log-stats"],
    }
    configs["inferd+" + spec_name] = configs["inferd"] + ["--speculative-config", json.dumps(spec_json)]
    if not args.no_llamacpp:
        llama = args.llama_server or str(Path(llama_bin) / "llama-server")
        base = [llama, "-m", model, "--host", "127.0.0.1", "-np", "32", "-c", str(32 * 2048), "-t", str(args.threads),
                "-cb", "--no-webui"]
        configs["llama.cpp"] = base
        if args.method == "ngram":
            configs["llama.cpp+ngram"] = base + ["--spec-type", "ngram-simple", "--spec-ngram-simple-size-n", "3",
                                                 "--spec-ngram-simple-size-m", "4"]
        else:
            configs["llama.cpp+draft"] = base + ["-md", draft, "--spec-draft-n-max", str(DRAFT_TOKENS)]
    print(f"[spec_decode] target {model}" + (f", draft {draft}" if draft else ""), file=sys.stderr)
    out_dir = Path(tempfile.mkdtemp(prefix="spec_decode."))
    runs: dict[str, list[dict]] = {k: [] for k in configs}
    for rep in range(args.reps):
        for name, argv in configs.items():
            port = free_port()
            argv = argv + ["--port", str(port)]
            print(f"[spec_decode] rep {rep + 1}/{args.reps}: {name}", file=sys.stderr, flush=True)
            runs[name].append(run_config(name, argv, port, out_dir, args.max_tokens))

    def median_decode(name: str, workload: str) -> float:
        return statistics.median(r["decode_tps"] for run in runs[name] for r in run["single"][workload]
                                 if r["decode_tps"])

    rows = []
    for workload in WORKLOADS:
        rows.append((f"single-stream decode, {workload}", {n: median_decode(n, workload) for n in configs}))
    rows.append(("32 concurrent streams, output tok/s",
                 {n: statistics.median(run["batch_tps"] for run in runs[n]) for n in configs}))
    names = list(configs)
    sp = spec_name
    print("| workload | " + " | ".join(names) + f" | inferd {sp} / inferd |" +
          (f" llama.cpp {sp} / llama.cpp | inferd {sp} / llama.cpp {sp} |" if "llama.cpp" in configs else ""))
    print("|---" * (len(names) + (4 if "llama.cpp" in configs else 2)) + "|")
    for label, v in rows:
        line = f"| {label} | " + " | ".join(f"{v[n]:.1f}" for n in names) + f" | {v['inferd+' + sp] / v['inferd']:.2f}x |"
        if "llama.cpp" in configs:
            line += f" {v['llama.cpp+' + sp] / v['llama.cpp']:.2f}x | {v['inferd+' + sp] / v['llama.cpp+' + sp]:.2f}x |"
        print(line)
    # Greedy outputs with speculation are the outputs without it (inferd: required).
    for engine in ("inferd", "llama.cpp"):
        if engine not in configs:
            continue
        same = total = 0
        for a, b in zip(runs[engine], runs[engine + "+" + spec_name]):
            for workload in WORKLOADS:
                for x, y in zip(a["single"][workload], b["single"][workload]):
                    total += 1
                    same += x["text"] == y["text"]
        print(f"{engine}: {same}/{total} single-stream outputs identical with and without speculation")
        if engine == "inferd" and same != total:
            print("error: inferd's greedy output changed with speculation", file=sys.stderr)
            return 1
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "runs": runs}, indent=1))
    print(f"logs: {out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
