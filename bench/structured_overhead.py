#!/usr/bin/env python3
"""Decode throughput with and without a JSON-schema constraint (issue 18's overhead figure),
through the offline API on the embedded model: a batch of N prompts, alternated runs, median
tokens/s of each. Also the time of a first request with a new schema (compile + generate)
versus a cached one.

    python3 bench/structured_overhead.py [--batch 32] [--max-tokens 64] [--reps 3]
"""
import argparse
import json
import os
import statistics
import time

from inferd import LLM, SamplingParams, StructuredOutputsParams

SCHEMA = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 40},
    "age": {"type": "integer", "minimum": 0, "maximum": 120},
    "email": {"type": "string", "maxLength": 60},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 5},
    "address": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                                                 "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                "required": ["city", "zip"]}},
    "required": ["name", "age", "email", "tags", "address"]}


def run(llm, prompts, params):
    t = time.perf_counter()
    outs = llm.generate(prompts, params)
    dt = time.perf_counter() - t
    toks = sum(len(o.outputs[0].token_ids) for o in outs)
    return toks / dt, toks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    model = os.environ.get("INFERD_MODEL") or os.path.expanduser("~/.cache/inferd/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    llm = LLM(model=model, kv_cache_memory="512MiB", max_model_len=1024)
    prompts = [f"Person record number {i} as JSON:" for i in range(a.batch)]
    # ignore_eos keeps every output at max_tokens when unconstrained; the constrained ones stop
    # when their document is complete, so the comparison is tokens per second.
    free = SamplingParams(max_tokens=a.max_tokens, temperature=0.8, seed=1, ignore_eos=True)
    so = StructuredOutputsParams(json=SCHEMA, disable_any_whitespace=True)
    con = SamplingParams(max_tokens=a.max_tokens, temperature=0.8, seed=1, structured_outputs=so)
    run(llm, prompts[:2], con)  # compile once, warm up
    rates = {"free": [], "json": []}
    for _ in range(a.reps):
        rates["free"].append(run(llm, prompts, free)[0])
        rates["json"].append(run(llm, prompts, con)[0])
    f, j = statistics.median(rates["free"]), statistics.median(rates["json"])
    print(json.dumps({"batch": a.batch, "max_tokens": a.max_tokens, "free_tok_s": round(f, 1),
                      "json_tok_s": round(j, 1), "ratio": round(j / f, 3), "runs": rates}))
    # A new schema: compile + generate, against the same request once cached.
    new = dict(SCHEMA, properties=dict(SCHEMA["properties"], extra={"type": "boolean"}))
    p = SamplingParams(max_tokens=8, temperature=0, structured_outputs=StructuredOutputsParams(json=new))
    t = time.perf_counter(); llm.generate(prompts[0], p); first = time.perf_counter() - t
    t = time.perf_counter(); llm.generate(prompts[0], p); again = time.perf_counter() - t
    print(json.dumps({"new_schema_request_s": round(first, 3), "cached_schema_request_s": round(again, 3)}))


if __name__ == "__main__":
    main()
