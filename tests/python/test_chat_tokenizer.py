"""LLM.chat and the tokenizer (encode / decode / apply_chat_template) on the embedded model."""

import pytest

from inferd import SamplingParams

GREEDY = SamplingParams(temperature=0, max_tokens=32)
# Far from a tie: the plain "What is the capital of France?" starts with a near-tie between
# "The" and "L" that int8 activations tip (in llama.cpp too).
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def test_tokenizer_round_trip_and_specials(llm):
    tok = llm.get_tokenizer()
    text = "Hello world, déjà vu! 你好 🙂"
    ids = tok.encode(text)
    assert all(isinstance(i, int) for i in ids)
    assert tok.decode(ids) == text
    assert tok(text)["input_ids"] == ids
    assert tok.batch_decode([ids, ids[:2]]) == [text, tok.decode(ids[:2])]
    assert len(tok) == tok.vocab_size == 49152
    assert tok.eos_token_id == 2 and tok.eos_token == "<|im_end|>"
    # Special-token text becomes the special token (as Hugging Face encodes).
    assert tok.encode("<|im_start|>user", add_special_tokens=False)[0] == 1
    assert tok.decode([1, 4093], skip_special_tokens=True) == "user"
    assert tok.decode([1, 4093]) == "<|im_start|>user"
    assert tok.convert_ids_to_tokens([1]) == ["<|im_start|>"]
    with pytest.raises(ValueError, match="out of vocabulary"):
        tok.decode([10 ** 6])


def test_apply_chat_template(llm):
    tok = llm.get_tokenizer()
    text = tok.apply_chat_template(QUESTION, tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                    "<|im_end|>\n<|im_start|>user\nWhat is the capital of France? Answer in one word.<|im_end|>\n<|im_start|>assistant\n")
    ids = tok.apply_chat_template(QUESTION, add_generation_prompt=True)
    assert ids == tok.encode(text, add_special_tokens=False)
    no_gen = tok.apply_chat_template(QUESTION, tokenize=False)  # Hugging Face's default: no generation prompt
    assert text.startswith(no_gen) and not no_gen.endswith("assistant\n")
    # OpenAI-style content parts render as their text.
    parts = [{"role": "user", "content": [{"type": "text", "text": "What is the capital of France? Answer in one word."}]}]
    assert tok.apply_chat_template(parts, tokenize=False, add_generation_prompt=True) == text
    with pytest.raises(ValueError, match="Cannot set both"):
        tok.apply_chat_template(QUESTION, add_generation_prompt=True, continue_final_message=True)


def test_chat_matches_generate_on_the_template(llm):
    chat = llm.chat(QUESTION, GREEDY, use_tqdm=False)
    assert len(chat) == 1
    reply = chat[0].outputs[0].text
    assert "Paris" in reply
    ids = llm.get_tokenizer().apply_chat_template(QUESTION, add_generation_prompt=True)
    assert chat[0].prompt_token_ids == ids
    gen = llm.generate({"prompt_token_ids": ids}, GREEDY, use_tqdm=False)[0]
    assert gen.outputs[0].token_ids == chat[0].outputs[0].token_ids


def test_chat_batch_of_conversations_in_order(llm):
    convs = [
        QUESTION,
        [{"role": "system", "content": "You answer in one word."}, {"role": "user", "content": "Name a colour."}],
        [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello! How can I help?"},
         {"role": "user", "content": "What is 2 + 2?"}],
    ]
    outs = llm.chat(convs, GREEDY, use_tqdm=False)
    assert len(outs) == 3
    for conv, out in zip(convs, outs):
        alone = llm.chat(conv, GREEDY, use_tqdm=False)[0]
        assert alone.outputs[0].token_ids == out.outputs[0].token_ids
    assert "system\nYou answer in one word." in outs[1].prompt


def test_chat_template_override_and_continue(llm, tmp_path):
    template = ("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
                "{% if add_generation_prompt %}[assistant] {% endif %}")
    out = llm.chat(QUESTION, SamplingParams(temperature=0, max_tokens=4), chat_template=template, use_tqdm=False)[0]
    assert out.prompt == "[user] What is the capital of France? Answer in one word.\n[assistant] "
    path = tmp_path / "template.jinja"
    path.write_text(template)
    from_file = llm.chat(QUESTION, SamplingParams(temperature=0, max_tokens=4), chat_template=str(path),
                         use_tqdm=False)[0]
    assert from_file.prompt == out.prompt and from_file.outputs[0].token_ids == out.outputs[0].token_ids
    # continue_final_message: the reply goes on from the partial assistant message.
    partial = QUESTION + [{"role": "assistant", "content": "The capital of France is"}]
    cont = llm.chat(partial, SamplingParams(temperature=0, max_tokens=4), add_generation_prompt=False,
                    continue_final_message=True, use_tqdm=False)[0]
    assert cont.prompt.endswith("<|im_start|>assistant\nThe capital of France is")
    assert "Paris" in cont.outputs[0].text
    with pytest.raises(ValueError, match="messages must not be empty"):
        llm.chat([], GREEDY)
