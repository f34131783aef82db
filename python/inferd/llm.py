"""``LLM``: vLLM's offline entry point on inferd's C++ engine.

    from inferd import LLM, SamplingParams
    llm = LLM(model="path/to/model.gguf")
    outputs = llm.generate(["Hello, my name is"], SamplingParams(temperature=0.8, max_tokens=32))
    print(outputs[0].outputs[0].text)

A batch runs inside the engine (continuous batching, chunked prefill, prefix caching) on
the calling thread with the GIL released; Ctrl-C aborts every request of the batch and
raises KeyboardInterrupt; the LLM stays usable afterwards. One batch runs at a time per
LLM: a second thread's ``generate`` waits for the first to finish.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import json
import logging
import os
import threading
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from . import _C
from ._progress import ProgressBar
from .beam_search import run_beam_search
from .outputs import BeamSearchOutput, CompletionOutput, Logprob, RequestMetrics, RequestOutput

logger = logging.getLogger("inferd")


@functools.lru_cache(maxsize=1)
def _log_trust_remote_code() -> None:
    logger.warning("trust_remote_code has no effect: inferd never runs code from a model directory; the model "
                   "family comes from config.json ('architectures')")
from .sampling_params import BeamSearchParams, SamplingParams
from .tokenizer import Tokenizer

PromptType = Union[str, List[int], Dict[str, Any]]

_DTYPES = {"auto", "float32", "float", "fp32", "float16", "half", "fp16", "bfloat16", "bf16",
           "q4_0", "q4_1", "q8_0"}  # the last three: quantized dummy weights (load_format="dummy")

# vLLM engine arguments with no meaning for inferd's CPU engine: accepted and ignored, so
# that scripts written for vLLM run unchanged.
_IGNORED_ENGINE_ARGS = {
    "disable_log_stats", "swap_space", "cpu_offload_gb",
    "tokenizer_mode", "revision", "tokenizer_revision", "code_revision", "disable_custom_all_reduce",
    "disable_async_output_proc", "compilation_config", "distributed_executor_backend", "hf_token",
    "hf_overrides", "max_seq_len_to_capture", "task", "allowed_local_media_path", "download_dir",
    "enable_chunked_prefill", "max_num_partial_prefills", "async_scheduling", "worker_cls",
    "mm_processor_kwargs", "limit_mm_per_prompt", "override_pooler_config", "served_model_name",
}
# vLLM arguments that inferd accepts only at their default value.
_FIXED_ENGINE_ARGS = {
    "tensor_parallel_size": 1, "pipeline_parallel_size": 1, "data_parallel_size": 1,
    "skip_tokenizer_init": False, "enable_lora": False,
}
# quantization=: weight-only quantization at load (vLLM's name; None = weights as stored).
_QUANTIZATIONS = {None, "none", "int8", "int4", "awq", "gptq"}


def _byte_size(value: Union[int, float, str, None]) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"kv_cache_memory must be a number of bytes or a size like '512MiB', got {value!r}")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError(f"kv_cache_memory must be positive, got {value}")
        return str(int(value))
    return value


class LLM:
    """An LLM for generating texts from prompts with given sampling parameters (vLLM's API).

    Args:
        model: a ``.gguf`` file or a Hugging Face model directory (config.json,
            *.safetensors, tokenizer.json); with ``load_format="dummy"`` a shape name
            (``llama-3-8b``, ``smollm2-135m``, ...) or a config.json.
        tokenizer: where to take the tokenizer from (default: the model).
        dtype: "auto", "float32", "float16" or "bfloat16". Real weights keep the type they
            are stored in (GGUF quantizations included) and compute in float32 on the CPU;
            for dummy weights it is their type (also "q4_0", "q4_1", "q8_0").
        max_model_len: maximum tokens per sequence (default: the model's context length).
        max_num_seqs: maximum sequences running at once.
        max_num_batched_tokens: the token budget of one engine step (default 512).
        kv_cache_memory: KV cache size in bytes or as "512MiB" / "2GiB" (default 1 GiB, at
            least one maximum-length sequence). ``kv_cache_memory_bytes`` is an alias.
        enable_prefix_caching: reuse KV blocks of shared prompt prefixes.
        seed: seeds requests that have no seed of their own.
        load_format: "auto", "gguf", "safetensors", "pt" (pytorch_model.bin) or "dummy".
        quantization: None (weights as stored; an AWQ / GPTQ checkpoint is detected from its
            quantization config), "awq" or "gptq" (the checkpoint's method, checked against
            it, as in vLLM), or "int8" / "int4": weight-only quantization of every layer matrix
            of an fp16/bf16/fp32 model at load; embedding and LM head stay as stored.
        trust_remote_code: accepted as in vLLM; has no effect (inferd runs no code from a model
            directory: the family comes from config.json), which is logged once.
        **kwargs: engine flags: ``block_size`` (16), ``scheduling_policy`` ("fcfs" |
            "priority"), ``max_logprobs`` (20), ``threads`` (CPU threads; 0 = all cores),
            ``device`` ("auto" | "cpu" | "cuda" | "cuda:N"), ``gpu_memory_utilization`` (0.9)
            and ``enforce_eager`` (False) for the CUDA backend (a build with it: see
            docs/cuda-backend.md). Other vLLM GPU arguments (swap_space, ...) are accepted and
            ignored; tensor_parallel_size and the like only at their default.
    """

    def __init__(
        self,
        model: str,
        *,
        tokenizer: Optional[str] = None,
        dtype: str = "auto",
        max_model_len: Optional[int] = None,
        max_num_seqs: int = 64,
        max_num_batched_tokens: Optional[int] = None,
        kv_cache_memory: Union[int, str, None] = None,
        enable_prefix_caching: bool = True,
        seed: Optional[int] = 0,
        load_format: str = "auto",
        quantization: Optional[str] = None,
        trust_remote_code: bool = False,
        speculative_config: Union[Dict[str, Any], str, None] = None,
        **kwargs: Any,
    ) -> None:
        engine_flags = {"block_size": 16, "scheduling_policy": "fcfs", "max_logprobs": 20, "threads": 0,
                        "kv_cache_dtype": "auto", "device": "auto", "gpu_memory_utilization": 0.9,
                        "enforce_eager": False}
        for key, value in kwargs.items():
            if key in engine_flags:
                engine_flags[key] = value
            elif key == "kv_cache_memory_bytes":
                kv_cache_memory = value
            elif key in _IGNORED_ENGINE_ARGS:
                continue
            elif key in _FIXED_ENGINE_ARGS:
                if value != _FIXED_ENGINE_ARGS[key]:
                    raise ValueError(f"{key}={value!r} is not supported by inferd "
                                     f"(only {_FIXED_ENGINE_ARGS[key]!r}: one CPU engine per LLM)")
            else:
                known = list(engine_flags) + sorted(_IGNORED_ENGINE_ARGS | set(_FIXED_ENGINE_ARGS)) + [
                    "tokenizer", "dtype", "max_model_len", "max_num_seqs", "max_num_batched_tokens",
                    "kv_cache_memory", "enable_prefix_caching", "seed", "load_format", "quantization",
                    "trust_remote_code", "speculative_config"]
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise TypeError(f"LLM() got an unexpected keyword argument {key!r}{hint}")
        if isinstance(model, os.PathLike):
            model = os.fspath(model)
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a path (str), got {model!r}")
        model = os.path.expanduser(model)
        tokenizer = os.path.expanduser(os.fspath(tokenizer)) if tokenizer else None
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        if quantization not in _QUANTIZATIONS:
            raise ValueError(f"unknown quantization {quantization!r}: use 'int8' or 'int4' (weight-only, "
                             "at load), 'awq' or 'gptq' (a pre-quantized checkpoint's method), or None")
        gpu_util = float(engine_flags["gpu_memory_utilization"])
        if not 0.0 < gpu_util <= 1.0:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {gpu_util}")
        if max_model_len is not None and max_model_len < 1:
            raise ValueError(f"max_model_len must be positive, got {max_model_len}")
        if trust_remote_code:
            _log_trust_remote_code()
        if speculative_config is None:
            speculative_json = ""
        elif isinstance(speculative_config, dict):
            speculative_json = json.dumps(speculative_config)
        elif isinstance(speculative_config, str):
            speculative_json = speculative_config
        else:
            raise ValueError("speculative_config must be a dict (vLLM's fields, e.g. {'method': 'ngram', "
                             f"'num_speculative_tokens': 4}}) or its JSON text, got {speculative_config!r}")
        max_logprobs = engine_flags.pop("max_logprobs")
        self._max_logprobs = int(max_logprobs)
        try:
            self._engine = _C.Engine(
                model=model,
                tokenizer=tokenizer or "",
                load_format=load_format,
                dtype=dtype,
                seed=0 if seed is None else int(seed),
                max_model_len=max_model_len or 0,
                block_size=int(engine_flags["block_size"]),
                kv_cache_memory=_byte_size(kv_cache_memory),
                max_num_batched_tokens=512 if max_num_batched_tokens is None else int(max_num_batched_tokens),
                max_num_seqs=int(max_num_seqs),
                enable_prefix_caching=bool(enable_prefix_caching),
                scheduling_policy=str(engine_flags["scheduling_policy"]),
                threads=int(engine_flags["threads"] or 0),
                kv_cache_dtype=str(engine_flags["kv_cache_dtype"]),
                quantization=quantization or "",
                device=str(engine_flags["device"]),
                gpu_memory_utilization=gpu_util,
                enforce_eager=bool(engine_flags["enforce_eager"]),
                speculative_config=speculative_json,
            )
        except FileNotFoundError as e:
            # The engine's message names the CLI flag; say it the Python way.
            raise FileNotFoundError(str(e).replace("--load-format dummy", "load_format='dummy'")) from None
        self._info: Dict[str, Any] = self._engine.info()
        self._tokenizer = Tokenizer(self._engine, self._info)
        self.max_model_len: int = self._info["max_model_len"]
        self._vocab_size: int = self._info["vocab_size"]
        self._request_counter = itertools.count()
        self._counter_lock = threading.Lock()

    # --- accessors ------------------------------------------------------------------------

    def get_tokenizer(self) -> Tokenizer:
        return self._tokenizer

    @property
    def model_info(self) -> Dict[str, Any]:
        """What was loaded: path, format, weight type, architecture, KV capacity, limits."""
        return dict(self._info)

    def get_default_sampling_params(self) -> SamplingParams:
        """SamplingParams() with the model's generation_config.json defaults (as vLLM)."""
        gen = self._info.get("generation_config") or {}
        return SamplingParams(**gen) if gen else SamplingParams()

    def __repr__(self) -> str:
        i = self._info
        return (f"LLM(model={i['path']!r}, format={i['format']}, weights={i['weight_type']}, "
                f"max_model_len={self.max_model_len})")

    # --- generation -----------------------------------------------------------------------

    def generate(
        self,
        prompts: Union[PromptType, Sequence[PromptType], None] = None,
        sampling_params: Union[SamplingParams, Sequence[SamplingParams], None] = None,
        *,
        use_tqdm: bool = True,
        lora_request: Any = None,
        priority: Optional[List[int]] = None,
        prompt_token_ids: Union[List[int], List[List[int]], None] = None,
    ) -> List[RequestOutput]:
        """Generates completions for a batch of prompts; outputs are in input order.

        prompts: a string, a list of token ids, a dict {"prompt": str} or
        {"prompt_token_ids": [...]} (vLLM's TextPrompt / TokensPrompt), or a list of these.
        sampling_params: one for all prompts, or one per prompt (default: the model's
        generation defaults over vLLM's). priority: one int per prompt (lower runs first
        with scheduling_policy="priority").
        """
        if lora_request is not None:
            raise ValueError("LoRA adapters are not supported by inferd")
        parsed = self._parse_prompts(prompts, prompt_token_ids)
        params = self._params_per_prompt(sampling_params, len(parsed))
        if priority is not None and len(priority) != len(parsed):
            raise ValueError("The lengths of prompts and priority must be the same.")
        return self._run(parsed, params, priority, use_tqdm)

    def chat(
        self,
        messages: Union[Sequence[Dict[str, Any]], Sequence[Sequence[Dict[str, Any]]]],
        sampling_params: Union[SamplingParams, Sequence[SamplingParams], None] = None,
        use_tqdm: bool = True,
        lora_request: Any = None,
        chat_template: Optional[str] = None,
        chat_template_content_format: str = "auto",
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
        tools: Optional[List[Dict[str, Any]]] = None,
        chat_template_kwargs: Optional[Dict[str, Any]] = None,
        mm_processor_kwargs: Optional[Dict[str, Any]] = None,
    ) -> List[RequestOutput]:
        """Generates replies to one conversation or a list of conversations: each is rendered
        with the model's chat template (or ``chat_template``: its source or a file path)."""
        if not messages:
            raise ValueError("messages must not be empty")
        conversations = messages if isinstance(messages[0], (list, tuple)) else [messages]
        prompts = []
        for conv in conversations:
            text, ids = self._tokenizer._render(conv, chat_template, add_generation_prompt, continue_final_message,
                                                tools, chat_template_kwargs)
            prompts.append({"prompt_token_ids": ids, "prompt": text})
        return self.generate(prompts, sampling_params, use_tqdm=use_tqdm, lora_request=lora_request)

    def beam_search(
        self,
        prompts: Sequence[PromptType],
        params: BeamSearchParams,
        lora_request: Any = None,
        use_tqdm: bool = False,
        concurrency_limit: Optional[int] = None,
    ) -> List[BeamSearchOutput]:
        """Beam search as vLLM's LLM.beam_search: each step asks the engine for the top
        2 * beam_width next tokens of every live beam; prefix caching keeps the repeated
        prefixes cheap. Returns one BeamSearchOutput (best beam_width sequences) per prompt."""
        if lora_request is not None:
            raise ValueError("LoRA adapters are not supported by inferd")
        if isinstance(prompts, (str, dict)):
            prompts = [prompts]
        parsed = [self._parse_one(p) for p in prompts]
        return run_beam_search(self, parsed, params, use_tqdm, concurrency_limit)

    # --- internals ------------------------------------------------------------------------

    def _parse_one(self, p: Any) -> Tuple[Optional[str], List[int]]:
        if isinstance(p, str):
            return p, self._engine.encode(p, True, True)
        if isinstance(p, dict):
            if "prompt_token_ids" in p:
                return p.get("prompt"), [int(t) for t in p["prompt_token_ids"]]
            if "prompt" in p:
                return p["prompt"], self._engine.encode(str(p["prompt"]), True, True)
            raise ValueError(f"a prompt dict needs 'prompt' or 'prompt_token_ids', got keys {sorted(p)}")
        if isinstance(p, (list, tuple)) and all(isinstance(t, int) and not isinstance(t, bool) for t in p):
            return None, list(p)
        raise TypeError(f"a prompt must be a str, a list of token ids or a dict, got {type(p).__name__}")

    def _parse_prompts(self, prompts: Any, prompt_token_ids: Any) -> List[Tuple[Optional[str], List[int]]]:
        if prompts is None and prompt_token_ids is None:
            raise ValueError("either prompts or prompt_token_ids must be provided")
        if prompts is None:
            prompts = prompt_token_ids
        if isinstance(prompts, (str, dict)):
            return [self._parse_one(prompts)]
        if isinstance(prompts, (list, tuple)):
            if prompts and all(isinstance(t, int) and not isinstance(t, bool) for t in prompts):
                return [(None, list(prompts))]  # one prompt of token ids
            return [self._parse_one(p) for p in prompts]
        raise TypeError(f"prompts must be a str, a list of token ids, a dict or a list of these, "
                        f"got {type(prompts).__name__}")

    def _params_per_prompt(self, sampling_params: Any, n: int) -> List[SamplingParams]:
        if sampling_params is None:
            return [self.get_default_sampling_params()] * n
        if isinstance(sampling_params, SamplingParams):
            return [sampling_params] * n
        if isinstance(sampling_params, (list, tuple)):
            if len(sampling_params) != n:
                raise ValueError("The lengths of prompts and sampling_params must be the same.")
            for sp in sampling_params:
                if not isinstance(sp, SamplingParams):
                    raise TypeError(f"sampling_params must be SamplingParams, got {type(sp).__name__}")
            return list(sampling_params)
        raise TypeError(f"sampling_params must be SamplingParams or a list of them, "
                        f"got {type(sampling_params).__name__}")

    def _check_request(self, ids: List[int], sp: SamplingParams) -> None:
        """vLLM's input checks, done before anything runs: a bad request fails the call."""
        if not ids:
            raise ValueError("The decoder prompt cannot be empty")
        top = max(ids)
        if top >= self._vocab_size or min(ids) < 0:
            bad = top if top >= self._vocab_size else min(ids)
            raise ValueError(f"Token id {bad} is out of vocabulary")
        if len(ids) > self.max_model_len:
            raise ValueError(f"The decoder prompt (length {len(ids)}) is longer than the maximum model length "
                             f"of {self.max_model_len}. Make sure that `max_model_len` is no smaller than the "
                             f"number of text tokens.")
        if len(ids) == self.max_model_len:
            raise ValueError(f"The decoder prompt (length {len(ids)}) leaves no room to generate within the "
                             f"maximum model length of {self.max_model_len}.")
        for name, kind in (("logprobs", "sample"), ("prompt_logprobs", "prompt")):
            v = getattr(sp, name)
            if v is not None:
                requested = self._vocab_size if v == -1 else v
                if requested > self._max_logprobs and not (v == -1 and self._max_logprobs == -1):
                    raise ValueError(f"Requested {kind} logprobs of {requested}, which is greater than max "
                                     f"allowed: {self._max_logprobs}")
        for t in sp.stop_token_ids:
            if t >= self._vocab_size:
                raise ValueError(f"stop_token_ids contains token id {t}, out of vocabulary (size {self._vocab_size})")

    def _next_request_id(self) -> str:
        with self._counter_lock:
            return str(next(self._request_counter))

    def _run(self, parsed: List[Tuple[Optional[str], List[int]]], params: List[SamplingParams],
             priority: Optional[List[int]], use_tqdm: bool) -> List[RequestOutput]:
        requests = []
        for i, ((text, ids), sp) in enumerate(zip(parsed, params)):
            if sp.truncate_prompt_tokens is not None:
                ids = ids[-sp.truncate_prompt_tokens:]
            self._check_request(ids, sp)
            requests.append((self._next_request_id(), text or "", ids, sp._to_engine(self._vocab_size),
                             int(priority[i]) if priority is not None else 0))
        if not requests:
            return []
        bar = ProgressBar(len(requests), enabled=bool(use_tqdm))
        try:
            on_finished = (lambda _index, num_in, num_out: bar.update(num_in, num_out)) if use_tqdm else None
            raw = self._engine.generate(requests, Logprob, on_finished)
        finally:
            bar.close()
        outputs = []
        errors = []
        for i, r in enumerate(raw):
            if isinstance(r, str):
                errors.append(f"request {i}: {r}")
                outputs.append(None)
            else:
                outputs.append(self._to_output(r, parsed[i][0], params[i]))
        if errors:
            raise ValueError("; ".join(errors))
        return outputs

    @staticmethod
    def _to_output(d: Dict[str, Any], text: Optional[str], sp: SamplingParams) -> RequestOutput:
        want_logprobs = sp.logprobs is not None
        completions = [
            CompletionOutput(
                index=c["index"],
                text=c["text"] if sp.detokenize else "",
                token_ids=c["token_ids"],
                cumulative_logprob=c["cumulative_logprob"] if want_logprobs else None,
                logprobs=c["logprobs"] if want_logprobs else None,
                finish_reason=c["finish_reason"],
                stop_reason=c["stop_reason"],
            )
            for c in d["outputs"]
        ]
        m = d["metrics"]
        metrics = RequestMetrics(
            arrival_time=m["arrival_time"],
            last_token_time=m["last_token_time"],
            first_scheduled_time=m["first_scheduled_time"] or None,
            first_token_time=m["first_token_time"] or None,
            time_in_queue=(m["first_scheduled_time"] - m["arrival_time"]) if m["first_scheduled_time"] else None,
            finished_time=m["finished_time"] or None,
        )
        return RequestOutput(
            request_id=d["request_id"],
            prompt=text,
            prompt_token_ids=d["prompt_token_ids"],
            prompt_logprobs=d["prompt_logprobs"],
            outputs=completions,
            finished=d["finished"],
            metrics=metrics,
            num_cached_tokens=d["num_cached_tokens"],
        )
