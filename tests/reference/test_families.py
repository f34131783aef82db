"""Every model family against llama.cpp on the same tiny random-weight GGUF
(tests/reference/tiny_models.py): teacher-forced logits (top-1 agreement >= 99%, max
|delta logit| recorded) and a greedy continuation, token for token.

Both run fp32 arithmetic on F32 weights with an F32 K/V cache, so they differ only by the
order of float additions; prompts are longer than Gemma 3's test window (8 positions) so
that its local layers see keys drop out.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import REPO_ROOT, llamacpp_greedy
from tiny_models import FAMILIES, HF_ARCH, write_tiny_gguf, write_tiny_hf

PROMPT_LEN = 48
GREEDY = 24
EXACT_KV = ["--kv-cache-dtype", "float32"]

# case -> (tiny model, llama.cpp's n_ctx, inferd's extra flags): one case per model, plus Phi-3
# LongRoPE's short factors. LongRoPE picks its factor set per context: llama.cpp's n_ctx
# (padded to 256) and inferd's maximum model length against the original context 256 -- long
# past it, short up to it. The length is given: `inferd logits` otherwise takes the sequence's.
CASES = {name: (name, 2048, []) for name in FAMILIES}
CASES["phi3_longrope"] = ("phi3_longrope", 2048, ["--max-model-len", "2048"])
CASES["phi3_longrope_short"] = ("phi3_longrope", 256, ["--max-model-len", "256"])


@pytest.fixture(scope="module")
def tiny_model(gguf_module, model_path):
    made = {}

    def get(family):
        if family not in made:
            out = REPO_ROOT / "build" / "reference" / "tiny"
            out.mkdir(parents=True, exist_ok=True)
            made[family] = write_tiny_gguf(gguf_module, family, out / f"{family}.gguf", model_path)
        return made[family]

    return get


def _ids(n, seed):
    rng = np.random.default_rng(seed)
    return [int(x) for x in rng.integers(100, 40000, size=n)]


def _llamacpp_logits(llm, ids):
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float64, copy=True)


@pytest.mark.parametrize("case", list(CASES))
def test_family_matches_llamacpp(case, tiny_model, llama_models, run_inferd_json, tmp_path, reference_report):
    family, n_ctx, opts = CASES[case]
    path = tiny_model(family)
    llm = llama_models(path, "f32", n_ctx)
    ids = _ids(PROMPT_LEN, 7)
    ref = _llamacpp_logits(llm, ids)
    (tmp_path / "ids.json").write_text(str(ids))
    npy = tmp_path / "logits.npy"
    run_inferd_json(["logits", "--model", path, "--token-ids-file", tmp_path / "ids.json", "--npy", npy, "--json",
                     *EXACT_KV, *opts])
    ours = np.load(npy).astype(np.float64)
    assert ours.shape == ref.shape
    # The references must themselves be informative: logits vary and have clear winners.
    assert ref.std() > 0.5, ref.std()
    agree = (ours.argmax(axis=1) == ref.argmax(axis=1)).mean()
    diff = np.abs(ours - ref)
    greedy_ref = llamacpp_greedy(llm, ids[:16], GREEDY)[0]
    (tmp_path / "prompt.jsonl").write_text(json.dumps({"prompt_token_ids": ids[:16]}) + "\n")
    out = run_inferd_json(["generate", "--model", path, "--input", tmp_path / "prompt.jsonl", "--max-tokens",
                           str(GREEDY), "--temperature", "0", "--ignore-eos", "--json", *EXACT_KV, *opts])
    greedy_ours = out["outputs"][0]["token_ids"]
    reference_report.record(f"family_{case}", positions=len(ids), top1_agreement=float(agree),
                            max_abs_logit_diff=float(diff.max()), logit_std=float(ref.std()),
                            greedy_identical=greedy_ours == greedy_ref)
    assert agree >= 0.99, (agree, diff.max())
    assert diff.max() < 1e-2 * max(1.0, np.abs(ref).max()), diff.max()
    assert greedy_ours == greedy_ref


def test_longrope_factor_sets_matter(tiny_model, llama_models, reference_report):
    """The phi3_longrope cases are informative: llama.cpp's own logits with the long factors
    (n_ctx 2048) and with the short ones (n_ctx 256) differ far beyond the tolerance above."""
    path = tiny_model("phi3_longrope")
    ids = _ids(PROMPT_LEN, 7)
    long_ref = _llamacpp_logits(llama_models(path, "f32", 2048), ids)
    short_ref = _llamacpp_logits(llama_models(path, "f32", 256), ids)
    delta = float(np.abs(long_ref - short_ref).max())
    reference_report.record("phi3_longrope_long_vs_short_llamacpp", max_abs_logit_diff=delta,
                            top1_agreement=float((long_ref.argmax(axis=1) == short_ref.argmax(axis=1)).mean()))
    assert delta > 0.1 * max(1.0, np.abs(long_ref).max())


@pytest.mark.parametrize("case", sorted(c for c, (family, _, _) in CASES.items() if family in HF_ARCH))
def test_family_hf_directory_equals_its_gguf(case, tiny_model, gguf_module, run_inferd_json, tmp_path,
                                            reference_report):
    """The same weights as a HF directory (config.json in transformers' keys, HF tensor names,
    fused qkv_proj / gate_up_proj for phi3, Gemma's w - 1 norms, InternLM2's grouped wqkv,
    LongRoPE's factors in rope_scaling) give inferd the logits the GGUF gives (which match
    llama.cpp's above): the HF config and name tables are right."""
    family, _, opts = CASES[case]
    path = tiny_model(family)
    hf_dir = write_tiny_hf(gguf_module, family, path, tmp_path / "hf")
    ids = _ids(PROMPT_LEN, 11)
    (tmp_path / "ids.json").write_text(str(ids))
    got = {}
    for name, model in (("gguf", path), ("hf", hf_dir)):
        npy = tmp_path / f"{name}.npy"
        run_inferd_json(["logits", "--model", model, "--tokenizer", path, "--token-ids-file", tmp_path / "ids.json",
                         "--npy", npy, "--json", *EXACT_KV, *opts])
        got[name] = np.load(npy).astype(np.float64)
    diff = np.abs(got["hf"] - got["gguf"]).max()
    reference_report.record(f"family_{case}_hf_vs_gguf", max_abs_logit_diff=float(diff))
    assert diff < 1e-3, diff  # Gemma's 1 + (w - 1) rounds; everything else is the same floats


def test_windowed_layers_free_their_blocks(tiny_model, llama_models, run_inferd, tmp_path, reference_report):
    """Gemma 3's local layers keep only the KV blocks inside their window (KV-cache groups,
    kv/kv_layout.h): with a cache far too small for full attention everywhere, a long greedy
    continuation still runs, token for token as llama.cpp's (which keeps every position)."""
    path = tiny_model("gemma3")
    ids = _ids(16, 5)
    n = 100
    llm = llama_models(path, "f32")
    greedy_ref = llamacpp_greedy(llm, ids, n)[0]
    (tmp_path / "prompt.jsonl").write_text(json.dumps({"prompt_token_ids": ids}) + "\n")
    # Blocks of 4 tokens; 6 layers of K+V at 64 floats: 2 KiB a block; 80 blocks. A request of
    # 128 tokens holds 32 blocks for the global layer and 7 for each local one (window 8 plus
    # a chunk of 16): 67 blocks; with every layer global it would take 6 x 32 = 192 > 79.
    p = run_inferd(["generate", "--model", path, "--input", tmp_path / "prompt.jsonl", "--max-tokens", str(n),
                    "--temperature", "0", "--ignore-eos", "--json", *EXACT_KV, "--block-size", "4",
                    "--kv-cache-memory", "160KiB", "--max-model-len", "128", "--max-num-batched-tokens", "16"])
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    log = p.stderr
    assert "KV cache: 79 blocks x 4 tokens x 1 layers" in log, log  # block 0: the null block
    assert "a request of 128 tokens holds 67 blocks (192 with full attention everywhere)" in log, log
    greedy_ours = out["outputs"][0]["token_ids"]
    reference_report.record("windowed_kv_gemma3_greedy100", identical=greedy_ours == greedy_ref)
    assert greedy_ours == greedy_ref


def test_windowed_prefix_cache_hit(tiny_model, llama_models, run_inferd, tmp_path):
    """A prefix-cache hit on a model with windowed layers adopts every cached block of the
    global layer but only the window's blocks of the local ones (the rest stay null): the
    second of two identical prompts, run after the first (--max-num-seqs 1), hits 36 of its 40
    tokens and both continue as llama.cpp does."""
    path = tiny_model("gemma3")
    ids = _ids(40, 9)
    llm = llama_models(path, "f32")
    greedy_ref = llamacpp_greedy(llm, ids, 16)[0]
    line = json.dumps({"prompt_token_ids": ids}) + "\n"
    (tmp_path / "prompts.jsonl").write_text(line + line)
    p = run_inferd(["generate", "--model", path, "--input", tmp_path / "prompts.jsonl", "--max-tokens", "16",
                    "--temperature", "0", "--ignore-eos", "--json", *EXACT_KV, "--block-size", "4",
                    "--max-num-seqs", "1"])
    outs = [json.loads(x) for x in p.stdout.strip().splitlines()]
    assert [o["num_cached_tokens"] for o in outs] == [0, 36]
    for o in outs:
        assert o["outputs"][0]["token_ids"] == greedy_ref
