"""Teacher-forced logits and greedy continuations: inferd vs llama.cpp (Python binding).

llama.cpp side: the `llama_cpp` ctypes binding from the llama-cpp-python sdist, loaded on
our build of libllama (see conftest.py), with logits_all=True and flash attention off.

A third, exact reference arbitrates: a float64 numpy forward pass of the same GGUF (Llama
architecture; weights dequantized by gguf-py, no activation quantization, no f16 KV cache).

Two model files, two kinds of assertion:

* The F32 copy of the embedded model (conftest.f32_model_path: the same weights, exactly
  dequantized). Here llama.cpp's arithmetic is not lossy: its F32 matmuls do not quantize
  activations, its K/V cache is F32 (type_k=type_v=GGML_TYPE_F32) and flash attention is off.
  Both engines compute the same function in fp32, so the issue's strict thresholds are
  asserted here: top-1 agreement >= 99% over >= 1000 teacher-forced positions and identical
  greedy 16-token continuations for every prompt.

* The embedded Q4_1 model as shipped. llama.cpp's CPU Q4_1 matmul quantizes activations to
  Q8_1 and its default K/V cache is f16, so its logits carry noise of their own (mean |diff|
  ~0.19 from the exact forward, 96% top-1): llama.cpp with an F32 K/V cache agrees with its
  own f16-K/V run only ~96% of the time. 99% agreement with a reference that does not agree
  with itself to 99% measures llama.cpp's rounding, not inferd. So on Q4_1 the figures are
  still measured and recorded, and the assertions are relative to that noise: inferd vs
  llama.cpp top-1 >= (llama.cpp f16-KV vs llama.cpp f32-KV) - 1 point, greedy divergences
  from llama.cpp only at llama.cpp near-ties (its own top-2 margin < 0.5).

inferd itself runs Q4_0/Q4_1/Q8_0 matmuls two ways (backend/cpu/qgemm.h):
* by default, like llama.cpp, on int8 activations (per 32-element block, d = amax / 127).
  There is no tight reference for that at the level of a whole model: the activation
  quantization is discontinuous, and a 1e-7 relative perturbation before each rounding
  (fp32 vs float64 upstream) moves the logits of this model by as much as the quantization
  itself (mean |diff| ~0.17, 92% top-1, measured with the float64 forward). So the default
  path is held to llama.cpp's own standard: against the exact forward it must be at least
  as close as llama.cpp (top-1, mean |diff|), and its greedy continuations may leave the
  exact forward's only at near-ties (top-2 margin < 0.5). The kernel arithmetic itself is
  checked exactly, one matmul at a time, in tests/unit/backend/test_qgemm.cc.
* with INFERD_CPU_MATMUL=fp32 (and --kv-cache-dtype float32; auto is fp16 for quantized
  weights, as in llama.cpp), in fp32 on dequantized weights: top-1 >= 99.9% against the
  exact forward and identical greedy continuations (the strict check of everything but
  the activation quantization and the half K/V cache).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import llamacpp_greedy

TEXT = Path("/usr/share/common-licenses/Apache-2.0")
NUM_POSITIONS = 1200          # >= 1000 teacher-forced positions
MIN_TOP1_AGREEMENT = 0.99     # strict threshold (F32 copy, lossless llama.cpp arithmetic)
MIN_TOP1_VS_EXACT = 0.999     # inferd (fp32 matmuls) vs the exact float64 forward (Q4_1)
FP32_MATMUL = {"INFERD_CPU_MATMUL": "fp32"}   # the exact mode: fp32 matmuls ...
EXACT_KV = ["--kv-cache-dtype", "float32"]   # ... and an fp32 K/V cache (auto is fp16 here)
NOISE_FLOOR_SLACK = 0.01      # Q4_1: inferd-vs-llama.cpp >= llama.cpp-vs-itself - 1 point
NEAR_TIE_MARGIN = 0.5         # Q4_1: greedy may leave llama.cpp only where its top-2 gap < this
GREEDY_TOKENS = 16

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Once upon a time, in a small village by the sea, there lived",
    "Q: What is 17 multiplied by 23?\nA:",
    "Photosynthesis is the process by which plants",
    "1, 2, 3, 5, 8, 13,",
    "Translate to French: \"Good morning, how are you?\"\n",
    "<html>\n<head>\n  <title>",
]


def _log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def _token_ids(llama_vocab):
    if not TEXT.is_file():
        pytest.skip(f"{TEXT} not found (Debian base-files)")
    ids = llama_vocab.tokenize(TEXT.read_bytes(), add_bos=True, special=False)
    assert len(ids) >= NUM_POSITIONS, f"{TEXT} gives only {len(ids)} tokens"
    return ids[:NUM_POSITIONS]


@pytest.fixture(scope="module")
def teacher_ids(llama_vocab):
    return _token_ids(llama_vocab)


def _llamacpp_teacher_logits(llm, ids):
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float32, copy=True)


def _inferd_teacher_logits(run_inferd_json, model, ids, d, env=None, extra=()):
    ids_file, npy = d / "ids.json", d / "logits.npy"
    ids_file.write_text(json.dumps(ids))
    out = run_inferd_json(["logits", "--model", model, "--token-ids-file", ids_file,
                           "--npy", npy, "--json", *extra], env=env)
    logits = np.load(npy) if npy.is_file() else None
    return np.asarray(out["argmax"], dtype=np.int64), logits


@pytest.fixture(scope="module")
def llamacpp_logits(llama_model, teacher_ids):
    """llama.cpp on the shipped Q4_1 model, default f16 K/V cache."""
    return _llamacpp_teacher_logits(llama_model, teacher_ids)


@pytest.fixture(scope="module")
def llamacpp_logits_f32kv(llama_models, model_path, teacher_ids):
    """llama.cpp on the shipped Q4_1 model, F32 K/V cache: its own noise floor."""
    return _llamacpp_teacher_logits(llama_models(model_path, "f32"), teacher_ids)


@pytest.fixture(scope="module")
def inferd_logits(run_inferd_json, model_path, teacher_ids, tmp_path_factory):
    """Default matmuls: int8 activations."""
    return _inferd_teacher_logits(run_inferd_json, model_path, teacher_ids,
                                  tmp_path_factory.mktemp("logits"))


@pytest.fixture(scope="module")
def inferd_logits_fp32(run_inferd_json, model_path, teacher_ids, tmp_path_factory):
    """INFERD_CPU_MATMUL=fp32 and an fp32 K/V cache: fp32 arithmetic on dequantized weights."""
    return _inferd_teacher_logits(run_inferd_json, model_path, teacher_ids,
                                  tmp_path_factory.mktemp("logits_fp32"), env=FP32_MATMUL,
                                  extra=EXACT_KV)


@pytest.fixture(scope="module")
def llama_model_f32(llama_models, f32_model_path):
    """llama.cpp on the F32 copy, F32 K/V cache, flash attention off."""
    return llama_models(f32_model_path, "f32")


@pytest.fixture(scope="module")
def llamacpp_f32_logits(llama_model_f32, teacher_ids):
    return _llamacpp_teacher_logits(llama_model_f32, teacher_ids)


@pytest.fixture(scope="module")
def inferd_f32_logits(run_inferd_json, f32_model_path, teacher_ids, tmp_path_factory):
    return _inferd_teacher_logits(run_inferd_json, f32_model_path, teacher_ids,
                                  tmp_path_factory.mktemp("logits_f32"))


def _compare_teacher(ours_argmax, ours, ref, n):
    """Figures of inferd (argmax, logits or None) vs reference logits `ref`; and the mask."""
    assert ours_argmax.shape == (n,), f"inferd returned {ours_argmax.shape[0]} argmax, want {n}"
    agree = ours_argmax == ref.argmax(axis=1)
    figures = {"positions": n, "top1_agreement": float(agree.mean()),
               "disagreements": int((~agree).sum())}
    if ours is not None:
        assert ours.shape == ref.shape, (ours.shape, ref.shape)
        diff = np.abs(ours.astype(np.float64) - ref)
        figures.update(max_abs_logit_diff=float(diff.max()),
                       mean_abs_logit_diff=float(diff.mean()),
                       logit_range=float(np.abs(ref).max()))
        # The --npy logits and the --json argmax must describe the same run.
        assert (ours.argmax(axis=1) == ours_argmax).all(), "--npy and --json argmax disagree"
        figures["max_abs_logprob_diff"] = float(
            np.abs(_log_softmax(ours) - _log_softmax(ref)).max())
    # Where they disagree, how close was the reference's own top-2 (near-ties explain flips)?
    if (~agree).any():
        top2 = np.sort(ref[~agree], axis=1)[:, -2:]
        figures["max_ref_top2_margin_at_disagreement"] = float((top2[:, 1] - top2[:, 0]).max())
    return figures, agree


def test_llamacpp_logits_sane(llamacpp_logits, teacher_ids, reference_report):
    """The reference side alone: teacher-forced top-1 accuracy of llama.cpp on the text."""
    assert np.isfinite(llamacpp_logits).all()
    pred = llamacpp_logits[:-1].argmax(axis=1)
    acc = float((pred == np.asarray(teacher_ids[1:])).mean())
    reference_report.record("teacher_forced_apache2", positions=len(teacher_ids),
                            llamacpp_next_token_accuracy=acc)
    assert acc > 0.3, "llama.cpp predicts the licence text badly: wrong model or tokens?"


def test_llamacpp_noise_floor(llamacpp_logits, llamacpp_logits_f32kv, reference_report):
    """llama.cpp vs itself on Q4_1: f16 K/V cache (its default) vs F32 K/V cache."""
    agree = llamacpp_logits.argmax(1) == llamacpp_logits_f32kv.argmax(1)
    diff = np.abs(llamacpp_logits.astype(np.float64) - llamacpp_logits_f32kv)
    reference_report.record("teacher_forced_apache2",
                            llamacpp_f16kv_vs_f32kv_top1=float(agree.mean()),
                            llamacpp_f16kv_vs_f32kv_max_abs=float(diff.max()),
                            llamacpp_f16kv_vs_f32kv_mean_abs=float(diff.mean()))
    assert np.isfinite(llamacpp_logits_f32kv).all()


def test_teacher_forced_top1_agreement(llamacpp_logits, llamacpp_logits_f32kv, inferd_logits,
                                       teacher_ids, reference_report):
    """Shipped Q4_1 model: inferd vs llama.cpp (default f16 K/V), against llama.cpp's noise.

    llama.cpp's Q4_1 arithmetic is lossy (Q8_1 activations, f16 K/V), so the bar is its own
    reproducibility: inferd must agree with it at least as well as llama.cpp with an F32 K/V
    cache does, less 1 point. The 99% threshold is asserted on the F32 copy
    (test_teacher_forced_top1_agreement_f32), where llama.cpp is not lossy; inferd's own
    exactness on Q4_1 is asserted against the float64 forward (test_inferd_vs_exact_forward).
    """
    ours_argmax, ours = inferd_logits
    figures, agree = _compare_teacher(ours_argmax, ours, llamacpp_logits, len(teacher_ids))
    floor = float((llamacpp_logits.argmax(1) == llamacpp_logits_f32kv.argmax(1)).mean())
    figures["min_top1_agreement"] = floor - NOISE_FLOOR_SLACK
    reference_report.record("teacher_forced_apache2", **figures)
    rate = figures["top1_agreement"]
    assert rate >= floor - NOISE_FLOOR_SLACK, (
        f"top-1 agreement {rate:.2%} < llama.cpp's own f16-KV vs f32-KV agreement {floor:.2%}"
        f" - {NOISE_FLOOR_SLACK:.0%} over {len(teacher_ids)} positions; "
        f"first disagreements at {np.nonzero(~agree)[0][:10].tolist()}")


def test_f32_copy_is_faithful(model_path, f32_model_path, gguf_module, reference_report):
    """The F32 copy has the source's metadata (every KV pair with its type, tokenizer arrays
    included; general.file_type = ALL_F32) and its tensors, all F32, same names and shapes."""
    src, cpy = gguf_module.GGUFReader(str(model_path)), gguf_module.GGUFReader(str(f32_model_path))
    keys = [k for k in src.fields if not k.startswith("GGUF.")]
    assert keys == [k for k in cpy.fields if not k.startswith("GGUF.")]
    for k in keys:
        assert src.fields[k].types == cpy.fields[k].types, k
        if k != "general.file_type":
            assert src.fields[k].contents() == cpy.fields[k].contents(), k
    assert cpy.fields["general.file_type"].contents() == int(gguf_module.LlamaFileType.ALL_F32)
    assert [(t.name, list(t.shape)) for t in src.tensors] == \
        [(t.name, list(t.shape)) for t in cpy.tensors]
    F32 = gguf_module.GGMLQuantizationType.F32
    assert all(t.tensor_type == F32 for t in cpy.tensors)
    reference_report.record("f32copy", path=str(f32_model_path), tensors=len(cpy.tensors),
                            source_types=",".join(sorted({t.tensor_type.name
                                                          for t in src.tensors})))


def test_teacher_forced_top1_agreement_f32(llamacpp_f32_logits, inferd_f32_logits, teacher_ids,
                                           reference_report):
    """F32 copy: inferd vs llama.cpp (F32 weights, F32 K/V, no flash attention): >= 99%."""
    ours_argmax, ours = inferd_f32_logits
    n = len(teacher_ids)
    figures, agree = _compare_teacher(ours_argmax, ours, llamacpp_f32_logits, n)
    acc = float((llamacpp_f32_logits[:-1].argmax(1) == np.asarray(teacher_ids[1:])).mean())
    figures["llamacpp_next_token_accuracy"] = acc
    reference_report.record("teacher_forced_apache2_f32copy", **figures)
    rate = figures["top1_agreement"]
    assert n >= 1000
    assert rate >= MIN_TOP1_AGREEMENT, (
        f"F32 copy: top-1 agreement {rate:.2%} < {MIN_TOP1_AGREEMENT:.0%} over {n} positions; "
        f"first disagreements at {np.nonzero(~agree)[0][:10].tolist()}")


@pytest.fixture(scope="module")
def inferd_greedy(run_inferd_json, model_path, f32_model_path):
    """inferd_greedy(prompt, f32=False, fp32_matmul=False) -> our CLI's RequestOutput for a
    greedy 16-token run on the shipped model (or its F32 copy), memoized."""
    memo = {}

    def get(prompt, f32=False, fp32_matmul=False):
        key = (prompt, f32, fp32_matmul)
        if key not in memo:
            memo[key] = run_inferd_json(
                ["generate", "--model", f32_model_path if f32 else model_path, "--prompt", prompt,
                 "--max-tokens", GREEDY_TOKENS, "--temperature", "0", "--ignore-eos", "--json",
                 *(EXACT_KV if fp32_matmul else [])],
                env=FP32_MATMUL if fp32_matmul else None)
        return memo[key]

    return get


_GREEDY_TALLY: dict[str, list] = {}


def _tally(reference_report, key, ok):
    """Records "k/n prompts" figures under greedy16_summary."""
    _GREEDY_TALLY.setdefault(key, []).append(bool(ok))
    reference_report.record("greedy16_summary", **{
        k: f"{sum(v)}/{len(v)}" for k, v in _GREEDY_TALLY.items()})


def _greedy_compare(prompt, llm, llama_vocab, inferd_greedy, reference_report, f32):
    prompt_ids = llama_vocab.tokenize(prompt.encode(), add_bos=True, special=False)
    ref, margins = llamacpp_greedy(llm, prompt_ids, GREEDY_TOKENS)
    res = inferd_greedy(prompt, f32=f32)
    ours = list(res["outputs"][0]["token_ids"])
    same_prompt = list(res["prompt_token_ids"]) == prompt_ids
    first_diff = next((i for i, (a, b) in enumerate(zip(ours, ref)) if a != b),
                      None if len(ours) == len(ref) else min(len(ours), len(ref)))
    margin = (margins[first_diff] if first_diff is not None and first_diff < len(margins)
              else None)
    name = ("greedy16_f32copy_" if f32 else "greedy16_") + \
        prompt[:24].encode("unicode_escape").decode()
    reference_report.record(name, identical=(ours == ref), prompt_ids_identical=same_prompt,
                            first_divergence=first_diff, ref_margin_at_divergence=margin)
    _tally(reference_report, ("f32copy" if f32 else "q4_1") + "_identical_to_llamacpp",
           ours == ref)
    assert same_prompt, f"prompt tokens differ: inferd {res['prompt_token_ids']} vs {prompt_ids}"
    msg = (f"greedy continuation differs at token {first_diff} (llama.cpp top-2 margin there "
           f"{margin}):\n inferd   {ours}\n llama.cpp {ref}\n"
           f" inferd text {res['outputs'][0].get('text')!r}\n"
           f" llama.cpp text {llama_vocab.detokenize(ref).decode(errors='replace')!r}")
    return ours, ref, margin, msg


@pytest.mark.parametrize("prompt", PROMPTS, ids=[f"p{i}" for i in range(len(PROMPTS))])
def test_greedy_matches_llamacpp_f32(prompt, llama_model_f32, llama_vocab, inferd_greedy,
                                     reference_report):
    """F32 copy, lossless llama.cpp arithmetic: the 16 greedy tokens must be identical."""
    ours, ref, _, msg = _greedy_compare(prompt, llama_model_f32, llama_vocab, inferd_greedy,
                                        reference_report, f32=True)
    assert ours == ref, "F32 copy: " + msg


@pytest.mark.parametrize("prompt", PROMPTS, ids=[f"p{i}" for i in range(len(PROMPTS))])
def test_greedy_matches_llamacpp(prompt, llama_model, llama_vocab, inferd_greedy,
                                 reference_report):
    """Shipped Q4_1 model: a greedy divergence from llama.cpp is allowed only at a llama.cpp
    near-tie (its own top-2 logit margin < 0.5 at the first differing token), where its Q8_1
    activation / f16 K/V rounding (mean |logit error| ~0.19 vs the exact forward) can flip the
    argmax. inferd's continuation must in any case equal the exact float64 forward's
    (test_greedy_matches_exact_forward); identity with llama.cpp is asserted on the F32 copy."""
    ours, ref, margin, msg = _greedy_compare(prompt, llama_model, llama_vocab, inferd_greedy,
                                             reference_report, f32=False)
    if ours != ref:
        assert margin is not None and margin < NEAR_TIE_MARGIN, (
            f"divergence is not at a llama.cpp near-tie (margin >= {NEAR_TIE_MARGIN}): " + msg)


# ---------------------------------------------------------------------------------------
# Exact reference: float64 numpy forward of the GGUF (Llama architecture only).


class ExactLlama:
    """Float64 forward of a Llama-architecture GGUF; weights dequantized by gguf-py."""

    def __init__(self, path, gguf):
        r = gguf.GGUFReader(str(path))

        def field(key):
            return r.fields[key].contents()

        arch = field("general.architecture")
        if arch != "llama":
            pytest.skip(f"exact numpy forward covers the llama architecture, not {arch}")
        self.n_layer = int(field("llama.block_count"))
        self.n_head = int(field("llama.attention.head_count"))
        self.n_head_kv = int(field("llama.attention.head_count_kv"))
        self.eps = float(field("llama.attention.layer_norm_rms_epsilon"))
        theta = float(field("llama.rope.freq_base")) if "llama.rope.freq_base" in r.fields \
            else 10000.0
        self.w = {}
        for t in r.tensors:
            a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
            self.w[t.name] = a.reshape([int(d) for d in reversed(t.shape)])  # ~1 GB for 135M
        emb = self.w["token_embd.weight"]                       # [vocab, hidden]
        self.out_name = "output.weight" if "output.weight" in self.w else "token_embd.weight"
        self.out = self.w[self.out_name]
        self.head_dim = emb.shape[1] // self.n_head
        self.inv_freq = theta ** (-np.arange(0, self.head_dim, 2) / self.head_dim)
        self._greedy_memo = {}

    def _rms(self, x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * w

    def _rope(self, q, pos):                                    # q [n, heads, head_dim]
        ang = pos[:, None] * self.inv_freq                      # [n, head_dim/2]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        q0, q1 = q[..., 0::2], q[..., 1::2]                     # GGUF llama: adjacent pairs
        out = np.empty_like(q)
        out[..., 0::2] = q0 * c - q1 * s
        out[..., 1::2] = q0 * s + q1 * c
        return out

    def _mm(self, x, name):
        return x @ self.w[name].T

    def logits(self, ids, last_only=False):
        """[n, vocab] float64 logits of a full causal forward over ids."""
        n, hd, nh, nkv = len(ids), self.head_dim, self.n_head, self.n_head_kv
        w, mm = self.w.__getitem__, self._mm
        x = self.w["token_embd.weight"][ids]                    # [n, hidden]
        pos = np.arange(n, dtype=np.float64)
        mask = np.triu(np.full((n, n), -np.inf), 1)
        for layer in range(self.n_layer):
            p = f"blk.{layer}."
            h = self._rms(x, w(p + "attn_norm.weight"))
            q = self._rope(mm(h, p + "attn_q.weight").reshape(n, nh, hd), pos)
            k = self._rope(mm(h, p + "attn_k.weight").reshape(n, nkv, hd), pos)
            v = mm(h, p + "attn_v.weight").reshape(n, nkv, hd)
            o = np.empty((n, nh, hd))
            for head in range(nh):
                kv = head // (nh // nkv)
                sc = q[:, head] @ k[:, kv].T / np.sqrt(hd) + mask     # [n, n]
                sc = np.exp(sc - sc.max(1, keepdims=True))
                o[:, head] = (sc / sc.sum(1, keepdims=True)) @ v[:, kv]
            x = x + mm(o.reshape(n, nh * hd), p + "attn_output.weight")
            h = self._rms(x, w(p + "ffn_norm.weight"))
            g = mm(h, p + "ffn_gate.weight")
            u = mm(h, p + "ffn_up.weight")
            x = x + mm(g / (1.0 + np.exp(-g)) * u, p + "ffn_down.weight")
        x = self._rms(x[-1:] if last_only else x, w("output_norm.weight"))
        return mm(x, self.out_name)

    def greedy(self, prompt_ids, n, margins=None):
        """Argmax continuation (memoized); extends `margins` with each step's top-2 logit
        margin."""
        key = (tuple(prompt_ids), n)
        if key not in self._greedy_memo:
            ids, steps = list(prompt_ids), []
            for _ in range(n):
                row = self.logits(ids, last_only=True)[-1]
                top2 = np.sort(row)[-2:]
                steps.append(float(top2[1] - top2[0]))
                ids.append(int(np.argmax(row)))
            self._greedy_memo[key] = (ids[len(prompt_ids):], steps)
        tokens, steps = self._greedy_memo[key]
        if margins is not None:
            margins.extend(steps)
        return list(tokens)


@pytest.fixture(scope="module")
def exact_model(model_path, gguf_module):
    return ExactLlama(model_path, gguf_module)


@pytest.fixture(scope="module")
def exact_logits(exact_model, teacher_ids):
    return exact_model.logits(teacher_ids)


def test_llamacpp_vs_exact_forward(exact_logits, llamacpp_logits, reference_report):
    """llama.cpp's own distance from the exact forward: the noise floor of the comparisons."""
    diff = np.abs(llamacpp_logits - exact_logits)
    rate = float((llamacpp_logits.argmax(1) == exact_logits.argmax(1)).mean())
    reference_report.record("teacher_forced_apache2", llamacpp_vs_exact_top1=rate,
                            llamacpp_vs_exact_max_abs=float(diff.max()),
                            llamacpp_vs_exact_mean_abs=float(diff.mean()))
    # Sanity of the exact forward itself: llama.cpp is close to it, if not exact.
    assert rate > 0.9 and float(diff.mean()) < 1.0


