"""Conformance: inferd's chat template engine against Python jinja2.

Every template in shared/testdata/chat_templates is rendered for a set of conversations,
once by jinja2 configured exactly as transformers configures it
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, the
`{% generation %}` tag, raise_exception, strftime_now, transformers' tojson) and once by
inferd (tests/unit/chat/inferd_chat_render). The two renderings must be byte-identical,
or both must fail (with the same message when the template itself calls raise_exception).

strftime_now sees a fixed instant (FIXED_NOW, formatted as UTC) on both sides.

Run: INFERD_BUILD_DIR=build/release python3 -m pytest tests/reference/test_chat_templates.py -q
"""

import copy
import datetime
import json
import os
import pathlib
import subprocess

import inferd_build
import pytest

jinja2 = pytest.importorskip("jinja2")
from jinja2 import nodes  # noqa: E402
from jinja2.ext import Extension, loopcontrols  # noqa: E402
from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
TESTDATA = pathlib.Path(os.environ.get("INFERD_TESTDATA_DIR", REPO.parent / "shared" / "testdata"))
TEMPLATE_DIR = TESTDATA / "chat_templates"
BUILD_DIR = inferd_build.build_dir()  # tests/support, on the path from conftest.py
if not BUILD_DIR.is_absolute():
    BUILD_DIR = REPO / BUILD_DIR
TOOL = BUILD_DIR / "tests" / "unit" / "chat" / "inferd_chat_render"

FIXED_NOW = 1721995200  # 2024-07-26 12:00:00 UTC
BOS, EOS = "<s>", "</s>"


# ---------------------------------------------------------------------------------------
# Reference environment (mirrors transformers.utils.chat_template_utils._compile_jinja_template)


class GenerationTag(Extension):
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def _raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt):
    return datetime.datetime.fromtimestamp(FIXED_NOW, tz=datetime.timezone.utc).strftime(fmt)


def _make_env():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


ENV = _make_env()


def reference_render(source, case):
    """Returns ("ok", text), ("raise", message) for the template's own raise_exception(message),
    or ("error", description) for any other failure."""
    try:
        tmpl = ENV.from_string(source)
        ctx = dict(messages=copy.deepcopy(case["messages"]), tools=copy.deepcopy(case["tools"]),
                   documents=None, add_generation_prompt=case["add_generation_prompt"],
                   bos_token=BOS, eos_token=EOS)
        ctx.update(copy.deepcopy(case["extra_context"]))
        text = tmpl.render(**ctx)
        if case.get("continue_final_message"):
            text = _cut_after_final_message(text, case["messages"])
        return ("ok", text)
    except Exception as e:  # noqa: BLE001 - any jinja2 failure counts as "error"
        if type(e) is jinja2.exceptions.TemplateError:  # exactly what _raise_exception raises
            return ("raise", str(e))
        return ("error", f"{type(e).__name__}: {e}")


def _cut_after_final_message(rendered, messages):
    # transformers' apply_chat_template continue_final_message handling.
    final = messages[-1]["content"]
    if isinstance(final, (list, tuple)):
        for block in reversed(final):
            if "text" in block:
                final = block["text"]
                break
        else:
            raise ValueError("no text to continue in the final message")
    if final.strip() not in rendered:
        raise ValueError("final message does not appear in the rendered chat")
    loc = rendered.rindex(final.strip())
    if rendered[loc:loc + len(final.lstrip())] == final:
        return rendered[:loc + len(final.lstrip())]
    return rendered[:loc + len(final.strip())]


# ---------------------------------------------------------------------------------------
# Conversations

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city. Returns \"sunny\" or <rainy> & more.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Zürich"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Unit"},
                "days": {"type": "integer", "description": "Forecast days"},
            },
            "required": ["city"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "filters": {"type": "array", "items": {"type": "string"}},
                "opts": {"type": "object", "properties": {"safe": {"type": "boolean"}}},
            },
            "required": ["query"],
        },
    },
}

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
USER1 = {"role": "user", "content": "Hello! What is 2 + 2?"}
ASSIST1 = {"role": "assistant", "content": "2 + 2 = 4."}
USER2 = {"role": "user", "content": "Thanks. Now say héllo in Chinese: 世界 🚀 \"quoted\" <tag> & 'single'"}
TOOL_CALL = {
    "role": "assistant",
    "content": "",
    "tool_calls": [{
        "id": "call00001",
        "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius", "days": 3}},
    }],
}
TOOL_RESULT = {"role": "tool", "tool_call_id": "call00001", "name": "get_weather",
               "content": "{\"temperature\": 21, \"condition\": \"sunny\"}"}
