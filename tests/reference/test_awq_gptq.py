"""AWQ and GPTQ Hugging Face checkpoints (issue 17): inferd loads their int4 layers into its
I4Z128 rows and int4 kernels; transformers runs the same weights dequantized to float32.

The checkpoints come from make_quantized_hf.py (AutoAWQ's quantization formula, AutoAWQ's
and AutoGPTQ's packing loops; group 128 and -1; GPTQ v1 and v2; the config in config.json,
quant_config.json or quantize_config.json). Checked:
- a numpy unpacker written from vLLM's shifts (awq_triton.py's reverse AWQ order, gptq.py's
  4j shifts and v1's "+ 1"), not from the packer, recovers the codes, zeros and scales, and
  their dequantization is the fp32 copy's weights;
- inferd's logits on each quantized directory against transformers on its fp32 copy, top-1
  identical at every position: with INFERD_CPU_MATMUL=fp32 (the loaded weights through the
  reference DequantizeRow and fp32 matmuls) against plain transformers, within TOLERANCE as
  test_transformers.py; with the int4 kernels against transformers whose quantized Linear
  layers see their input quantized as inferd's kernels quantize activations (per token and
  32 elements: d = amax / 127, q = round-half-even(x / d); forward pre-hooks), within
  KERNEL_TOLERANCE (activation codes that round the other way: fp32 sums in another order).
  Their distance to plain fp32 is the activation quantization's, recorded with
  reference_report beside that of --quantization int8 (Q8_0 weights, the same int8
  activations) on the fp32 copy;
- --quantization awq|gptq must match the checkpoint (vLLM's rule), -q int4 on it is an
  error, and desc_act, g_idx out of order, AWQ version gemv, 8-bit, group size 64,
  zero_point false and wrong tensor shapes are refused with messages naming them.

Environment: INFERD_BUILD_DIR (e.g. build/awq) locates the CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from conftest import missing

try:
    import torch
    import transformers
    from safetensors.numpy import load_file, save_file
except ImportError:
    torch = transformers = None

import make_quantized_hf as mq

PROMPT_LEN = 40
TOLERANCE = 1e-3         # fp32 path: max |delta logit| / max(1, max |logit|), as test_transformers.py
KERNEL_TOLERANCE = 1e-2  # int4 kernels vs transformers with inferd's int8 activations emulated
INFERD_OPTS = ["--kv-cache-dtype", "float32", "--kv-cache-memory", "16MiB"]
VARIANTS = list(mq.VARIANTS)

# vLLM's unpacking: awq_triton.py AWQ_REVERSE_ORDER [0, 4, 1, 5, 2, 6, 3, 7] (shifts x 4) for
# output column 8c + j; gptq.py shifts 4j for input 8i + j (qweight) and output 8c + j (qzeros).
AWQ_SHIFTS = np.array([0, 4, 1, 5, 2, 6, 3, 7], dtype=np.uint32) * 4
GPTQ_SHIFTS = np.arange(8, dtype=np.uint32) * 4


def unpack_awq(t: dict):
    qw, qz = t["qweight"].view(np.uint32), t["qzeros"].view(np.uint32)
    q = (qw[:, :, None] >> AWQ_SHIFTS) & 15                  # [in, out/8, 8]
    z = (qz[:, :, None] >> AWQ_SHIFTS) & 15
    return q.reshape(qw.shape[0], -1).T.astype(np.int64), z.reshape(qz.shape[0], -1).astype(np.int64), t["scales"]


def unpack_gptq(t: dict, v2: bool):
    qw, qz = t["qweight"].view(np.uint32), t["qzeros"].view(np.uint32)
    q = (qw[:, None, :] >> GPTQ_SHIFTS[None, :, None]) & 15  # [in/8, 8, out]
    z = (qz[:, :, None] >> GPTQ_SHIFTS) & 15
    z = z.reshape(qz.shape[0], -1).astype(np.int64) + (0 if v2 else 1)
    return q.reshape(-1, qw.shape[1]).T.astype(np.int64), z, t["scales"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, inferd_bin):
    if torch is None:
        missing("torch / transformers / safetensors not importable (run scripts/install-deps.sh)")
    torch.set_num_threads(1)
    return mq.make(tmp_path_factory.mktemp("awq_gptq"))


@pytest.fixture(scope="module")
def ids():
    rng = np.random.default_rng(7)
    return [int(x) for x in rng.integers(1, mq.VOCAB, size=PROMPT_LEN)]


def _quantize_acts(x):
    """x with inferd's int8 activation quantization applied (qgemm.h): per token and block of
    32, d = amax / 127, q = nearbyint(x / d) (ties to even, as torch.round), x' = q d."""
    xb = x.reshape(-1, 32)
    d = xb.abs().amax(dim=1, keepdim=True) / 127
    inv = torch.where(d > 0, 1 / d, torch.zeros_like(d))
    return (torch.round(xb * inv) * d).reshape(x.shape)


