#!/usr/bin/env python3
"""A/B of two inferd binaries with `inferd bench latency`, runs interleaved (A B A B ...) so
that machine noise hits both alike; prints the medians of prefill and decode tokens/s and
their ratio B/A. Usage: bench/ab-latency.py A_BIN B_BIN [rounds] [-- bench latency args]"""

import json
import statistics
import subprocess
import sys


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    a, b = argv[0], argv[1]
    rounds = int(argv[2]) if len(argv) > 2 else 5
    runs = {a: [], b: []}
    for _ in range(rounds):
        for binary in (a, b):
            out = subprocess.run([binary, "bench", "latency", "--json", *extra], capture_output=True, text=True,
                                 check=True).stdout.strip().splitlines()[-1]
            runs[binary].append(json.loads(out))
    for key in ("prefill_tokens_per_s", "decode_tokens_per_s"):
        ma = statistics.median(r[key] for r in runs[a])
        mb = statistics.median(r[key] for r in runs[b])
        print(f"{key}: A {ma:.1f}  B {mb:.1f}  B/A {mb / ma:.3f}")


if __name__ == "__main__":
    main()
