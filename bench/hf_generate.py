#!/usr/bin/env python3
"""Hugging Face transformers `generate` on random weights at a real shape: the baseline of
issue 6's offline-throughput comparison (same GPU, same shapes as
`inferd bench throughput --load-format dummy`).

    bench/hf_generate.py --shape llama-2-7b --num-prompts 256 --input-len 512 --output-len 128 --batch-size 64

Prompts are random token ids (no padding needed: all have the same length); every
sequence generates exactly output-len tokens (min_new_tokens). Prints one JSON line with
output tokens per second of wall time (prefill included). Needs torch with CUDA and
transformers.
"""
import argparse
import json
import time

import torch
import transformers

SHAPES = {  # hidden, ffn, layers, heads, kv heads, vocab, ctx
    "llama-2-7b": (4096, 11008, 32, 32, 32, 32000, 4096),
    "llama-3-8b": (4096, 14336, 32, 32, 8, 128256, 8192),
    "smollm2-135m": (576, 1536, 30, 9, 3, 49152, 8192),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="llama-2-7b", choices=sorted(SHAPES))
    ap.add_argument("--num-prompts", type=int, default=256)
    ap.add_argument("--input-len", type=int, default=512)
    ap.add_argument("--output-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--dtype", default="float16", choices=["float16", "bfloat16"])
    a = ap.parse_args()
    hidden, ffn, layers, heads, kv_heads, vocab, ctx = SHAPES[a.shape]
    cfg = transformers.LlamaConfig(hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
                                   num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=vocab,
                                   max_position_embeddings=ctx)
    dtype = getattr(torch, a.dtype)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = transformers.LlamaForCausalLM(cfg).to(dtype).eval()
    gen = torch.Generator(device="cuda").manual_seed(0)
    prompts = torch.randint(10, vocab, (a.num_prompts, a.input_len), device="cuda", generator=gen)
    kw = dict(max_new_tokens=a.output_len, min_new_tokens=a.output_len, do_sample=False, pad_token_id=0)
    with torch.inference_mode():
        model.generate(prompts[:1], **dict(kw, max_new_tokens=4, min_new_tokens=4))  # warm-up
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out_tokens = 0
        for b in range(0, a.num_prompts, a.batch_size):
            batch = prompts[b:b + a.batch_size]
            out = model.generate(batch, attention_mask=torch.ones_like(batch), **kw)
            out_tokens += (out.shape[1] - a.input_len) * out.shape[0]
        torch.cuda.synchronize()
        secs = time.perf_counter() - t0
    print(json.dumps({"engine": f"transformers {transformers.__version__}", "shape": a.shape,
                      "num_prompts": a.num_prompts, "batch_size": a.batch_size, "seconds": round(secs, 2),
                      "output_tokens_per_s": round(out_tokens / secs, 1)}))


if __name__ == "__main__":
    main()
