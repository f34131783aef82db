#!/usr/bin/env python3
"""Memory under schema churn (issue 18): N requests, each with a JSON schema never seen
before, through the offline API; prints the process RSS as it goes. The grammar cache is
bounded (256 entries / 256 MiB, structured/grammar_cache.h), so RSS must level off.

    python3 bench/structured_churn.py [--schemas 1000]
"""
import argparse
import json
import os
import resource
import time

from inferd import LLM, SamplingParams, StructuredOutputsParams


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--schemas", type=int, default=1000)
    a = ap.parse_args()
    model = os.environ.get("INFERD_MODEL") or os.path.expanduser("~/.cache/inferd/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    llm = LLM(model=model, kv_cache_memory="128MiB", max_model_len=512)
    t0 = time.time()
    for i in range(a.schemas):
        schema = {"type": "object", "properties": {f"field_{i}": {"type": "integer"}, "name": {"type": "string"}},
                  "required": [f"field_{i}"]}
        llm.generate("x", SamplingParams(max_tokens=1, structured_outputs=StructuredOutputsParams(json=schema)),
                     use_tqdm=False)
        if (i + 1) in (1, 100, 250, 500, 750, 1000) or i + 1 == a.schemas:
            print(json.dumps({"schemas": i + 1, "rss_mib": round(rss_mib(), 1), "elapsed_s": round(time.time() - t0, 1)}),
                  flush=True)
    print(json.dumps({"max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


if __name__ == "__main__":
    main()
