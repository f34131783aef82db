"""--quantization int8 | int4 vs llama.cpp's quantizers, bit for bit.

We write an F16 GGUF copy of the embedded model with gguf-py (every matrix rounded to
float16, norms kept F32), load it with `inferd_quantize_tool` (LoadModel with
LoadOptions::quantization, as `inferd --quantization` does) and compare the bytes of every
layer matrix: int8 with gguf.quants.quantize(rows, Q8_0) of the same F16 values; int4 with
the file `llama-quantize F16 Q4_K_M` writes from the same F16 copy (types and bytes of every
layer matrix: Q4_K / Q6_K and their Q5_0 / Q8_0 fallbacks, by llama.cpp's recipe). The
token embedding must come back as stored (F16).

Environment: INFERD_BUILD_DIR (default build/release) locates the tool; INFERD_MODEL the model.
"""
import os
import subprocess
from pathlib import Path

import numpy as np
import inferd_build
import pytest

gguf = pytest.importorskip("gguf", reason="pip install gguf (scripts/install-deps.sh)")
import gguf.quants  # noqa: E402,F401
from gguf import GGMLQuantizationType as Q  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = inferd_build.build_dir()  # tests/support, on the path from conftest.py
if not BUILD_DIR.is_absolute():
    BUILD_DIR = REPO / BUILD_DIR
TOOL = BUILD_DIR / "tests" / "tools" / "inferd_quantize_tool"
MODEL = Path(os.environ.get("INFERD_MODEL",
                            Path.home() / ".cache/inferd/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
LAYER_MATRICES = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def _tool():
    if not TOOL.exists():
        pytest.skip(f"{TOOL} not built (ninja -C {BUILD_DIR} inferd_quantize_tool, or set INFERD_BUILD_DIR)")
    return TOOL


def _write_f16_copy(src: Path, dst: Path) -> dict:
    """F16 copy of a GGUF model (matrices F16, 1-D tensors F32, metadata copied); returns
    {name: float16 array [rows, cols]} of the matrices written."""
    r = gguf.GGUFReader(str(src))
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(str(dst), arch=arch)
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        vtype = f.types[0]
        if key == "general.file_type":
            w.add_key_value(key, int(gguf.LlamaFileType.MOSTLY_F16), vtype)
        elif vtype == gguf.GGUFValueType.ARRAY:
            w.add_key_value(key, f.contents(), vtype, sub_type=f.types[-1])
        else:
            w.add_key_value(key, f.contents(), vtype)
    matrices = {}
    for t in r.tensors:
        a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        a = np.ascontiguousarray(a.reshape([int(d) for d in reversed(t.shape)]))
        if a.ndim == 2:
            a = a.astype(np.float16)
            matrices[t.name] = a
            w.add_tensor(t.name, a, raw_dtype=Q.F16)
        else:
            w.add_tensor(t.name, a, raw_dtype=Q.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return matrices


@pytest.fixture(scope="module")
def f16_model(tmp_path_factory):
    if not MODEL.exists():
        pytest.skip(f"model not found at {MODEL} (scripts/fetch-model.sh or set INFERD_MODEL)")
    _tool()
    path = tmp_path_factory.mktemp("f16") / "model.f16.gguf"
    return path, _write_f16_copy(MODEL, path)


def _run_tool(path, quant, out):
    out.mkdir()
    r = subprocess.run([str(_tool()), str(path), quant, str(out)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip(), dict(line.split() for line in (out / "types.txt").read_text().splitlines())


def _check_embedding(out, types, matrices):
    # The embedding (tied LM head) is left as stored.
    assert types["token_embd.weight"] == "f16"
    emb = np.fromfile(out / "token_embd.weight.bin", dtype=np.float16)
    np.testing.assert_array_equal(emb, matrices["token_embd.weight"].reshape(-1))


def test_int8_layers_match_gguf_py(f16_model, tmp_path):
    path, matrices = f16_model
    out = tmp_path / "out"
    weight_type, types = _run_tool(path, "int8", out)
    assert weight_type == "q8_0 (int8 from f16)"
    n_layers = sum(1 for name in matrices if name.endswith(".ffn_up.weight"))
    assert n_layers > 0
    checked = 0
    for i in range(n_layers):
        for m in LAYER_MATRICES:
            name = f"blk.{i}.{m}.weight"
            assert types[name] == "q8_0", name
            want = gguf.quants.quantize(matrices[name].astype(np.float32), Q.Q8_0).view(np.uint8).reshape(-1)
            got = np.fromfile(out / f"{name}.bin", dtype=np.uint8)
            assert got.size == want.size, name
            mismatch = np.flatnonzero(got != want)
            assert mismatch.size == 0, f"{name}: {mismatch.size} bytes differ, first at {mismatch[:8]}"
            checked += 1
    assert checked == 7 * n_layers
    _check_embedding(out, types, matrices)


def test_int4_layers_match_llama_quantize_q4_k_m(f16_model, tmp_path):
    quantize = os.environ.get("LLAMACPP_QUANTIZE")
    if not quantize or not Path(quantize).exists():
        pytest.skip("llama-quantize not built: eval \"$(scripts/llamacpp.sh --with-bench)\"")
    path, matrices = f16_model
    ref_path = tmp_path / "q4_k_m.gguf"
    r = subprocess.run([quantize, str(path), str(ref_path), "Q4_K_M"], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    out = tmp_path / "out"
    weight_type, types = _run_tool(path, "int4", out)
    assert weight_type == "q4_K_M (int4 from f16)"
    ref = {t.name: t for t in gguf.GGUFReader(str(ref_path)).tensors}
    seen = set()
    checked = 0
    for name, t in ref.items():
        if not any(f".{m}.weight" in name for m in LAYER_MATRICES):
            continue
        want_type = t.tensor_type.name.lower().replace("_k", "_K")
        assert types[name] == want_type, name
        seen.add(want_type)
        want = np.asarray(t.data).view(np.uint8).reshape(-1)
        got = np.fromfile(out / f"{name}.bin", dtype=np.uint8)
        assert got.size == want.size, name
        mismatch = np.flatnonzero(got != want)
        assert mismatch.size == 0, f"{name}: {mismatch.size} bytes differ, first at {mismatch[:8]}"
        checked += 1
    n_layers = sum(1 for name in matrices if name.endswith(".ffn_up.weight"))
    assert checked == 7 * n_layers
    # SmolLM2's 576-wide rows fall back to Q5_0 / Q8_0; its ffn_down (1536) stays K-quant.
    assert seen == {"q4_K", "q6_K", "q5_0", "q8_0"}, seen
    _check_embedding(out, types, matrices)
