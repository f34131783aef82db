"""LLM.generate on the embedded model: the issue's script, output fields and types, order,
seeds, logprobs, stops, input forms, errors, and a cross-check against the CLI."""

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

import inferd
from inferd import CompletionOutput, LLM, Logprob, RequestMetrics, RequestOutput, SamplingParams

GREEDY = SamplingParams(temperature=0, max_tokens=12)


def test_issue_script_runs_unchanged(model_path):
    # The script from the issue, with only the package name changed.
    script = f"""
from inferd import LLM, SamplingParams

llm = LLM(model={model_path!r}, dtype="bfloat16")
sampling_params = SamplingParams(temperature=0.7, top_p=0.9, max_tokens=512, stop_token_ids=[2])
outputs = llm.generate(["Write one sentence about the sea."], sampling_params)
print(outputs[0].outputs[0].text)
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip()) > 0
    assert "Processed prompts: 100%" in r.stderr  # the progress bar, on stderr as vLLM's


def test_output_fields_and_types(llm):
    out = llm.generate(["The capital of France is"], SamplingParams(temperature=0, max_tokens=8), use_tqdm=False)
    assert isinstance(out, list) and len(out) == 1
    r = out[0]
    assert isinstance(r, RequestOutput)
    assert isinstance(r.request_id, str)
    assert r.prompt == "The capital of France is"
    assert r.prompt_token_ids == llm.get_tokenizer().encode("The capital of France is")
    assert r.prompt_logprobs is None
    assert r.finished is True
    assert isinstance(r.num_cached_tokens, int) and r.num_cached_tokens >= 0
    assert isinstance(r.metrics, RequestMetrics)
    m = r.metrics
    assert m.arrival_time <= m.first_scheduled_time <= m.first_token_time <= m.last_token_time <= m.finished_time
    assert m.time_in_queue >= 0
    assert len(r.outputs) == 1
    c = r.outputs[0]
    assert isinstance(c, CompletionOutput)
    assert c.index == 0
    assert isinstance(c.text, str) and c.text
    assert isinstance(c.token_ids, list) and len(c.token_ids) == 8 and all(isinstance(t, int) for t in c.token_ids)
    assert c.cumulative_logprob is None and c.logprobs is None  # not asked for (as vLLM)
    assert c.finish_reason == "length" and c.stop_reason is None
    assert c.finished()
    # The text is the decoding of the tokens.
    assert c.text == llm.get_tokenizer().decode(c.token_ids, skip_special_tokens=True)


def test_repr_is_readable(llm):
    r = llm.generate("Hi", SamplingParams(temperature=0, max_tokens=2), use_tqdm=False)[0]
    text = repr(r)
    assert text.startswith(f"RequestOutput(request_id={r.request_id}, prompt='Hi', prompt_token_ids=")
    assert "outputs=[CompletionOutput(index=0, text=" in text
    assert "finish_reason=length, stop_reason=None)]" in text
    assert "finished=True" in text and "num_cached_tokens=" in text


def test_outputs_are_in_input_order_and_batch_invariant(llm):
    prompts = ["One, two, three,", "The sky is", "def fibonacci(n):", "Paris is the capital of", "A", "Once upon a time"]
    batch = llm.generate(prompts, GREEDY, use_tqdm=False)
    assert [o.prompt for o in batch] == prompts
    ids = [int(o.request_id) for o in batch]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for p, o in zip(prompts, batch):
        alone = llm.generate(p, GREEDY, use_tqdm=False)[0]
        assert alone.outputs[0].token_ids == o.outputs[0].token_ids, p


def test_greedy_output_equals_cli(llm, model_path, cli_path):
    prompts = ["The capital of France is", "def add(a, b):", "My favourite food is"]
    py = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=24), use_tqdm=False)
    args = [cli_path, "generate", "--model", model_path, "--json", "--temperature", "0", "--max-tokens", "24",
            "--disable-progress-bar"]
    for p in prompts:
        args += ["--prompt", p]
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    cli = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert len(cli) == len(prompts)
    for o, c in zip(py, cli):
        assert o.prompt_token_ids == c["prompt_token_ids"]
        assert o.outputs[0].token_ids == c["outputs"][0]["token_ids"]
        assert o.outputs[0].text == c["outputs"][0]["text"]
        assert o.outputs[0].finish_reason == c["outputs"][0]["finish_reason"]


def test_seeded_sampling_is_reproducible(llm, model_path):
    p = SamplingParams(temperature=1.0, top_p=0.95, max_tokens=24, seed=1234)
    a = llm.generate(["Tell me a story."] * 3, p, use_tqdm=False)
    b = llm.generate("Tell me a story.", p, use_tqdm=False)
    texts = {o.outputs[0].text for o in a} | {b[0].outputs[0].text}
    assert len(texts) == 1  # same seed, same tokens, alone or in a batch
    other = llm.generate("Tell me a story.", SamplingParams(temperature=1.0, top_p=0.95, max_tokens=24, seed=99),
                         use_tqdm=False)
    assert other[0].outputs[0].text not in texts
    # Unseeded requests take their seeds from LLM(seed=...): a fresh LLM with the same seed
    # repeats the same call sequence exactly.
    unseeded = SamplingParams(temperature=1.0, max_tokens=16)
    runs = []
    for _ in range(2):
        fresh = LLM(model=model_path, kv_cache_memory="64MiB", max_model_len=512, seed=7)
        runs.append([o.outputs[0].token_ids for o in fresh.generate(["Hello"] * 4, unseeded, use_tqdm=False)])
    assert runs[0] == runs[1]
    assert len({tuple(t) for t in runs[0]}) > 1  # different requests, different seeds


def test_n_samples(llm):
    r = llm.generate("List three animals:", SamplingParams(n=3, temperature=1.0, max_tokens=10, seed=5),
                     use_tqdm=False)[0]
    assert [c.index for c in r.outputs] == [0, 1, 2]
    assert len({tuple(c.token_ids) for c in r.outputs}) > 1


def test_logprobs(llm):
    r = llm.generate("The capital of France is", SamplingParams(temperature=0, max_tokens=6, logprobs=3,
                                                                 prompt_logprobs=2), use_tqdm=False)[0]
    c = r.outputs[0]
    assert len(c.logprobs) == len(c.token_ids) == 6
    total = 0.0
    for tok, pos in zip(c.token_ids, c.logprobs):
        assert tok in pos  # the chosen token is always there
        assert 3 <= len(pos) <= 4  # top-3 plus the chosen one when it is not among them
        assert all(isinstance(k, int) and isinstance(v, Logprob) for k, v in pos.items())
        assert pos[tok].rank == 1  # greedy picks the most likely token
        ranks = sorted(v.rank for v in pos.values())
        assert ranks[:3] == [1, 2, 3]
        assert all(v.logprob <= 0 for v in pos.values())
        best = max(pos.values(), key=lambda v: v.logprob)
        assert best.rank == 1
        assert pos[tok].decoded_token == llm.get_tokenizer().decode([tok])
        total += pos[tok].logprob
    assert math.isclose(c.cumulative_logprob, total, rel_tol=1e-5, abs_tol=1e-5)
    # prompt_logprobs: None for the first prompt token, then one dict per prompt token.
    assert len(r.prompt_logprobs) == len(r.prompt_token_ids)
    assert r.prompt_logprobs[0] is None
    for tok, pos in zip(r.prompt_token_ids[1:], r.prompt_logprobs[1:]):
        assert tok in pos and 2 <= len(pos) <= 3
    # Sampled logprobs are probabilities: they sum to at most 1 over the whole vocabulary.
    full = llm.generate("Hello", SamplingParams(temperature=0, max_tokens=1, logprobs=20), use_tqdm=False)[0]
    assert sum(math.exp(v.logprob) for v in full.outputs[0].logprobs[0].values()) <= 1.0 + 1e-4


def test_stop_conditions(llm):
    base = llm.generate("Count: 1, 2, 3,", SamplingParams(temperature=0, max_tokens=20), use_tqdm=False)[0]
    text = base.outputs[0].text
    assert "5" in text, text  # the model counts on; the stops below rely on it
    r = llm.generate("Count: 1, 2, 3,", SamplingParams(temperature=0, max_tokens=20, stop=["5"]), use_tqdm=False)[0]
    c = r.outputs[0]
    assert c.finish_reason == "stop" and c.stop_reason == "5"
    assert c.text == text[:text.index("5")]
    inc = llm.generate("Count: 1, 2, 3,", SamplingParams(temperature=0, max_tokens=20, stop=["5"],
                                                         include_stop_str_in_output=True), use_tqdm=False)[0]
    assert inc.outputs[0].text == text[:text.index("5") + 1]
    tok = base.outputs[0].token_ids[2]
    st = llm.generate("Count: 1, 2, 3,", SamplingParams(temperature=0, max_tokens=20, stop_token_ids=[tok]),
                      use_tqdm=False)[0].outputs[0]
    assert st.finish_reason == "stop" and st.stop_reason == tok
    assert st.token_ids == base.outputs[0].token_ids[:3]  # the stop token is kept in token_ids
    # EOS: a chat turn ends by itself, with stop_reason None.
    chat = llm.chat([{"role": "user", "content": "Say hello."}], SamplingParams(temperature=0, max_tokens=64),
                    use_tqdm=False)[0].outputs[0]
    assert chat.finish_reason == "stop" and chat.stop_reason is None
    ignore = llm.chat([{"role": "user", "content": "Say hello."}],
                      SamplingParams(temperature=0, max_tokens=len(chat.token_ids) + 4, ignore_eos=True),
                      use_tqdm=False)[0].outputs[0]
    assert ignore.finish_reason == "length" and len(ignore.token_ids) == len(chat.token_ids) + 4


def test_prompt_forms(llm):
    tok = llm.get_tokenizer()
    ids = tok.encode("The sky is")
    by_text = llm.generate("The sky is", GREEDY, use_tqdm=False)[0]
    forms = [
        llm.generate(["The sky is"], GREEDY, use_tqdm=False)[0],
        llm.generate({"prompt": "The sky is"}, GREEDY, use_tqdm=False)[0],
        llm.generate(ids, GREEDY, use_tqdm=False)[0],
        llm.generate([ids], GREEDY, use_tqdm=False)[0],
        llm.generate({"prompt_token_ids": ids}, GREEDY, use_tqdm=False)[0],
        llm.generate(prompt_token_ids=[ids], sampling_params=GREEDY, use_tqdm=False)[0],
    ]
    for f in forms:
        assert f.prompt_token_ids == ids
        assert f.outputs[0].token_ids == by_text.outputs[0].token_ids
    assert forms[2].prompt is None  # token prompts carry no text (as vLLM)
    # Per-prompt parameters.
    rs = llm.generate(["a", "b"], [SamplingParams(temperature=0, max_tokens=2),
                                   SamplingParams(temperature=0, max_tokens=5)], use_tqdm=False)
    assert [len(r.outputs[0].token_ids) for r in rs] == [2, 5]
    with pytest.raises(ValueError, match="The lengths of prompts and sampling_params must be the same."):
        llm.generate(["a", "b"], [GREEDY], use_tqdm=False)
    assert llm.generate([], GREEDY) == []
    # Default parameters: vLLM's (16 tokens) when the model has no generation_config.json.
    d = llm.generate("Hello", use_tqdm=False)[0]
    assert len(d.outputs[0].token_ids) <= 16


def test_truncate_detokenize_and_prefix_cache(llm):
    long_prompt = "The quick brown fox jumps over the lazy dog. " * 8
    ids = llm.get_tokenizer().encode(long_prompt)
    t = llm.generate(long_prompt, SamplingParams(temperature=0, max_tokens=4, truncate_prompt_tokens=10),
                     use_tqdm=False)[0]
    assert t.prompt_token_ids == ids[-10:]
    n = llm.generate(long_prompt, SamplingParams(temperature=0, max_tokens=4, detokenize=False), use_tqdm=False)[0]
    assert n.outputs[0].text == "" and len(n.outputs[0].token_ids) == 4
    # The same prompt again reuses its full KV blocks (prefix caching, 16-token blocks).
    again = llm.generate(long_prompt, SamplingParams(temperature=0, max_tokens=4), use_tqdm=False)[0]
    assert again.num_cached_tokens >= 16 * (len(ids) // 16 - 1)
    assert again.outputs[0].token_ids == n.outputs[0].token_ids


def test_invalid_requests_raise_before_running(llm):
    too_long = list(range(100, 100 + llm.max_model_len + 5))
    with pytest.raises(ValueError) as e:
        llm.generate([too_long], GREEDY, use_tqdm=False)
    assert f"(length {len(too_long)})" in str(e.value) and f"maximum model length of {llm.max_model_len}" in str(e.value)
    exact = list(range(100, 100 + llm.max_model_len))
    with pytest.raises(ValueError, match=f"length {llm.max_model_len}.*{llm.max_model_len}"):
        llm.generate([exact], GREEDY, use_tqdm=False)
    with pytest.raises(ValueError, match="Token id 49152 is out of vocabulary"):
        llm.generate([[1, 2, 49152]], GREEDY, use_tqdm=False)
    with pytest.raises(ValueError, match="The decoder prompt cannot be empty"):
        llm.generate([[]], GREEDY, use_tqdm=False)
    with pytest.raises(ValueError, match="Requested sample logprobs of 21, which is greater than max allowed: 20"):
        llm.generate("x", SamplingParams(logprobs=21), use_tqdm=False)
    with pytest.raises(ValueError, match="Requested prompt logprobs of 49152, which is greater than max allowed: 20"):
        llm.generate("x", SamplingParams(prompt_logprobs=-1), use_tqdm=False)
    with pytest.raises(TypeError):
        llm.generate([1.5], GREEDY, use_tqdm=False)
    # A bad request among good ones fails the whole call, and nothing is left behind.
    with pytest.raises(ValueError):
        llm.generate(["fine", too_long], GREEDY, use_tqdm=False)
    assert llm.generate("fine", GREEDY, use_tqdm=False)[0].finished


def test_construction_errors(model_path, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        LLM(model=str(tmp_path / "missing.gguf"))
    bad = tmp_path / "corrupt.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x01" * 7)
    with pytest.raises(ValueError, match="truncated"):
        LLM(model=str(bad))
    with pytest.raises(ValueError, match="not a GGUF file"):
        (tmp_path / "text.gguf").write_text("hello, I am not a model")
        LLM(model=str(tmp_path / "text.gguf"))
    # A truncated copy of the real model.
    cut = tmp_path / "cut.gguf"
    with open(model_path, "rb") as f:
        cut.write_bytes(f.read(4 << 20))
    with pytest.raises(ValueError):
        LLM(model=str(cut))
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_num_seq'; did you mean 'max_num_seqs'"):
        LLM(model=model_path, max_num_seq=4)
    with pytest.raises(ValueError, match="tensor_parallel_size=2 is not supported"):
        LLM(model=model_path, tensor_parallel_size=2)
    with pytest.raises(ValueError, match="dtype must be one of"):
        LLM(model=model_path, dtype="int3")
    with pytest.raises(ValueError, match="KV cache capacity"):
        LLM(model=model_path, kv_cache_memory="1MiB", max_model_len=8192)


def test_engine_flags_and_vllm_arguments(model_path):
    small = LLM(model=pathlib.Path(model_path), max_model_len=256, kv_cache_memory=32 << 20, max_num_seqs=2,
                max_num_batched_tokens=32, enable_prefix_caching=False, block_size=8, scheduling_policy="priority",
                gpu_memory_utilization=0.9, enforce_eager=True, trust_remote_code=True, disable_log_stats=True)
    assert small.max_model_len == 256
    info = small.model_info
    assert info["block_size"] == 8 and info["format"] == "gguf" and info["weight_type"] == "q4_1"
    # Five prompts through two sequence slots and 32-token steps: all finish, in order.
    prompts = [f"Number {i} is" for i in range(5)]
    outs = small.generate(prompts, SamplingParams(temperature=0, max_tokens=6, ignore_eos=True), use_tqdm=False,
                          priority=[4, 3, 2, 1, 0])
    assert [o.prompt for o in outs] == prompts and all(len(o.outputs[0].token_ids) == 6 for o in outs)
    assert all(o.num_cached_tokens == 0 for o in outs)  # prefix caching off


def test_device_arguments(model_path):
    # The package is built without the CUDA backend: device="cpu" and "auto" run on the CPU,
    # "cuda" is a clear error, and the GPU arguments are validated.
    cpu = LLM(model=model_path, device="cpu", max_model_len=256, kv_cache_memory="32MiB")
    auto = LLM(model=model_path, device="auto", max_model_len=256, kv_cache_memory="32MiB")
    p = SamplingParams(temperature=0, max_tokens=6, ignore_eos=True)
    a = cpu.generate(["The capital of France is"], p, use_tqdm=False)[0].outputs[0].token_ids
    b = auto.generate(["The capital of France is"], p, use_tqdm=False)[0].outputs[0].token_ids
    assert a == b
    with pytest.raises(ValueError, match="no CUDA backend"):
        LLM(model=model_path, device="cuda", max_model_len=256, kv_cache_memory="32MiB")
    with pytest.raises(ValueError, match="unknown --device 'tpu'"):
        LLM(model=model_path, device="tpu", max_model_len=256, kv_cache_memory="32MiB")
    with pytest.raises(ValueError, match=r"gpu_memory_utilization must be in \(0, 1\]"):
        LLM(model=model_path, gpu_memory_utilization=1.5)


def test_version():
    assert inferd.__version__ == "0.1.0"
    assert os.path.basename(os.path.dirname(inferd.__file__)) == "inferd"
