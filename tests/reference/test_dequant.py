"""inferd's reference (de)quantization vs gguf-py's (llama.cpp's Python package), bit for bit.

gguf-py is an independent implementation of the GGML block formats in numpy. We write a
GGUF file with random-but-valid blocks of every type inferd supports (using gguf-py's own
writer), dequantize it with `inferd_dequant_tool`, and compare with gguf.quants.dequantize.
The same comparison runs over every tensor of the real model (INFERD_MODEL).

Environment: INFERD_BUILD_DIR (default build/release) locates the tool; INFERD_MODEL the model.
"""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf", reason="pip install gguf (scripts/install-deps.sh)")
from gguf import GGMLQuantizationType as Q  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("INFERD_BUILD_DIR", REPO / "build" / "release"))
TOOL = BUILD_DIR / "tests" / "tools" / "inferd_dequant_tool"
MODEL = Path(os.environ.get("INFERD_MODEL",
                            Path.home() / ".cache/inferd/models/SmolLM2-135M-Instruct.Q4_1.gguf"))

# Byte offsets of the fp16 scale fields inside one block, per type. Random bytes there
# could be inf/nan; we overwrite them with finite values so the comparison is meaningful.
# (ggml-common.h block structs: Q2_K {scales[16], qs[64], d, dmin}; Q3_K {hmask[32], qs[64],
# scales[12], d}; IQ4_NL {d, qs[16]}; IQ4_XS {d, scales_h, scales_l[4], qs[128]}; the
# IQ2/IQ3/IQ1_S blocks start with d; TQ1_0 {qs[48], qh[4], d}; TQ2_0 {qs[64], d}.)
HALF_FIELDS = {
    Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q8_0: [0],
    Q.Q2_K: [80, 82], Q.Q3_K: [108], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208],
    Q.IQ4_NL: [0], Q.IQ4_XS: [0],
    Q.IQ2_XXS: [0], Q.IQ2_XS: [0], Q.IQ2_S: [0], Q.IQ3_XXS: [0], Q.IQ3_S: [0], Q.IQ1_S: [0],
    Q.IQ1_M: [], Q.TQ1_0: [52], Q.TQ2_0: [64], Q.MXFP4: [],
}


def _iq1m_finite_scale(rng, raw):
    """IQ1_M {qs[32], qh[16], scales[8]} keeps its fp16 d in the top nibbles of the four uint16
    scales, d's bits 12-15 in those of the last (bytes 54-55): clear the exponent's top bit."""
    raw[:, 55] &= 0xBF


def _mxfp4_moderate_exponent(rng, raw):
    """MXFP4 {e, qs[16]}: an E8M0 exponent byte; keep d = 2^(e - 128) within 2^+-28."""
    raw[:, 0] = rng.integers(100, 156, size=raw.shape[0], dtype=np.uint8)


# Scale fields that are not a plain fp16, made finite (and moderate) by type.
FIXUPS = {Q.IQ1_M: _iq1m_finite_scale, Q.MXFP4: _mxfp4_moderate_exponent}
QUANT_TYPES = list(HALF_FIELDS)


def _tool():
    if not TOOL.exists():
        pytest.skip(f"{TOOL} not built (ninja -C {BUILD_DIR} inferd_dequant_tool, "
                    "or set INFERD_BUILD_DIR)")
    return TOOL


def _run_tool(gguf_path, out_dir, names):
    subprocess.run([str(_tool()), str(gguf_path), str(out_dir), *names], check=True)
    return {n: np.load(out_dir / f"{n}.npy") for n in names}


