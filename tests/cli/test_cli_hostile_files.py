"""Sizes that come from model files are checked before anything is allocated (issue 15):
a config that asks for more than the machine holds is a clear error naming the field,
never std::bad_alloc or an OOM kill."""

import json
import shutil

import pytest


@pytest.fixture(scope="module")
def hf_dir(run, model_path, tmp_path_factory):
    d = tmp_path_factory.mktemp("hf")
    run("export-hf", model_path, d / "model")
    return d / "model"


def with_config(src, dst, **changes):
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg.update(changes)
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def test_absurd_context_length_is_out_of_range(run, hf_dir, tmp_path):
    d = with_config(hf_dir, tmp_path / "m", max_position_embeddings=1e12)
    p = run("generate", "--model", d, "--prompt", "hi", "--max-tokens", "2", check=False)
    assert p.returncode == 1, p.stderr  # an error exit, not SIGABRT (-6) from bad_alloc
    assert "max_position_embeddings in config.json must be between 1 and 1073741824, got 1000000000000" in p.stderr


def test_context_whose_kv_cache_cannot_fit_names_the_field(run, hf_dir, tmp_path):
    # 1e9 tokens pass the range check, but one sequence's KV cache would need ~21 TiB.
    d = with_config(hf_dir, tmp_path / "m", max_position_embeddings=1_000_000_000)
    p = run("generate", "--model", d, "--prompt", "hi", "--max-tokens", "2", check=False)
    assert p.returncode == 1, p.stderr
    assert "max_position_embeddings in config.json" in p.stderr and "more than the" in p.stderr, p.stderr
    assert "--max-model-len" in p.stderr
    # The way out the message names works.
    ok = run("generate", "--model", d, "--prompt", "hi", "--max-tokens", "2", "--max-model-len", "2048")
    assert ok.returncode == 0


def test_kv_cache_memory_beyond_the_machine_is_an_error(run, model_path):
    p = run("generate", "--model", model_path, "--prompt", "hi", "--kv-cache-memory", "4096TiB", check=False)
    assert p.returncode == 1 and "--kv-cache-memory" in p.stderr and "more than the" in p.stderr, p.stderr


def test_dummy_weights_beyond_the_machine_are_an_error(run, hf_dir, tmp_path):
    d = with_config(hf_dir, tmp_path / "m", hidden_size=65536, intermediate_size=1 << 20, num_attention_heads=512,
                    num_key_value_heads=512, num_hidden_layers=512)
    p = run("generate", "--model", d, "--load-format", "dummy", "--prompt", "hi", check=False)
    assert p.returncode == 1 and "dummy weights" in p.stderr and "more than the" in p.stderr, p.stderr
