"""LLM(speculative_config=...) as in vLLM (issue 19): a dict of vLLM's fields (or its JSON
text); the outputs are those without speculation; bad configs are ValueErrors naming the
field."""
import pytest

from inferd import LLM, SamplingParams

PROMPTS = ["Repeat exactly: one two three, one two three, one two three,",
           "def square(x):\n    return x * x\n\ndef square(x):\n    return"]


def test_ngram_outputs_equal_those_without(llm, model_path):
    spec = LLM(model=model_path, kv_cache_memory="128MiB", max_model_len=512,
               speculative_config={"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 3,
                                   "adaptive": False})
    for params in (SamplingParams(temperature=0, max_tokens=32), SamplingParams(temperature=0.8, seed=3, max_tokens=32)):
        want = [o.outputs[0].token_ids for o in llm.generate(PROMPTS, params)]
        got = [o.outputs[0].token_ids for o in spec.generate(PROMPTS, params)]
        assert got == want


@pytest.mark.parametrize("config, message", [
    ({"method": "eagle3", "num_speculative_tokens": 2}, "not implemented"),
    ({"method": "ngram"}, "num_speculative_tokens"),
    ({"method": "ngram", "num_speculative_tokens": 2, "prompt_lookup_min": 0}, "prompt_lookup_min"),
    ('{"method": "suffix", "suffix_decoding_min_token_prob": 2}', "suffix_decoding_min_token_prob"),
    (["ngram"], "must be a dict"),
])
def test_bad_config_is_a_value_error(model_path, config, message):
    with pytest.raises(ValueError, match=message):
        LLM(model=model_path, kv_cache_memory="64MiB", max_model_len=256, speculative_config=config)
