"""Hostile and broken input against a live `inferd serve` (issue 15): every class of
request that crashed, hung, bloated or was silently ignored gets a clear error, and the
server stays up and answers /health throughout."""

import json
import os
import signal
import threading
import time
import urllib.request

import pytest

from test_api_core import assert_error, raw

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def healthy(server):
    st, _, _ = raw(server, "GET", "/health")
    return st == 200


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def deep(levels, leaf="1"):
    return "[" * levels + leaf + "]" * levels


# ---- 1. deep nesting -----------------------------------------------------------------------

DEEP = deep(75000)  # the ~150 KB body that killed the server (SIGSEGV) before


@pytest.mark.parametrize("path,body,param_prefix", [
    ("/tokenize", '{"messages": [{"role": "user", "content": "hi", "x": %s}]}', "messages[0].x"),
    ("/tokenize", '{"messages": %s}', "messages"),
    ("/v1/chat/completions", '{"messages": [{"role": "user", "content": "hi"}], "tools": %s}', "tools"),
    ("/v1/chat/completions", '{"messages": [{"role": "user", "content": "hi"}], "tool_choice": "none", '
                             '"tools": [{"type": "function", "function": {"name": "f", "parameters": %s}}]}',
     "tools[0].function.parameters"),
    ("/v1/chat/completions", '{"messages": [{"role": "user", "content": "hi"}], "chat_template_kwargs": {"a": %s}}',
     "chat_template_kwargs.a"),
    ("/v1/completions", '{"prompt": %s}', "prompt"),
])
def test_deeply_nested_json_is_a_400(server, path, body, param_prefix):
    st, _, payload = raw(server, "POST", path, body % DEEP)
    assert_error(st, payload, 400, "nested deeper than 200 levels")
    assert json.loads(payload)["error"]["param"].startswith(param_prefix)
    assert healthy(server)


def test_nesting_within_the_limit_reaches_the_template(server):
    # 150 levels inside chat_template_kwargs: parsed, converted and rendered (not rejected).
    body = '{"messages": [{"role": "user", "content": "hi"}], "chat_template_kwargs": {"a": %s}}' % deep(150)
    st, _, payload = raw(server, "POST", "/tokenize", body)
    assert st == 200, payload


# ---- 2. request ids ------------------------------------------------------------------------

