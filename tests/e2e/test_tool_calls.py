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


# ---- tool_choice "auto" with the other --tool-call-parser formats ------------------------
# As for Hermes: a regex makes the embedded model write its output in the parser's format
# (filling in the city and unit), so each parser runs on real generated text, whole and
# streamed, through the real SDK.

CITY, UNIT = r'[A-Z][a-z]{2,10}', r'(celsius|fahrenheit)'
# The qwen3_xml test's tools: "days" is an integer, so the parser must type it.
TOOLS_DAYS = json.loads(json.dumps(TOOLS))
TOOLS_DAYS[0]["function"]["parameters"]["properties"]["days"] = {"type": "integer"}
AUTO_FORMATS = {
    # parser: (regex, expected content, expected call names)
    "llama3_json": (r'<\|python_tag\|>\{"name": "get_weather", "parameters": \{"city": "' + CITY + r'", "unit": "'
                    + UNIT + r'"\}\}; \{"name": "get_time", "parameters": \{"tz": "Asia/Tokyo"\}\}',
                    None, ["get_weather", "get_time"]),
    "mistral": (r'Checking\.\[TOOL_CALLS\]get_weather\[ARGS\]\{"city": "' + CITY + r'", "unit": "' + UNIT + r'"\}',
                "Checking.", ["get_weather"]),
    "pythonic": (r"\[get_weather\(city='" + CITY + r"', unit='" + UNIT + r"'\), get_time\(tz='Asia/Tokyo'\)\]",
                 None, ["get_weather", "get_time"]),
    "qwen3_xml": (r'Checking\.\n<tool_call>\n<function=get_weather>\n<parameter=city>\n' + CITY
                  + r'\n</parameter>\n<parameter=unit>\n' + UNIT + r'\n</parameter>\n<parameter=days>\n[1-7]\n'
                  r'</parameter>\n</function>\n</tool_call>', "Checking.\n", ["get_weather"]),
    "openai": (r'<\|channel\|>analysis<\|message\|>Need the weather\.<\|end\|><\|start\|>assistant<\|channel\|>'
               r'commentary to=functions\.get_weather <\|constrain\|>json<\|message\|>\{"city": "' + CITY
               + r'", "unit": "' + UNIT + r'"\}<\|call\|>', None, ["get_weather"]),
}


def _streamed_calls(stream):
    content, calls, finish = "", {}, None
    for chunk in stream:
        if not chunk.choices:
            continue
        d = chunk.choices[0].delta
        content += d.content or ""
        for tc in d.tool_calls or []:
            if tc.function and tc.function.name:
                assert tc.index not in calls and tc.id and tc.type == "function"
                calls[tc.index] = {"id": tc.id, "name": tc.function.name, "arguments": ""}
            calls[tc.index]["arguments"] += (tc.function.arguments or "") if tc.function else ""
        finish = chunk.choices[0].finish_reason or finish
    return content, [calls[i] for i in sorted(calls)], finish


@pytest.mark.parametrize("parser", sorted(AUTO_FORMATS))
def test_auto_tool_choice_with_each_parser(start_server, parser):
    regex, content, names = AUTO_FORMATS[parser]
    server = start_server("--enable-auto-tool-choice", "--tool-call-parser", parser)
    c = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    tools = TOOLS_DAYS if parser == "qwen3_xml" else TOOLS
    kw = dict(model="smollm2", messages=MESSAGES, tools=tools, tool_choice="auto", max_tokens=200, temperature=0,
              extra_body={"structured_outputs": {"regex": regex}})
    ch = c.chat.completions.create(**kw).choices[0]
    assert ch.finish_reason == "tool_calls"
    assert ch.message.content == content
    calls = ch.message.tool_calls
    assert [t.function.name for t in calls] == names
    for t in calls:
        args = json.loads(t.function.arguments)
        jsonschema.validate(args, PARAMS[t.function.name])
        if parser == "mistral":  # Mistral's ids: 9 letters and digits
            assert len(t.id) == 9 and t.id.isalnum()
        else:
            assert t.id.startswith("chatcmpl-tool-")
    if parser == "qwen3_xml":
        assert isinstance(json.loads(calls[0].function.arguments)["days"], int)
    s_content, s_calls, finish = _streamed_calls(c.chat.completions.create(stream=True, **kw))
    assert finish == "tool_calls"
    assert s_content == (content or "")
    assert [(x["name"], x["arguments"]) for x in s_calls] == [(t.function.name, t.function.arguments) for t in calls]


def test_replayed_tool_calls_with_json_text_arguments(start_server):
    """As vLLM prepares messages for HF templates: a replayed call's arguments sent as JSON text
    (what the OpenAI SDK sends back) render as the object; invalid JSON there is a 400."""
    import requests
    from conftest import _model_path  # noqa: F401
    import os
    template = os.path.join(os.environ["INFERD_TESTDATA_DIR"], "chat_templates", "Qwen-Qwen2.5-7B-Instruct.jinja")
    server = start_server("--chat-template", template)

    def conversation(arguments):
        return [{"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18 C"}]

    def tokens(arguments):
        r = requests.post(server.base_url + "/tokenize", json={"messages": conversation(arguments), "tools": TOOLS})
        return r
    as_object = tokens({"city": "Paris", "unit": "celsius"})
    assert as_object.status_code == 200, as_object.text
    as_text = tokens('{"city": "Paris", "unit": "celsius"}')
    assert as_text.status_code == 200 and as_text.json()["tokens"] == as_object.json()["tokens"]
    bad = tokens('{"city": "Par')
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
