"""The OpenAI API of `inferd serve` through the real `openai` client (sync and async) and
raw HTTP: shapes, streaming, n, logprobs, stop, seeds, usage and every error case."""

import asyncio
import http.client
import json
import socket
import threading

import openai
import pytest

MODEL = "smollm2"


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)


def raw(server, method, path, body=None, headers=None, timeout=60):
    host, port = server.base_url.removeprefix("http://").split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=timeout)
    data = body if isinstance(body, (bytes, type(None))) else (body if isinstance(body, str) else json.dumps(body))
    c.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    r = c.getresponse()
    payload = r.read()
    c.close()
    return r.status, dict(r.getheaders()), payload


def assert_error(status, payload, want_status, *fragments, param=None):
    assert status == want_status, payload
    err = json.loads(payload)["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["code"] == want_status
    for f in fragments:
        assert f in err["message"], err["message"]
    if param is not None:
        assert err["param"] == param


# ---- completions ---------------------------------------------------------------------------

def test_completion_shape_and_usage(client, server):
    r = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=6, temperature=0,
                                  extra_body={"ignore_eos": True})
    assert r.object == "text_completion" and r.id.startswith("cmpl-") and r.model == MODEL
    assert len(r.choices) == 1 and r.choices[0].index == 0 and r.choices[0].finish_reason == "length"
    _, _, tok = raw(server, "POST", "/tokenize", {"prompt": "The capital of France is"})
    assert r.usage.prompt_tokens == json.loads(tok)["count"]
    assert r.usage.completion_tokens == 6 and r.usage.total_tokens == r.usage.prompt_tokens + 6
    assert "Paris" in r.choices[0].text


def test_streamed_text_equals_non_streamed(client):
    kw = dict(model=MODEL, prompt="Once upon a time", max_tokens=12, temperature=0)
    full = client.completions.create(**kw).choices[0].text
    chunks = list(client.completions.create(stream=True, **kw))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == full
    assert len({c.id for c in chunks}) == 1
    assert chunks[-1].choices[0].finish_reason in ("length", "stop")
    assert all(c.usage is None for c in chunks)  # no usage chunk unless asked