def test_concurrent_requests_with_the_same_request_id_all_end(server):
    results = [None] * 4

    def go(i):
        results[i] = raw(server, "POST", "/v1/completions",
                         {"prompt": f"Count to {i + 3}:", "max_tokens": 12, "stream": i % 2 == 0,
                          "request_id": "same-id", "ignore_eos": True})

    threads = [threading.Thread(target=go, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for i, r in enumerate(results):
        assert r is not None, "a request was never answered"
        st, _, payload = r
        assert st == 200, payload
        if i % 2 == 0:
            assert payload.endswith(b"data: [DONE]\n\n")
            assert b'"id":"cmpl-same-id"' in payload  # the client's id stays the label
        else:
            assert json.loads(payload)["id"] == "cmpl-same-id"


# ---- 4. numbers ----------------------------------------------------------------------------

@pytest.mark.parametrize("fragment,param,text", [
    ('"temperature": 1e999', "temperature", "number overflow"),
    ('"top_p": -1e400', "top_p", "number overflow"),
    ('"top_k": 4294967296', "top_k", "4294967296"),
    ('"max_tokens": 9223372036854775808', "max_tokens", "got 9223372036854775808"),
    ('"max_tokens": 1e20', "max_tokens", "at least 1"),
    ('"seed": 9223372036854775808', "seed", "64-bit integer"),
    ('"seed": -9223372036854775809', "seed", "64-bit integer"),
    ('"priority": 1099511627776', "priority", "32-bit integer"),
    ('"n": 18446744073709551616', "n", "between 1 and 128"),
    ('"min_tokens": 2147483648', "min_tokens", "at least 0"),
    ('"logprobs": 21', "logprobs", "between 0 and 20"),
    ('"temperature": 1e300', "temperature", "finite 32-bit float"),
    ('"stop_token_ids": [18446744073709551615]', "stop_token_ids", "out of vocabulary"),
    ('"logit_bias": {"99999999999999999999": 1}', "logit_bias", "not a token id"),
])
def test_out_of_range_numbers_are_400s_naming_the_field(server, fragment, param, text):
    body = '{"prompt": "hi", %s}' % fragment
    if fragment.startswith('"max_tokens"'):
        body = '{"prompt": "hi", %s}' % fragment
    else:
        body = '{"prompt": "hi", "max_tokens": 2, %s}' % fragment
    st, _, payload = raw(server, "POST", "/v1/completions", body)
    assert_error(st, payload, 400, text, param=param)
    assert "-92233720368" not in json.loads(payload)["error"]["message"]  # nothing wrapped negative


# ---- 10. fields are implemented or rejected -------------------------------------------------

@pytest.mark.parametrize("route,extra,param,text", [
    ("/v1/completions", {"response_format": {"type": "sound"}}, "response_format", "invalid"),
    ("/v1/chat/completions", {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
     "response_format", "'response_format.json_schema.schema' is required"),
    ("/v1/completions", {"response_format": {"type": "json_object", "schema": {}}}, "response_format",
     "not a field of type json_object"),
    ("/v1/completions", {"prompt_logprobs": -1}, "prompt_logprobs", "max allowed: 20"),
    ("/v1/completions", {"prompt_logprobs": 2, "stream": True}, "prompt_logprobs", "stream"),
    ("/v1/completions", {"frobnicate": 1}, "frobnicate", "not a field of /v1/completions"),
    ("/v1/chat/completions", {"store": True}, "store", "not supported"),
    ("/v1/chat/completions", {"guided_json": {"type": "object"}, "structured_outputs": {"regex": "a"}}, "guided_json",
     "only use one kind of structured outputs"),
    ("/v1/completions", {"structured_outputs": {"regex": "a", "choice": ["a"]}}, "structured_outputs",
     "only use one kind"),
    ("/v1/completions", {"structured_outputs": {"choice": []}}, "structured_outputs.choice", "non-empty array"),
    ("/v1/completions", {"structured_outputs": {"regex": "a", "whitespace_pattern": " "}},
     "structured_outputs.whitespace_pattern", "not supported"),
    ("/v1/completions", {"structured_outputs": {"json": "{not json"}}, "structured_outputs.json", "JSON schema"),
    ("/v1/completions", {"structured_outputs": {"regex": "a"}, "use_beam_search": True, "n": 2}, "use_beam_search",
     "structured outputs"),
    ("/v1/completions", {"guided_decoding_backend": "xgrammar"}, "guided_decoding_backend", "structured_outputs"),
    ("/v1/chat/completions", {"tools": [{"type": "function", "function": {"name": "f"}}]}, "tool_choice",
     "tool-call parser"),
    ("/v1/chat/completions", {"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto"},
     "tool_choice", "tool-call parser"),
    ("/v1/chat/completions", {"tools": [{"type": "function", "function": {"name": "f"}}],
                              "tool_choice": {"type": "function", "function": {"name": "g"}}},
     "tool_choice", "Tool 'g' has not been passed"),
    ("/v1/chat/completions", {"tools": [{"type": "function", "function": {"name": ""}}], "tool_choice": "required"},
     "tools[0].function.name", "non-empty string"),
    ("/v1/chat/completions", {"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required",
                              "response_format": {"type": "json_object"}}, "tool_choice", "cannot be combined"),
    ("/v1/completions", {"stream": True, "stream_options": {"include_usage": True, "x": 1}}, "stream_options.x",
     "not a field of stream_options"),
    ("/v1/completions", {"truncate_prompt_tokens": 5000}, "truncate_prompt_tokens", "greater than max_model_len"),
    ("/v1/completions", {"use_beam_search": True, "n": 11}, "n", "max allowed: 20"),
    ("/v1/completions", {"use_beam_search": True, "n": 2, "top_p": 0.5}, "top_p", "use_beam_search"),
    ("/v1/completions", {"length_penalty": 2.0}, "length_penalty", "use_beam_search"),
    ("/v1/chat/completions", {"chat_template": "{{ 1 }}"}, "chat_template", "--trust-request-chat-template"),
])
def test_unimplemented_or_invalid_fields_are_rejected(server, route, extra, param, text):
    body = {"max_tokens": 2, **extra}
    if route == "/v1/completions":
        body["prompt"] = "hi"
    else:
        body["messages"] = [{"role": "user", "content": "hi"}]
    st, _, payload = raw(server, "POST", route, body)
    assert_error(st, payload, 400, text, param=param)


def test_response_format_text_is_plain_generation(server):
    base = {"prompt": "The capital of France is", "max_tokens": 4, "temperature": 0}
    a = json.loads(raw(server, "POST", "/v1/completions", base)[2])
    b = json.loads(raw(server, "POST", "/v1/completions", {**base, "response_format": {"type": "text"}})[2])
    assert a["choices"][0]["text"] == b["choices"][0]["text"]


def test_truncate_prompt_tokens_keeps_the_last_tokens(server):
    prompt = "one two three four five six seven eight nine ten eleven twelve"
    ids = json.loads(raw(server, "POST", "/tokenize", {"prompt": prompt})[2])["tokens"]
    r = json.loads(raw(server, "POST", "/v1/completions",
                       {"prompt": prompt, "max_tokens": 3, "temperature": 0, "truncate_prompt_tokens": 4,
                        "return_token_ids": True})[2])
    assert r["usage"]["prompt_tokens"] == 4
    assert r["choices"][0]["prompt_token_ids"] == ids[-4:]
    same = json.loads(raw(server, "POST", "/v1/completions",
                          {"prompt": ids[-4:], "max_tokens": 3, "temperature": 0})[2])
    assert r["choices"][0]["text"] == same["choices"][0]["text"]


def test_return_token_ids_completions_and_chat(server):
    r = json.loads(raw(server, "POST", "/v1/completions",
                       {"prompt": "Hello there", "max_tokens": 5, "temperature": 0, "return_token_ids": True})[2])
    c = r["choices"][0]
    ids = json.loads(raw(server, "POST", "/tokenize", {"prompt": "Hello there"})[2])["tokens"]
    assert c["prompt_token_ids"] == ids and len(c["token_ids"]) == r["usage"]["completion_tokens"]
    text = json.loads(raw(server, "POST", "/detokenize", {"tokens": c["token_ids"]})[2])["prompt"]
    assert text == c["text"]
    plain = json.loads(raw(server, "POST", "/v1/completions",
                           {"prompt": "Hello there", "max_tokens": 5, "temperature": 0})[2])["choices"][0]
    assert "token_ids" not in plain and "prompt_token_ids" not in plain

    msgs = [{"role": "user", "content": "Say hi"}]
    chat = json.loads(raw(server, "POST", "/v1/chat/completions",
                          {"messages": msgs, "max_tokens": 5, "temperature": 0, "return_token_ids": True})[2])
    prompt_ids = json.loads(raw(server, "POST", "/tokenize", {"messages": msgs})[2])["tokens"]
    assert chat["prompt_token_ids"] == prompt_ids
    assert len(chat["choices"][0]["token_ids"]) == chat["usage"]["completion_tokens"]

    # Streaming: prompt ids once (first chunk), token ids per chunk adding up to the whole.
    st, _, payload = raw(server, "POST", "/v1/chat/completions",
                         {"messages": msgs, "max_tokens": 5, "temperature": 0, "return_token_ids": True,
                          "stream": True})
    chunks = [json.loads(l[6:]) for l in payload.decode().split("\n\n") if l.startswith("data: {")]
    assert chunks[0]["prompt_token_ids"] == prompt_ids
    assert all("prompt_token_ids" not in c for c in chunks[1:])
    streamed = [t for c in chunks for ch in c["choices"] for t in ch.get("token_ids", [])]
    assert streamed == chat["choices"][0]["token_ids"]


def test_prompt_logprobs_on_the_server(server):
    prompt = "The capital of France is"
    ids = json.loads(raw(server, "POST", "/tokenize", {"prompt": prompt})[2])["tokens"]
    r = json.loads(raw(server, "POST", "/v1/completions",
                       {"prompt": prompt, "max_tokens": 1, "temperature": 0, "prompt_logprobs": 2})[2])
    pl = r["choices"][0]["prompt_logprobs"]
    assert len(pl) == len(ids) and pl[0] is None
    for pos, entry in zip(ids[1:], pl[1:]):
        assert str(pos) in entry  # the prompt's own token is always there
        ranks = sorted(v["rank"] for v in entry.values())
        assert ranks[:2] == [1, 2] or (len(entry) == 2 and 1 in ranks)
        assert all(v["logprob"] <= 0 for v in entry.values())
    chat = json.loads(raw(server, "POST", "/v1/chat/completions",
                          {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, "prompt_logprobs": 0})[2])
    assert chat["prompt_logprobs"][0] is None and len(chat["prompt_logprobs"]) == chat["usage"]["prompt_tokens"]


def test_continuous_usage_stats(server):
    st, _, payload = raw(server, "POST", "/v1/completions",
                         {"prompt": "Once upon a time", "max_tokens": 6, "ignore_eos": True, "stream": True,
                          "stream_options": {"include_usage": True, "continuous_usage_stats": True}})
    chunks = [json.loads(l[6:]) for l in payload.decode().split("\n\n") if l.startswith("data: {")]
    counts = [c["usage"]["completion_tokens"] for c in chunks if c["choices"]]
    assert counts == sorted(counts) and counts[-1] == 6
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 6
    assert all(c["usage"]["prompt_tokens"] == chunks[-1]["usage"]["prompt_tokens"] for c in chunks)


def _teacher_forced(server, prompt_ids, tokens):
    """Sum of log p(token | prefix) over the generated part, from the server's prompt logprobs."""
    r = json.loads(raw(server, "POST", "/v1/completions",
                       {"prompt": prompt_ids + tokens, "max_tokens": 1, "prompt_logprobs": 0})[2])
    pl = r["choices"][0]["prompt_logprobs"]
    return sum(pl[len(prompt_ids) + i][str(t)]["logprob"] for i, t in enumerate(tokens))


def test_use_beam_search_returns_the_best_distinct_beams(server):
    prompt = "My favourite animal is the"
    prompt_ids = json.loads(raw(server, "POST", "/tokenize", {"prompt": prompt})[2])["tokens"]
    r = json.loads(raw(server, "POST", "/v1/completions",
                       {"prompt": prompt, "max_tokens": 6, "n": 3, "use_beam_search": True, "ignore_eos": True,
                        "temperature": 0, "return_token_ids": True})[2])
    beams = [c["token_ids"] for c in r["choices"]]
    assert len(beams) == 3 and len({tuple(b) for b in beams}) == 3  # n=2 used to return copies
    scores = [_teacher_forced(server, prompt_ids, b) / (len(prompt_ids) + len(b)) for b in beams]
    assert scores == sorted(scores, reverse=True)
    greedy = json.loads(raw(server, "POST", "/v1/completions",
                            {"prompt": prompt, "max_tokens": 6, "temperature": 0, "ignore_eos": True,
                             "return_token_ids": True})[2])["choices"][0]["token_ids"]
    assert _teacher_forced(server, prompt_ids, beams[0]) >= _teacher_forced(server, prompt_ids, greedy) - 1e-3
    # Streaming delivers the same beams.
    st, _, payload = raw(server, "POST", "/v1/completions",
                         {"prompt": prompt, "max_tokens": 6, "n": 3, "use_beam_search": True, "ignore_eos": True,
                          "temperature": 0, "stream": True})
    chunks = [json.loads(l[6:]) for l in payload.decode().split("\n\n") if l.startswith("data: {")]
    texts = {c["choices"][0]["index"]: c["choices"][0]["text"] for c in chunks}
    assert [texts[i] for i in range(3)] == [c["text"] for c in r["choices"]]


def test_tokenize_messages_applies_tools_and_kwargs_like_chat(start_server):
    # Qwen3's template lists the tools and reads enable_thinking from chat_template_kwargs.
    testdata = os.environ.get("INFERD_TESTDATA_DIR") or os.path.join(ROOT, "..", "shared", "testdata")
    s = start_server("--chat-template", os.path.join(testdata, "chat_templates", "Qwen-Qwen3-0.6B.jinja"))
    msgs = [{"role": "user", "content": "What is the weather?"}]
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                               "parameters": {"type": "object",
                                                              "properties": {"city": {"type": "string"}}}}}]
    kwargs = {"enable_thinking": False}

    def count(**extra):
        st, _, payload = raw(s, "POST", "/tokenize", {"messages": msgs, **extra})
        assert st == 200, payload
        return json.loads(payload)["count"]

    def chat_count(**extra):
        st, _, payload = raw(s, "POST", "/v1/chat/completions", {"messages": msgs, "max_tokens": 1, **extra})
        assert st == 200, payload
        return json.loads(payload)["usage"]["prompt_tokens"]

    plain, with_tools, with_kwargs = count(), count(tools=tools), count(chat_template_kwargs=kwargs)
    assert with_tools > plain and with_kwargs != plain  # both reach the template
    assert with_tools == chat_count(tools=tools, tool_choice="none")
    assert with_kwargs == chat_count(chat_template_kwargs=kwargs)


