"""--reasoning-parser through the real `openai` SDK (issue 18): the reasoning comes back as
message.reasoning_content (and vLLM's `reasoning`), streamed as delta.reasoning_content; the
prompt decides whether the output starts inside the reasoning; structured outputs start
after the reasoning ends.

The embedded model does not think by itself. Its reasoning is opened or closed in the prompt
by continuing a final assistant message ("<think>I will" or "<think>ok</think>"), and the
harmony format is written by the model under a regex constraint, so each parser runs on real
generated text."""
import json

import jsonschema
import openai
import pytest


def ask(c, **kw):
    return c.chat.completions.create(model="smollm2", temperature=0, **kw)


def streamed(c, **kw):
    reasoning, content = "", ""
    for ch in c.chat.completions.create(model="smollm2", temperature=0, stream=True, **kw):
        if not ch.choices:
            continue
        d = ch.choices[0].delta
        reasoning += getattr(d, "reasoning_content", None) or ""
        content += d.content or ""
    return reasoning, content


def continuing(assistant):
    return dict(messages=[{"role": "user", "content": "Tell me about the sea."},
                          {"role": "assistant", "content": assistant}],
                extra_body={"continue_final_message": True, "add_generation_prompt": False})


SCHEMA = {"type": "object", "properties": {"mood": {"type": "string", "enum": ["calm", "stormy"]},
                                           "depth_m": {"type": "integer", "minimum": 0, "maximum": 11000}},
          "required": ["mood", "depth_m"], "additionalProperties": False}


def with_schema(kw):
    kw = dict(kw)
    kw["extra_body"] = dict(kw["extra_body"], response_format={
        "type": "json_schema", "json_schema": {"name": "sea", "schema": SCHEMA}})
    return kw


@pytest.fixture(scope="module")
def plain_text(server):
    """The unconstrained greedy continuation of an open <think>, from a server without a parser."""
    c = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    text = ask(c, max_tokens=24, **continuing("<think>I will")).choices[0].message.content
    assert text and "</think>" not in text
    return text


def test_deepseek_r1_reasoning_and_structured_outputs_after_it(start_server, plain_text):
    server = start_server("--reasoning-parser", "deepseek_r1")
    c = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    # The prompt leaves the output inside the reasoning, which the model never closes.
    m = ask(c, max_tokens=24, **continuing("<think>I will")).choices[0].message
    assert m.reasoning_content == plain_text and m.reasoning == plain_text
    assert m.content is None
    assert streamed(c, max_tokens=24, **continuing("<think>I will")) == (plain_text, "")
    # include_reasoning: false drops it.
    kw = continuing("<think>I will")
    kw["extra_body"] = dict(kw["extra_body"], include_reasoning=False)
    m = ask(c, max_tokens=24, **kw).choices[0].message
    assert getattr(m, "reasoning_content", None) is None and m.content is None
    # With a schema, the grammar waits for the end of the reasoning: never here, so the
    # output is the unconstrained one.
    m = ask(c, max_tokens=24, **with_schema(continuing("<think>I will"))).choices[0].message
    assert m.reasoning_content == plain_text and m.content is None
    # A prompt that closed the reasoning: the output is content, constrained from its first token.
    for kw in [with_schema(continuing("<think>Short answer.</think>"))]:
        r = ask(c, max_tokens=60, **kw)
        m = r.choices[0].message
        assert m.reasoning_content is None
        jsonschema.validate(json.loads(m.content), SCHEMA)
        assert r.choices[0].finish_reason == "stop"
        assert streamed(c, max_tokens=60, **kw) == ("", m.content)


# gpt-oss's harmony format, written by the model under a regex: analysis, then final.
HARMONY_REGEX = (r"<\|channel\|>analysis<\|message\|>[a-z][a-z ]{3,30}<\|end\|><\|start\|>assistant"
                 r"<\|channel\|>final<\|message\|>[A-Z][a-z]{2,12}( [a-z]{2,12}){0,3}\.")


def test_openai_harmony_reasoning(start_server):
    server = start_server("--reasoning-parser", "openai")
    c = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    kw = dict(messages=[{"role": "user", "content": "Describe the sea in a few words."}], max_tokens=80,
              extra_body={"structured_outputs": {"regex": HARMONY_REGEX}})
    r = ask(c, **kw)
    m = r.choices[0].message
    assert r.choices[0].finish_reason == "stop"
    assert m.reasoning_content and "<|" not in m.reasoning_content
    assert m.content and m.content.endswith(".") and "<|" not in m.content
    assert streamed(c, **kw) == (m.reasoning_content, m.content)


def test_reasoning_flags(client_plain, inferd_bin):
    import subprocess
    from conftest import _model_path
    with pytest.raises(openai.BadRequestError, match="--reasoning-parser"):
        client_plain.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "hi"}],
                                             max_tokens=2, extra_body={"include_reasoning": False})
    p = subprocess.run([str(inferd_bin), "serve", _model_path(), "--port", "0", "--reasoning-parser", "nonesuch"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "not implemented; available: deepseek_r1, qwen3, openai" in p.stderr, p.stderr


@pytest.fixture(scope="module")
def client_plain(server):
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
