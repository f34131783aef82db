#!/usr/bin/env python3
"""Streaming over gRPC (GenerateStream, grpcio) versus SSE (POST /v1/completions with the openai
SDK) on the same `inferd serve` and the same load: C concurrent streams of N tokens each
(ignore_eos, greedy), transports alternated, R rounds. Reports per transport the median over
rounds of: aggregate throughput (completion tokens / wall time of the round), time to first
token, and the gap between consecutive tokens as the client receives them (median and p90 over
every gap of the round).

    python3 bench/grpc_vs_sse.py [--build build/release] [--concurrency 1,8] [--tokens 128] [--rounds 5]
"""
import argparse
import os
import pathlib
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import grpc
import openai

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROMPT = "Write a long story about a lighthouse keeper."


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stubs():
    out = tempfile.mkdtemp()
    src = ROOT / "proto" / "inferd" / "v1"
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{src}", f"--python_out={out}",
                    f"--grpc_python_out={out}", str(src / "generation.proto")], check=True)
    sys.path.insert(0, out)
    import generation_pb2
    import generation_pb2_grpc
    return generation_pb2, generation_pb2_grpc


def sse_stream(client, tokens):
    """(arrival time of each token's chunk) for one streamed completion."""
    times = []
    for chunk in client.completions.create(model="m", prompt=PROMPT, max_tokens=tokens, temperature=0, stream=True,
                                           extra_body={"ignore_eos": True}):
        if chunk.choices and chunk.choices[0].text:
            times.append(time.perf_counter())
    return times


def grpc_stream(stub, pb, tokens):
    times = []
    req = pb.GenerateRequest(prompt=PROMPT, sampling=pb.SamplingParams(max_tokens=tokens, temperature=0,
                                                                        ignore_eos=True))
    for m in stub.GenerateStream(req, timeout=600):
        if m.text:
            times.append(time.perf_counter())
    return times


def round_(fn, concurrency):
    results = [None] * concurrency
    start = time.perf_counter()

    def one(i):
        t0 = time.perf_counter()
        results[i] = (t0, fn())
    threads = [threading.Thread(target=one, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ttft, gaps, toks = [], [], 0
    for t0, times in results:
        ttft.append(times[0] - t0)
        gaps += [b - a for a, b in zip(times, times[1:])]
        toks += len(times)
    gaps.sort()
    return {"tok_s": toks / wall, "ttft_ms": 1000 * statistics.median(ttft),
            "gap_ms": 1000 * statistics.median(gaps), "gap_p90_ms": 1000 * gaps[int(0.9 * (len(gaps) - 1))]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("INFERD_BUILD_DIR", "build/release"))
    ap.add_argument("--model", default=os.environ.get("INFERD_MODEL") or
                    os.path.expanduser("~/.cache/inferd/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    pb, pbg = stubs()
    http_port, grpc_port = free_port(), free_port()
    log = tempfile.NamedTemporaryFile(suffix=".log", delete=False)
    server = subprocess.Popen([str(ROOT / args.build / "src" / "cli" / "inferd"), "serve", args.model,
                               "--host", "127.0.0.1", "--port", str(http_port), "--grpc-port", str(grpc_port),
                               "--served-model-name", "m", "--disable-log-stats", "--disable-access-log"],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=2):
                    break
            except Exception:
                time.sleep(0.1)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{http_port}/v1", api_key="x", max_retries=0)
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        stub = pbg.GenerationStub(channel)
        transports = {"sse": lambda: sse_stream(client, args.tokens), "grpc": lambda: grpc_stream(stub, pb, args.tokens)}
        for fn in transports.values():  # warm-up
            fn()
        print(f"{args.tokens} tokens per stream, {args.rounds} rounds, transports alternated; medians over rounds")
        print(f"{'conc':>4} {'transport':>9} {'tok/s':>8} {'TTFT ms':>8} {'gap ms':>7} {'gap p90':>8}")
        for c in [int(x) for x in args.concurrency.split(",")]:
            rows = {name: [] for name in transports}
            for r in range(args.rounds):
                order = list(transports) if r % 2 == 0 else list(reversed(transports))
                for name in order:
                    rows[name].append(round_(transports[name], c))
            med = {name: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for name, rs in rows.items()}
            for name, m in med.items():
                print(f"{c:>4} {name:>9} {m['tok_s']:>8.1f} {m['ttft_ms']:>8.1f} {m['gap_ms']:>7.2f} {m['gap_p90_ms']:>8.2f}")
            print(f"{c:>4} grpc/sse throughput ratio {med['grpc']['tok_s'] / med['sse']['tok_s']:.3f}, "
                  f"median gap ratio {med['grpc']['gap_ms'] / med['sse']['gap_ms']:.3f}")
        channel.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
