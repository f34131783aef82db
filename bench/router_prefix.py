#!/usr/bin/env python3
"""Prefix-aware routing, measured (issue 20): the same multi-turn chat workload through
`inferd router` in front of N `inferd serve` replicas, once per policy (prefix, round-robin,
least-load), each on fresh replicas. Reported per policy: the replicas' prefix-cache hit rate
(inferd:prefix_cache_hits_total / inferd:prefix_cache_queries_total, summed over replicas),
and the client-side TTFT (streamed; median and p90) of the turns after the first.

Workload: C conversations, each about its own pasted order (~0.5 KB) after a short shared
system prompt, T turns each of a ~200-byte question and an answer of --max-tokens; turn t sends the whole history
(the assistant's earlier answers as generated), as a chat client does. Conversations run
concurrently (one thread each), turns in order.

Between turns a conversation waits an exponential think time (mean --think-time, seeded),
as users do; conversations start staggered. Each replica's KV cache (--kv-cache-memory,
256 MiB = about 11,600 tokens of this model) holds about a third of all the conversations:
what a replica can reuse depends on where their earlier turns went.

Usage: bench/router_prefix.py [--inferd BIN] [--replicas 3] [--conversations 36] [--turns 6]
                              [--max-tokens 48] [--think-time 1.0] [--kv-cache-memory 256MiB]
                              [--policies prefix,round-robin,least-load] [--json OUT]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = os.environ.get("INFERD_MODEL") or os.path.expanduser("~/.cache/inferd/models/SmolLM2-135M-Instruct.Q4_1.gguf")

SYSTEM = ("You are the assistant of a hardware store. Answer in one or two short sentences, name the aisle, "
          "suggest one related product, and never invent prices.")
TOPICS = ["nails", "hammers", "paint", "saws", "glue", "tape", "screws", "drills", "ladders", "gloves", "hoses",
          "lamps", "locks", "rope", "sandpaper", "brushes"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready")


def metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        m = re.match(r'^([^{ #]+)(\{[^}]*\})? (\S+)$', line)
        if m and m.group(1) == name:
            total += float(m.group(3))
    return total


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def chat_stream(base: str, messages: list, max_tokens: int) -> tuple[str, float]:
    body = json.dumps({"model": "m", "messages": messages, "max_tokens": max_tokens, "temperature": 0,
                       "stream": True}).encode()
    req = urllib.request.Request(base + "/v1/chat/completions", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    ttft, text = None, []
    with urllib.request.urlopen(req, timeout=300) as r:
        for line in r:
            if not line.startswith(b"data: {"):
                continue
            delta = json.loads(line[6:])["choices"][0]["delta"].get("content")
            if delta:
                if ttft is None:
                    ttft = time.perf_counter() - t0
                text.append(delta)
    return "".join(text), ttft if ttft is not None else time.perf_counter() - t0


def conversation(base: str, c: int, turns: int, max_tokens: int, think_s: float) -> list[float]:
    import random
    rng = random.Random(c)
    time.sleep(rng.uniform(0, think_s))  # staggered starts
    order = " ".join(f"Line {k}: {TOPICS[(c + k) % len(TOPICS)]}, {k + 2} units, shelf {c}-{k}."
                     for k in range(12))
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"My order {c}: {order}"},
                {"role": "assistant", "content": "Thank you, I have your order."}]
    ttfts = []
    for t in range(turns):
        topic = TOPICS[(c + t) % len(TOPICS)]
        messages.append({"role": "user", "content": f"Question {t} from customer {c}: where do I find {topic}, "
                                                    f"which brand of {topic} do you recommend for outdoor work, and "
                                                    f"how many {topic} would I need for a garden shed of "
                                                    f"{3 + c} by {4 + t} metres?"})
        answer, ttft = chat_stream(base, messages, max_tokens)
        messages.append({"role": "assistant", "content": answer})
        if t > 0:
            ttfts.append(ttft)
        time.sleep(rng.expovariate(1 / think_s) if think_s > 0 else 0)  # the user reads and types
    return ttfts


def run_policy(args, policy: str, logdir: Path) -> dict:
    procs = []
    try:
        replicas = []
        for i in range(args.replicas):
            port = free_port()
            log = open(logdir / f"{policy}-replica{i}.log", "wb")
            p = subprocess.Popen([args.inferd, "serve", MODEL, "--host", "127.0.0.1", "--port", str(port),
                                  "--served-model-name", "m", "--threads", "1", "--kv-cache-memory", args.kv_cache_memory,
                                  "--disable-log-stats", "--disable-access-log"], stdout=log, stderr=subprocess.STDOUT)
            procs.append(p)
            replicas.append(f"http://127.0.0.1:{port}")
        for url, p in zip(replicas, procs):
            wait_health(url, p)
        rport = free_port()
        cmd = [args.inferd, "router", "--host", "127.0.0.1", "--port", str(rport), "--policy", policy,
               "--disable-access-log", *args.router_arg]
        for url in replicas:
            cmd += ["--backend", url]
        router = subprocess.Popen(cmd, stdout=open(logdir / f"{policy}-router.log", "wb"), stderr=subprocess.STDOUT)
        procs.append(router)
        base = f"http://127.0.0.1:{rport}"
        wait_health(base, router)
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.conversations) as pool:
            ttfts = [x for f in [pool.submit(conversation, base, c, args.turns, args.max_tokens, args.think_time)
                                 for c in range(args.conversations)] for x in f.result()]
        wall = time.perf_counter() - t0
        hits = queries = 0.0
        for url in replicas:
            text = get(url + "/metrics")
            hits += metric(text, "inferd:prefix_cache_hits_total")
            queries += metric(text, "inferd:prefix_cache_queries_total")
        ttfts.sort()
        rtext = get(base + "/metrics")
        decisions = {}
        for line in rtext.splitlines():
            m = re.match(r'^inferd_router_routing_decisions_total\{kind="(\w+)"\} (\S+)$', line)
            if m and float(m.group(2)) > 0:
                decisions[m.group(1)] = int(float(m.group(2)))
        return {"policy": policy, "hit_rate": hits / queries if queries else 0.0, "decisions": decisions,
                "ttft_median_s": statistics.median(ttfts), "ttft_p90_s": ttfts[int(0.9 * (len(ttfts) - 1))],
                "wall_s": wall, "requests": args.conversations * args.turns}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inferd", default=str(ROOT / "build" / "release" / "src" / "cli" / "inferd"))
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--conversations", type=int, default=36)
    ap.add_argument("--think-time", type=float, default=1.0, help="mean seconds between a conversation's turns")
    ap.add_argument("--kv-cache-memory", default="256MiB", help="per replica")
    ap.add_argument("--turns", type=int, default=6)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--policies", default="prefix,round-robin,least-load")
    ap.add_argument("--router-arg", action="append", default=[], help="extra `inferd router` argument (repeat)")
    ap.add_argument("--json")
    ap.add_argument("--logdir", help="keep the replicas' and routers' logs here")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as d:
        logdir = Path(args.logdir or d)
        logdir.mkdir(parents=True, exist_ok=True)
        for policy in args.policies.split(","):
            r = run_policy(args, policy, logdir)
            results.append(r)
            print(f"{policy:12s} hit rate {r['hit_rate']:.3f}  TTFT median {r['ttft_median_s'] * 1000:.0f} ms  "
                  f"p90 {r['ttft_p90_s'] * 1000:.0f} ms  wall {r['wall_s']:.1f} s  decisions {r['decisions']}", flush=True)
    base = next((r for r in results if r["policy"] == "round-robin"), None)
    if base:
        for r in results:
            print(f"{r['policy']:12s} hit rate x{r['hit_rate'] / base['hit_rate']:.2f} of round-robin, "
                  f"TTFT median x{r['ttft_median_s'] / base['ttft_median_s']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
