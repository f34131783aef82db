"""inferd --quantization int8 | int4 (weight-only, at load) on an F16 Hugging Face export of
the embedded model."""
import json
import re

import pytest

QUESTION = "What is the capital of France? Answer in one word."


@pytest.fixture(scope="module")
def f16_dir(run, model_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("quant") / "hf-f16"
    run("export-hf", model_path, out, "--dtype", "float16")
    return out


def test_generate_int8_prints_text(run, f16_dir):
    proc = run("generate", "--model", f16_dir, "--quantization", "int8", "--chat", "--prompt", QUESTION,
               "--max-tokens", "40", "--temperature", "0")
    assert "Paris" in proc.stdout
    assert "finish_reason=stop" in proc.stdout
    assert "quantization int8: 210 layer matrices f16 -> q8_0" in proc.stderr
    assert "token embedding and LM head left unquantized" in proc.stderr


def test_generate_int4_json(run, f16_dir):
    proc = run("generate", "--model", f16_dir, "-q", "int4", "--prompt", "The capital of France is",
               "--max-tokens", "8", "--temperature", "0", "--json")
    out = json.loads(proc.stdout)
    assert out["finished"] is True
    assert len(out["outputs"][0]["token_ids"]) == 8
    assert out["outputs"][0]["text"].strip()
    assert "f16 -> q4_K_M (q4_K x16, q5_0 x166, q6_K x14, q8_0 x14)" in proc.stderr


def test_quantization_errors(run, model_path, f16_dir):
    proc = run("generate", "--model", f16_dir, "--quantization", "fp3", "--prompt", "hi", check=False)
    assert proc.returncode == 1
    assert "error: unknown --quantization 'fp3': use int8 (q8_0) or int4 (llama.cpp's q4_K_M recipe), weight-only, or none" in proc.stderr
    # The embedded model is Q4_1 already.
    proc = run("generate", "--model", model_path, "--quantization", "int8", "--prompt", "hi", check=False)
    assert proc.returncode == 1
    assert ("--quantization int8 re-quantizes fp16/bf16/fp32 weights; this model's weights are already q4_1"
            in proc.stderr)


def test_memory_counts_the_repacked_weights(run, model_path):
    """The CPU kernels' repacked copies sit beside the file's mapping: `inferd memory` counts
    them in their own line and in the total; with the repacking off (the fp32 row path) the
    line is gone and the bytes are 0."""
    packed = run("memory", "--model", model_path, "--json")
    m = json.loads(packed.stdout)
    # Q4_1 / Q8_0 repack at their file size (16-row groups, same bytes per block).
    assert 0.5 * m["weights_bytes"] < m["packed_weights_bytes"] < 1.2 * m["weights_bytes"], m
    text = run("memory", "--model", model_path).stdout
    line = re.search(r"weights repacked for kernels +([\d.]+) MiB", text)
    assert line, text
    assert abs(float(line.group(1)) - m["packed_weights_bytes"] / 2**20) < 0.1
    used = re.search(r"([\d.]+) GiB in use", text)
    parts = m["weights_bytes"] + m["packed_weights_bytes"] + m["kv_cache_bytes"] + m["activations_bytes"]
    assert abs(float(used.group(1)) - parts / 2**30) < 0.01, text
    rows = json.loads(run("memory", "--model", model_path, "--json", env={"INFERD_CPU_MATMUL": "fp32"}).stdout)
    assert rows["packed_weights_bytes"] == 0
    assert "repacked" not in run("memory", "--model", model_path, env={"INFERD_CPU_MATMUL": "fp32"}).stdout
