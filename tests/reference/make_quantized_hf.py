"""Tiny AWQ and GPTQ Hugging Face checkpoints, and fp32 copies of what they hold, for
tests/reference/test_awq_gptq.py (usable alone: `python make_quantized_hf.py OUT_DIR`).

A Llama at hidden 256, ffn 512, 2 layers, 4 heads of 64 (2 KV heads), vocabulary 512 (a
byte-level BPE tokenizer.json trained here), random weights in fp16 (test_transformers.py's
scheme: N(0, gain^2 / fan_in), gain 2 on q and k, 4 on the LM head, so the logits have clear
winners). Every linear layer is quantized per output row and group of G inputs with AutoAWQ's
formula (awq/quantize/quantizer.py pseudo_quantize_tensor, zero_point=True):

    s = max(max - min, 1e-5) / 15 (rounded to fp16), z = clamp(round(-min / s), 0, 15),
    q = clamp(round(w / s) + z, 0, 15), dequantized w' = s (q - z)

and packed as AutoAWQ's WQLinear_GEMM.from_linear and AutoGPTQ's QuantLinear.pack
(qlinear_cuda_old.py) pack it, their loops reimplemented in numpy:

    AWQ  qweight int32 [in, out/8]: word c of input row k holds column 8c + [0,2,4,6,1,3,5,7][i]
         at bits 4i; qzeros int32 [in/G, out/8] the same; scales fp16 [in/G, out]
    GPTQ qweight int32 [in/8, out]: word (i, o) holds input 8i + j at bits 4j; qzeros int32
         [in/G, out/8]: word c holds output 8c + j at bits 4j, z - 1 (checkpoint_format
         "gptq", v1) or z ("gptq_v2"); scales fp16 [in/G, out]; g_idx int32 [in] = k / G

VARIANTS: each variant directory holds the quantized checkpoint; `<variant>-fp32` the same
model with w' in float32 (the reference transformers runs). The AWQ variants leave
SKIPPED_MODULE unquantized (fp16, listed in modules_to_not_convert). Where the
quantization config is: config.json's quantization_config (as transformers writes it),
AutoAWQ's quant_config.json (w_bit / q_group_size / version "GEMM", no quant_method), or
AutoGPTQ's quantize_config.json (no quant_method: vLLM and inferd tell GPTQ from its keys).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

VOCAB = 512
SHAPE = dict(hidden=256, ffn=512, layers=2, heads=4, kv_heads=2, head_dim=64)
LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
           "mlp.up_proj", "mlp.down_proj")
SKIPPED_MODULE = "model.layers.1.self_attn.o_proj"
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]  # AutoAWQ's order_map

# variant -> method, group size, GPTQ v2, where the config is.
VARIANTS = {
    "awq-g128": dict(method="awq", group=128, v2=False, where="config.json"),
    "awq-gall": dict(method="awq", group=-1, v2=False, where="quant_config.json"),
    "gptq-g128": dict(method="gptq", group=128, v2=False, where="config.json"),
    "gptq-v2-gall": dict(method="gptq", group=-1, v2=True, where="quantize_config.json"),
}


def quantize(w: np.ndarray, group: int):
    """AutoAWQ's zero-point quantization of w [out, in] per row and group: q [out, in],
    z [groups, out], s float16 [groups, out]."""
    out, inp = w.shape
    g = inp if group == -1 else group
    wg = w.astype(np.float32).reshape(out, inp // g, g)
    mx, mn = wg.max(axis=2), wg.min(axis=2)
    s = (np.maximum(mx - mn, 1e-5) / 15).astype(np.float16)
    s32 = s.astype(np.float32)
    z = np.clip(np.round(-mn / s32), 0, 15)
    q = np.clip(np.round(wg / s32[..., None]) + z[..., None], 0, 15)
    return q.reshape(out, inp).astype(np.int64), z.T.astype(np.int64).copy(), s.T.copy()


def dequantize(q, z, s, group: int) -> np.ndarray:
    out, inp = q.shape
    g = inp if group == -1 else group
    zz = np.repeat(z.T, g, axis=1)
    ss = np.repeat(s.T.astype(np.float32), g, axis=1)
    return ((q - zz).astype(np.float32) * ss).astype(np.float32)


def pack_awq(q, z, s) -> dict:
    """AutoAWQ WQLinear_GEMM.from_linear's packing loops."""
    intweight = q.T.astype(np.uint32)  # [in, out]
    zeros = z.astype(np.uint32)        # [in/G, out]
    pack_num = 8
    qweight = np.zeros((intweight.shape[0], intweight.shape[1] // pack_num), dtype=np.uint32)
    for col in range(intweight.shape[1] // pack_num):
        for i in range(pack_num):
            qweight[:, col] |= intweight[:, col * pack_num + AWQ_ORDER[i]] << (i * 4)
    qzeros = np.zeros((zeros.shape[0], zeros.shape[1] // pack_num), dtype=np.uint32)
    for col in range(zeros.shape[1] // pack_num):
        for i in range(pack_num):
            qzeros[:, col] |= zeros[:, col * pack_num + AWQ_ORDER[i]] << (i * 4)
    return {"qweight": qweight.view(np.int32), "qzeros": qzeros.view(np.int32), "scales": s.astype(np.float16)}


def pack_gptq(q, z, s, group: int, v2: bool) -> dict:
    """AutoGPTQ QuantLinear.pack's loops (bits 4); v1 stores z - 1 ('zeros -= 1')."""
    intweight = q.T.astype(np.uint32)  # [in, out]
    inp = intweight.shape[0]
    qweight = np.zeros((inp // 32 * 4, intweight.shape[1]), dtype=np.uint32)
    i = row = 0
    while row < qweight.shape[0]:
        for j in range(i, i + 8):
            qweight[row] |= intweight[j] << (4 * (j - i))
        i += 8
        row += 1
    zeros = z.astype(np.int64) - (0 if v2 else 1)
    assert zeros.min() >= 0, "v1 stores z - 1: z = 0 would wrap (AutoGPTQ's known overflow)"
    zeros = zeros.astype(np.uint32)
    qzeros = np.zeros((zeros.shape[0], zeros.shape[1] // 32 * 4), dtype=np.uint32)
    i = col = 0
    while col < qzeros.shape[1]:
        for j in range(i, i + 8):
            qzeros[:, col] |= zeros[:, j] << (4 * (j - i))
        i += 8
        col += 1
    g = inp if group == -1 else group
    g_idx = np.array([k // g for k in range(inp)], dtype=np.int32)
    return {"qweight": qweight.view(np.int32), "qzeros": qzeros.view(np.int32), "scales": s.astype(np.float16),
            "g_idx": g_idx}


def quant_config(v: dict) -> dict:
    """The quantization config object as the tool that made such a checkpoint writes it."""
    g = v["group"]
    if v["where"] == "quant_config.json":  # AutoAWQ
        return {"zero_point": True, "q_group_size": g, "w_bit": 4, "version": "GEMM",
                "modules_to_not_convert": [SKIPPED_MODULE]}
    if v["where"] == "quantize_config.json":  # AutoGPTQ / GPTQModel
        return {"bits": 4, "group_size": g, "damp_percent": 0.01, "desc_act": False, "static_groups": False,
                "sym": False, "true_sequential": True, "model_name_or_path": None, "model_file_base_name": "model",
                "checkpoint_format": "gptq_v2" if v["v2"] else "gptq"}
    if v["method"] == "awq":  # transformers' AwqConfig
        return {"quant_method": "awq", "bits": 4, "group_size": g, "version": "gemm", "zero_point": True,
                "backend": "autoawq", "modules_to_not_convert": [SKIPPED_MODULE]}
    return {"quant_method": "gptq", "bits": 4, "group_size": g, "desc_act": False, "sym": False,  # GPTQConfig
            "damp_percent": 0.1, "true_sequential": True, "checkpoint_format": "gptq_v2" if v["v2"] else "gptq",
            "use_exllama": True, "modules_in_block_to_quantize": None}


def write_tokenizer(path: Path):
    """A byte-level BPE tokenizer.json of up to VOCAB tokens (inferd wants one beside the
    weights; the tests give token ids directly)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: PLC0415

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"], show_progress=False)
    tok.train_from_iterator(__doc__.split("\n") * 4, trainer)
    assert tok.get_vocab_size() <= VOCAB
    tok.save(str(path))


def fp16_model(seed: int):
    """The tiny Llama (float32 module) with test_transformers' weight scheme, every tensor
    rounded to fp16 (what a checkpoint in float16 holds)."""
    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415

    s = SHAPE
    cfg = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=s["hidden"], intermediate_size=s["ffn"], num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"], num_key_value_heads=s["kv_heads"], head_dim=s["head_dim"],
        max_position_embeddings=2048, rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, pad_token_id=0,
        tie_word_embeddings=False, rope_theta=10000.0)
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(cfg).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(*p.shape, generator=gen, dtype=torch.float32)
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * r)
            elif name == "model.embed_tokens.weight":
                p.copy_(0.5 * r)
            else:
                gain = 4.0 if name == "lm_head.weight" else 2.0 if name.endswith(("q_proj.weight", "k_proj.weight")) \
                    else 1.0
                p.copy_(r * gain / math.sqrt(p.shape[1]))
            p.copy_(p.half().float())
    model.generation_config.eos_token_id = None
    return model


def make(root: Path, seed: int = 0) -> dict:
    """Writes every variant and its fp32 copy under root; returns {variant: {"dir", "ref_dir",
    "codes": {module: (q, z, s)}, "config": the quantization config written}}."""
    import torch  # noqa: PLC0415
    from safetensors.torch import save_file  # noqa: PLC0415

    root.mkdir(parents=True, exist_ok=True)
    tokenizer = root / "tokenizer.json"
    write_tokenizer(tokenizer)
    base = fp16_model(seed)
    sd = {k: v.detach().clone() for k, v in base.state_dict().items()}
    made = {}
    for name, v in VARIANTS.items():
        qdir, rdir = root / name, root / f"{name}-fp32"
        skip = {SKIPPED_MODULE} if v["method"] == "awq" else set()
        tensors, ref, codes = {}, {}, {}
        for key, t in sd.items():
            module = key[: -len(".weight")]
            if key.endswith(".weight") and module.split("layers.")[-1].split(".", 1)[-1] in LINEARS \
                    and module not in skip:
                q, z, s = quantize(t.numpy(), v["group"])
                codes[module] = (q, z, s)
                packed = pack_awq(q, z, s) if v["method"] == "awq" else pack_gptq(q, z, s, v["group"], v["v2"])
                for suffix, a in packed.items():
                    tensors[f"{module}.{suffix}"] = torch.from_numpy(np.ascontiguousarray(a))
                ref[key] = torch.from_numpy(dequantize(q, z, s, v["group"]))
            else:
                tensors[key] = t.half().contiguous()
                ref[key] = t.float().contiguous()
        # The fp32 copy: transformers' own save_pretrained of the dequantized model.
        base.load_state_dict(ref)
        base.save_pretrained(rdir)
        config = json.loads((rdir / "config.json").read_text())
        qcfg = quant_config(v)
        config["torch_dtype"] = "float16"
        config.pop("dtype", None)
        if v["where"] == "config.json":
            config["quantization_config"] = qcfg
        qdir.mkdir(parents=True, exist_ok=True)
        (qdir / "config.json").write_text(json.dumps(config, indent=2))
        if v["where"] != "config.json":
            (qdir / v["where"]).write_text(json.dumps(qcfg, indent=2))
        save_file(tensors, str(qdir / "model.safetensors"), metadata={"format": "pt"})
        for d in (qdir, rdir):
            (d / "tokenizer.json").write_text(tokenizer.read_text())
        made[name] = dict(dir=qdir, ref_dir=rdir, codes=codes, config=qcfg, **v)
    base.load_state_dict(sd)
    return made


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT_DIR")
    for variant, info in make(Path(sys.argv[1])).items():
        print(variant, info["dir"], info["ref_dir"])
