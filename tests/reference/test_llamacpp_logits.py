"""Teacher-forced logits and greedy continuations: inferd vs llama.cpp (Python binding).

llama.cpp side: the `llama_cpp` ctypes binding from the llama-cpp-python sdist, loaded on
our build of libllama (see conftest.py), with logits_all=True.
"""

import json
from pathlib import Path

import numpy as np
import pytest

TEXT = Path("/usr/share/common-licenses/Apache-2.0")
NUM_POSITIONS = 1200          # >= 1000 teacher-forced positions
MIN_TOP1_AGREEMENT = 0.99
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


@pytest.fixture(scope="module")
def llamacpp_logits(llama_model, teacher_ids):
    llama_model.reset()
    llama_model.eval(teacher_ids)
    return np.array(llama_model.scores[: len(teacher_ids)], dtype=np.float32, copy=True)


@pytest.fixture(scope="module")
def inferd_logits(run_inferd_json, model_path, teacher_ids, tmp_path_factory):
    d = tmp_path_factory.mktemp("logits")
    ids_file, npy = d / "ids.json", d / "logits.npy"
    ids_file.write_text(json.dumps(teacher_ids))
    out = run_inferd_json(["logits", "--model", model_path, "--token-ids-file", ids_file,
                           "--npy", npy, "--json"])
    logits = np.load(npy) if npy.is_file() else None
    return np.asarray(out["argmax"], dtype=np.int64), logits


def test_llamacpp_logits_sane(llamacpp_logits, teacher_ids, reference_report):
    """The reference side alone: teacher-forced top-1 accuracy of llama.cpp on the text."""
    assert np.isfinite(llamacpp_logits).all()
    pred = llamacpp_logits[:-1].argmax(axis=1)
    acc = float((pred == np.asarray(teacher_ids[1:])).mean())
    reference_report.record("teacher_forced_apache2", positions=len(teacher_ids),
                            llamacpp_next_token_accuracy=acc)
    assert acc > 0.3, "llama.cpp predicts the licence text badly: wrong model or tokens?"


def test_teacher_forced_top1_agreement(llamacpp_logits, inferd_logits, teacher_ids,
                                       reference_report):
    ours_argmax, ours = inferd_logits
    n = len(teacher_ids)
    assert ours_argmax.shape == (n,), f"inferd returned {ours_argmax.shape[0]} argmax, want {n}"
    ref_argmax = llamacpp_logits.argmax(axis=1)
    agree = ours_argmax == ref_argmax
    rate = float(agree.mean())
    figures = {"positions": n, "top1_agreement": rate, "disagreements": int((~agree).sum())}
    if ours is not None:
        assert ours.shape == llamacpp_logits.shape, (ours.shape, llamacpp_logits.shape)
        diff = np.abs(ours.astype(np.float64) - llamacpp_logits)
        figures.update(max_abs_logit_diff=float(diff.max()),
                       mean_abs_logit_diff=float(diff.mean()),
                       logit_range=float(np.abs(llamacpp_logits).max()))
        # The --npy logits and the --json argmax must describe the same run.
        assert (ours.argmax(axis=1) == ours_argmax).all(), "--npy and --json argmax disagree"
        figures["max_abs_logprob_diff"] = float(
            np.abs(_log_softmax(ours) - _log_softmax(llamacpp_logits)).max())
    # Where they disagree, how close was llama.cpp's own top-2 (near-ties explain flips)?
    if (~agree).any():
        top2 = np.sort(llamacpp_logits[~agree], axis=1)[:, -2:]
        figures["max_ref_top2_margin_at_disagreement"] = float((top2[:, 1] - top2[:, 0]).max())
    reference_report.record("teacher_forced_apache2", **figures)
    assert rate >= MIN_TOP1_AGREEMENT, (
        f"top-1 agreement {rate:.2%} < {MIN_TOP1_AGREEMENT:.0%} over {n} positions; "
        f"first disagreements at {np.nonzero(~agree)[0][:10].tolist()}")


def llamacpp_greedy(llama_model, prompt_ids, n):
    """Greedy (argmax) continuation, EOS ignored, one token per decode like a server."""
    llama_model.reset()
    llama_model.eval(prompt_ids)
    out, margins = [], []
    for _ in range(n):
        row = llama_model.scores[llama_model.n_tokens - 1]
        tok = int(np.argmax(row))
        top2 = np.sort(row)[-2:]
        margins.append(float(top2[1] - top2[0]))
        out.append(tok)
        llama_model.eval([tok])
    return out, margins


@pytest.mark.parametrize("prompt", PROMPTS, ids=[f"p{i}" for i in range(len(PROMPTS))])
def test_greedy_matches_llamacpp(prompt, llama_model, llama_vocab, run_inferd_json, model_path,
                                 reference_report):
    prompt_ids = llama_vocab.tokenize(prompt.encode(), add_bos=True, special=False)
    ref, margins = llamacpp_greedy(llama_model, prompt_ids, GREEDY_TOKENS)
    res = run_inferd_json(["generate", "--model", model_path, "--prompt", prompt,
                           "--max-tokens", GREEDY_TOKENS, "--temperature", "0", "--ignore-eos",
                           "--json"])
    ours = list(res["outputs"][0]["token_ids"])
    same_prompt = list(res["prompt_token_ids"]) == prompt_ids
    first_diff = next((i for i, (a, b) in enumerate(zip(ours, ref)) if a != b),
                      None if len(ours) == len(ref) else min(len(ours), len(ref)))
    name = "greedy16_" + prompt[:24].encode("unicode_escape").decode()
    reference_report.record(name, identical=(ours == ref), prompt_ids_identical=same_prompt,
                            first_divergence=first_diff,
                            ref_margin_at_divergence=(margins[first_diff]
                                                      if first_diff is not None
                                                      and first_diff < len(margins) else None))
    assert same_prompt, f"prompt tokens differ: inferd {res['prompt_token_ids']} vs {prompt_ids}"
    assert ours == ref, (
        f"greedy continuation differs at token {first_diff}:\n inferd   {ours}\n llama.cpp {ref}\n"
        f" inferd text {res['outputs'][0].get('text')!r}\n"
        f" llama.cpp text {llama_vocab.detokenize(ref).decode(errors='replace')!r}")