# ---- 5 and 6: work off the I/O thread, bounded ------------------------------------------------

APPEND_LOOP = ("{% set ns = namespace(s='') %}{% for i in range(100000) %}"
               "{% set ns.s = ns.s + 'xxxxxxxxxx' * 100 %}{% endfor %}{{ ns.s }}")
LIST_GROWTH = "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}"
EXPONENTIAL = ("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}x{% endmacro %}{{ f(60) }}")
BIG_OUTPUT = "{{ 'y' * 60000000 }}"


@pytest.fixture(scope="module")
def template_server(inferd_bin, tmp_path_factory):
    from conftest import ServerProcess, _stop_and_check
    s = ServerProcess(inferd_bin, ["--trust-request-chat-template"], tmp_path_factory.mktemp("tmpl"))
    yield s
    _stop_and_check([s])


@pytest.mark.parametrize("template,text", [
    (APPEND_LOOP, "chat template"),
    (LIST_GROWTH, "chat template"),
    (EXPONENTIAL, "chat template"),
    (BIG_OUTPUT, "chat template"),
])
def test_runaway_templates_are_400s_with_bounded_memory(template_server, template, text):
    s = template_server
    st, _, payload = raw(s, "POST", "/v1/chat/completions",
                         {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, "chat_template": template})
    assert_error(st, payload, 400, text)
    assert healthy(s)
    # The list-growth loop reached 6 GiB in 18 s before; the render budget caps it.
    assert rss_mb(s.proc.pid) < 1600


