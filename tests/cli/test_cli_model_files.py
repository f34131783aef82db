"""Hugging Face directories with PyTorch checkpoints (pytorch_model.bin), through the CLI:
the restricted unpickler reads what torch.save writes, never runs a pickle's code, and the
same weights give the same logits whatever the file format."""

import json
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
import hf_model_files as hf  # noqa: E402

VOCAB = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "tokenizer" / "ggml-vocab-baichuan.gguf"


@pytest.fixture(scope="module")
def vocab():
    import os
    p = Path(os.environ.get("INFERD_TESTDATA_DIR", VOCAB.parents[1])) / "tokenizer" / "ggml-vocab-baichuan.gguf"
    assert p.is_file(), p
    return p


@pytest.fixture(scope="module")
def baichuan(tmp_path_factory, vocab):
    return hf.make_baichuan_dir(tmp_path_factory.mktemp("bc") / "baichuan-7B", vocab)


def _logits(run, model, tmp_path, *extra):
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps([1, 100, 2000, 31000, 5, 63999, 42, 7]))
    npy = tmp_path / "l.npy"
    run("logits", "--model", model, "--token-ids-file", ids, "--npy", npy, "--json", *extra)
    return np.load(npy)


def _copy_dir_with(src: Path, dst: Path):
    dst.mkdir()
    for f in ("config.json", "tokenizer.model", "tokenizer_config.json"):
        (dst / f).write_bytes((src / f).read_bytes())
    return dst


def test_pytorch_bin_equals_safetensors(run, baichuan, tmp_path):
    sd = hf.baichuan_state_dict(json.loads((baichuan / "config.json").read_text()))
    st = _copy_dir_with(baichuan, tmp_path / "st")
    save_file(sd, str(st / "model.safetensors"))
    a = _logits(run, baichuan, tmp_path)
    b = _logits(run, st, tmp_path)
    assert a.shape == (8, 64000)
    assert np.array_equal(a, b)  # the same floats, read from either container
    c = _logits(run, baichuan, tmp_path, "--load-format", "pt")
    assert np.array_equal(a, c)
    r = run("logits", "--model", st, "--load-format", "pt", "--token-ids-file", tmp_path / "ids.json", check=False)
    assert r.returncode != 0 and "pytorch_model.bin" in r.stderr


