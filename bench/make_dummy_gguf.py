#!/usr/bin/env python3
"""Writes a GGUF with random weights at a real model shape, so that llama.cpp and inferd can
be compared on the same file at sizes no model hub gives us here (Llama-2-7B by default).

    bench/make_dummy_gguf.py --shape llama-2-7b --type q4_0 --out /tmp/llama-2-7b.q4_0.gguf

Weights are random bytes in GGML block layout with scales chosen so that a weight is about
uniform in (-1/sqrt(fan_in), 1/sqrt(fan_in)) (like `inferd --load-format dummy`); norms are 1.
The tokenizer (metadata only) is copied from a GGUF vocab file, by default llama.cpp's
ggml-vocab-llama-spm.gguf from ../shared/testdata. Tensors are streamed to disk one at a
time, so memory stays small whatever the model size. Needs numpy and gguf (PyPI).
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import gguf

SHAPES = {  # hidden, ffn, layers, heads, kv heads, vocab, ctx, rope theta, eps
    "llama-2-7b": (4096, 11008, 32, 32, 32, 32000, 4096, 10000.0, 1e-5),
    "llama-2-13b": (5120, 13824, 40, 40, 40, 32000, 4096, 10000.0, 1e-5),
    "smollm2-135m": (576, 1536, 30, 9, 3, 49152, 8192, 100000.0, 1e-5),
    # every width a multiple of 256, so that K-quants stay K-quants (llama-quantize falls back
    # to 32-blocks where a row is not a whole number of 256-blocks): 0.4B parameters
    "small-256": (1024, 2816, 24, 16, 8, 32000, 4096, 10000.0, 1e-5),
}
TYPES = {"q4_0": gguf.GGMLQuantizationType.Q4_0, "q4_1": gguf.GGMLQuantizationType.Q4_1,
         "q8_0": gguf.GGMLQuantizationType.Q8_0, "f16": gguf.GGMLQuantizationType.F16}
FILE_TYPES = {"q4_0": gguf.LlamaFileType.MOSTLY_Q4_0, "q4_1": gguf.LlamaFileType.MOSTLY_Q4_1,
              "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "f16": gguf.LlamaFileType.MOSTLY_F16}


def random_rows(rng, qtype, rows, cols, scale):
    """[rows, row_bytes] uint8 of random blocks whose values lie in about (-scale, scale)."""
    if qtype == "f16":
        return rng.uniform(-scale, scale, size=(rows, cols)).astype(np.float16).view(np.uint8)
    nblk = cols // 32
    if qtype == "q4_0":
        blk = np.empty((rows, nblk, 18), np.uint8)
        blk[..., :2] = np.full((rows, nblk, 1), scale / 8, np.float16).view(np.uint8)
        blk[..., 2:] = rng.integers(0, 256, size=(rows, nblk, 16), dtype=np.uint8)
    elif qtype == "q4_1":
        blk = np.empty((rows, nblk, 20), np.uint8)
        blk[..., :2] = np.full((rows, nblk, 1), scale / 7.5, np.float16).view(np.uint8)
        blk[..., 2:4] = np.full((rows, nblk, 1), -scale, np.float16).view(np.uint8)
        blk[..., 4:] = rng.integers(0, 256, size=(rows, nblk, 16), dtype=np.uint8)
    else:  # q8_0
        blk = np.empty((rows, nblk, 34), np.uint8)
        blk[..., :2] = np.full((rows, nblk, 1), scale / 127, np.float16).view(np.uint8)
        blk[..., 2:] = rng.integers(0, 256, size=(rows, nblk, 32), dtype=np.uint8)
    return blk.reshape(rows, -1)


def main():
    default_vocab = Path(__file__).resolve().parents[2] / "shared/testdata/tokenizer/ggml-vocab-llama-spm.gguf"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="llama-2-7b", choices=sorted(SHAPES))
    ap.add_argument("--type", default="q4_0", choices=sorted(TYPES))
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab", default=str(default_vocab), help="GGUF whose tokenizer.* metadata is copied")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    hidden, ffn, layers, heads, kv_heads, vocab, ctx, theta, eps = SHAPES[a.shape]
    src = gguf.GGUFReader(a.vocab)
    tok_fields = {k: f for k, f in src.fields.items() if k.startswith("tokenizer.")}
    n_tokens = len(tok_fields["tokenizer.ggml.tokens"].data)
    if n_tokens != vocab:
        sys.exit(f"vocab file has {n_tokens} tokens, the {a.shape} shape needs {vocab}")

    tmp = a.out + ".part"
    w = gguf.GGUFWriter(tmp, "llama")
    w.add_name(f"{a.shape} (random weights)")
    w.add_context_length(ctx)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_dimension_count(hidden // heads)
    w.add_rope_freq_base(theta)
    w.add_layer_norm_rms_eps(eps)
    w.add_file_type(FILE_TYPES[a.type])
    for key, f in tok_fields.items():  # copied as they are (types included)
        vtype = f.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_key_value(key, f.contents(), vtype, sub_type=f.types[-1])
        else:
            w.add_key_value(key, f.contents(), vtype)

    head_dim = hidden // heads
    specs = [("token_embd.weight", vocab, hidden, 1.0), ("output_norm.weight", None, hidden, None),
             ("output.weight", vocab, hidden, hidden ** -0.5)]
    for i in range(layers):
        p = f"blk.{i}."
        specs += [(p + "attn_norm.weight", None, hidden, None),
                  (p + "attn_q.weight", heads * head_dim, hidden, hidden ** -0.5),
                  (p + "attn_k.weight", kv_heads * head_dim, hidden, hidden ** -0.5),
                  (p + "attn_v.weight", kv_heads * head_dim, hidden, hidden ** -0.5),
                  (p + "attn_output.weight", hidden, heads * head_dim, (heads * head_dim) ** -0.5),
                  (p + "ffn_norm.weight", None, hidden, None),
                  (p + "ffn_gate.weight", ffn, hidden, hidden ** -0.5),
                  (p + "ffn_up.weight", ffn, hidden, hidden ** -0.5),
                  (p + "ffn_down.weight", hidden, ffn, ffn ** -0.5)]
    qtype = TYPES[a.type]
    for name, rows, cols, _ in specs:
        if rows is None:  # norm vectors: f32
            w.add_tensor_info(name, [cols], np.dtype(np.float32), cols * 4)
        else:
            nbytes = rows * gguf.quants.quant_shape_to_byte_shape((cols,), qtype)[0]
            w.add_tensor_info(name, [rows, gguf.quants.quant_shape_to_byte_shape((cols,), qtype)[0]],
                              np.dtype(np.uint8), nbytes, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    rng = np.random.default_rng(a.seed)
    for name, rows, cols, scale in specs:
        if rows is None:
            w.write_tensor_data(np.ones(cols, np.float32))
        else:
            w.write_tensor_data(random_rows(rng, a.type, rows, cols, scale))
    w.close()
    os.replace(tmp, a.out)
    print(a.out)


if __name__ == "__main__":
    main()
