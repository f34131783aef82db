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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional, Tuple

from .outputs import BeamSearchOutput, BeamSearchSequence
from .sampling_params import BeamSearchParams, SamplingParams

if TYPE_CHECKING:
    from .llm import LLM


def beam_search_score(tokens: List[int], cum_logprob: float, eos_token_id: Optional[int],
                      length_penalty: float = 1.0) -> float:
    seq_len = len(tokens)
    if eos_token_id is not None and tokens and tokens[-1] == eos_token_id:
        seq_len -= 1
    return cum_logprob / (seq_len ** length_penalty)


class _Instance:
    def __init__(self, prompt_ids: List[int]) -> None:
        self.beams: List[BeamSearchSequence] = [BeamSearchSequence(tokens=list(prompt_ids), logprobs=[])]
        self.completed: List[BeamSearchSequence] = []


def run_beam_search(llm: "LLM", prompts: List[Tuple[Optional[str], List[int]]], params: BeamSearchParams,
                    use_tqdm: bool = False, concurrency_limit: Optional[int] = None) -> List[BeamSearchOutput]:
    if not isinstance(params, BeamSearchParams):
        raise TypeError(f"params must be BeamSearchParams, got {type(params).__name__}")
    tokenizer = llm.get_tokenizer()
    eos = tokenizer.eos_token_id
    width = params.beam_width

    def key(beam: BeamSearchSequence) -> float:
        return beam_search_score(beam.tokens, beam.cum_logprob, eos, params.length_penalty)

    step_params = SamplingParams(logprobs=2 * width, max_tokens=1, temperature=params.temperature,
                                 ignore_eos=True)
    instances = [_Instance(ids) for _, ids in prompts]
    for _, ids in prompts:  # fail before any step runs, as generate does
        llm._check_request(ids, step_params)
    chunk = concurrency_limit or len(instances) or 1
    bar = None
    if use_tqdm:
        from ._progress import _tqdm
        if _tqdm is not None:
            bar = _tqdm(total=params.max_tokens * ((len(instances) + chunk - 1) // chunk), desc="Beam search",
                        unit="token", unit_scale=False)
    try:
        for start in range(0, len(instances), chunk):
            batch = instances[start:start + chunk]
            for _ in range(params.max_tokens):
                if not _step(llm, batch, step_params, width, eos, params.ignore_eos, key):
                    break
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()

    outputs = []
    for inst in instances:
        inst.completed.extend(inst.beams)
        best = sorted(inst.completed, key=key, reverse=True)[:width]
        for beam in best:
            if beam.finish_reason is None:
                beam.finish_reason = "length"
            beam.text = tokenizer.decode(beam.tokens, skip_special_tokens=params.skip_special_tokens)
        outputs.append(BeamSearchOutput(sequences=best))
    return outputs


def _step(llm: "LLM", instances: List[_Instance], step_params: SamplingParams, width: int, eos: Optional[int],
          ignore_eos: bool, key) -> bool:
    """Extends every live beam by one token; False when no beam is left to extend."""
    live: List[Tuple[_Instance, BeamSearchSequence]] = []
    for inst in instances:
        for beam in inst.beams:
            if len(beam.tokens) >= llm.max_model_len:  # no room for another token
                beam.finish_reason = "length"
                inst.completed.append(beam)
            else:
                live.append((inst, beam))
        inst.beams = []
    if not live:
        return False
    results = llm._run([(None, beam.tokens) for _, beam in live], [step_params] * len(live), None, False)
    candidates = {id(inst): [] for inst in instances}
    for (inst, beam), out in zip(live, results):
        position = out.outputs[0].logprobs[0]
        for token_id, lp in position.items():
            new_beam = BeamSearchSequence(tokens=beam.tokens + [token_id], logprobs=beam.logprobs + [position],
                                          cum_logprob=beam.cum_logprob + lp.logprob)
            if token_id == eos and not ignore_eos:
                new_beam.finish_reason = "stop"
                inst.completed.append(new_beam)
            else:
                candidates[id(inst)].append(new_beam)
    for inst in instances:
        inst.beams = sorted(candidates[id(inst)], key=key, reverse=True)[:width]
    return True
