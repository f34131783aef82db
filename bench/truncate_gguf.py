#!/usr/bin/env python3
"""Writes a copy of a Llama-family GGUF that keeps only its first N layers (real weights,
fewer of them), so that a real model fits where a full one does not (e.g. the 64 MiB that
travel to a GPU machine):

    bench/truncate_gguf.py --layers 12 [--embd-type q4_0] IN.gguf OUT.gguf

Every metadata field is copied except the block count; tensors of layers >= N are dropped.
--embd-type re-encodes the token embedding (the largest tensor of a small model) with
gguf-py's reference quantizer.
Needs numpy and gguf (PyPI).
"""
import argparse
import os
import re

import gguf


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--embd-type", choices=["q4_0", "q8_0"], help="re-encode token_embd.weight")
    ap.add_argument("src")
    ap.add_argument("dst")
    a = ap.parse_args()
    r = gguf.GGUFReader(a.src)
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(a.dst + ".part", arch)
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        vtype = f.types[0]
        value = f.contents()
        if key == f"{arch}.block_count":
            value = a.layers
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_key_value(key, value, vtype, sub_type=f.types[-1])
        else:
            w.add_key_value(key, value, vtype)
    keep = []
    for t in r.tensors:
        m = re.match(r"blk\.(\d+)\.", t.name)
        if m and int(m.group(1)) >= a.layers:
            continue
        data, qtype = t.data, t.tensor_type
        if a.embd_type and t.name == "token_embd.weight":
            floats = gguf.quants.dequantize(t.data, t.tensor_type)
            qtype = getattr(gguf.GGMLQuantizationType, a.embd_type.upper())
            data = gguf.quants.quantize(floats, qtype)
        keep.append(data)
        w.add_tensor_info(t.name, [int(x) for x in data.shape], data.dtype, data.nbytes, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for data in keep:
        w.write_tensor_data(data)
    w.close()
    os.replace(a.dst + ".part", a.dst)
    print(a.dst)


if __name__ == "__main__":
    main()
