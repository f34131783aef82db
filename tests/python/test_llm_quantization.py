"""LLM(..., quantization="int8" | "int4"): vLLM's weight-only quantization argument."""

import subprocess

import pytest

import inferd

QUESTION = "What is the capital of France? Answer in one word."


@pytest.fixture(scope="module")
def f16_dir(cli_path, model_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("quant") / "hf-f16"
    subprocess.run([cli_path, "export-hf", model_path, str(out), "--dtype", "float16"], check=True,
                   capture_output=True)
    return str(out)


@pytest.mark.parametrize("quantization,weight_type", [("int8", "q8_0 (int8 from f16)"), ("int4", "q4_K_M (int4 from f16)")])
def test_quantized_llm_generates(f16_dir, quantization, weight_type):
    llm = inferd.LLM(model=f16_dir, quantization=quantization, kv_cache_memory="64MiB", max_model_len=256)
    assert weight_type in str(llm.model_info)
    out = llm.chat([{"role": "user", "content": QUESTION}],
                   inferd.SamplingParams(temperature=0, max_tokens=16), use_tqdm=False)
    assert "Paris" in out[0].outputs[0].text


def test_quantization_argument_is_checked(model_path):
    with pytest.raises(ValueError, match="unknown quantization 'fp3'"):
        inferd.LLM(model=model_path, quantization="fp3")
    # awq / gptq name the method of a pre-quantized Hugging Face checkpoint (as in vLLM).
    with pytest.raises(ValueError, match="--quantization awq: .* is not a pre-quantized checkpoint"):
        inferd.LLM(model=model_path, quantization="awq", kv_cache_memory="64MiB")
    with pytest.raises(ValueError, match="already q4_1"):  # the embedded model is Q4_1
        inferd.LLM(model=model_path, quantization="int8", kv_cache_memory="64MiB")