def _reference_logits(ref_dir, ids, quantized_modules=()):
    """transformers' logits on the fp32 copy; with quantized_modules, those Linear layers see
    their input through _quantize_acts."""
    model = transformers.AutoModelForCausalLM.from_pretrained(ref_dir, attn_implementation="eager",
                                                              dtype=torch.float32).eval()
    for name, module in model.named_modules():
        if name in quantized_modules:
            module.register_forward_pre_hook(lambda _, inputs: (_quantize_acts(inputs[0]),))
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].double().numpy()


def _inferd(inferd_bin, args, env=None):
    return subprocess.run([str(inferd_bin)] + [str(a) for a in args], capture_output=True, text=True, timeout=600,
                          check=False, env={**os.environ, **(env or {})})


def _logits(inferd_bin, model_dir, ids, tmp_path, extra=(), env=None):
    (tmp_path / "ids.json").write_text(json.dumps(ids))
    npy = tmp_path / "logits.npy"
    npy.unlink(missing_ok=True)
    r = _inferd(inferd_bin, ["logits", "--model", model_dir, "--token-ids-file", tmp_path / "ids.json", "--npy", npy,
                             "--json", *INFERD_OPTS, *extra], env)
    assert r.returncode == 0, r.stderr[-3000:]
    return np.load(npy).astype(np.float64), r.stderr


def _error(inferd_bin, model_dir, tmp_path, extra=()):
    (tmp_path / "ids.json").write_text(json.dumps([1, 2, 3]))
    r = _inferd(inferd_bin, ["logits", "--model", model_dir, "--token-ids-file", tmp_path / "ids.json", "--npy",
                             tmp_path / "x.npy", *INFERD_OPTS, *extra])
    assert r.returncode != 0, f"expected an error, got exit 0:\n{r.stderr[-2000:]}"
    return r.stderr


