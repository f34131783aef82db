"""Tiny random-weight models of each family, written in the layout llama.cpp expects.

write_tiny_gguf(gguf, family, dst, tokenizer_src) writes a GGUF with the metadata keys and
tensor names of llama.cpp's converter for `family`, F32 tensors (llama.cpp's arithmetic is
then plain fp32), and the tokenizer of `tokenizer_src` (the embedded SmolLM2 GGUF) copied
key by key. Weights are a pure function of the family's seed, scaled so that activations
stay O(1) through the layers and the logits have clear winners.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from conftest import write_gguf

# Shapes: q width (heads x head_dim) differs from hidden where the family allows it, so
# that a mix-up of the two cannot pass.
FAMILIES = {
    "llama": dict(layers=4, hidden=128, heads=4, kv_heads=2, head_dim=32, ffn=256, rope_base=10000.0),
    "qwen2": dict(layers=4, hidden=128, heads=4, kv_heads=2, head_dim=32, ffn=256, rope_base=1e6, bias=True),
    "qwen3": dict(layers=4, hidden=128, heads=4, kv_heads=2, head_dim=64, ffn=256, rope_base=1e6, qk_norm=True),
    "gemma": dict(layers=4, hidden=128, heads=4, kv_heads=1, head_dim=64, ffn=256, rope_base=10000.0),
    # Local and global layers alternate; caps small enough to bend these scores and logits.
    "gemma2": dict(layers=4, hidden=128, heads=4, kv_heads=2, head_dim=32, ffn=256, rope_base=10000.0,
                   post_norms=True, sliding_window=8, attn_softcap=5.0, final_softcap=3.0),
    # 6 layers: five local (sliding window of 8 positions) and one global.
    "gemma3": dict(layers=6, hidden=128, heads=4, kv_heads=1, head_dim=64, ffn=256, rope_base=1e6, qk_norm=True,
                   post_norms=True, sliding_window=8),
    # Fused attn_qkv and [gate; up] in ffn_up, as llama.cpp's converter writes Phi-3.
    "phi3": dict(layers=4, hidden=128, heads=4, kv_heads=4, head_dim=32, ffn=256, rope_base=10000.0, fused=True),
    "internlm2": dict(layers=4, hidden=128, heads=4, kv_heads=2, head_dim=32, ffn=256, rope_base=1e6),
    # llama.cpp applies RoPE to Baichuan only when it recognises the 7B (32 layers).
    "baichuan": dict(layers=32, hidden=64, heads=4, kv_heads=4, head_dim=16, ffn=128, rope_base=10000.0),
    # ... and ALiBi when it recognises the 13B (40 layers); 6 heads: slopes from both series.
    "baichuan13b": dict(arch="baichuan", layers=40, hidden=96, heads=6, kv_heads=6, head_dim=16, ffn=128,
                        rope_base=10000.0),
    # Phi-3 LongRoPE (the 128k models): context 4096 over an original 256, so the long factors
    # apply past a context of 256 (llama.cpp's n_ctx, inferd's --max-model-len), the short ones
    # up to it; attention factor sqrt(1 + ln 16 / ln 256).
    "phi3_longrope": dict(arch="phi3", layers=4, hidden=128, heads=4, kv_heads=4, head_dim=32, ffn=256,
                          rope_base=10000.0, fused=True, context=4096, original_context=256),
}
SEEDS = {name: i + 1 for i, name in enumerate(FAMILIES)}


def longrope_factors(head_dim: int) -> tuple[list[float], list[float]]:
    """LongRoPE's (long, short) factor sets for head_dim / 2 frequencies, shaped like Phi-3's:
    1 at the highest frequency, rising to 64 (long) and 3 (short) at the lowest."""
    n = head_dim // 2
    return [1.0 + 63.0 * (i / (n - 1)) ** 2 for i in range(n)], [1.0 + 2.0 * i / (n - 1) for i in range(n)]


def longrope_attn_factor(context: int, original: int) -> float:
    """llama.cpp's converter and transformers: sqrt(1 + ln(scale) / ln(original)), 1 when not extended."""
    scale = context / original
    return math.sqrt(1 + math.log(scale) / math.log(original)) if scale > 1.0 else 1.0


