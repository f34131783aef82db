"""Forced tool calls through the real `openai` SDK (issue 18): tool_choice "required" and a
named function are enforced by a JSON-schema grammar; the calls come back as
message.tool_calls (finish_reason "tool_calls") and, streamed, as delta.tool_calls whose
first piece carries id, type and name and whose arguments arrive in pieces."""
import json

import jsonschema
import openai
import pytest

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                                                        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                       "required": ["city", "unit"]}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "Current time in a time zone",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string", "maxLength": 20}}, "required": ["tz"]}}},
]
PARAMS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
MESSAGES = [{"role": "user", "content": "What is the weather in Paris, and the time in Tokyo?"}]


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="x")


def check_calls(calls):
    assert calls
    assert len({c.id for c in calls}) == len(calls)
    for c in calls:
        assert c.id.startswith("chatcmpl-tool-") and c.type == "function"
        jsonschema.validate(json.loads(c.function.arguments), PARAMS[c.function.name])


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_required_gives_valid_calls(client, temperature):
    r = client.chat.completions.create(model="smollm2", messages=MESSAGES, tools=TOOLS, tool_choice="required",
                                       max_tokens=200, temperature=temperature, seed=9, n=1 if temperature == 0 else 2)
    for ch in r.choices:
        assert ch.finish_reason == "tool_calls"
        assert ch.message.content is None
        check_calls(ch.message.tool_calls)


def test_parallel_tool_calls_false_gives_one_call(client):
    r = client.chat.completions.create(model="smollm2", messages=MESSAGES, tools=TOOLS, tool_choice="required",
                                       parallel_tool_calls=False, max_tokens=200, temperature=1.0, seed=4)
    assert len(r.choices[0].message.tool_calls) == 1
    check_calls(r.choices[0].message.tool_calls)


def test_named_function_streams_its_arguments(client):
    choice = {"type": "function", "function": {"name": "get_time"}}
    whole = client.chat.completions.create(model="smollm2", messages=MESSAGES, tools=TOOLS, tool_choice=choice,
                                           max_tokens=100, temperature=0)
    calls = whole.choices[0].message.tool_calls
    assert whole.choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in calls] == ["get_time"]
    check_calls(calls)
    pieces, first, finish = [], None, None
    for ch in client.chat.completions.create(model="smollm2", messages=MESSAGES, tools=TOOLS, tool_choice=choice,
                                             max_tokens=100, temperature=0, stream=True):
        if not ch.choices:
            continue
        for tc in ch.choices[0].delta.tool_calls or []:
            assert tc.index == 0
            if first is None:
                first = tc
            else:
                assert tc.id is None and tc.function.name is None
            pieces.append(tc.function.arguments or "")
        finish = ch.choices[0].finish_reason or finish
    assert first.id.startswith("chatcmpl-tool-") and first.type == "function" and first.function.name == "get_time"
    assert len(pieces) > 2  # the arguments arrive in pieces
    assert "".join(pieces) == calls[0].function.arguments
    assert finish == "tool_calls"


def test_required_streamed_calls_equal_non_streamed(client):
    kw = dict(model="smollm2", messages=MESSAGES, tools=TOOLS, tool_choice="required", max_tokens=200, temperature=0)
    whole = client.chat.completions.create(**kw).choices[0].message.tool_calls
    got = {}
    for ch in client.chat.completions.create(stream=True, **kw):
        for tc in (ch.choices[0].delta.tool_calls or []) if ch.choices else []:
            entry = got.setdefault(tc.index, {"name": tc.function.name, "arguments": ""})
            entry["arguments"] += tc.function.arguments or ""
    assert [(got[i]["name"], got[i]["arguments"]) for i in sorted(got)] == \
        [(c.function.name, c.function.arguments) for c in whole]


# ---- tool_choice "auto" with --tool-call-parser hermes ------------------------------------

# The embedded model does not write Hermes tool calls by itself; a regex constraint makes it
# write one (filling the city), so the parser runs on a real generated output.
HERMES_REGEX = (r'Checking\.\n<tool_call>\n\{"name": "get_weather", "arguments": \{"city": "[A-Z][a-z]{2,10}", '
                r'"unit": "(celsius|fahrenheit)"\}\}\n</tool_call>')


def test_auto_tool_choice_with_the_hermes_parser(start_server):
    server = start_server("--enable-auto-tool-choice", "--tool-call-parser", "hermes")
    c = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    kw = dict(model="smollm2", messages=MESSAGES, tools=TOOLS, max_tokens=150, temperature=0,
              extra_body={"structured_outputs": {"regex": HERMES_REGEX}})
    r = c.chat.completions.create(tool_choice="auto", **kw)
    ch = r.choices[0]
    assert ch.finish_reason == "tool_calls"
    assert ch.message.content == "Checking.\n"
    check_calls(ch.message.tool_calls)
    assert [t.function.name for t in ch.message.tool_calls] == ["get_weather"]
    content, args, names, finish = "", "", [], None
    for chunk in c.chat.completions.create(stream=True, **kw):  # tools without tool_choice: "auto"
        if not chunk.choices:
            continue
        d = chunk.choices[0].delta
        content += d.content or ""
        for tc in d.tool_calls or []:
            if tc.function.name:
                names.append(tc.function.name)
            args += tc.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert content == "Checking.\n" and names == ["get_weather"] and finish == "tool_calls"
    assert args == ch.message.tool_calls[0].function.arguments
    # Plain text stays content.
    r = c.chat.completions.create(model="smollm2", messages=MESSAGES, tools=TOOLS, tool_choice="auto", max_tokens=5,
                                  temperature=0)
    assert r.choices[0].message.tool_calls is None and r.choices[0].message.content


def test_auto_tool_choice_needs_the_flags(client, inferd_bin):
    import subprocess
    from conftest import _model_path
    with pytest.raises(openai.BadRequestError, match="--enable-auto-tool-choice"):
        client.chat.completions.create(model="smollm2", messages=MESSAGES, tools=TOOLS, tool_choice="auto", max_tokens=2)
    for flags, text in [(["--enable-auto-tool-choice"], "needs --tool-call-parser"),
                        (["--enable-auto-tool-choice", "--tool-call-parser", "nonesuch"], "not implemented")]:
        p = subprocess.run([str(inferd_bin), "serve", _model_path(), "--port", "0", *flags], capture_output=True,
                           text=True, timeout=60)
        assert p.returncode != 0 and text in p.stderr, p.stderr