ASSIST_AFTER_TOOL = {"role": "assistant", "content": "It is 21 °C and sunny in Paris."}

# A tool round trip as an OpenAI client sends it back: the assistant's tool_calls (id, type,
# function {name, arguments as a JSON string}), one role "tool" message per call with only
# tool_call_id and content, then the next user turn.
OPENAI_TOOL_TURN = [
    SYSTEM,
    {"role": "user", "content": "Weather in Paris, and search “café” news?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "chatcmpl-tool-8f3a", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"days\": 2}"}},
        {"id": "Ab3dE5gH9", "type": "function",
         "function": {"name": "search", "arguments": "{\"query\": \"café \\\"news\\\"\", \"filters\": [\"today\"]}"}}]},
    {"role": "tool", "tool_call_id": "chatcmpl-tool-8f3a", "content": "{\"temperature\": 21, \"sky\": \"<sunny>\"}"},
    {"role": "tool", "tool_call_id": "Ab3dE5gH9", "content": "No news: 世界 & 'quiet'."},
    {"role": "user", "content": "Thanks! And tomorrow?"},
]


def _with_dict_arguments(messages, content=None):
    """The arguments parsed (as vLLM hands them to templates); content "" instead of None when given."""
    out = copy.deepcopy(messages)
    for m in out:
        for call in m.get("tool_calls") or []:
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
            if content is not None:
                m["content"] = content
    return out


