"""Files that llama.cpp's own llama-quantize writes in the weight types of issue 17 (Q2_K,
Q3_K, IQ4_NL, IQ4_XS, and of the reference-only types TQ1_0, TQ2_0, IQ3_S, MXFP4) load and
run: inferd's teacher-forced logits vs llama.cpp's on the same file.

The embedded model (Q4_1) is requantized (--allow-requantize) into a temporary directory.
Its 576-wide rows are not a multiple of 256, so llama-quantize falls back for every matrix
but ffn_down (1536 wide; llama-quant.cpp tensor_type_fallback: Q2_K/Q3_K -> Q4_0,
IQ4_XS -> IQ4_NL), and its mixtures choose other K-types for ffn_down. What each file holds
(llama.cpp of llama-cpp-python 0.3.36; each case asserts the types it is there for):

  Q2_K          ffn_down Q3_K; other matrices Q4_0; token_embd Q8_0 (no Q2_K tensor at all)
  Q2_K --pure   ffn_down Q2_K; every other matrix, token_embd included, Q4_0
  Q3_K_M        ffn_down Q4_K / Q5_K; attn_v, attn_output Q5_0 / Q5_1; the rest Q4_0;
                token_embd Q8_0 (no Q3_K tensor: a mixture of the older types)
  IQ4_NL        IQ4_NL, but ffn_down Q5_K in 3 layers; token_embd Q8_0
  IQ4_XS        ffn_down IQ4_XS (Q5_K in 3 layers); other matrices IQ4_NL; token_embd Q8_0
  TQ1_0, TQ2_0  ffn_down TQ1_0 / TQ2_0; other matrices Q4_0; token_embd Q8_0 (strict
                comparison only: see STRICT_ONLY)
  IQ3_S         ffn_down IQ3_S; other matrices IQ4_NL; token_embd Q8_0
  Q8_0 with --tensor-type ffn_down=mxfp4, attn_q=mxfp4: those MXFP4, the rest Q8_0
  BF16          every matrix BF16 (inferd's BF16 kernels round the activations to bf16
                and add pairs as vdpbf16ps does; llama.cpp's rounds them too)
The other reference-only types cannot be made here: IQ2_*, IQ1_* (and IQ3_XXS --pure) need an
importance matrix, and IQ3_XXS's mixture writes Q3_K for ffn_down, IQ4_NL elsewhere.

Two comparisons per file, with the tolerances test_llamacpp_logits.py uses for a quantized
model:

* Strict: llama.cpp on an F32 copy of the file (conftest.write_f32_copy: every tensor
  dequantized by gguf-py, which inferd's reference dequantization matches bit for bit,
  tests/reference/test_dequant.py), F32 K/V: arithmetic that is not lossy, against inferd on
  the quantized file itself with fp32 matmuls and an fp32 K/V cache. Top-1 >= 99%.
* As run: both engines by default on the quantized file. llama.cpp's matmuls on these
  types quantize the activations (Q8_K / Q8_0) and its K/V cache is f16, so its logits carry
  noise of their own: on these files its f16-K/V run agrees with its own f32-K/V run at
  top-1 on only 93-97% of the positions, so a fixed 98% between the two engines measures
  that noise, not inferd (their agreement is recorded). The bar is the one
  test_inferd_int8_as_close_as_llamacpp sets: inferd's default run (its CPU kernels, f16
  K/V) must be no further from the exact logits above than llama.cpp's default run is (top-1
  within 1 point, mean |diff| within 10%).

Needs llama-quantize: LLAMACPP_QUANTIZE, exported by `scripts/llamacpp.sh --with-bench`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from conftest import write_f32_copy
from test_llamacpp_logits import (EXACT_KV, FP32_MATMUL, MIN_TOP1_AGREEMENT, NOISE_FLOOR_SLACK, _compare_teacher,
                                  _inferd_teacher_logits, _llamacpp_teacher_logits, _token_ids)

# case -> (llama-quantize arguments before the paths, type, GGML types the file must hold)
CASES = {
    "q2_k": ([], "Q2_K", {"Q3_K"}),
    "q2_k_pure": (["--pure"], "Q2_K", {"Q2_K"}),
    "q3_k_m": ([], "Q3_K_M", set()),
    "iq4_nl": ([], "IQ4_NL", {"IQ4_NL"}),
    "iq4_xs": ([], "IQ4_XS", {"IQ4_XS", "IQ4_NL"}),
    "tq1_0": ([], "TQ1_0", {"TQ1_0"}),
    "tq2_0": ([], "TQ2_0", {"TQ2_0"}),
    "iq3_s": ([], "IQ3_S", {"IQ3_S"}),
    "mxfp4": (["--tensor-type", "ffn_down=mxfp4", "--tensor-type", "attn_q=mxfp4"], "Q8_0", {"MXFP4"}),
    "bf16": ([], "BF16", {"BF16"}),
}
# Ternary weights are for models trained ternary (BitNet): on this model they destroy the output
# (llama.cpp predicts 0.75% of the text; its default run and the exact one agree at top-1 on 14%
# of the positions), so only the strict comparison is informative there.
STRICT_ONLY = {"tq1_0", "tq2_0"}


@pytest.fixture(scope="module")
def quantize_bin(llamacpp) -> Path:
    q = llamacpp.env.get("LLAMACPP_QUANTIZE")
    if not q:
        pytest.skip("LLAMACPP_QUANTIZE is not set: llama-quantize is built by "
                    "`scripts/llamacpp.sh --with-bench` (eval its output)")
    if not os.access(q, os.X_OK):
        pytest.skip(f"LLAMACPP_QUANTIZE={q} is not an executable "
                    "(run scripts/llamacpp.sh --with-bench)")
    return Path(q)


@pytest.fixture(scope="module")
def teacher_ids(llama_vocab):
    return _token_ids(llama_vocab)


@pytest.fixture(scope="module")
def quantized(quantize_bin, llamacpp, model_path, tmp_path_factory):
    """quantized(case) -> path of the model requantized by llama-quantize (memoized)."""
    out_dir = tmp_path_factory.mktemp("quant_types")
    threads = str(min(os.cpu_count() or 2, 8))
    made = {}

    def get(case):
        if case not in made:
            opts, qtype, _ = CASES[case]
            dst = out_dir / f"{case}.gguf"
            r = llamacpp.run([quantize_bin, "--allow-requantize", *opts, model_path, dst, qtype, threads])
            assert r.returncode == 0, f"llama-quantize {qtype} failed:\n{r.stderr[-3000:]}"
            made[case] = dst
        return made[case]

    return get


@pytest.mark.parametrize("case", list(CASES))
def test_quantized_file_matches_llamacpp(case, quantized, gguf_module, llama_models, run_inferd_json,
                                         teacher_ids, tmp_path, reference_report):
    path = quantized(case)
    types = sorted({t.tensor_type.name for t in gguf_module.GGUFReader(str(path)).tensors})
    must_hold = CASES[case][2]
    assert must_hold <= set(types), f"{case}: llama-quantize wrote {types}, expected {sorted(must_hold)} among them"
    n = len(teacher_ids)

    # Strict: llama.cpp's lossless F32 arithmetic on the exact weights vs inferd's exact mode.
    f32_copy = tmp_path / f"{case}.f32.gguf"
    write_f32_copy(gguf_module, path, f32_copy)
    try:
        ref_exact = _llamacpp_teacher_logits(llama_models(f32_copy, "f32"), teacher_ids)
    finally:
        llama_models.release(f32_copy)
        f32_copy.unlink()
    (tmp_path / "fp32").mkdir()
    ours_exact = _inferd_teacher_logits(run_inferd_json, path, teacher_ids, tmp_path / "fp32",
                                        env=FP32_MATMUL, extra=EXACT_KV)
    strict, strict_agree = _compare_teacher(*ours_exact, ref_exact, n)
    reference_report.record(f"quant_types_{case}_f32copy", **strict, tensor_types=",".join(types))
    rate = strict["top1_agreement"]
    assert rate >= MIN_TOP1_AGREEMENT, (
        f"{case} ({','.join(types)}), F32 copy vs inferd fp32: top-1 agreement {rate:.2%} < "
        f"{MIN_TOP1_AGREEMENT:.0%} over {n} positions; first disagreements at "
        f"{np.nonzero(~strict_agree)[0][:10].tolist()}")
    if case in STRICT_ONLY:
        return

    # As run: both engines' defaults on the quantized file, each against the exact logits.
    try:
        ref = _llamacpp_teacher_logits(llama_models(path, "f16"), teacher_ids)
    finally:
        llama_models.release(path)
    (tmp_path / "default").mkdir()
    ours_argmax, ours = _inferd_teacher_logits(run_inferd_json, path, teacher_ids, tmp_path / "default")
    figures, _ = _compare_teacher(ours_argmax, ours, ref, n)
    acc = float((ref[:-1].argmax(1) == np.asarray(teacher_ids[1:])).mean())
    exact_top1 = ref_exact.argmax(1)
    ours_top1, ref_top1 = float((ours_argmax == exact_top1).mean()), float((ref.argmax(1) == exact_top1).mean())
    ours_mean = float(np.abs(ours.astype(np.float64) - ref_exact).mean())
    ref_mean = float(np.abs(ref.astype(np.float64) - ref_exact).mean())
    reference_report.record(f"quant_types_{case}", **figures, inferd_vs_exact_top1=ours_top1,
                            llamacpp_vs_exact_top1=ref_top1, inferd_vs_exact_mean_abs=ours_mean,
                            llamacpp_vs_exact_mean_abs=ref_mean, llamacpp_next_token_accuracy=acc,
                            tensor_types=",".join(types))

    # Sanity of the reference itself (Q2_K --pure, the lossiest file, predicts ~27% of the text).
    assert np.isfinite(ref).all() and acc > 0.2, f"{case}: llama.cpp predicts the text badly ({acc:.2%})"
    assert ours_top1 >= ref_top1 - NOISE_FLOOR_SLACK, (
        f"{case} ({','.join(types)}): by default inferd agrees with the exact logits at top-1 on "
        f"{ours_top1:.2%} of the positions, llama.cpp on {ref_top1:.2%}")
    assert ours_mean <= ref_mean * 1.1, (
        f"{case}: mean |logit - exact| inferd {ours_mean:.4f}, llama.cpp {ref_mean:.4f}")


def test_reference_only_type_warns_once(quantized, run_inferd, tmp_path):
    """A type that only the scalar reference dequantizes (format/ggml_types.h
    GgmlTypeIsReferenceOnly) is named by one warning line at load, however many tensors
    have it (60 here: ffn_down and attn_q of 30 layers); Q8_0 by none."""
    path = quantized("mxfp4")
    (tmp_path / "ids.json").write_text("[1, 504, 3000, 42]")
    r = run_inferd(["logits", "--model", path, "--token-ids-file", tmp_path / "ids.json", "--json"])
    lines = [ln for ln in r.stderr.splitlines() if "has no fast CPU kernel" in ln]
    assert len(lines) == 1 and "tensor type mxfp4 " in lines[0], r.stderr[-3000:]