def test_stream_usage_chunk(client):
    chunks = list(client.completions.create(model=MODEL, prompt="Hi", max_tokens=5, stream=True,
                                            stream_options={"include_usage": True},
                                            extra_body={"ignore_eos": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5
    assert sum(1 for c in chunks if c.choices) >= 1


def test_n_and_prompt_lists_and_token_ids(client, server):
    r = client.completions.create(model=MODEL, prompt="Hello", n=2, max_tokens=4, temperature=1, seed=3)
    assert [c.index for c in r.choices] == [0, 1]
    r = client.completions.create(model=MODEL, prompt=["A", "B", "C"], max_tokens=2, temperature=0)
    assert [c.index for c in r.choices] == [0, 1, 2]
    single = client.completions.create(model=MODEL, prompt="B", max_tokens=2, temperature=0).choices[0].text
    assert r.choices[1].text == single  # prompt-major order
    ids = json.loads(raw(server, "POST", "/tokenize", {"prompt": "The capital of France is"})[2])["tokens"]
    by_ids = client.completions.create(model=MODEL, prompt=ids, max_tokens=4, temperature=0)
    by_text = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=4, temperature=0)
    assert by_ids.choices[0].text == by_text.choices[0].text
    two = client.completions.create(model=MODEL, prompt=[ids, ids[:3]], max_tokens=2, temperature=0)
    assert len(two.choices) == 2 and two.choices[0].text == client.completions.create(
        model=MODEL, prompt=ids, max_tokens=2, temperature=0).choices[0].text


def test_seed_reproducibility(client):
    kw = dict(model=MODEL, prompt="My favourite animal is", max_tokens=10, temperature=1.0)
    a = client.completions.create(seed=42, **kw).choices[0].text
    b = client.completions.create(seed=42, **kw).choices[0].text
    others = {client.completions.create(seed=s, **kw).choices[0].text for s in (1, 2, 3)}
    assert a == b
    assert len(others | {a}) > 1


def test_completion_logprobs(client):
    r = client.completions.create(model=MODEL, prompt="1, 2, 3,", max_tokens=5, temperature=0, logprobs=3,
                                  extra_body={"ignore_eos": True})
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 5
    assert "".join(lp.tokens) == r.choices[0].text
    for chosen, lpv, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert lpv <= 0 and 1 <= len(top) <= 4
        assert abs(max(top.values()) - lpv) < 1e-4  # greedy picks the most likely token
    # Streaming logprobs arrive per chunk.
    chunks = [c for c in client.completions.create(model=MODEL, prompt="1, 2, 3,", max_tokens=5, temperature=0,
                                                   logprobs=1, stream=True, extra_body={"ignore_eos": True})
              if c.choices]
    assert sum(len(c.choices[0].logprobs.tokens) for c in chunks if c.choices[0].logprobs) == 5


def test_echo(client):
    r = client.completions.create(model=MODEL, prompt="Roses are red,", max_tokens=3, temperature=0, echo=True)
    assert r.choices[0].text.startswith("Roses are red,") and len(r.choices[0].text) > len("Roses are red,")


def test_stop_strings_and_tokens(client, server):
    r = client.completions.create(model=MODEL, prompt="List:\n1. apples\n2.", max_tokens=30, temperature=0,
                                  stop=["\n"])
    assert "\n" not in r.choices[0].text and r.choices[0].finish_reason == "stop"
    assert r.choices[0].model_extra.get("stop_reason") == "\n"
    r2 = client.completions.create(model=MODEL, prompt="List:\n1. apples\n2.", max_tokens=30, temperature=0,
                                   stop=["\n"], extra_body={"include_stop_str_in_output": True})
    assert r2.choices[0].text == r.choices[0].text + "\n"
    first = client.completions.create(model=MODEL, prompt="Hello", max_tokens=1, temperature=0,
                                      logprobs=0).choices[0]
    tok_id = json.loads(raw(server, "POST", "/tokenize", {"prompt": first.text, "add_special_tokens": False})[2])[
        "tokens"][0]
    r3 = client.completions.create(model=MODEL, prompt="Hello", max_tokens=10, temperature=0,
                                   extra_body={"stop_token_ids": [tok_id]})
    assert r3.choices[0].finish_reason == "stop" and r3.usage.completion_tokens == 1


def test_vllm_extras(client):
    r = client.completions.create(model=MODEL, prompt="Hi", max_tokens=4, temperature=0.8, seed=1,
                                  extra_body={"top_k": 5, "min_p": 0.05, "repetition_penalty": 1.2, "min_tokens": 4,
                                              "priority": 0, "request_id": "my-req-1",
                                              "skip_special_tokens": True})
    assert r.id == "cmpl-my-req-1" and r.usage.completion_tokens == 4


# ---- chat ---------------------------------------------------------------------------------

def test_chat_and_streaming_role(client):
    # Far from a tie ("What is the capital of France?" alone starts with one that int8
    # activations tip to "L'Étoile...", in llama.cpp too).
    msgs = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    r = client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=12, temperature=0)
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    assert "Paris" in r.choices[0].message.content
    chunks = list(client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=12, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == r.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == r.usage.completion_tokens
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")


def test_chat_content_parts_logprobs_and_n(client):
    msgs = [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}]
    r = client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=4, temperature=0, logprobs=True,
                                       top_logprobs=2, n=2, extra_body={"ignore_eos": True})
    assert [c.index for c in r.choices] == [0, 1]
    content = r.choices[0].logprobs.content
    assert len(content) == 4
    for e in content:
        assert e.logprob <= 0 and len(e.top_logprobs) == 2 and bytes(e.bytes).decode(errors="replace")