def _random_quant_bytes(rng, qtype, rows, cols):
    """uint8 array [rows, bytes_per_row] of random blocks with finite fp16 scales."""
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    nblocks = rows * cols // block
    raw = rng.integers(0, 256, size=(nblocks, type_size), dtype=np.uint8)
    for off in HALF_FIELDS[qtype]:
        scales = rng.uniform(-2.0, 2.0, size=nblocks).astype(np.float16)
        raw[:, off:off + 2] = scales.view(np.uint8).reshape(nblocks, 2)
    if qtype in FIXUPS:
        FIXUPS[qtype](rng, raw)
    return raw.reshape(rows, cols // block * type_size)


def _expected(data, qtype):
    if qtype == Q.BF16:  # gguf.quants handles bf16 too, but keep the fp32 widening explicit
        return (data.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    return gguf.quants.dequantize(data, qtype)


def _assert_same(got, want, what):
    """Bit for bit: the same float operations in the same order give the same floats."""
    assert got.shape == want.shape, f"{what}: shape {got.shape} vs {want.shape}"
    assert got.dtype == np.float32
    want = want.astype(np.float32)
    differ = np.flatnonzero(got.view(np.uint32).ravel() != want.view(np.uint32).ravel())
    assert differ.size == 0, (f"{what}: {differ.size} of {got.size} values differ in their bits; "
                              f"first at flat index {differ[:8].tolist()}: "
                              f"{got.ravel()[differ[:4]].tolist()} vs {want.ravel()[differ[:4]].tolist()}")


def test_random_blocks_every_supported_type(tmp_path):
    rng = np.random.default_rng(1234)
    rows = 3
    path = tmp_path / "random.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    expected = {}
    for qtype in QUANT_TYPES:
        block = gguf.GGML_QUANT_SIZES[qtype][0]
        cols = block * 4
        raw = _random_quant_bytes(rng, qtype, rows, cols)
        name = f"t.{qtype.name.lower()}"
        w.add_tensor(name, raw, raw_dtype=qtype)  # shape inferred from the byte shape
        expected[name] = _expected(raw, qtype).reshape(rows, cols)
    f32 = rng.standard_normal((rows, 40)).astype(np.float32)
    w.add_tensor("t.f32", f32)
    expected["t.f32"] = f32
    f16 = rng.standard_normal((rows, 40)).astype(np.float16)
    w.add_tensor("t.f16", f16)
    expected["t.f16"] = f16.astype(np.float32)
    bf16 = (rng.standard_normal((rows, 40)).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    w.add_tensor("t.bf16", bf16.view(np.uint8), raw_dtype=Q.BF16)
    expected["t.bf16"] = _expected(bf16, Q.BF16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    out = tmp_path / "out"
    out.mkdir()
    got = _run_tool(path, out, list(expected))
    for name, want in expected.items():
        _assert_same(got[name], want, name)


def test_every_tensor_of_real_model(tmp_path):
    if not MODEL.exists():
        pytest.skip(f"model not found at {MODEL} (scripts/fetch-model.sh or set INFERD_MODEL)")
    _tool()
    reader = gguf.GGUFReader(str(MODEL))
    tensors = list(reader.tensors)
    assert len(tensors) > 0
    out = tmp_path / "out"
    out.mkdir()
    # A few tensors per tool call keeps the .npy files on disk small.
    for i in range(0, len(tensors), 24):
        batch = tensors[i:i + 24]
        got = _run_tool(MODEL, out, [t.name for t in batch])
        for t in batch:
            want = gguf.quants.dequantize(t.data, t.tensor_type)
            want = want.reshape(tuple(int(d) for d in reversed(t.shape)))
            _assert_same(got[t.name], want, f"{t.name} ({t.tensor_type.name})")
            (out / f"{t.name}.npy").unlink()


@pytest.mark.parametrize("qtype", [Q.F16, Q.BF16, Q.Q4_0, Q.Q4_1, Q.Q8_0])
def test_quantize_matches_gguf_py(tmp_path, qtype):
    rng = np.random.default_rng(99)
    x = rng.standard_normal(32 * 256).astype(np.float32) * 3.0
    x[:32] = 0.0                      # an all-zero block (scale 0)
    x[32:64] = np.linspace(-1, 1, 32)  # exact ties between codes
    x[64:96] = 65504.0 * rng.uniform(-1, 1, 32)  # large values near the fp16 limit
    src = tmp_path / "x.f32"
    x.tofile(src)
    dst = tmp_path / "x.bin"
    subprocess.run([str(_tool()), "--quantize", qtype.name.lower(), str(src), str(dst)], check=True)
    got = np.frombuffer(dst.read_bytes(), dtype=np.uint8)
    want = gguf.quants.quantize(x, qtype).view(np.uint8).reshape(-1)
    assert got.size == want.size
    mismatch = np.flatnonzero(got != want)
    assert mismatch.size == 0, f"{qtype.name}: {mismatch.size} bytes differ, first at {mismatch[:8]}"


# The quantizers behind `--quantization int4` (llama.cpp's Q4_K_M recipe: Q4_K, Q6_K, and Q5_0
# where a row is not a multiple of 256) against llama.cpp's own quantize_row_*_ref, called
# through ctypes from the libggml-base of scripts/llamacpp.sh: byte for byte.
@pytest.mark.parametrize("name,ggml_fn", [("q5_0", "quantize_row_q5_0_ref"), ("q4_K", "quantize_row_q4_K_ref"),
                                          ("q6_K", "quantize_row_q6_K_ref")])
def test_quantize_matches_llamacpp(tmp_path, name, ggml_fn):
    import ctypes
    lib_dir = os.environ.get("LLAMACPP_LIB_DIR")
    if not lib_dir or not (Path(lib_dir) / "libggml-base.so").exists():
        pytest.skip("llama.cpp not built: eval \"$(scripts/llamacpp.sh)\"")
    ggml = ctypes.CDLL(str(Path(lib_dir) / "libggml-base.so"))
    fn = getattr(ggml, ggml_fn)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    qtype = {"q5_0": Q.Q5_0, "q4_K": Q.Q4_K, "q6_K": Q.Q6_K}[name]
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(256 * 64) * rng.uniform(0.01, 2.0, 64).repeat(256)).astype(np.float32)
    x[:256] = 0.0                           # an all-zero super-block
    x[256:512] = np.abs(x[256:512])         # all positive: the min clamps to 0
    x[512:768] = np.linspace(-1, 1, 256)    # evenly spaced values, many ties
    src = tmp_path / "x.f32"
    x.tofile(src)
    dst = tmp_path / "x.bin"
    subprocess.run([str(_tool()), "--quantize", name, str(src), str(dst)], check=True)
    got = np.frombuffer(dst.read_bytes(), dtype=np.uint8)
    want = np.zeros(x.size // block * type_size, dtype=np.uint8)
    fn(x.ctypes.data, want.ctypes.data, x.size)
    assert got.size == want.size
    mismatch = np.flatnonzero(got != want)
    assert mismatch.size == 0, f"{name}: {mismatch.size} bytes differ, first at {mismatch[:8]}"