def _copy_tokenizer(gguf, w, src: Path):
    r = gguf.GGUFReader(str(src))
    for key, f in r.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = f.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_key_value(key, f.contents(), vtype, sub_type=f.types[-1])
        else:
            w.add_key_value(key, f.contents(), vtype)
    return len(r.fields["tokenizer.ggml.tokens"].contents())


def write_tiny_gguf(gguf, family: str, dst: Path, tokenizer_src: Path) -> Path:
    cfg = FAMILIES[family]
    rng = np.random.default_rng(SEEDS[family])
    tmp = dst.with_name(f"{dst.name}.{os.getpid()}.tmp")
    arch = cfg.get("arch", family)
    w = gguf.GGUFWriter(str(tmp), arch=arch)
    vocab = _copy_tokenizer(gguf, w, tokenizer_src)
    h, nh, nkv, d, ffn = cfg["hidden"], cfg["heads"], cfg["kv_heads"], cfg["head_dim"], cfg["ffn"]
    p = arch + "."
    w.add_uint32(p + "context_length", cfg.get("context", 2048))
    w.add_uint32(p + "embedding_length", h)
    w.add_uint32(p + "block_count", cfg["layers"])
    w.add_uint32(p + "feed_forward_length", ffn)
    w.add_uint32(p + "attention.head_count", nh)
    w.add_uint32(p + "attention.head_count_kv", nkv)
    w.add_uint32(p + "attention.key_length", d)
    w.add_uint32(p + "attention.value_length", d)
    w.add_float32(p + "attention.layer_norm_rms_epsilon", 1e-6)
    w.add_float32(p + "rope.freq_base", cfg["rope_base"])
    if "sliding_window" in cfg:
        w.add_uint32(p + "attention.sliding_window", cfg["sliding_window"])
    if "attn_softcap" in cfg:
        w.add_float32(p + "attn_logit_softcapping", cfg["attn_softcap"])
        w.add_float32(p + "final_logit_softcapping", cfg["final_softcap"])
    if "original_context" in cfg:  # LongRoPE, as llama.cpp's converter writes Phi-3 128k
        w.add_uint32(p + "rope.scaling.original_context_length", cfg["original_context"])
        w.add_float32(p + "rope.scaling.attn_factor", longrope_attn_factor(cfg["context"], cfg["original_context"]))
    w.add_uint32("general.file_type", int(gguf.LlamaFileType.ALL_F32))

    def mat(rows, cols, gain=1.0):
        return (rng.standard_normal((rows, cols)) * gain / np.sqrt(cols)).astype(np.float32)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    def vec(n):
        return (0.1 * rng.standard_normal(n)).astype(np.float32)

    # Gemma scales the embeddings by sqrt(hidden) on the way in.
    gemma = family.startswith("gemma")
    embd_gain = 1.0 / np.sqrt(h) if gemma else 0.5
    tensors = {"token_embd.weight": (rng.standard_normal((vocab, h)) * embd_gain).astype(np.float32)}
    for i in range(cfg["layers"]):
        b = f"blk.{i}."
        tensors[b + "attn_norm.weight"] = norm(h)
        q, k, v = mat(nh * d, h, 2.0), mat(nkv * d, h, 2.0), mat(nkv * d, h)
        if cfg.get("fused"):
            tensors[b + "attn_qkv.weight"] = np.concatenate([q, k, v])
        else:
            tensors[b + "attn_q.weight"], tensors[b + "attn_k.weight"], tensors[b + "attn_v.weight"] = q, k, v
        tensors[b + "attn_output.weight"] = mat(h, nh * d)
        if cfg.get("bias"):
            tensors[b + "attn_q.bias"] = vec(nh * d)
            tensors[b + "attn_k.bias"] = vec(nkv * d)
            tensors[b + "attn_v.bias"] = vec(nkv * d)
        if cfg.get("qk_norm"):
            tensors[b + "attn_q_norm.weight"] = norm(d)
            tensors[b + "attn_k_norm.weight"] = norm(d)
        if cfg.get("post_norms"):
            tensors[b + "post_attention_norm.weight"] = norm(h)
            tensors[b + "post_ffw_norm.weight"] = norm(h)
        tensors[b + "ffn_norm.weight"] = norm(h)
        gate, up = mat(ffn, h), mat(ffn, h)
        if cfg.get("fused"):
            tensors[b + "ffn_up.weight"] = np.concatenate([gate, up])
        else:
            tensors[b + "ffn_gate.weight"], tensors[b + "ffn_up.weight"] = gate, up
        tensors[b + "ffn_down.weight"] = mat(h, ffn)
    tensors["output_norm.weight"] = norm(h)
    if "original_context" in cfg:
        long_f, short_f = longrope_factors(d)
        tensors["rope_factors_long.weight"] = np.array(long_f, dtype=np.float32)
        tensors["rope_factors_short.weight"] = np.array(short_f, dtype=np.float32)
    if not gemma:  # Gemma ties the LM head to the embeddings
        tensors["output.weight"] = mat(vocab, h, 4.0)
    write_gguf(gguf, w, tensors.items(), tmp, dst)
    return dst