# Just under the render budget (900,000 iterations of the 1,000,000 allowed, ~9M of the
# 10M steps): about half a second of one core here, the longest a render can take.
BUSY = ("{% set ns = namespace(n=0) %}{% for i in range(900) %}{% for j in range(1000) %}"
        "{% set ns.n = ns.n + 1 %}{% endfor %}{% endfor %}{{ ns.n }}")


def test_health_answers_while_templates_render(template_server):
    # Six renders of half a second each keep both prep workers busy for ~1.5 s; /health,
    # asked meanwhile, must not wait for them (it waited for every render when templates
    # ran on the I/O thread).
    s = template_server
    finished = []

    def go():
        st, _, payload = raw(s, "POST", "/tokenize", {"messages": [{"role": "user", "content": "hi"}],
                                                      "chat_template": BUSY})
        finished.append((time.monotonic(), st, payload))
    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    assert healthy(s)
    health_done = time.monotonic()
    for t in threads:
        t.join(120)
    assert len(finished) == 6 and all(st == 200 for _, st, _ in finished), finished
    assert health_done < max(t for t, _, _ in finished)


def test_sigterm_during_renders_exits_cleanly(inferd_bin, tmp_path):
    from conftest import ServerProcess
    s = ServerProcess(inferd_bin, ["--trust-request-chat-template"], tmp_path)
    results = []

    def go():
        results.append(raw(s, "POST", "/tokenize", {"messages": [{"role": "user", "content": "hi"}],
                                                    "chat_template": BUSY}))
    # Eight renders are ~4 s of work for the two prep workers: at the signal, two are
    # rendering and six are waiting.
    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(timeout=30) == 0
    for t in threads:
        t.join(10)
    s.stop()
    assert s.sanitizer_report() is None, s.sanitizer_report()
    # SIGTERM is honoured while templates render (the server used to need SIGKILL), and
    # every request is answered: the renders under way are cancelled, the waiting ones
    # never start; the client is told the server is shutting down.
    assert len(results) == 8, results
    statuses = sorted(st for st, _, _ in results)
    assert statuses.count(503) >= 6 and set(statuses) <= {200, 503}, statuses
    for st, _, payload in results:
        if st == 503:
            assert_error(st, payload, 503, "shutting down")