@pytest.mark.parametrize("variant", VARIANTS)
def test_vllm_unpacker_recovers_codes(checkpoints, variant):
    c = checkpoints[variant]
    stored = load_file(str(c["dir"] / "model.safetensors"))
    ref = load_file(str(c["ref_dir"] / "model.safetensors"))
    assert c["codes"], variant
    for module, (q, z, s) in c["codes"].items():
        t = {k: stored[f"{module}.{k}"] for k in ("qweight", "qzeros", "scales")}
        uq, uz, us = unpack_awq(t) if c["method"] == "awq" else unpack_gptq(t, c["v2"])
        np.testing.assert_array_equal(uq, q, err_msg=module)
        np.testing.assert_array_equal(uz, z, err_msg=module)
        np.testing.assert_array_equal(us, s, err_msg=module)
        if c["method"] == "gptq":
            g = q.shape[1] if c["group"] == -1 else c["group"]
            np.testing.assert_array_equal(stored[f"{module}.g_idx"], np.arange(q.shape[1]) // g)
        np.testing.assert_array_equal(mq.dequantize(uq, uz, us, c["group"]), ref[f"{module}.weight"], err_msg=module)
    if c["method"] == "awq":  # modules_to_not_convert: stored as fp16, as in the fp32 copy
        w = stored[f"{mq.SKIPPED_MODULE}.weight"]
        assert w.dtype == np.float16
        np.testing.assert_array_equal(w.astype(np.float32), ref[f"{mq.SKIPPED_MODULE}.weight"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_logits_match_transformers(checkpoints, variant, ids, inferd_bin, tmp_path, reference_report):
    c = checkpoints[variant]
    ref = _reference_logits(c["ref_dir"], ids)
    emulated = _reference_logits(c["ref_dir"], ids, quantized_modules=set(c["codes"]))
    scale = max(1.0, float(np.abs(ref).max()))
    assert ref.std() > 0.5, ref.std()
    # The loaded weights, exactly: the reference DequantizeRow and fp32 matmuls.
    fp32, _ = _logits(inferd_bin, c["dir"], ids, tmp_path, env={"INFERD_CPU_MATMUL": "fp32"})
    # The int4 kernels: I4Z128 packed rows x int8 activations per 32.
    ours, log = _logits(inferd_bin, c["dir"], ids, tmp_path)
    # The existing int8 path on the same model, for scale: Q8_0 weights, the same activations.
    q8, _ = _logits(inferd_bin, c["ref_dir"], ids, tmp_path, extra=["--quantization", "int8"])
    assert ours.shape == ref.shape
    d_fp32, d_kernels = float(np.abs(fp32 - ref).max()), float(np.abs(ours - emulated).max())
    top1 = ref.argmax(axis=1)
    reference_report.record(
        f"awq_gptq_{variant}", positions=len(ids), max_abs_logit=scale, fp32_path_max_abs_diff=d_fp32,
        int4_kernels_vs_emulated_max_abs_diff=d_kernels, int4_kernels_vs_fp32_max_abs_diff=float(np.abs(ours - ref).max()),
        int4_kernels_top1_vs_fp32=float((ours.argmax(axis=1) == top1).mean()),
        q8_0_vs_fp32_max_abs_diff=float(np.abs(q8 - ref).max()), q8_0_top1_vs_fp32=float((q8.argmax(axis=1) == top1).mean()))
    assert f"{c['method']} 4-bit" in log and "i4z128" in log, log[-2000:]  # the model line names both
    assert d_fp32 <= TOLERANCE * scale, (d_fp32, scale)
    assert np.array_equal(fp32.argmax(axis=1), top1)
    assert d_kernels <= KERNEL_TOLERANCE * scale, (d_kernels, scale)
    assert np.array_equal(ours.argmax(axis=1), emulated.argmax(axis=1))


def test_quantization_argument(checkpoints, inferd_bin, tmp_path, ids):
    awq = checkpoints["awq-g128"]
    gptq = checkpoints["gptq-v2-gall"]
    # Matching names load (config.json and quantize_config.json without quant_method).
    _logits(inferd_bin, awq["dir"], ids[:4], tmp_path, extra=["--quantization", "awq"])
    _logits(inferd_bin, gptq["dir"], ids[:4], tmp_path, extra=["-q", "gptq"])
    err = _error(inferd_bin, awq["dir"], tmp_path, ["--quantization", "gptq"])
    assert ("quantization method specified in the model config (awq, config.json 'quantization_config') does not "
            "match the one specified with --quantization (gptq)") in err, err
    err = _error(inferd_bin, gptq["dir"], tmp_path, ["-q", "int4"])
    assert ("--quantization int4 quantizes fp16/bf16/fp32 weights at load, but "
            f"'{gptq['dir']}' is already quantized (gptq 4-bit, one group per row, gptq_v2, from "
            "quantize_config.json)") in err, err
    err = _error(inferd_bin, awq["ref_dir"], tmp_path, ["--quantization", "awq"])
    assert f"--quantization awq: '{awq['ref_dir']}' is not a pre-quantized checkpoint" in err, err


def _copy(c, tmp_path, name):
    d = tmp_path / name
    shutil.copytree(c["dir"], d)
    return d


def _edit_config(d, where, **changes):
    p = d / where
    j = json.loads(p.read_text())
    (j["quantization_config"] if where == "config.json" else j).update(changes)
    p.write_text(json.dumps(j))


def _edit_tensors(d, fn):
    t = load_file(str(d / "model.safetensors"))
    fn(t)
    save_file(t, str(d / "model.safetensors"), metadata={"format": "pt"})


REFUSED = {
    "desc_act": ("gptq-g128", dict(desc_act=True), None,
                 "GPTQ with 'desc_act': true (act-order: g_idx sends the inputs to groups out of order) is not "
                 "supported"),
    "gemv": ("awq-g128", dict(version="gemv"), None, "AWQ 'version': 'gemv' is not supported"),
    "gemv_quant_config": ("awq-gall", dict(version="GEMV"), None,
                          "quant_config.json: AWQ 'version': 'GEMV' is not supported"),
    "8bit": ("gptq-g128", dict(bits=8), None, "GPTQ with 8-bit weights ('bits': 8) is not supported"),
    "3bit_awq": ("awq-gall", dict(w_bit=3), None, "AWQ with 3-bit weights ('w_bit': 3) is not supported"),
    "group64": ("gptq-g128", dict(group_size=64), None, "'group_size': 64 is not supported"),
    "no_zero_point": ("awq-g128", dict(zero_point=False), None, "AWQ with 'zero_point': false"),
    "act_order_g_idx": ("gptq-g128", {}, lambda t: t.update({
        "model.layers.0.mlp.down_proj.g_idx": t["model.layers.0.mlp.down_proj.g_idx"][::-1].copy()}),
        "'model.layers.0.mlp.down_proj.g_idx'[0] = 3, expected 0 (= k / group_size 128): act-order GPTQ"),
    "scales_shape": ("awq-g128", {}, lambda t: t.update({
        "model.layers.0.self_attn.q_proj.scales": t["model.layers.0.self_attn.q_proj.scales"][:1].copy()}),
        "'model.layers.0.self_attn.q_proj.scales' has shape [1, 256], expected [2, 256]"),
    "qweight_shape": ("gptq-g128", {}, lambda t: t.update({
        "model.layers.1.mlp.up_proj.qweight": t["model.layers.1.mlp.up_proj.qweight"][:, :256].copy()}),
        "'model.layers.1.mlp.up_proj.qzeros' has shape [2, 64], expected [2, 32]"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_with_a_clear_message(checkpoints, inferd_bin, tmp_path, case):
    variant, changes, edit, message = REFUSED[case]
    c = checkpoints[variant]
    d = _copy(c, tmp_path, case)
    if changes:
        _edit_config(d, c["where"], **changes)
    if edit:
        _edit_tensors(d, edit)
    err = _error(inferd_bin, d, tmp_path)
    assert message in err, err
