"""--kv-cache-dtype int8 | fp8 | fp8_e4m3 | fp8_e5m2 end to end on the embedded model
(docs/quantized-formats.md §5): the engine starts, says what its cache holds, answers, and
`inferd memory` reports the larger capacity."""
import json
import re

import pytest


@pytest.mark.parametrize("dtype,name", [("int8", "int8"), ("fp8", "fp8_e4m3"), ("fp8_e4m3", "fp8_e4m3"),
                                        ("fp8_e5m2", "fp8_e5m2")])
def test_generate_with_quantized_kv_cache(run, model_path, dtype, name):
    proc = run("generate", "--model", model_path, "--kv-cache-dtype", dtype, "--prompt", "The capital of France is",
               "--max-tokens", "8", "--temperature", "0", "--json")
    out = json.loads(proc.stdout.splitlines()[0])
    assert "Paris" in out["outputs"][0]["text"]
    m = re.search(r"KV cache: (\d+) blocks x 16 tokens x 30 layers \([\d.]+ MiB, " + name +
                  r": (\d+) tokens, 1\.94x the tokens of fp16\)", proc.stderr)
    assert m, proc.stderr
    assert int(m.group(2)) == int(m.group(1)) * 16


def test_memory_reports_quantized_capacity(run, model_path):
    def memory(dtype):
        return json.loads(run("memory", "--model", model_path, "--kv-cache-dtype", dtype, "--json").stdout)
    fp16, int8 = memory("float16"), memory("int8")
    assert fp16["kv_cache_dtype"] == "fp16" and int8["kv_cache_dtype"] == "int8"
    # Same bytes; 2 * 30 * 3 * (64 + 2) bytes per token instead of 2 * 30 * 3 * 64 * 2.
    assert abs(int8["kv_cache_bytes"] - fp16["kv_cache_bytes"]) < 16 * 23040
    assert int8["kv_cache_tokens"] == int8["kv_cache_bytes"] // (16 * 11880) * 16
    assert int8["kv_cache_tokens"] / fp16["kv_cache_tokens"] > 1.9


def test_unknown_kv_cache_dtype_is_clear_error(run, model_path):
    proc = run("generate", "--model", model_path, "--kv-cache-dtype", "fp8_inc", "--prompt", "hi", check=False)
    assert proc.returncode == 1
    assert "unknown --kv-cache-dtype 'fp8_inc': use auto, float16, bfloat16, float32, fp8, fp8_e4m3, fp8_e5m2 or int8" \
        in proc.stderr