def _vs(ref_logits, inferd, prefix):
    ours_argmax, ours = inferd
    rate = float((ours_argmax == ref_logits.argmax(1)).mean())
    figures = {f"{prefix}_top1": rate}
    if ours is not None:
        diff = np.abs(ours - ref_logits)
        figures.update({f"{prefix}_max_abs": float(diff.max()),
                        f"{prefix}_mean_abs": float(diff.mean())})
    return rate, figures


def test_inferd_vs_exact_forward(exact_logits, inferd_logits_fp32, reference_report):
    """Shipped Q4_1 model, fp32 matmuls: inferd vs the exact float64 forward, >= 99.9%."""
    rate, figures = _vs(exact_logits, inferd_logits_fp32, "inferd_fp32_vs_exact")
    reference_report.record("teacher_forced_apache2", **figures)
    assert rate >= MIN_TOP1_VS_EXACT, f"inferd (fp32) vs exact forward top-1 agreement {rate:.2%}"


def test_inferd_int8_as_close_as_llamacpp(exact_logits, inferd_logits, llamacpp_logits,
                                          reference_report):
    """Default int8 matmuls vs the plain exact forward: no further from it than llama.cpp
    (which also quantizes activations, and rounds K/V to f16)."""
    rate, figures = _vs(exact_logits, inferd_logits, "inferd_int8_vs_exact")
    reference_report.record("teacher_forced_apache2", **figures)
    ref_rate = float((llamacpp_logits.argmax(1) == exact_logits.argmax(1)).mean())
    assert rate >= ref_rate - NOISE_FLOOR_SLACK, (
        f"inferd (int8) vs exact {rate:.2%}, llama.cpp vs exact {ref_rate:.2%}")
    if inferd_logits[1] is not None:
        ours_mean = figures["inferd_int8_vs_exact_mean_abs"]
        ref_mean = float(np.abs(llamacpp_logits - exact_logits).mean())
        assert ours_mean <= ref_mean * 1.1, (ours_mean, ref_mean)