def test_chat_continue_final_message_and_kwargs(client):
    msgs = [{"role": "user", "content": "Name a fruit."}, {"role": "assistant", "content": "The fruit is"}]
    r = client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=3, temperature=0,
                                       extra_body={"continue_final_message": True, "add_generation_prompt": False,
                                                   "chat_template_kwargs": {"unused": 1}})
    assert r.choices[0].message.content


async def _many(server):
    ac = openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    rs = await asyncio.gather(*(ac.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": f"Count to {i}"}], max_tokens=5, temperature=0)
        for i in range(8)))
    return [r.choices[0].message.content for r in rs]


def test_async_client_concurrent(server, client):
    out = asyncio.run(_many(server))
    solo = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Count to 3"}],
                                          max_tokens=5, temperature=0).choices[0].message.content
    assert out[3] == solo  # batching does not change results


# ---- other routes --------------------------------------------------------------------------

def test_models_tokenize_detokenize_version_health(client, server):
    assert [m.id for m in client.models.list().data] == [MODEL]
    st, _, body = raw(server, "POST", "/tokenize", {"prompt": "Hello world"})
    ids = json.loads(body)["tokens"]
    st, _, body = raw(server, "POST", "/detokenize", {"tokens": ids})
    assert json.loads(body)["prompt"] == "Hello world"
    st, _, body = raw(server, "POST", "/tokenize", {"messages": [{"role": "user", "content": "Hi"}]})
    assert st == 200 and json.loads(body)["count"] > 3
    assert json.loads(raw(server, "GET", "/version")[2])["version"]
    assert raw(server, "GET", "/health")[0] == 200


# ---- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("body,param,fragment", [
    ({"prompt": "x", "temperature": "hot"}, "temperature", "number"),
    ({"prompt": "x", "max_tokens": "x"}, "max_tokens", "integer"),
    ({"prompt": "x", "n": 0}, "n", "n"),
    ({"prompt": "x", "top_p": 2}, "top_p", "top_p"),
    ({"prompt": "x", "logprobs": 50}, "logprobs", "between"),
    ({"prompt": "x", "stop": 5}, "stop", "string"),
    ({"prompt": "x", "max_tokens": 0}, "max_tokens", "at least 1"),
    ({"prompt": 5}, "prompt", "prompt"),
    ({"prompt": []}, "prompt", "empty"),
    ({"prompt": [999999]}, "prompt", "vocabulary"),
    ({"prompt": "x", "logit_bias": {"abc": 1}}, "logit_bias", "token id"),
])
def test_invalid_completion_parameters(server, body, param, fragment):
    st, _, payload = raw(server, "POST", "/v1/completions", body)
    assert_error(st, payload, 400, fragment, param=param)


@pytest.mark.parametrize("body,fragment", [
    ({}, "messages"),
    ({"messages": []}, "non-empty"),
    ({"messages": [{"content": "hi"}]}, "role"),
    ({"messages": "hi"}, "messages"),
])
def test_invalid_chat_requests(server, body, fragment):
    st, _, payload = raw(server, "POST", "/v1/chat/completions", body)
    assert_error(st, payload, 400, fragment)


def test_malformed_json_and_bodies(server):
    assert_error(*raw(server, "POST", "/v1/completions", '{"prompt": "x",')[::2], 400, "malformed JSON")
    assert_error(*raw(server, "POST", "/v1/completions", "[1, 2]")[::2], 400, "JSON object")
    assert_error(*raw(server, "POST", "/v1/completions", b"")[::2], 400, "empty")


def test_context_length_errors(server):
    long_prompt = "hello " * 2100
    st, _, payload = raw(server, "POST", "/v1/completions", {"prompt": long_prompt})
    assert_error(st, payload, 400, "maximum context length is 2048", "input tokens")
    st, _, payload = raw(server, "POST", "/v1/completions", {"prompt": "hello " * 1000, "max_tokens": 1500})
    assert_error(st, payload, 400, "maximum context length is 2048", "1500 in the completion")


