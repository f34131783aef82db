"""Files of Hugging Face model directories, written without torch or sentencepiece:

- torch_save(state_dict, path): PyTorch's torch.save checkpoint format (a stored zip with
  archive/data.pkl, a pickle protocol 2 of an OrderedDict whose tensors reduce to
  torch._utils._rebuild_tensor_v2 over persistent-id storages ('storage', torch.FloatStorage,
  key, 'cpu', numel), and archive/data/<key> holding each storage's bytes), emitted by Python's
  own pickler through stand-in `torch` modules so that the bytes are what torch writes.
  Values: numpy float32 / float16 arrays, or ("bf16", uint16 array) for bfloat16 bits.
  Tensors given as the same numpy object share one storage (tied weights).
- spm_model_from_gguf(vocab_gguf, path): a SentencePiece ModelProto (tokenizer.model) with
  the pieces, scores and types of a GGUF vocabulary, BPE with byte fallback, identity
  normalization (protobuf encoded by hand).
- make_baichuan_dir(dir, vocab_gguf): a Baichuan-7B-shaped directory at a small hidden size.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import pickle
import struct
import sys
import types
import zipfile
from pathlib import Path

import numpy as np

_STORAGES = ["FloatStorage", "HalfStorage", "BFloat16Storage"]


@contextlib.contextmanager
def _stand_in_torch():
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    for name in _STORAGES:
        cls = type(name, (), {})
        cls.__module__ = "torch"
        cls.__qualname__ = name
        setattr(torch, name, cls)

    def _rebuild_tensor_v2(*args):  # never called: only its name is pickled
        raise RuntimeError("stand-in")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    try:
        yield torch, utils
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class _Storage:
    def __init__(self, cls, key, data: bytes, numel: int):
        self.cls, self.key, self.data, self.numel = cls, key, data, numel


class _Tensor:
    def __init__(self, rebuild, storage, shape):
        self.rebuild, self.storage, self.shape = rebuild, storage, tuple(shape)

    def __reduce_ex__(self, protocol):
        stride, acc = [], 1
        for n in reversed(self.shape):
            stride.append(acc)
            acc *= n
        return (self.rebuild, (self.storage, 0, self.shape, tuple(reversed(stride)), False,
                               collections.OrderedDict()))


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", obj.cls, obj.key, "cpu", obj.numel)
        return None


def torch_save(state_dict: dict, path: Path, archive: str = "archive"):
    with _stand_in_torch() as (torch, utils):
        storages, by_id = [], {}
        od = collections.OrderedDict()
        for name, value in state_dict.items():
            if isinstance(value, tuple) and value[0] == "bf16":
                arr, cls = np.ascontiguousarray(value[1], dtype=np.uint16), torch.BFloat16Storage
            else:
                arr = np.ascontiguousarray(value)
                cls = {np.dtype(np.float32): torch.FloatStorage, np.dtype(np.float16): torch.HalfStorage}[arr.dtype]
            key = id(value[1] if isinstance(value, tuple) else value)
            if key not in by_id:
                by_id[key] = _Storage(cls, str(len(storages)), arr.tobytes(), arr.size)
                storages.append(by_id[key])
            od[name] = _Tensor(utils._rebuild_tensor_v2, by_id[key], arr.shape)
        od._metadata = collections.OrderedDict()  # as state_dict() has: pickled with BUILD
        buf = io.BytesIO()
        _Pickler(buf, protocol=2).dump(od)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(f"{archive}/data.pkl", buf.getvalue())
        z.writestr(f"{archive}/byteorder", "little")
        for s in storages:
            z.writestr(f"{archive}/data/{s.key}", s.data)
        z.writestr(f"{archive}/version", "3\n")


# ---- SentencePiece ModelProto --------------------------------------------------------------

def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, wire: int, payload: bytes) -> bytes:
    return _varint(num << 3 | wire) + payload


def _msg(num: int, body: bytes) -> bytes:
    return _field(num, 2, _varint(len(body)) + body)


def spm_model_from_gguf(vocab_gguf: Path, path: Path, add_dummy_prefix: bool = False):
    import gguf  # noqa: PLC0415

    r = gguf.GGUFReader(str(vocab_gguf))
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    scores = r.fields["tokenizer.ggml.scores"].contents()
    types_ = r.fields["tokenizer.ggml.token_type"].contents()
    out = bytearray()
    for tok, score, ty in zip(tokens, scores, types_):
        body = _msg(1, b"")[:0] + _field(1, 2, _varint(len(tok.encode())) + tok.encode())
        body += _field(2, 5, struct.pack("<f", score)) + _field(3, 0, _varint(int(ty)))
        out += _msg(1, body)
    trainer = _field(3, 0, _varint(2)) + _field(35, 0, _varint(1))  # model_type BPE, byte_fallback
    trainer += _field(40, 0, _varint(0)) + _field(41, 0, _varint(1)) + _field(42, 0, _varint(2))
    trainer += _field(43, 0, _varint(-1))
    out += _msg(2, trainer)
    norm = _field(1, 2, _varint(8) + b"identity") + _field(3, 0, _varint(int(add_dummy_prefix)))
    norm += _field(4, 0, _varint(0)) + _field(5, 0, _varint(1))
    out += _msg(3, norm)
    path.write_bytes(bytes(out))
    return len(tokens)


# ---- Baichuan-7B-shaped directory -------------------------------------------------------------

BAICHUAN_TEMPLATE = (
    "{%- set system = messages | selectattr('role', 'equalto', 'system') | list -%}\n"
    "{{- system[-1]['content'] | trim if system else '' -}}\n"
    "{%- for m in messages -%}\n"
    "  {%- if m['role'] == 'user' -%}{{- '<reserved_106>' + m['content'] -}}\n"
    "  {%- elif m['role'] == 'assistant' -%}{{- '<reserved_107>' + m['content'] -}}\n"
    "  {%- endif -%}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt and messages[-1]['role'] != 'assistant' -%}{{- '<reserved_107>' -}}{%- endif -%}\n"
)


def baichuan_state_dict(cfg: dict, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    h, ffn, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]

    def mat(rows, cols, gain=1.0):
        return (rng.standard_normal((rows, cols)) * gain / np.sqrt(cols)).astype(np.float32)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    sd = {"model.embed_tokens.weight": (rng.standard_normal((v, h)) * 0.5).astype(np.float32)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        sd[p + "self_attn.W_pack.weight"] = mat(3 * h, h, 2.0)
        sd[p + "self_attn.o_proj.weight"] = mat(h, h)
        sd[p + "mlp.gate_proj.weight"] = mat(ffn, h)
        sd[p + "mlp.up_proj.weight"] = mat(ffn, h)
        sd[p + "mlp.down_proj.weight"] = mat(h, ffn)
        sd[p + "input_layernorm.weight"] = norm(h)
        sd[p + "post_attention_layernorm.weight"] = norm(h)
    sd["model.norm.weight"] = norm(h)
    sd["lm_head.weight"] = mat(v, h, 4.0)
    return sd


def make_baichuan_dir(d: Path, vocab_gguf: Path, hidden: int = 64, layers: int = 2) -> Path:
    """Baichuan-7B's layout (config.json with BaiChuanForCausalLM and its auto_map,
    pytorch_model.bin, tokenizer.model, tokenizer_config.json) at a small size, and
    template_baichuan.jinja next to it."""
    d.mkdir(parents=True, exist_ok=True)
    cfg = {
        "architectures": ["BaiChuanForCausalLM"],
        "auto_map": {"AutoConfig": "configuration_baichuan.BaiChuanConfig",
                     "AutoModelForCausalLM": "modeling_baichuan.BaiChuanForCausalLM"},
        "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
        "hidden_act": "silu", "hidden_size": hidden, "initializer_range": 0.02,
        "intermediate_size": 2 * hidden, "max_position_embeddings": 4096, "model_type": "baichuan",
        "num_attention_heads": 4, "num_hidden_layers": layers, "rms_norm_eps": 1e-06,
        "tie_word_embeddings": False, "torch_dtype": "float32", "transformers_version": "4.29.1",
        "use_cache": True, "vocab_size": 64000,
    }
    (d / "config.json").write_text(json.dumps(cfg, indent=2))
    torch_save(baichuan_state_dict(cfg), d / "pytorch_model.bin")
    spm_model_from_gguf(vocab_gguf, d / "tokenizer.model")
    (d / "tokenizer_config.json").write_text(json.dumps({
        "add_bos_token": False, "add_eos_token": False,
        "auto_map": {"AutoTokenizer": ["tokenization_baichuan.BaiChuanTokenizer", None]},
        "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": False, "normalized": True,
                      "rstrip": False, "single_word": False},
        "clean_up_tokenization_spaces": False, "eos_token": "</s>", "model_max_length": 1000000000000000019884624838656,
        "sp_model_kwargs": {}, "tokenizer_class": "BaiChuanTokenizer", "unk_token": "<unk>"}))
    (d.parent / "template_baichuan.jinja").write_text(BAICHUAN_TEMPLATE)
    return d
