"""The CUDA build of inferd (cmake --preset cuda) on this machine: it must serve CPU users
exactly as the CPU build does, and say clearly why --device cuda cannot run when there is
no GPU. scripts/test.sh sets INFERD_CUDA_BUILD_DIR after building the preset (it needs
nvcc); without it these tests skip."""
import json
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cuda_bin():
    d = os.environ.get("INFERD_CUDA_BUILD_DIR")
    if not d:
        pytest.skip("INFERD_CUDA_BUILD_DIR not set (the CUDA build needs nvcc; scripts/test.sh builds it)")
    exe = (ROOT / d if not os.path.isabs(d) else pathlib.Path(d)) / "src" / "cli" / "inferd"
    if not exe.exists():
        pytest.fail(f"{exe} missing: build the cuda preset first")
    return str(exe)


def _has_gpu():
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _generate(exe, model_path, *extra):
    proc = subprocess.run([exe, "generate", "--model", model_path, "--prompt", "The capital of France is",
                           "--max-tokens", "12", "--temperature", "0", "--json", *extra],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[0]), proc.stderr


def test_cpu_device_matches_the_cpu_build(cuda_bin, inferd_bin, model_path):
    got, _ = _generate(cuda_bin, model_path, "--device", "cpu")
    want, _ = _generate(inferd_bin, model_path)
    assert got["outputs"][0]["token_ids"] == want["outputs"][0]["token_ids"]


def test_auto_device_falls_back_to_the_cpu_without_a_gpu(cuda_bin, inferd_bin, model_path):
    if _has_gpu():
        pytest.skip("a GPU is present: auto picks it")
    got, err = _generate(cuda_bin, model_path)
    assert "running on the CPU" in err
    assert "memory on cpu" in err
    want, _ = _generate(inferd_bin, model_path)
    assert got["outputs"][0]["token_ids"] == want["outputs"][0]["token_ids"]


def test_cuda_device_without_a_gpu_is_a_clear_error(cuda_bin, model_path):
    if _has_gpu():
        pytest.skip("a GPU is present")
    for args in (["memory", "--device", "cuda"], ["generate", "--device", "cuda:0", "--prompt", "hi"]):
        proc = subprocess.run([cuda_bin, *args, "--model", model_path], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1
        assert "error: no CUDA device:" in proc.stderr, proc.stderr


def test_cpu_build_names_the_missing_backend(inferd_bin, model_path):
    proc = subprocess.run([inferd_bin, "memory", "--device", "cuda", "--model", model_path], capture_output=True,
                          text=True, timeout=120)
    if proc.returncode == 0:
        pytest.skip("this inferd was built with CUDA and found a GPU")
    if "no CUDA device" in proc.stderr:
        pytest.skip("this inferd was built with CUDA")
    assert "this build of inferd has no CUDA backend" in proc.stderr
    assert "-DINFERD_CUDA=ON" in proc.stderr


def test_memory_json_is_consistent(inferd_bin, model_path):
    proc = subprocess.run([inferd_bin, "memory", "--device", "cpu", "--model", model_path, "--kv-cache-memory",
                           "256MiB", "--max-model-len", "2048", "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout)
    assert m["device"].startswith("cpu")
    assert 0 < m["kv_cache_bytes"] <= 256 << 20
    assert m["kv_cache_tokens"] * 2 * 30 * 3 * 64 * 2 == m["kv_cache_bytes"]  # K+V, 30 layers, 3 kv heads x 64, fp16
    assert m["max_model_len"] == 2048
    assert abs(m["max_concurrency"] - m["kv_cache_tokens"] / 2048) < 1e-9
    assert m["weights_bytes"] > 90 << 20
