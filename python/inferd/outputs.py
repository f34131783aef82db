"""Output classes with vLLM's field names and reprs: RequestOutput, CompletionOutput,
Logprob, RequestMetrics, and beam search's BeamSearchSequence / BeamSearchOutput."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union


@dataclass
class Logprob:
    """The log probability of one token, its rank (1 = most likely) and its text."""

    logprob: float
    rank: Optional[int] = None
    decoded_token: Optional[str] = None


# One position: token id -> Logprob (the chosen token plus the top-N).
PositionLogprobs = Dict[int, Logprob]
SampleLogprobs = List[PositionLogprobs]
PromptLogprobs = List[Optional[PositionLogprobs]]


@dataclass
class RequestMetrics:
    """Timestamps (seconds since the epoch) of one request, as vLLM's RequestMetrics."""

    arrival_time: float
    last_token_time: float
    first_scheduled_time: Optional[float] = None
    first_token_time: Optional[float] = None
    time_in_queue: Optional[float] = None
    finished_time: Optional[float] = None


@dataclass
class CompletionOutput:
    """One generated sequence of a request.

    ``cumulative_logprob`` and ``logprobs`` are None unless ``SamplingParams.logprobs`` was
    set (as in vLLM). ``finish_reason`` is "stop", "length" or "abort"; ``stop_reason`` is the
    stop string or stop token id that ended it (None for EOS or length).
    """

    index: int
    text: str
    token_ids: List[int]
    cumulative_logprob: Optional[float]
    logprobs: Optional[SampleLogprobs]
    finish_reason: Optional[str] = None
    stop_reason: Union[int, str, None] = None

    def finished(self) -> bool:
        return self.finish_reason is not None

    def __repr__(self) -> str:
        return (f"CompletionOutput(index={self.index}, "
                f"text={self.text!r}, "
                f"token_ids={self.token_ids}, "
                f"cumulative_logprob={self.cumulative_logprob}, "
                f"logprobs={self.logprobs}, "
                f"finish_reason={self.finish_reason}, "
                f"stop_reason={self.stop_reason})")


class RequestOutput:
    """The output of one request: its prompt and ``n`` CompletionOutputs (vLLM's fields)."""

    def __init__(
        self,
        request_id: str,
        prompt: Optional[str],
        prompt_token_ids: Optional[List[int]],
        prompt_logprobs: Optional[PromptLogprobs],
        outputs: List[CompletionOutput],
        finished: bool,
        metrics: Optional[RequestMetrics] = None,
        lora_request: Any = None,
        encoder_prompt: Optional[str] = None,
        encoder_prompt_token_ids: Optional[List[int]] = None,
        num_cached_tokens: Optional[int] = None,
        multi_modal_placeholders: Optional[Dict[str, Any]] = None,
        kv_transfer_params: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.request_id = request_id
        self.prompt = prompt
        self.prompt_token_ids = prompt_token_ids
        self.prompt_logprobs = prompt_logprobs
        self.outputs = outputs
        self.finished = finished
        self.metrics = metrics
        self.lora_request = lora_request
        self.encoder_prompt = encoder_prompt
        self.encoder_prompt_token_ids = encoder_prompt_token_ids
        self.num_cached_tokens = num_cached_tokens
        self.multi_modal_placeholders = multi_modal_placeholders or {}
        self.kv_transfer_params = kv_transfer_params

    def __repr__(self) -> str:
        return (f"RequestOutput(request_id={self.request_id}, "
                f"prompt={self.prompt!r}, "
                f"prompt_token_ids={self.prompt_token_ids}, "
                f"encoder_prompt={self.encoder_prompt!r}, "
                f"encoder_prompt_token_ids={self.encoder_prompt_token_ids}, "
                f"prompt_logprobs={self.prompt_logprobs}, "
                f"outputs={self.outputs}, "
                f"finished={self.finished}, "
                f"metrics={self.metrics}, "
                f"lora_request={self.lora_request}, "
                f"num_cached_tokens={self.num_cached_tokens}, "
                f"multi_modal_placeholders={self.multi_modal_placeholders})")


@dataclass
class BeamSearchSequence:
    """One beam: ``tokens`` are the prompt's followed by the generated ones (as vLLM);
    ``logprobs`` has one dict per generated token; ``text`` is filled when returned."""

    tokens: List[int]
    logprobs: List[PositionLogprobs]
    cum_logprob: float = 0.0
    text: Optional[str] = None
    finish_reason: Optional[str] = None
    stop_reason: Union[int, str, None] = None
    lora_request: Any = None
    multi_modal_data: Any = None
    mm_processor_kwargs: Optional[Dict[str, Any]] = None


@dataclass
class BeamSearchOutput:
    """The best ``beam_width`` sequences of one prompt, best first."""

    sequences: List[BeamSearchSequence] = field(default_factory=list)
