"""SamplingParams / BeamSearchParams: vLLM's defaults, normalisation and ValueError messages."""

import math

import pytest

from inferd import BeamSearchParams, SamplingParams


def test_defaults_are_vllms():
    p = SamplingParams()
    assert (p.n, p.presence_penalty, p.frequency_penalty, p.repetition_penalty) == (1, 0.0, 0.0, 1.0)
    assert (p.temperature, p.top_p, p.top_k, p.min_p) == (1.0, 1.0, 0, 0.0)
    assert p.seed is None
    assert p.stop == [] and p.stop_token_ids == []
    assert p.max_tokens == 16 and p.min_tokens == 0
    assert p.logprobs is None and p.prompt_logprobs is None
    assert p.ignore_eos is False and p.include_stop_str_in_output is False
    assert p.skip_special_tokens is True and p.spaces_between_special_tokens is True
    assert p.detokenize is True and p.logit_bias is None and p.truncate_prompt_tokens is None
    assert p.sampling_type == "random"


def test_normalisation():
    p = SamplingParams(stop="END", stop_token_ids=[5, 2, 5], seed=-1, logprobs=True, prompt_logprobs=True)
    assert p.stop == ["END"]
    assert p.stop_token_ids == [5, 2]  # duplicates dropped, order kept
    assert p.seed is None  # -1 means no seed, as vLLM
    assert p.logprobs == 1 and p.prompt_logprobs == 1
    # Greedy: the other sampling knobs are reset (vLLM does the same).
    g = SamplingParams(temperature=0.0, top_p=0.5, top_k=7, min_p=0.3)
    assert (g.top_p, g.top_k, g.min_p) == (1.0, 0, 0.0)
    assert g.sampling_type == "greedy"
    assert SamplingParams(seed=3).sampling_type == "random_seed"
    # logit_bias keys become ints and values are clamped to [-100, 100].
    assert SamplingParams(logit_bias={"7": 250.0, 8: -1000}).logit_bias == {7: 100.0, 8: -100.0}


# (kwargs, vLLM's message). The value is printed as passed: -1 stays "-1", -1.0 "-1.0".
INVALID = [
    (dict(n=0), "n must be at least 1, got 0."),
    (dict(n=1.5), "n must be an int, but is of type <class 'float'>"),
    (dict(presence_penalty=2.5), "presence_penalty must be in [-2, 2], got 2.5."),
    (dict(frequency_penalty=-3), "frequency_penalty must be in [-2, 2], got -3."),
    (dict(repetition_penalty=0.0), "repetition_penalty must be greater than zero, got 0.0."),
    (dict(repetition_penalty=math.inf), "repetition_penalty must be a finite number, got inf."),
    (dict(temperature=-1), "temperature must be non-negative, got -1."),
    (dict(temperature=-0.5), "temperature must be non-negative, got -0.5."),
    (dict(temperature=math.nan), "temperature must be a finite number, got nan."),
    (dict(top_p=0), "top_p must be in (0, 1], got 0."),
    (dict(top_p=1.5), "top_p must be in (0, 1], got 1.5."),
    (dict(top_k=-5), "top_k must be 0 (disable), or at least 1, got -5."),
    (dict(top_k=2.5), "top_k must be an integer, got float"),
    (dict(min_p=1.2), "min_p must be in [0, 1], got 1.2."),
    (dict(max_tokens=0), "max_tokens must be at least 1, got 0."),
    (dict(min_tokens=-1), "min_tokens must be greater than or equal to 0, got -1."),
    (dict(max_tokens=4, min_tokens=5), "min_tokens must be less than or equal to max_tokens=4, got 5."),
    (dict(logprobs=-2), "logprobs must be non-negative or -1, got -2."),
    (dict(prompt_logprobs=-3), "prompt_logprobs must be non-negative or -1, got -3."),
    (dict(stop=["ok", ""]), "stop cannot contain an empty string."),
    (dict(stop_token_ids=[1, "2"]), "stop_token_ids must contain only integers, got [1, '2']."),
    (dict(stop="x", detokenize=False),
     "stop strings are only supported when detokenize is True. Set detokenize=True to use stop."),
    (dict(temperature=0, n=2), "n must be 1 when using greedy sampling, got 2."),
    (dict(truncate_prompt_tokens=0), "truncate_prompt_tokens must be >= 1, got 0"),
    (dict(logit_bias={"a": 1.0}), "logit_bias contains key(s) that cannot be converted to integer token IDs: ['a']"),
]


@pytest.mark.parametrize("kwargs,message", INVALID, ids=[m[:40] for _, m in INVALID])
def test_invalid_values_raise_vllms_message(kwargs, message):
    with pytest.raises(ValueError) as e:
        SamplingParams(**kwargs)
    assert str(e.value) == message


@pytest.mark.parametrize("kwargs", [dict(bad_words=["x"]), dict(allowed_token_ids=[1, 2]),
                                    dict(logits_processors=[print])])
def test_unsupported_features_are_refused_not_ignored(kwargs):
    with pytest.raises(ValueError, match="not supported by inferd"):
        SamplingParams(**kwargs)


def test_repr_clone_and_equality():
    p = SamplingParams(temperature=0.7, top_p=0.9, max_tokens=512, stop_token_ids=[2])
    r = repr(p)
    assert r.startswith("SamplingParams(n=1, presence_penalty=0.0, frequency_penalty=0.0, repetition_penalty=1.0, "
                        "temperature=0.7, top_p=0.9, top_k=0, min_p=0.0, seed=None, stop=[], stop_token_ids=[2],")
    assert "max_tokens=512" in r
    q = p.clone()
    assert q == p and q is not p
    q.stop_token_ids.append(3)
    assert p.stop_token_ids == [2] and q != p


def test_beam_search_params():
    b = BeamSearchParams(beam_width=4, max_tokens=16)
    assert (b.ignore_eos, b.temperature, b.length_penalty) == (False, 0.0, 1.0)
    with pytest.raises(ValueError, match="beam_width must be at least 1, got 0."):
        BeamSearchParams(beam_width=0, max_tokens=4)
    with pytest.raises(ValueError, match="max_tokens must be at least 1, got 0."):
        BeamSearchParams(beam_width=2, max_tokens=0)