def test_unknown_model_route_and_method(client, server):
    with pytest.raises(openai.NotFoundError) as e:
        client.completions.create(model="gpt-4", prompt="x", max_tokens=1)
    assert "gpt-4" in e.value.message
    assert_error(*raw(server, "GET", "/v1/nope")[::2], 404, "Not Found")
    assert_error(*raw(server, "GET", "/v1/completions")[::2], 405, "not allowed")


def test_bad_requests_do_not_disturb_good_ones(server, client):
    result = {}

    def good():
        result["text"] = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=8,
                                                   temperature=0).choices[0].text

    t = threading.Thread(target=good)
    t.start()
    for _ in range(20):
        raw(server, "POST", "/v1/completions", '{"prompt": ')
        raw(server, "POST", "/v1/completions", {"prompt": "x", "temperature": -1})
    t.join()
    assert result["text"] == client.completions.create(model=MODEL, prompt="The capital of France is",
                                                       max_tokens=8, temperature=0).choices[0].text


def test_api_key(start_server):
    server = start_server("--api-key", "sekret")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.base_url + "/v1", api_key="wrong", max_retries=0).models.list()
    st, hdr, payload = raw(server, "GET", "/v1/models")
    assert_error(st, payload, 401, "API key")
    assert raw(server, "GET", "/health")[0] == 200  # not a /v1 route
    ok = openai.OpenAI(base_url=server.base_url + "/v1", api_key="sekret", max_retries=0)
    assert ok.completions.create(model=MODEL, prompt="Hi", max_tokens=1).usage.completion_tokens == 1
    env_server = start_server(env={"INFERD_API_KEY": "fromenv"})
    assert raw(env_server, "GET", "/v1/models")[0] == 401
    assert raw(env_server, "GET", "/v1/models", headers={"Authorization": "Bearer fromenv"})[0] == 200


# ---- raw HTTP edge cases -------------------------------------------------------------------

def test_body_limit(start_server):
    server = start_server("--max-request-body", "1MiB")
    st, _, payload = raw(server, "POST", "/v1/completions", json.dumps({"prompt": "x" * (2 << 20)}))
    assert_error(st, payload, 413, "limit")


def test_partial_request_times_out(start_server):
    server = start_server("--request-timeout", "3")
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
    s.settimeout(15)
    assert s.recv(100) == b""  # closed by the server, nothing sent
    s.close()
    assert raw(server, "GET", "/health")[0] == 200


def test_garbage_keepalive_pipelining_expect_and_chunked(server):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    s.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
    data = s.recv(4096)
    assert data == b"" or data.startswith(b"HTTP/1.1 400")
    s.close()
    # Two pipelined requests on one keep-alive connection, answered in order.
    s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    req = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
    s.sendall(req)
    data = b""
    while data.count(b"HTTP/1.1 200") < 2 or not data.endswith(b"}]}"):
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    assert data.index(b'"version"') < data.index(b'"object":"list"')
    s.close()
    # Expect: 100-continue and a chunked request body.
    s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    body = json.dumps({"prompt": "Hi", "max_tokens": 1}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 100")
    s.sendall(hex(len(body))[2:].encode() + b"\r\n" + body + b"\r\n0\r\n\r\n")
    data = b""
    while b'"usage"' not in data:
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    assert data.startswith(b"HTTP/1.1 200")
    s.close()


def test_invalid_utf8_prompt_is_not_a_500(server):
    st, _, payload = raw(server, "POST", "/v1/completions", b'{"prompt": "caf\xe9", "max_tokens": 1}')
    assert st == 400 or st == 200


def test_unix_socket(start_server, tmp_path):
    path = str(tmp_path / "inferd.sock")
    server = start_server("--uds", path, wait=False)
    import time
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            break
        except OSError:
            time.sleep(0.1)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    s.close()
    assert data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.1 503")


def test_unknown_flag_suggests(inferd_bin):
    import subprocess
    p = subprocess.run([str(inferd_bin), "serve", "--prot", "8000"], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "did you mean --port" in p.stderr