def test_f32_copy_vs_exact_forward(exact_logits, llamacpp_f32_logits, inferd_f32_logits,
                                   reference_report):
    """F32 copy: its weights are the exact dequantized values, so the float64 forward of the
    Q4_1 file is the exact forward of the F32 copy too. Both engines should sit on it."""
    figures = {}
    for who, logits in (("llamacpp", llamacpp_f32_logits), ("inferd", inferd_f32_logits[1])):
        if logits is None:
            continue
        diff = np.abs(logits.astype(np.float64) - exact_logits)
        figures[f"{who}_vs_exact_top1"] = float(
            (logits.argmax(1) == exact_logits.argmax(1)).mean())
        figures[f"{who}_vs_exact_max_abs"] = float(diff.max())
        figures[f"{who}_vs_exact_mean_abs"] = float(diff.mean())
    reference_report.record("teacher_forced_apache2_f32copy", **figures)
    ours_rate = float((inferd_f32_logits[0] == exact_logits.argmax(1)).mean())
    assert ours_rate >= MIN_TOP1_VS_EXACT, f"inferd (F32 copy) vs exact forward {ours_rate:.2%}"


@pytest.mark.parametrize("prompt", PROMPTS, ids=[f"p{i}" for i in range(len(PROMPTS))])
def test_greedy_matches_exact_forward(prompt, exact_model, llama_vocab, inferd_greedy,
                                      reference_report):
    """Shipped Q4_1 model, fp32 matmuls: greedy 16 tokens equal the exact float64 forward's."""
    prompt_ids = llama_vocab.tokenize(prompt.encode(), add_bos=True, special=False)
    ref = exact_model.greedy(prompt_ids, GREEDY_TOKENS)
    ours = list(inferd_greedy(prompt, fp32_matmul=True)["outputs"][0]["token_ids"])
    name = "greedy16_" + prompt[:24].encode("unicode_escape").decode()
    reference_report.record(name, fp32_identical_to_exact=(ours == ref))
    _tally(reference_report, "q4_1_fp32_identical_to_exact", ours == ref)
    assert ours == ref, f"greedy vs exact forward:\n inferd {ours}\n exact  {ref}"