def test_request_template_refused_without_the_flag(server):
    st, _, payload = raw(server, "POST", "/v1/chat/completions",
                         {"messages": [{"role": "user", "content": "hi"}], "chat_template": APPEND_LOOP})
    assert_error(st, payload, 400, "--trust-request-chat-template", param="chat_template")


def test_prompt_longer_than_the_context_is_rejected_before_tokenizing(server):
    # 1 MB of text cannot fit in 2048 tokens (at most 81 bytes each, times 4 for the
    # slack: 648 KiB); the answer names bytes, not a token count: it was never tokenized.
    huge = "word " * 200_000
    st, _, payload = raw(server, "POST", "/v1/completions", {"prompt": huge, "max_tokens": 1})
    assert_error(st, payload, 400, "bytes long", "2048 tokens", param="prompt")
    st, _, payload = raw(server, "POST", "/tokenize", {"prompt": huge})
    assert_error(st, payload, 400, "bytes long", param="prompt")
    assert healthy(server)


def test_default_body_limit_is_sized_to_the_context(server):
    # Twice the 648 KiB a 2048-token context can hold, plus 1 MiB: 2.3 MB. The 60 MB body
    # that blocked /health for 10 s is refused from its header.
    st, _, payload = raw(server, "POST", "/v1/completions", b'{"prompt": "' + b"x" * 3_000_000 + b'"}')
    assert_error(st, payload, 413, "exceeds the limit of 2375680 bytes")
    assert healthy(server)


# ---- 7. memory ------------------------------------------------------------------------------

def test_rss_is_flat_under_parallel_sampling(start_server):
    """n=64 over many prompts used to grow RSS by the whole KV pool and keep it: the pool's
    pages were faulted in by traffic. They are taken at start-up now, so RSS does not climb."""
    s = start_server()
    before = rss_mb(s.proc.pid)
    assert before > 256  # the 256 MiB KV pool is resident from the start

    statuses = []

    def go(i):
        # Sanitizer builds are ~10x slower: the timeout is generous, and each answer counts.
        st, _, payload = raw(s, "POST", "/v1/completions",
                             {"prompt": f"{i}: tell me about " + "cats and dogs " * 20,
                              "max_tokens": 8, "n": 64, "ignore_eos": True}, timeout=600)
        statuses.append(st if st != 200 else len(json.loads(payload)["choices"]))
    for round_ in range(2):
        threads = [threading.Thread(target=go, args=(round_ * 8 + i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(700)
    assert statuses == [64] * 16  # every request ran to 64 choices
    after = rss_mb(s.proc.pid)
    assert after < before + 96, (before, after)