def _conversations():
    convs = {
        "system_user": dict(messages=[SYSTEM, USER1]),
        "user_only": dict(messages=[USER1]),
        "multi_turn": dict(messages=[SYSTEM, USER1, ASSIST1, USER2]),
        "multi_turn_no_system": dict(messages=[USER1, ASSIST1, USER2]),
        "tool_use": dict(messages=[SYSTEM, {"role": "user", "content": "Weather in Paris?"}, TOOL_CALL,
                                   TOOL_RESULT, ASSIST_AFTER_TOOL, {"role": "user", "content": "And tomorrow?"}],
                         tools=[WEATHER_TOOL, SEARCH_TOOL]),
        "tools_no_calls": dict(messages=[USER1], tools=[WEATHER_TOOL]),
        "content_parts": dict(messages=[SYSTEM, {"role": "user", "content": [
            {"type": "text", "text": "Describe this:"}, {"type": "text", "text": " two parts."}]}]),
        "reasoning": dict(messages=[USER1, {"role": "assistant", "content": "4.",
                                            "reasoning_content": "2 plus 2 is 4."}, USER2]),
        "thinking_off": dict(messages=[SYSTEM, USER1], extra_context={"enable_thinking": False}),
        "thinking_on": dict(messages=[USER1, ASSIST1, USER2], extra_context={"enable_thinking": True}),
        "final_assistant": dict(messages=[SYSTEM, USER1, ASSIST1]),
        "empty_system": dict(messages=[{"role": "system", "content": ""}, USER1]),
        "tool_call_string_args": dict(
            messages=[{"role": "user", "content": "Weather?"},
                      dict(TOOL_CALL, tool_calls=[{"id": "call00002", "type": "function", "function": {
                          "name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]),
                      dict(TOOL_RESULT, tool_call_id="call00002")],
            tools=[WEATHER_TOOL]),
        "parallel_tool_calls": dict(
            messages=[{"role": "user", "content": "Weather in Paris and news?"},
                      {"role": "assistant", "content": None, "tool_calls": [
                          TOOL_CALL["tool_calls"][0],
                          {"id": "call00003", "type": "function", "function": {
                              "name": "search", "arguments": {"query": "news", "filters": ["today"],
                                                              "opts": {"safe": True}}}}]},
                      TOOL_RESULT,
                      {"role": "tool", "tool_call_id": "call00003", "name": "search", "content": "No news."}],
            tools=[WEATHER_TOOL, SEARCH_TOOL]),
        "image_parts": dict(messages=[{"role": "user", "content": [
            {"type": "image"}, {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            {"type": "text", "text": "What is in the image?"}]}]),
        "system_parts": dict(messages=[{"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
                                       USER1]),
        "openai_tool_round_trip": dict(messages=OPENAI_TOOL_TURN, tools=[WEATHER_TOOL, SEARCH_TOOL]),
        "openai_tool_round_trip_dict_args": dict(messages=_with_dict_arguments(OPENAI_TOOL_TURN),
                                                 tools=[WEATHER_TOOL, SEARCH_TOOL]),
        "openai_tool_round_trip_empty_content": dict(messages=_with_dict_arguments(OPENAI_TOOL_TURN, content=""),
                                                     tools=[WEATHER_TOOL, SEARCH_TOOL]),
        "reasoning_history": dict(messages=[
            USER1, {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4.", "reasoning_content": "add"},
            USER2, {"role": "assistant", "content": "世界", "reasoning_content": "translate"},
            {"role": "user", "content": "Bye"}],
            extra_context={"reasoning_effort": "high"}),
    }
    cases = []
    for name, c in convs.items():
        for agp in (True, False):
            cases.append(dict(name=f"{name}-{'gen' if agp else 'nogen'}", messages=c["messages"],
                              tools=c.get("tools"), add_generation_prompt=agp,
                              extra_context=c.get("extra_context", {})))
    cases.append(dict(name="continue_final", messages=[USER1, {"role": "assistant", "content": "The answer is"}],
                      tools=None, add_generation_prompt=False, continue_final_message=True, extra_context={}))
    return cases


CASES = _conversations()
TEMPLATES = sorted(p.name for p in TEMPLATE_DIR.glob("*.jinja")) if TEMPLATE_DIR.is_dir() else []


# ---------------------------------------------------------------------------------------
# inferd side: all requests in one process run


@pytest.fixture(scope="module")
def inferd_results():
    if not TOOL.exists():
        pytest.skip(f"{TOOL} not built (set INFERD_BUILD_DIR)")
    lines, keys = [], []
    for t in TEMPLATES:
        for c in CASES:
            req = dict(template_path=str(TEMPLATE_DIR / t), messages=c["messages"], tools=c["tools"],
                       add_generation_prompt=c["add_generation_prompt"],
                       continue_final_message=c.get("continue_final_message", False),
                       bos_token=BOS, eos_token=EOS, extra_context=c["extra_context"], now=FIXED_NOW)
            lines.append(json.dumps(req, ensure_ascii=False))
            keys.append((t, c["name"]))
    proc = subprocess.run([str(TOOL)], input="\n".join(lines) + "\n", capture_output=True, text=True,
                          encoding="utf-8", timeout=600)
    assert proc.returncode == 0, f"inferd_chat_render failed: {proc.stderr[-2000:]}"
    outs = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert len(outs) == len(keys), "inferd_chat_render produced a wrong number of lines"
    return dict(zip(keys, outs))


_SOURCES = {}


def _source(name):
    if name not in _SOURCES:
        _SOURCES[name] = (TEMPLATE_DIR / name).read_text(encoding="utf-8")
    return _SOURCES[name]


@pytest.mark.skipif(not TEMPLATES, reason=f"no templates in {TEMPLATE_DIR}")
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
@pytest.mark.parametrize("template", TEMPLATES)
def test_template_conformance(template, case, inferd_results):
    status, expected = reference_render(_source(template), case)
    got = inferd_results[(template, case["name"])]
    if status == "raise":
        assert not got["ok"], f"template raised ({expected}) but inferd rendered:\n{got.get('text', '')[:2000]}"
        assert got["error"] == expected, "raise_exception message differs"
        return
    if status == "error":
        assert not got["ok"], f"jinja2 failed ({expected}) but inferd rendered:\n{got.get('text', '')[:2000]}"
        return
    assert got["ok"], f"inferd failed: {got['error']}\n--- jinja2 rendered:\n{expected[:2000]}"
    if got["text"] != expected:
        # Point at the first difference: whole renders can be many kilobytes.
        k = next((i for i, (a, b) in enumerate(zip(got["text"], expected)) if a != b),
                 min(len(got["text"]), len(expected)))
        pytest.fail(f"mismatch at char {k}:\n--- jinja2: {expected[max(0, k - 200):k + 200]!r}\n"
                    f"--- inferd: {got['text'][max(0, k - 200):k + 200]!r}")


# ---------------------------------------------------------------------------------------
# Differential fuzzing: random expressions over literals, operators, filters, tests and
# methods, rendered by both engines (fixed seed, so failures reproduce).

_ATOMS = ["1", "0", "-3", "2.5", "0.1", "'abc'", "''", "'A b'", "' x '", "none", "true", "false", "[1, 2, 3]",
          "[]", "['b', 'a']", "{'k': 1, 'a': [2]}", "{}", "(1, 'x')", "d", "l", "s", "n", "u", "d.k", "l[0]",
          "s[1:]", "l[-1]", "'é世'"]
_BINOPS = ["+", "-", "*", "/", "//", "%", "~", "==", "!=", "<", ">", "<=", ">=", "in", "not in", "and", "or"]
_FILTERS = ["length", "string", "trim", "upper", "lower", "title", "capitalize", "first", "last", "list", "join",
            "join(', ')", "tojson", "tojson(indent=2)", "default('D')", "d(1, true)", "int", "float", "abs",
            "round", "round(1)", "reverse|list", "sort", "unique|list", "items|list", "dictsort", "safe",
            "indent(2)", "wordcount", "replace('a', 'Z')", "map('string')|list", "select|list", "reject|list",
            "count", "max", "min", "sum", "e", "center(9)"]
_TESTS = ["defined", "undefined", "none", "string", "mapping", "iterable", "sequence", "number", "integer", "float",
          "boolean", "true", "false", "odd", "even", "divisibleby(2)", "eq(1)", "in([1, 'abc'])", "lower", "upper",
          "callable"]
_METHODS = ["strip()", "upper()", "lower()", "split()", "split('b')", "startswith('a')", "endswith('c')",
            "replace('b', 'X')", "find('b')", "count('a')", "title()", "capitalize()", "lstrip('a')", "rstrip('c')",
            "splitlines()", "isdigit()", "format(1)", "join(['1', '2'])", "get('k')", "keys()|list",
            "values()|list", "items()|list", "index(2)"]
_FUZZ_CTX = {"d": {"k": "v", "z": [1, 2]}, "l": [3, 1, 2], "s": "abcb", "n": None}


def _random_expr(rng, depth=0):
    r = rng.random()
    if depth > 2 or r < 0.3:
        return rng.choice(_ATOMS)
    if r < 0.5:
        return f"({_random_expr(rng, depth + 1)} {rng.choice(_BINOPS)} {_random_expr(rng, depth + 1)})"
    if r < 0.65:
        return f"({_random_expr(rng, depth + 1)}|{rng.choice(_FILTERS)})"
    if r < 0.75:
        return f"({_random_expr(rng, depth + 1)} is {rng.choice(['', 'not '])}{rng.choice(_TESTS)})"
    if r < 0.85:
        return f"{rng.choice(['s', chr(39) + 'aXb c' + chr(39), 'd', 'l'])}.{rng.choice(_METHODS)}"
    if r < 0.92:
        return f"({_random_expr(rng, depth + 1)} if {_random_expr(rng, depth + 1)} else {_random_expr(rng, depth + 1)})"
    return f"(not {_random_expr(rng, depth + 1)})"


def test_random_expressions_match_jinja2(tmp_path):
    if not TOOL.exists():
        pytest.skip(f"{TOOL} not built (set INFERD_BUILD_DIR)")
    import random
    rng = random.Random(20241122)
    sources = ["{{ " + _random_expr(rng) + " }}" for _ in range(3000)]
    lines = []
    for i, src in enumerate(sources):
        path = tmp_path / f"{i}.jinja"
        path.write_text(src, encoding="utf-8")
        lines.append(json.dumps(dict(template_path=str(path), messages=[], tools=None, add_generation_prompt=False,
                                     extra_context=_FUZZ_CTX, now=FIXED_NOW), ensure_ascii=False))
    proc = subprocess.run([str(TOOL)], input="\n".join(lines) + "\n", capture_output=True, text=True,
                          encoding="utf-8", timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    mismatches = []
    for src, line in zip(sources, proc.stdout.splitlines()):
        got = json.loads(line)
        try:
            want = ENV.from_string(src).render(bos_token=BOS, eos_token=EOS, messages=[], tools=None, documents=None,
                                               add_generation_prompt=False, **copy.deepcopy(_FUZZ_CTX))
            ok = True
        except Exception as e:  # noqa: BLE001
            want, ok = f"{type(e).__name__}: {e}", False
        if ok != got["ok"] or (ok and want != got["text"]):
            mismatches.append(f"{src}\n  jinja2: {ok} {want!r}\n  inferd: {got['ok']} {got.get('text', got.get('error'))!r}")
    assert not mismatches, f"{len(mismatches)} of {len(sources)} differ:\n" + "\n".join(mismatches[:20])
