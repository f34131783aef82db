"""SamplingParams and BeamSearchParams with vLLM's field names, defaults and checks.

The checks and their messages follow vLLM's ``SamplingParams._verify_args`` (vLLM V1,
without the newest ``temperature <= 2`` cap): an invalid value raises ``ValueError`` with
the text vLLM prints, e.g. ``temperature must be non-negative, got -1.``. Values are
printed as the caller passed them (``-1`` stays ``-1``, ``-1.0`` stays ``-1.0``), as in vLLM.

Fields that vLLM has and inferd's engine does not implement (``bad_words``,
``allowed_token_ids``, ``logits_processors``) are accepted with their defaults and rejected
with a clear ``ValueError`` when set. ``structured_outputs`` (``StructuredOutputsParams``, or
the older ``guided_decoding``) constrains the output with XGrammar, as vLLM does.
"""

from __future__ import annotations

import copy
import json as _json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

_SAMPLING_EPS = 1e-5  # temperature below this means greedy (as vLLM and the engine)


@dataclass
class StructuredOutputsParams:
    """vLLM's ``StructuredOutputsParams``: exactly one of ``json`` (a JSON schema: dict or
    string), ``regex``, ``choice``, ``grammar`` (EBNF), ``json_object`` or ``structural_tag``.
    ``disable_any_whitespace`` removes free whitespace from JSON output. ``disable_fallback``
    is accepted (inferd has one backend, XGrammar, and never falls back);
    ``whitespace_pattern`` and ``disable_additional_properties`` (other backends' options)
    raise ``ValueError``."""

    json: Optional[Union[str, Dict[str, Any]]] = None
    regex: Optional[str] = None
    choice: Optional[List[str]] = None
    grammar: Optional[str] = None
    json_object: Optional[bool] = None
    disable_fallback: bool = False
    disable_any_whitespace: bool = False
    disable_additional_properties: bool = False
    whitespace_pattern: Optional[str] = None
    structural_tag: Optional[str] = None

    def __post_init__(self) -> None:
        count = sum([self.json is not None, self.regex is not None, self.choice is not None,
                     self.grammar is not None, bool(self.json_object), self.structural_tag is not None])
        if count == 0:
            raise ValueError("You must use one kind of structured outputs constraint but none are specified: "
                             f"{self.__dict__}")
        if count > 1:
            raise ValueError("You can only use one kind of structured outputs constraint but multiple are "
                             f"specified: {self.__dict__}")
        if self.whitespace_pattern is not None or self.disable_additional_properties:
            raise ValueError("whitespace_pattern and disable_additional_properties are not supported by inferd's "
                             "structured-output backend (XGrammar)")

    def _to_engine(self) -> Dict[str, Any]:
        schema = self.json
        if schema is not None and not isinstance(schema, str):
            if hasattr(schema, "model_json_schema"):  # a pydantic model class, as vLLM accepts
                schema = schema.model_json_schema()
            schema = _json.dumps(schema)
        return {"json": schema, "regex": self.regex, "choice": None if self.choice is None else list(self.choice),
                "grammar": self.grammar, "json_object": bool(self.json_object),
                "structural_tag": self.structural_tag, "disable_any_whitespace": self.disable_any_whitespace}


def _structured(value: Any) -> Optional[StructuredOutputsParams]:
    """StructuredOutputsParams from itself, a dict of its fields, or vLLM's older
    GuidedDecodingParams-like object (same field names)."""
    if value is None or isinstance(value, StructuredOutputsParams):
        return value
    if isinstance(value, dict):
        return StructuredOutputsParams(**value)
    names = ("json", "regex", "choice", "grammar", "json_object", "structural_tag", "disable_any_whitespace")
    if any(hasattr(value, n) for n in names):
        return StructuredOutputsParams(**{n: getattr(value, n) for n in names if getattr(value, n, None) is not None})
    raise ValueError(f"structured_outputs must be a StructuredOutputsParams, got {type(value).__name__}")