@pytest.mark.parametrize("prompt", PROMPTS, ids=[f"p{i}" for i in range(len(PROMPTS))])
def test_greedy_int8_near_exact_forward(prompt, exact_model, llama_vocab, inferd_greedy,
                                        reference_report):
    """Default int8 matmuls: greedy 16 tokens leave the exact forward's only where its own
    top-2 margin < NEAR_TIE_MARGIN (the rule llama.cpp is held to above)."""
    prompt_ids = llama_vocab.tokenize(prompt.encode(), add_bos=True, special=False)
    ours = list(inferd_greedy(prompt)["outputs"][0]["token_ids"])
    margins = []
    ref = exact_model.greedy(prompt_ids, GREEDY_TOKENS, margins)
    first = next((i for i, (a, b) in enumerate(zip(ours, ref)) if a != b), None)
    name = "greedy16_" + prompt[:24].encode("unicode_escape").decode()
    margin = margins[first] if first is not None else None  # exact forward's, at divergence
    reference_report.record(name, int8_identical_to_exact=(ours == ref),
                            int8_first_divergence=first, exact_margin_at_int8_divergence=margin)
    _tally(reference_report, "q4_1_int8_identical_to_exact", ours == ref)
    if first is not None:
        assert margin < NEAR_TIE_MARGIN, (
            f"greedy differs at token {first} where the exact forward's top-2 margin is "
            f"{margin:.3f}:\n inferd {ours}\n exact  {ref}")
