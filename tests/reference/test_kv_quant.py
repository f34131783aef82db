"""inferd's 1-byte KV cache codes vs torch's float8 casts (docs/quantized-formats.md §5).

torch is an independent implementation of OCP FP8 (torch.float8_e4m3fn, torch.float8_e5m2)
with round-to-nearest-even casts. `inferd_kv_codes_tool` (tests/tools) exposes inferd's
conversions; we compare:
  * fp32 -> code for every fp16 value and random fp32 values. inferd saturates where torch
    does not (torch gives NaN for e4m3fn and inf for e5m2 beyond the range), so torch casts
    the value clamped to +-max; NaN must stay NaN.
  * code -> fp32 for all 256 codes as the attention kernels read them (e4m3's NaN codes,
    which inferd never writes, read as +-480 and are skipped).
  * the whole write of a (token, KV head) vector: s = fp16(amax / M), codes = cast(x / s)
    saturated, for int8 (M = 127, torch.round is ties-to-even), e4m3 (448) and e5m2 (57344).

Environment: INFERD_BUILD_DIR (default build/release) locates the tool.
"""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="pip install torch (CPU) for the fp8 reference")

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("INFERD_BUILD_DIR", REPO / "build" / "release"))
if not BUILD_DIR.is_absolute():
    BUILD_DIR = REPO / BUILD_DIR
TOOL = BUILD_DIR / "tests" / "tools" / "inferd_kv_codes_tool"

FP8 = {"e4m3": (torch.float8_e4m3fn, 448.0), "e5m2": (torch.float8_e5m2, 57344.0)}
MAX = {"int8": 127.0, "e4m3": 448.0, "e5m2": 57344.0}


def _tool(*args):
    if not TOOL.exists():
        pytest.skip(f"{TOOL} not built (ninja -C {BUILD_DIR} inferd_kv_codes_tool, or set INFERD_BUILD_DIR)")
    subprocess.run([str(TOOL), *map(str, args)], check=True)


def _inputs(seed=0):
    every_half = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**32, size=200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    in_range = rng.uniform(-60000.0, 60000.0, size=100_000).astype(np.float32)
    small = (rng.standard_normal(100_000) * rng.choice([1e-4, 1e-2, 1.0, 100.0], size=100_000)).astype(np.float32)
    return np.concatenate([every_half, bits, in_range, small])


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_encode_matches_torch(fmt, tmp_path):
    dtype, mx = FP8[fmt]
    x = _inputs()
    (tmp_path / "x.f32").write_bytes(x.tobytes())
    _tool("encode", fmt, tmp_path / "x.f32", tmp_path / "c.u8")
    ours = np.frombuffer((tmp_path / "c.u8").read_bytes(), dtype=np.uint8)
    nan = np.isnan(x)
    ref = torch.from_numpy(np.clip(x, -mx, mx)).to(dtype).view(torch.uint8).numpy()
    bad = np.nonzero((ours != ref) & ~nan)[0]
    assert bad.size == 0, [(float(x[i]), int(ours[i]), int(ref[i])) for i in bad[:10]]
    # NaN stays NaN.
    back = torch.from_numpy(ours[nan].copy()).view(dtype).float().numpy()
    assert np.isnan(back).all()


@pytest.mark.parametrize("fmt", ["int8", "e4m3", "e5m2"])
def test_decode_matches_torch(fmt, tmp_path):
    _tool("decode", fmt, tmp_path / "v.f32")
    ours = np.frombuffer((tmp_path / "v.f32").read_bytes(), dtype=np.float32)
    codes = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    if fmt == "int8":
        ref = codes.view(torch.int8).float().numpy()
    else:
        ref = codes.view(FP8[fmt][0]).float().numpy()
    keep = ~np.isnan(ref)
    if fmt == "e4m3":
        assert keep.sum() == 254  # 0x7F, 0xFF
        assert ours[0x7F] == 480.0 and ours[0xFF] == -480.0  # never written (NaN goes to the scale)
    else:
        assert np.isnan(ours[~keep]).all()
    assert np.array_equal(ours[keep].view(np.uint32), ref[keep].view(np.uint32))  # exact, signed zeros too


@pytest.mark.parametrize("fmt", ["int8", "e4m3", "e5m2"])
def test_quantize_vector_matches_torch(fmt, tmp_path):
    d = 64
    rng = np.random.default_rng(1)
    rows = [rng.standard_normal((2000, d)) * rng.choice([1e-6, 1e-3, 1.0, 30.0, 1e4], size=(2000, 1)),
            rng.uniform(-1, 1, (200, d)) * 1e-7]  # subnormal fp16 scales: saturation matters
    x = np.concatenate(rows).astype(np.float32)
    x[5] = 0.0
    (tmp_path / "x.f32").write_bytes(x.tobytes())
    _tool("quantize", fmt, d, tmp_path / "x.f32", tmp_path / "q.bin")
    out = np.frombuffer((tmp_path / "q.bin").read_bytes(), dtype=np.uint8).reshape(len(x), 2 + d)
    scale = out[:, :2].copy().view(np.float16)[:, 0]
    codes = out[:, 2:]

    xt = torch.from_numpy(x)
    mx = MAX[fmt]
    s_ref = (xt.abs().amax(dim=1) / mx).clamp(max=65504.0).to(torch.float16)
    assert np.array_equal(scale.view(np.uint16), s_ref.numpy().view(np.uint16))
    sf = s_ref.float().unsqueeze(1)
    y = torch.where(sf > 0, xt / torch.where(sf > 0, sf, torch.ones_like(sf)), torch.zeros_like(xt)).clamp(-mx, mx)
    if fmt == "int8":
        ref = torch.round(y).to(torch.int8).view(torch.uint8).numpy()  # torch.round: ties to even
    else:
        ref = y.to(FP8[fmt][0]).view(torch.uint8).numpy()
    bad = np.argwhere(codes != ref)
    assert bad.size == 0, [(float(x[r, c]), int(codes[r, c]), int(ref[r, c])) for r, c in bad[:10]]
    # Some rows saturate (their fp16 scale rounded down far enough to matter): covered.
    assert (np.abs((xt / sf)[sf[:, 0] > 0].numpy()) > mx).any()