class SamplingParams:
    """Sampling parameters for text generation (vLLM's ``SamplingParams``).

    Args (vLLM's meaning and defaults):
        n: number of outputs per prompt.
        presence_penalty, frequency_penalty: in [-2, 2]; 0 disables.
        repetition_penalty: > 0; 1 disables (applies to prompt and output tokens).
        temperature: >= 0; 0 means greedy.
        top_p: in (0, 1]. top_k: 0 (or -1) disables, else >= 1. min_p: in [0, 1].
        seed: per-request seed (same seed, same tokens); -1 means none.
        stop: string(s) that end generation (not in the text unless
            ``include_stop_str_in_output``). stop_token_ids: token ids that end generation.
        ignore_eos: keep generating after EOS.
        max_tokens: maximum generated tokens per output (None: up to the context length).
        min_tokens: EOS / stop tokens are suppressed before this many tokens.
        logprobs: top-N logprobs per output token (plus the chosen one); -1: the whole vocabulary.
        prompt_logprobs: top-N logprobs per prompt token.
        detokenize: when False, ``text`` is empty (token ids only).
        skip_special_tokens, spaces_between_special_tokens: detokenizer options.
        logit_bias: {token id: bias} added to the logits (clamped to [-100, 100] as vLLM).
        truncate_prompt_tokens: keep only the last k prompt tokens.
    """

    _FIELDS = (
        "n", "presence_penalty", "frequency_penalty", "repetition_penalty", "temperature", "top_p", "top_k",
        "min_p", "seed", "stop", "stop_token_ids", "bad_words", "include_stop_str_in_output", "ignore_eos",
        "max_tokens", "min_tokens", "logprobs", "prompt_logprobs", "detokenize", "skip_special_tokens",
        "spaces_between_special_tokens", "logit_bias", "allowed_token_ids", "truncate_prompt_tokens",
        "structured_outputs", "extra_args",
    )

    def __init__(
        self,
        n: int = 1,
        presence_penalty: float = 0.0,
        frequency_penalty: float = 0.0,
        repetition_penalty: float = 1.0,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        min_p: float = 0.0,
        seed: Optional[int] = None,
        stop: Optional[Union[str, List[str]]] = None,
        stop_token_ids: Optional[List[int]] = None,
        bad_words: Optional[List[str]] = None,
        include_stop_str_in_output: bool = False,
        ignore_eos: bool = False,
        max_tokens: Optional[int] = 16,
        min_tokens: int = 0,
        logprobs: Optional[int] = None,
        prompt_logprobs: Optional[int] = None,
        detokenize: bool = True,
        skip_special_tokens: bool = True,
        spaces_between_special_tokens: bool = True,
        logit_bias: Optional[Dict[int, float]] = None,
        allowed_token_ids: Optional[List[int]] = None,
        truncate_prompt_tokens: Optional[int] = None,
        structured_outputs: Any = None,
        guided_decoding: Any = None,
        logits_processors: Any = None,
        output_kind: Any = None,
        extra_args: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.n = n
        self.presence_penalty = presence_penalty
        self.frequency_penalty = frequency_penalty
        self.repetition_penalty = repetition_penalty
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.min_p = min_p
        self.seed = None if seed == -1 else seed
        if stop is None:
            self.stop: List[str] = []
        elif isinstance(stop, str):
            self.stop = [stop]
        else:
            self.stop = list(stop)
        # Duplicates dropped, order kept (as vLLM).
        self.stop_token_ids: List[int] = [] if stop_token_ids is None else list(dict.fromkeys(stop_token_ids))
        self.bad_words: List[str] = [] if bad_words is None else list(bad_words)
        self.include_stop_str_in_output = include_stop_str_in_output
        self.ignore_eos = ignore_eos
        self.max_tokens = max_tokens
        self.min_tokens = min_tokens
        self.logprobs = 1 if logprobs is True else logprobs
        self.prompt_logprobs = 1 if prompt_logprobs is True else prompt_logprobs
        self.detokenize = detokenize
        self.skip_special_tokens = skip_special_tokens
        self.spaces_between_special_tokens = spaces_between_special_tokens
        self.logit_bias = self._convert_logit_bias(logit_bias)
        self.allowed_token_ids = allowed_token_ids
        self.truncate_prompt_tokens = truncate_prompt_tokens
        self.structured_outputs = _structured(structured_outputs if structured_outputs is not None else guided_decoding)
        self.extra_args = extra_args
        self._logits_processors = logits_processors
        self.output_kind = output_kind

        self._verify_args()
        self._verify_supported()
        if self.temperature < _SAMPLING_EPS:
            # Zero temperature means greedy sampling; the other knobs do not apply.
            self.top_p = 1.0
            self.top_k = 0
            self.min_p = 0.0
            self._verify_greedy_sampling()

    # --- vLLM's checks -------------------------------------------------------------------

    @staticmethod
    def _convert_logit_bias(logit_bias: Optional[Dict[Any, float]]) -> Optional[Dict[int, float]]:
        if logit_bias is None:
            return None
        out: Dict[int, float] = {}
        invalid = []
        for token, bias in logit_bias.items():
            try:
                token_id = int(token)
            except (TypeError, ValueError):
                invalid.append(token)
                continue
            out[token_id] = min(100.0, max(-100.0, bias))
        if invalid:
            raise ValueError(f"logit_bias contains key(s) that cannot be converted to integer token IDs: {invalid!r}")
        return out

    def _verify_args(self) -> None:
        if not isinstance(self.n, int) or isinstance(self.n, bool):
            raise ValueError(f"n must be an int, but is of type {type(self.n)}")
        if self.n < 1:
            raise ValueError(f"n must be at least 1, got {self.n}.")
        if not -2.0 <= self.presence_penalty <= 2.0:
            raise ValueError(f"presence_penalty must be in [-2, 2], got {self.presence_penalty}.")
        if not -2.0 <= self.frequency_penalty <= 2.0:
            raise ValueError(f"frequency_penalty must be in [-2, 2], got {self.frequency_penalty}.")
        if not math.isfinite(self.repetition_penalty):
            raise ValueError(f"repetition_penalty must be a finite number, got {self.repetition_penalty}.")
        if self.repetition_penalty <= 0.0:
            raise ValueError(f"repetition_penalty must be greater than zero, got {self.repetition_penalty}.")
        if not math.isfinite(self.temperature):
            raise ValueError(f"temperature must be a finite number, got {self.temperature}.")
        if self.temperature < 0.0:
            raise ValueError(f"temperature must be non-negative, got {self.temperature}.")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}.")
        # -1 is quietly accepted as "disabled"; 0 is preferred.
        if self.top_k < -1:
            raise ValueError(f"top_k must be 0 (disable), or at least 1, got {self.top_k}.")
        if not isinstance(self.top_k, int):
            raise ValueError(f"top_k must be an integer, got {type(self.top_k).__name__}")
        if not 0.0 <= self.min_p <= 1.0:
            raise ValueError(f"min_p must be in [0, 1], got {self.min_p}.")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}.")
        if self.min_tokens < 0:
            raise ValueError(f"min_tokens must be greater than or equal to 0, got {self.min_tokens}.")
        if self.max_tokens is not None and self.min_tokens > self.max_tokens:
            raise ValueError(
                f"min_tokens must be less than or equal to max_tokens={self.max_tokens}, got {self.min_tokens}.")
        if self.logprobs is not None and self.logprobs != -1 and self.logprobs < 0:
            raise ValueError(f"logprobs must be non-negative or -1, got {self.logprobs}.")
        if self.prompt_logprobs is not None and self.prompt_logprobs != -1 and self.prompt_logprobs < 0:
            raise ValueError(f"prompt_logprobs must be non-negative or -1, got {self.prompt_logprobs}.")
        if self.truncate_prompt_tokens is not None and self.truncate_prompt_tokens < 1:
            raise ValueError(f"truncate_prompt_tokens must be >= 1, got {self.truncate_prompt_tokens}")
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in self.stop_token_ids):
            raise ValueError(f"stop_token_ids must contain only integers, got {self.stop_token_ids}.")
        if any(not s for s in self.stop):
            raise ValueError("stop cannot contain an empty string.")
        if self.stop and not self.detokenize:
            raise ValueError("stop strings are only supported when detokenize is True. Set detokenize=True to use stop.")
        if any(not w for w in self.bad_words):
            raise ValueError(f"bad_words cannot contain an empty string. Got bad_words={self.bad_words}")

    def _verify_greedy_sampling(self) -> None:
        if self.n > 1:
            raise ValueError(f"n must be 1 when using greedy sampling, got {self.n}.")

    def _verify_supported(self) -> None:
        # inferd checks beyond vLLM's: what the engine does not implement, and token ids
        # that cannot be token ids.
        unsupported = [
            ("bad_words", bool(self.bad_words)),
            ("allowed_token_ids", self.allowed_token_ids is not None),
            ("logits_processors", bool(self._logits_processors)),
        ]
        for name, is_set in unsupported:
            if is_set:
                raise ValueError(f"{name} is not supported by inferd's engine.")
        for t in self.stop_token_ids:
            if t < 0:
                raise ValueError(f"stop_token_ids must be non-negative token ids, got {t}.")
        if self.logit_bias:
            for t in self.logit_bias:
                if t < 0:
                    raise ValueError(f"logit_bias token ids must be non-negative, got {t}.")

    # --- helpers ------------------------------------------------------------------------

    @property
    def sampling_type(self) -> str:
        if self.temperature < _SAMPLING_EPS:
            return "greedy"
        return "random_seed" if self.seed is not None else "random"

    def clone(self) -> "SamplingParams":
        return copy.deepcopy(self)

    def _to_engine(self, vocab_size: int) -> Dict[str, Any]:
        """The dict the C++ binding reads (python/bindings.cc ParamsFromDict)."""
        d = {f: getattr(self, f) for f in (
            "n", "presence_penalty", "frequency_penalty", "repetition_penalty", "temperature", "top_p", "top_k",
            "min_p", "seed", "stop", "stop_token_ids", "ignore_eos", "max_tokens", "min_tokens",
            "include_stop_str_in_output", "skip_special_tokens", "spaces_between_special_tokens")}
        d["logprobs"] = vocab_size if self.logprobs == -1 else self.logprobs
        d["prompt_logprobs"] = vocab_size if self.prompt_logprobs == -1 else self.prompt_logprobs
        d["logit_bias"] = dict(self.logit_bias) if self.logit_bias else {}
        d["structured_outputs"] = None if self.structured_outputs is None else self.structured_outputs._to_engine()
        return d

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SamplingParams):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self._FIELDS)

    def __repr__(self) -> str:
        return (f"SamplingParams(n={self.n}, "
                f"presence_penalty={self.presence_penalty}, "
                f"frequency_penalty={self.frequency_penalty}, "
                f"repetition_penalty={self.repetition_penalty}, "
                f"temperature={self.temperature}, "
                f"top_p={self.top_p}, "
                f"top_k={self.top_k}, "
                f"min_p={self.min_p}, "
                f"seed={self.seed}, "
                f"stop={self.stop}, "
                f"stop_token_ids={self.stop_token_ids}, "
                f"bad_words={self.bad_words}, "
                f"include_stop_str_in_output={self.include_stop_str_in_output}, "
                f"ignore_eos={self.ignore_eos}, "
                f"max_tokens={self.max_tokens}, "
                f"min_tokens={self.min_tokens}, "
                f"logprobs={self.logprobs}, "
                f"prompt_logprobs={self.prompt_logprobs}, "
                f"skip_special_tokens={self.skip_special_tokens}, "
                f"spaces_between_special_tokens={self.spaces_between_special_tokens}, "
                f"truncate_prompt_tokens={self.truncate_prompt_tokens}, "
                f"structured_outputs={self.structured_outputs}, "
                f"extra_args={self.extra_args})")


@dataclass
class BeamSearchParams:
    """Beam search parameters (vLLM's ``BeamSearchParams``)."""

    beam_width: int
    max_tokens: int
    ignore_eos: bool = False
    temperature: float = 0.0
    length_penalty: float = 1.0
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = False  # for the returned text (which includes the prompt, as vLLM)

    def __post_init__(self) -> None:
        if not isinstance(self.beam_width, int) or self.beam_width < 1:
            raise ValueError(f"beam_width must be at least 1, got {self.beam_width}.")
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}.")
        if not math.isfinite(self.temperature) or self.temperature < 0.0:
            raise ValueError(f"temperature must be non-negative, got {self.temperature}.")
