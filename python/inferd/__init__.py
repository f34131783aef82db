"""inferd: a C++ LLM inference engine with vLLM's offline Python API.

    from inferd import LLM, SamplingParams

    llm = LLM(model="path/to/model.gguf")
    params = SamplingParams(temperature=0.7, top_p=0.9, max_tokens=64)
    for out in llm.generate(["The capital of France is"], params):
        print(out.outputs[0].text)

The engine (paged KV cache, continuous batching, prefix caching, quantized GGUF and
Hugging Face safetensors models) is the extension module ``inferd._C``.
"""

from .beam_search import beam_search_score
from .llm import LLM
from .outputs import (BeamSearchOutput, BeamSearchSequence, CompletionOutput, Logprob, RequestMetrics,
                      RequestOutput)
from .sampling_params import BeamSearchParams, SamplingParams, StructuredOutputsParams
from .tokenizer import Tokenizer

__version__ = "0.1.0"

__all__ = [
    "LLM",
    "SamplingParams",
    "StructuredOutputsParams",
    "BeamSearchParams",
    "RequestOutput",
    "CompletionOutput",
    "Logprob",
    "RequestMetrics",
    "BeamSearchOutput",
    "BeamSearchSequence",
    "Tokenizer",
    "beam_search_score",
    "__version__",
]
