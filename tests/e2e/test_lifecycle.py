"""Connections and lifecycle of `inferd serve`: many concurrent streams, clients that go
away, request timeouts, a bounded waiting queue, SIGTERM. Every accepted request must end
exactly once and leave no KV blocks behind; the server must exit 0 after SIGTERM."""

import asyncio
import json
import re
import signal
import socket
import time
import urllib.request

import openai
import pytest


def metrics(base_url):
    with urllib.request.urlopen(base_url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


def metric(base_url, name, **labels):
    total = 0.0
    for key, value in metrics(base_url).items():
        if not (key == name or key.startswith(name + "{")):
            continue
        if all(f'{k}="{v}"' in key for k, v in labels.items()):
            total += value
    return total


def wait_until(fn, timeout=30, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def open_stream(base_url, body):
    """Sends a streaming request on a raw socket and returns the socket after the headers."""
    host, port = base_url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=30)
    payload = json.dumps(body).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
    return s


def read_until(s, marker, limit=1 << 20):
    data = b""
    while marker not in data and len(data) < limit:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_hundreds_of_concurrent_streams(start_server):
    server = start_server("--max-num-seqs", "256", "--disable-access-log")
    n = 300
    client = openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0, timeout=300,
                                http_client=None)

    async def one(i):
        stream = await client.completions.create(
            model="smollm2", prompt=f"Count to ten: {i}", max_tokens=4, temperature=0, stream=True,
            stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
        text, usage, ids = "", None, set()
        async for chunk in stream:
            ids.add(chunk.id)
            if chunk.usage:
                usage = chunk.usage
            for c in chunk.choices:
                text += c.text
        return text, usage, ids

    async def main():
        return await asyncio.gather(*(one(i) for i in range(n)))

    results = asyncio.run(main())
    assert len(results) == n
    for text, usage, ids in results:
        assert usage is not None and usage.completion_tokens == 4
        assert len(ids) == 1
    # Every request ended and freed its blocks.
    wait_until(lambda: metric(server.base_url, "inferd:num_requests_running") == 0, what="running == 0")
    assert metric(server.base_url, "inferd:kv_cache_usage_perc") == 0
    assert metric(server.base_url, "inferd:request_success_total", finished_reason="length") == n


def test_client_disconnect_aborts_the_request(start_server):
    server = start_server()
    s = open_stream(server.base_url, {"prompt": "Once upon a time", "max_tokens": 1500, "stream": True,
                                      "ignore_eos": True, "temperature": 0})
    head = read_until(s, b"data: ")
    assert b"200 OK" in head
    # Let it generate a few tokens, then vanish.
    read_until(s, b"\n\n")
    assert metric(server.base_url, "inferd:num_requests_running") == 1
    s.close()
    wait_until(lambda: metric(server.base_url, "inferd:request_success_total", finished_reason="abort") == 1,
               timeout=10, what="abort counted")
    assert metric(server.base_url, "inferd:num_requests_running") == 0
    assert metric(server.base_url, "inferd:kv_cache_usage_perc") == 0
    # Far fewer than 1500 tokens were generated: the request stopped when the client left.
    assert metric(server.base_url, "inferd:generation_tokens_total") < 1000
    assert "client disconnected" in server.log_text()
    # The server carries on.
    c = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x")
    assert c.completions.create(model="smollm2", prompt="Hi", max_tokens=2).choices[0].text is not None


def test_non_streaming_disconnect_aborts_too(start_server):
    server = start_server()
    s = open_stream(server.base_url, {"prompt": "Once upon a time", "max_tokens": 1500, "ignore_eos": True})
    wait_until(lambda: metric(server.base_url, "inferd:num_requests_running") == 1, what="running")
    s.close()
    wait_until(lambda: metric(server.base_url, "inferd:request_success_total", finished_reason="abort") == 1,
               timeout=10, what="abort counted")
    assert metric(server.base_url, "inferd:kv_cache_usage_perc") == 0


def test_request_timeout(start_server):
    server = start_server("--request-timeout", "2")
    c = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    t0 = time.time()
    with pytest.raises(openai.APIStatusError) as e:
        c.completions.create(model="smollm2", prompt="Tell a long story", max_tokens=1900,
                             extra_body={"ignore_eos": True})
    assert e.value.status_code == 408
    assert "timed out" in e.value.message
    assert time.time() - t0 < 15
    wait_until(lambda: metric(server.base_url, "inferd:num_requests_running") == 0, what="running == 0")
    # Streaming: the stream ends with an error event and [DONE].
    s = open_stream(server.base_url, {"prompt": "Tell a long story", "max_tokens": 1900, "stream": True,
                                      "ignore_eos": True})
    data = read_until(s, b"\r\n0\r\n\r\n")  # the chunked-encoding terminator after [DONE]
    s.close()
    assert b'"code":408' in data
    assert data.index(b'"code":408') < data.index(b"data: [DONE]")


def test_waiting_queue_is_bounded(start_server):
    server = start_server("--max-num-seqs", "1", "--max-waiting-requests", "1")
    long = {"prompt": "Tell a long story", "max_tokens": 1900, "ignore_eos": True}
    running = open_stream(server.base_url, long)
    wait_until(lambda: metric(server.base_url, "inferd:num_requests_running") == 1, what="one running")
    waiting = open_stream(server.base_url, long)
    wait_until(lambda: metric(server.base_url, "inferd:num_requests_waiting") == 1, what="one waiting")
    c = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIStatusError) as e:
        c.completions.create(model="smollm2", prompt="Hi", max_tokens=2)
    assert e.value.status_code == 503
    assert e.value.response.headers.get("retry-after") == "1"
    assert "--max-waiting-requests" in e.value.message
    running.close()
    waiting.close()
    wait_until(lambda: metric(server.base_url, "inferd:request_success_total", finished_reason="abort") == 2,
               timeout=10, what="both aborted")
    assert c.completions.create(model="smollm2", prompt="Hi", max_tokens=2).usage.completion_tokens >= 1


def test_sigterm_lets_in_flight_requests_finish(start_server):
    server = start_server("--shutdown-timeout", "30")
    s = open_stream(server.base_url, {"prompt": "Count:", "max_tokens": 40, "stream": True, "ignore_eos": True})
    read_until(s, b"data: ")
    server.proc.send_signal(signal.SIGTERM)
    data = read_until(s, b"data: [DONE]")
    s.close()
    events = [e for e in data.split(b"\n\n") if b"data: {" in e]
    assert b'"finish_reason":"length"' in data, data[-500:]
    assert b'"error"' not in data
    assert len(events) >= 2
    assert server.proc.wait(timeout=30) == 0
    # The port is closed after shutdown.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2)


def test_sigterm_aborts_what_cannot_finish_in_time(start_server):
    server = start_server("--shutdown-timeout", "1")
    s = open_stream(server.base_url, {"prompt": "Count:", "max_tokens": 1900, "stream": True, "ignore_eos": True})
    read_until(s, b"data: ")
    t0 = time.time()
    server.proc.send_signal(signal.SIGTERM)
    data = read_until(s, b"data: [DONE]")
    s.close()
    assert re.search(rb'"error":\{"message":"[^"]*shut down', data), data[-500:]
    assert server.proc.wait(timeout=30) == 0
    assert time.time() - t0 < 15