# The same weights as a Hugging Face directory (families whose GGUF keeps HF's NeoX RoPE
# layout, so no Q/K permutation): config.json in transformers' keys and model.safetensors
# with HF tensor names. Gemma's HF norm weights are w for x * (1 + w): GGUF's minus one.
# Baichuan-13B has no RoPE, so its GGUF's q/k row order (permuted per head alike) gives the
# same scores: W_pack is [q; k; v] as stored.
# InternLM2's GGUF q and k are permuted for GGML's RoPE by llama.cpp's converter: undone here,
# and q, k, v are grouped per KV head into attention.wqkv as InternLM2's checkpoints hold them.
HF_ARCH = {"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM", "gemma3": "Gemma3ForCausalLM",
           "gemma2": "Gemma2ForCausalLM", "phi3": "Phi3ForCausalLM", "baichuan13b": "BaichuanForCausalLM",
           "phi3_longrope": "Phi3ForCausalLM", "internlm2": "InternLM2ForCausalLM"}


def _unpermute(w, n_head):
    """The inverse of llama.cpp's LlamaModel.permute (HF's rotate-half rows from GGML's pairs)."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _internlm2_tensors(out, cfg):
    """HF Llama names (as the loop below writes them) -> InternLM2's, with the grouped wqkv: for
    each KV head, its heads / kv_heads query heads, then its key head, then its value head."""
    nh, nkv, d = cfg["heads"], cfg["kv_heads"], cfg["head_dim"]
    renamed = {"model.embed_tokens.weight": "model.tok_embeddings.weight", "lm_head.weight": "output.weight",
               "input_layernorm": "attention_norm", "self_attn.o_proj": "attention.wo",
               "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "feed_forward.w1",
               "mlp.up_proj": "feed_forward.w3", "mlp.down_proj": "feed_forward.w2"}
    res = {}
    for name, a in out.items():
        for old, new in renamed.items():
            name = name.replace(old, new)
        res[name] = a
    for i in range(cfg["layers"]):
        p = f"model.layers.{i}."
        q = _unpermute(res.pop(p + "self_attn.q_proj.weight"), nh).reshape(nkv, nh // nkv * d, -1)
        k = _unpermute(res.pop(p + "self_attn.k_proj.weight"), nkv).reshape(nkv, d, -1)
        v = res.pop(p + "self_attn.v_proj.weight").reshape(nkv, d, -1)
        res[p + "attention.wqkv.weight"] = np.concatenate([np.concatenate([q[g], k[g], v[g]]) for g in range(nkv)])
    return res


def write_tiny_hf(gguf, family: str, src: Path, dst: Path) -> Path:
    from safetensors.numpy import save_file  # noqa: PLC0415

    cfg = FAMILIES[family]
    gemma = family.startswith("gemma")
    r = gguf.GGUFReader(str(src))
    t = {x.name: np.array(x.data, dtype=np.float32).reshape([int(d) for d in reversed(x.shape)]) for x in r.tensors}
    layer_names = {"attn_norm": "input_layernorm", "attn_output": "self_attn.o_proj", "ffn_down": "mlp.down_proj",
                   "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
                   "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm",
                   "attn_qkv": "self_attn.qkv_proj", "ffn_gate": "mlp.gate_proj"}
    if gemma and cfg.get("post_norms"):
        layer_names.update(post_attention_norm="post_attention_layernorm", ffn_norm="pre_feedforward_layernorm",
                           post_ffw_norm="post_feedforward_layernorm")
    else:
        layer_names["ffn_norm"] = "post_attention_layernorm"
    layer_names["ffn_up"] = "mlp.gate_up_proj" if cfg.get("fused") else "mlp.up_proj"
    out = {}
    for name, a in t.items():
        is_norm = name.endswith("norm.weight")
        if gemma and is_norm:
            a = a - 1.0
        if name == "token_embd.weight":
            out["model.embed_tokens.weight"] = a
        elif name == "output_norm.weight":
            out["model.norm.weight"] = a
        elif name == "output.weight":
            out["lm_head.weight"] = a
        elif name.startswith("rope_factors_"):
            continue  # LongRoPE: in config.json
        else:
            _, i, base, kind = name.split(".")
            out[f"model.layers.{i}.{layer_names[base]}.{kind}"] = a
    if family == "baichuan13b":
        for i in range(cfg["layers"]):
            a = f"model.layers.{i}.self_attn."
            out[a + "W_pack.weight"] = np.concatenate([out.pop(a + x + "_proj.weight") for x in "qkv"])
    if family == "internlm2":
        out = _internlm2_tensors(out, cfg)
    dst.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}, str(dst / "model.safetensors"))
    config = {"architectures": [HF_ARCH[family]], "vocab_size": int(t["token_embd.weight"].shape[0]),
              "hidden_size": cfg["hidden"], "intermediate_size": cfg["ffn"], "num_hidden_layers": cfg["layers"],
              "num_attention_heads": cfg["heads"], "num_key_value_heads": cfg["kv_heads"], "head_dim": cfg["head_dim"],
              "max_position_embeddings": 2048, "rms_norm_eps": 1e-6, "rope_theta": cfg["rope_base"],
              "tie_word_embeddings": gemma, "torch_dtype": "float32"}
    if family in ("qwen2", "baichuan13b", "internlm2"):
        config.pop("head_dim")
    if family == "internlm2":  # internlm2-chat-7b's keys; "dynamic" is plain RoPE within the context
        config.update(bias=False, rope_scaling={"type": "dynamic", "factor": 2.0})
    if "original_context" in cfg:  # Phi-3 128k's config.json
        config.update(max_position_embeddings=cfg["context"], original_max_position_embeddings=cfg["original_context"],
                      rope_scaling={"type": "longrope", "long_factor": t["rope_factors_long.weight"].tolist(),
                                    "short_factor": t["rope_factors_short.weight"].tolist()})
    if gemma:
        config.update(query_pre_attn_scalar=cfg["head_dim"], hidden_activation="gelu_pytorch_tanh")
    if family == "gemma3":
        config.update(sliding_window=cfg["sliding_window"], sliding_window_pattern=6, rope_local_base_freq=10000.0)
    if family == "gemma2":
        config.update(sliding_window=cfg["sliding_window"], attn_logit_softcapping=cfg["attn_softcap"],
                      final_logit_softcapping=cfg["final_softcap"])
    (dst / "config.json").write_text(__import__("json").dumps(config, indent=1))
    return dst