def test_sharded_bin_with_index_and_half_precision(run, baichuan, tmp_path):
    sd = hf.baichuan_state_dict(json.loads((baichuan / "config.json").read_text()))
    d = _copy_dir_with(baichuan, tmp_path / "sharded")
    names = list(sd)
    half = {k: sd[k].astype(np.float16) for k in names}
    shards = {"pytorch_model-00001-of-00002.bin": names[: len(names) // 2],
              "pytorch_model-00002-of-00002.bin": names[len(names) // 2:]}
    for fname, keys in shards.items():
        hf.torch_save({k: half[k] for k in keys}, d / fname)
    (d / "pytorch_model.bin.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: f for f, ks in shards.items() for k in ks}}))
    ref = _copy_dir_with(baichuan, tmp_path / "ref")
    save_file(half, str(ref / "model.safetensors"))
    assert np.array_equal(_logits(run, d, tmp_path), _logits(run, ref, tmp_path))
    # An index naming a tensor its shard does not hold is an error naming both.
    idx = json.loads((d / "pytorch_model.bin.index.json").read_text())
    idx["weight_map"]["model.extra.weight"] = "pytorch_model-00001-of-00002.bin"
    (d / "pytorch_model.bin.index.json").write_text(json.dumps(idx))
    r = run("logits", "--model", d, "--token-ids-file", tmp_path / "ids.json", check=False)
    assert r.returncode != 0 and "model.extra.weight" in r.stderr


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(run, baichuan, tmp_path):
    marker = tmp_path / "pwned"
    d = _copy_dir_with(baichuan, tmp_path / "evil")
    with zipfile.ZipFile(d / "pytorch_model.bin", "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"model.embed_tokens.weight": _Evil(marker)}, protocol=2))
    r = run("generate", "--model", d, "--prompt", "hi", "--max-tokens", "1", check=False)
    assert r.returncode != 0
    assert "refuses the pickle global 'posix.system'" in r.stderr, r.stderr
    assert not marker.exists()
    # The same with protocol 4 (STACK_GLOBAL, MEMOIZE, FRAME) and builtins.eval.
    with zipfile.ZipFile(d / "pytorch_model.bin", "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": eval}, protocol=4))
    r = run("generate", "--model", d, "--prompt", "hi", "--max-tokens", "1", check=False)
    assert r.returncode != 0 and "refuses the pickle global 'builtins.eval'" in r.stderr, r.stderr


def test_broken_checkpoints_are_clear_errors(run, baichuan, tmp_path):
    d = _copy_dir_with(baichuan, tmp_path / "broken")
    ids = tmp_path / "ids.json"
    ids.write_text("[1, 2]")

    def err(blob):
        (d / "pytorch_model.bin").write_bytes(blob)
        r = run("logits", "--model", d, "--token-ids-file", ids, check=False)
        assert r.returncode != 0
        return r.stderr

    good = (baichuan / "pytorch_model.bin").read_bytes()
    assert "end-of-central-directory" in err(good[:1000])                  # truncated
    assert "pre-1.6" in err(pickle.dumps({"a": 1}, protocol=2))          # legacy torch format
    empty = _copy_dir_with(baichuan, tmp_path / "no_weights")
    stderr = run("logits", "--model", empty, "--token-ids-file", ids, check=False).stderr
    assert "has no weights" in stderr and "pytorch_model.bin" in stderr, stderr
    # A tensor whose shape does not match the config names it.
    sd = hf.baichuan_state_dict(json.loads((baichuan / "config.json").read_text()))
    sd["model.layers.1.mlp.up_proj.weight"] = sd["model.layers.1.mlp.up_proj.weight"][:-1]
    hf.torch_save(sd, d / "pytorch_model.bin")
    stderr = run("logits", "--model", d, "--token-ids-file", ids, check=False).stderr
    assert "layer 1 up_proj" in stderr and "[127, 64]" in stderr, stderr
    # Deep nesting is bounded, not a stack overflow.
    deep = []
    for _ in range(5000):
        deep = [deep]
    sys.setrecursionlimit(20000)
    with zipfile.ZipFile(d / "pytorch_model.bin", "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": deep}, protocol=2))
    stderr = run("logits", "--model", d, "--token-ids-file", ids, check=False).stderr
    assert "nested deeper than" in stderr, stderr


def test_unknown_architecture_lists_the_supported(run, baichuan, tmp_path):
    d = _copy_dir_with(baichuan, tmp_path / "unknown")
    cfg = json.loads((d / "config.json").read_text())
    cfg["architectures"] = ["FancyNewForCausalLM"]
    (d / "config.json").write_text(json.dumps(cfg))
    r = run("generate", "--model", d, "--prompt", "hi", check=False)
    assert r.returncode != 0
    assert "FancyNewForCausalLM" in r.stderr and "Gemma3ForCausalLM" in r.stderr and "Qwen3ForCausalLM" in r.stderr


def test_baichuan_13b_name_is_alibi_unless_7b_sized(run, baichuan, tmp_path):
    # BaichuanForCausalLM (13B / Baichuan2 spelling) at a small size is ALiBi, not RoPE: the
    # same weights give other logits than under the 7B spelling (the fixture, RoPE). The
    # ALiBi numbers themselves are checked against llama.cpp in tests/reference.
    d = _copy_dir_with(baichuan, tmp_path / "b13")
    cfg = json.loads((d / "config.json").read_text())
    cfg["architectures"] = ["BaichuanForCausalLM"]
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "pytorch_model.bin").write_bytes((baichuan / "pytorch_model.bin").read_bytes())
    ids = tmp_path / "ids.json"
    ids.write_text("[5, 6, 7, 8, 9, 10, 11, 12]")
    got = {}
    for name, model in (("rope", baichuan), ("alibi", d)):
        npy = tmp_path / f"{name}.npy"
        run("logits", "--model", model, "--token-ids-file", ids, "--npy", npy)
        got[name] = np.load(npy)
    assert np.allclose(got["rope"][0], got["alibi"][0], atol=1e-5)  # position 0: no relative offset yet
    assert np.abs(got["rope"][1:] - got["alibi"][1:]).max() > 1e-2


def test_baichuan2_lm_head_rows_are_normalized(run, baichuan, tmp_path):
    # Baichuan2 (vocabulary 125696) normalises its LM head's rows at inference (NormHead), as
    # vLLM does at load: a checkpoint with the raw head gives the logits of the same
    # checkpoint whose head numpy normalised beforehand (normalising again changes nothing).
    cfg = json.loads((baichuan / "config.json").read_text())
    cfg.update(architectures=["BaichuanForCausalLM"], vocab_size=125696)
    sd = hf.baichuan_state_dict(cfg)
    head = sd["lm_head.weight"]
    assert head.shape[0] == 125696
    normed = head / np.maximum(np.linalg.norm(head, axis=1, keepdims=True), 1e-12)
    assert np.abs(head - normed).max() > 0.1  # the raw rows are far from unit norm
    got = []
    for name, h in (("raw", head), ("normed", normed.astype(np.float32))):
        d = _copy_dir_with(baichuan, tmp_path / name)
        (d / "config.json").write_text(json.dumps(cfg))
        save_file({**sd, "lm_head.weight": np.ascontiguousarray(h)}, str(d / "model.safetensors"))
        got.append(_logits(run, d, tmp_path))
    assert np.abs(got[0] - got[1]).max() < 1e-4, np.abs(got[0] - got[1]).max()
    assert np.abs(got[0]).max() > 1e-2  # informative logits
