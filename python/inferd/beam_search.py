"""Beam search on top of LLM.generate, with vLLM's semantics (vllm/entrypoints/llm.py
``LLM.beam_search`` and vllm/beam_search.py):

- every step runs each live beam for one token and asks for its top ``2 * beam_width``
  logprobs (plus the chosen token): each entry is a candidate extension;
- a candidate ending in EOS (unless ``ignore_eos``) is complete; the other candidates of
  a prompt are ranked and the best ``beam_width`` live on;
- the score is ``cum_logprob / len(tokens) ** length_penalty``, where ``tokens`` holds the
  prompt and the generated tokens, and a final EOS is not counted (vLLM's definition);
- after ``max_tokens`` steps, complete and live beams are ranked together and the best
  ``beam_width`` are returned, their ``text`` decoded from all their tokens.

Every step is one engine batch; prefix caching makes the shared prompt prefixes cheap.
The bookkeeping is the engine's C++ BeamSearch (src/engine/beam_search.h), which the
server's ``use_beam_search`` runs as well.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional, Tuple

from . import _C
from .outputs import BeamSearchOutput, BeamSearchSequence, Logprob
from .sampling_params import BeamSearchParams, SamplingParams

if TYPE_CHECKING:
    from .llm import LLM


def beam_search_score(tokens: List[int], cum_logprob: float, eos_token_id: Optional[int],
                      length_penalty: float = 1.0) -> float:
    """vLLM's score of a beam: cum_logprob / len(tokens) ** length_penalty, a final EOS not counted."""
    return _C.beam_score(list(tokens), cum_logprob, -1 if eos_token_id is None else eos_token_id, length_penalty)


def run_beam_search(llm: "LLM", prompts: List[Tuple[Optional[str], List[int]]], params: BeamSearchParams,
                    use_tqdm: bool = False, concurrency_limit: Optional[int] = None) -> List[BeamSearchOutput]:
    if not isinstance(params, BeamSearchParams):
        raise TypeError(f"params must be BeamSearchParams, got {type(params).__name__}")
    tokenizer = llm.get_tokenizer()
    eos = tokenizer.eos_token_id
    width = params.beam_width
    step_params = SamplingParams(logprobs=2 * width, max_tokens=1, temperature=params.temperature,
                                 ignore_eos=True)
    for _, ids in prompts:  # fail before any step runs, as generate does
        llm._check_request(ids, step_params)
    chunk = concurrency_limit or len(prompts) or 1
    bar = None
    if use_tqdm:
        from ._progress import _tqdm
        if _tqdm is not None:
            bar = _tqdm(total=params.max_tokens * ((len(prompts) + chunk - 1) // chunk), desc="Beam search",
                        unit="token", unit_scale=False)
    outputs = []
    try:
        for start in range(0, len(prompts), chunk):
            # The bookkeeping (candidates, scores, pruning) is the C++ BeamSearch that the
            # server's use_beam_search runs too; Python only runs each step's batch.
            search = _C.BeamSearch([ids for _, ids in prompts[start:start + chunk]], width, params.max_tokens,
                                   params.ignore_eos, params.temperature, params.length_penalty,
                                   -1 if eos is None else eos, llm.max_model_len)
            while True:
                beams = search.next_step()
                if not beams:
                    break
                results = llm._run([(None, tokens) for tokens in beams], [step_params] * len(beams), None, False)
                search.update([out.outputs[0].logprobs[0] for out in results])
                if bar is not None:
                    bar.update(1)
            for seqs in search.finish(Logprob):
                best = [BeamSearchSequence(tokens=s["tokens"], logprobs=s["logprobs"], cum_logprob=s["cum_logprob"],
                                           finish_reason=s["finish_reason"]) for s in seqs]
                for beam in best:
                    beam.text = tokenizer.decode(beam.tokens, skip_special_tokens=params.skip_special_tokens)
                outputs.append(BeamSearchOutput(sequences=best))
    finally:
        if bar is not None:
            bar.close()
    return outputs
