"""The model's tokenizer with the Hugging Face methods that vLLM users call:
encode / decode / __call__ / apply_chat_template / convert_ids_to_tokens.

It wraps the engine's own tokenizer (the one generation uses), so token ids always agree
with the engine's. Text is tokenized as Hugging Face does: special-token text such as
``<|im_start|>`` becomes the special token.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence, Union


def _flatten_content(messages: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """OpenAI-style content parts ([{"type": "text", "text": ...}]) become one string, as
    vLLM's "string" content format renders them for text-only templates."""
    out = []
    for m in messages:
        if not isinstance(m, dict):
            raise ValueError(f"each message must be a dict with 'role' and 'content', got {type(m).__name__}")
        content = m.get("content")
        if isinstance(content, list):
            texts = []
            for part in content:
                if isinstance(part, str):
                    texts.append(part)
                elif isinstance(part, dict) and part.get("type") in ("text", "input_text"):
                    texts.append(part.get("text", ""))
                else:
                    kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                    raise ValueError(f"message content part of type {kind!r} is not supported (text only)")
            m = dict(m, content="\n".join(texts))
        out.append(m)
    return out


def load_chat_template(chat_template: Optional[str]) -> str:
    """A template given as a file path is read; otherwise it is the template's source."""
    if not chat_template:
        return ""
    if len(chat_template) < 4096 and "{" not in chat_template and os.path.isfile(chat_template):
        with open(chat_template, encoding="utf-8") as f:
            return f.read()
    return chat_template


class Tokenizer:
    """Returned by ``LLM.get_tokenizer()``; thread-safe."""

    def __init__(self, engine: Any, info: Dict[str, Any]) -> None:
        self._engine = engine
        self._info = info
        self.name_or_path: str = info["path"]
        self.vocab_size: int = info["tokenizer_vocab_size"]
        self.bos_token_id: Optional[int] = info["bos_token_id"]
        self.eos_token_id: Optional[int] = info["eos_token_id"]
        self.chat_template: Optional[str] = info["chat_template"]
        self.add_bos_token: bool = info["add_bos"]
        # Every end-of-generation token (EOS plus e.g. <|endoftext|>); generation stops at each.
        self.eog_token_ids: List[int] = list(info["eog_token_ids"])

    # --- vocabulary ---------------------------------------------------------------------

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def max_token_id(self) -> int:
        return self.vocab_size - 1

    @property
    def bos_token(self) -> Optional[str]:
        return None if self.bos_token_id is None else self._engine.token_text(self.bos_token_id)

    @property
    def eos_token(self) -> Optional[str]:
        return None if self.eos_token_id is None else self._engine.token_text(self.eos_token_id)

    def convert_ids_to_tokens(self, ids: Union[int, Sequence[int]]) -> Union[str, List[str]]:
        if isinstance(ids, int):
            return self._engine.token_text(ids)
        return [self._engine.token_text(i) for i in ids]

    # --- text <-> ids -------------------------------------------------------------------

    def encode(self, text: str, add_special_tokens: bool = True, **kwargs: Any) -> List[int]:
        """Token ids of ``text``; BOS first when the model adds one and add_special_tokens."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return self._engine.encode(text, add_special_tokens, True)

    def __call__(self, text: Union[str, List[str]], add_special_tokens: bool = True, **kwargs: Any) -> Dict[str, Any]:
        if isinstance(text, str):
            ids = self.encode(text, add_special_tokens)
            return {"input_ids": ids, "attention_mask": [1] * len(ids)}
        batch = [self.encode(t, add_special_tokens) for t in text]
        return {"input_ids": batch, "attention_mask": [[1] * len(ids) for ids in batch]}

    def decode(self, token_ids: Union[int, Sequence[int]], skip_special_tokens: bool = False, **kwargs: Any) -> str:
        """Text of ``token_ids`` (Hugging Face's default keeps special tokens)."""
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        return self._engine.decode(list(token_ids), skip_special_tokens)

    def batch_decode(self, sequences: Sequence[Sequence[int]], skip_special_tokens: bool = False,
                     **kwargs: Any) -> List[str]:
        return [self.decode(s, skip_special_tokens) for s in sequences]

    # --- chat ---------------------------------------------------------------------------

    def apply_chat_template(
        self,
        conversation: Sequence[Dict[str, Any]],
        tools: Optional[List[Dict[str, Any]]] = None,
        chat_template: Optional[str] = None,
        add_generation_prompt: bool = False,
        continue_final_message: bool = False,
        tokenize: bool = True,
        **kwargs: Any,
    ) -> Union[str, List[int]]:
        """Renders ``conversation`` with the model's chat template (or ``chat_template``).

        As Hugging Face: returns token ids when ``tokenize`` (the default), else the text;
        extra keyword arguments are passed to the template.
        """
        text, ids = self._render(conversation, chat_template, add_generation_prompt, continue_final_message,
                                 tools, kwargs)
        return ids if tokenize else text

    def _render(self, conversation: Sequence[Dict[str, Any]], chat_template: Optional[str],
                add_generation_prompt: bool, continue_final_message: bool,
                tools: Optional[List[Dict[str, Any]]], template_kwargs: Optional[Dict[str, Any]]):
        if continue_final_message and add_generation_prompt:
            raise ValueError("Cannot set both `continue_final_message` and `add_generation_prompt` to True.")
        # return_tensors, padding, ... are Hugging Face options without meaning here.
        template_kwargs = {k: v for k, v in (template_kwargs or {}).items()
                           if k not in ("return_tensors", "padding", "truncation", "max_length", "return_dict")}
        messages = json.dumps(_flatten_content(conversation), ensure_ascii=False)
        return self._engine.apply_chat_template(
            messages, load_chat_template(chat_template), add_generation_prompt, continue_final_message,
            json.dumps(tools, ensure_ascii=False) if tools else "",
            json.dumps(template_kwargs, ensure_ascii=False) if template_kwargs else "")

    def __repr__(self) -> str:
        return f"inferd.Tokenizer(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size})"
