"""GET /v1/ws (docs/websocket.md) with the real `websockets` client against `inferd serve`:
streaming equal to SSE, interleaved requests on one socket, cancel, abrupt close (engine work
and KV blocks freed), oversized messages, a reader too slow, keep-alive pings, auth, errors."""
import asyncio
import json
import socket
import time
import urllib.request

import openai
import pytest

websockets = pytest.importorskip("websockets", reason="pip install websockets (scripts/install-deps.sh)")
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402

from test_router import get_text, metric, wait_for  # noqa: E402


def ws_url(server, query=""):
    return f"ws://127.0.0.1:{server.port}/v1/ws{query}"


def chat_body(content, **kw):
    return {"model": "smollm2", "messages": [{"role": "user", "content": content}], "temperature": 0, **kw}


async def collect(ws, ids):
    """Every message until each id in `ids` got its "done" or "error": {id: [messages]}."""
    got = {i: [] for i in ids}
    open_ids = set(ids)
    while open_ids:
        m = json.loads(await asyncio.wait_for(ws.recv(), 60))
        assert m["id"] in got, m
        assert m["id"] in open_ids, f"message after the end of {m['id']}: {m}"
        got[m["id"]].append(m)
        if m["type"] in ("done", "error"):
            open_ids.discard(m["id"])
    return got


def chat_text(messages):
    assert [m["type"] for m in messages[:-1]] == ["chunk"] * (len(messages) - 1)
    return "".join(c["delta"].get("content") or "" for m in messages[:-1] for c in m["data"]["choices"])


def run(coro):
    return asyncio.run(coro)


def engine_idle(server):
    text = get_text(server.base_url + "/metrics")
    return (metric(text, "inferd:num_requests_running") == 0 and metric(text, "inferd:num_requests_waiting") == 0
            and metric(text, "inferd:kv_cache_usage_perc") == 0)


def test_streams_the_same_chunks_as_sse(server):
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x")
    body = chat_body("Name three colors.", max_tokens=24, ignore_eos=True)
    sse = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        stream=True, extra_body={"ignore_eos": True}, **{k: v for k, v in body.items() if k != "ignore_eos"}))
    comp = {"model": "smollm2", "prompt": "The capital of France is", "max_tokens": 12, "temperature": 0}
    sse_comp = client.completions.create(**comp).choices[0].text

    async def go():
        async with websockets.connect(ws_url(server)) as ws:
            await ws.send(json.dumps({"id": "a", "type": "chat.completions", "body": body}))
            await ws.send(json.dumps({"id": "b", "type": "completions", "body": comp}))
            return await collect(ws, ["a", "b"])
    got = run(go())
    assert chat_text(got["a"]) == sse
    assert got["a"][0]["data"]["object"] == "chat.completion.chunk"
    assert got["a"][-2]["data"]["choices"][0]["finish_reason"] == "length"
    done = got["a"][-1]
    assert done["type"] == "done" and done["usage"]["completion_tokens"] == 24
    b = got["b"]
    assert "".join(m["data"]["choices"][0]["text"] for m in b[:-1]) == sse_comp
    assert b[-1]["usage"]["completion_tokens"] == 12


def test_interleaved_requests_on_one_socket(server):
    prompts = [f"Count from {i} to {i + 5}." for i in range(6)]
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x")
    expected = [client.chat.completions.create(**chat_body(p, max_tokens=16)).choices[0].message.content
                for p in prompts]

    async def go():
        async with websockets.connect(ws_url(server)) as ws:
            for i, p in enumerate(prompts):
                await ws.send(json.dumps({"id": f"r{i}", "type": "chat.completions", "body": chat_body(p, max_tokens=16)}))
            order = []
            got = {f"r{i}": [] for i in range(len(prompts))}
            while len(order) < len(prompts):
                m = json.loads(await asyncio.wait_for(ws.recv(), 60))
                got[m["id"]].append(m)
                if m["type"] == "done":
                    order.append(m["id"])
            return got
    got = run(go())
    for i in range(len(prompts)):
        assert chat_text(got[f"r{i}"]) == expected[i]
    # Interleaved: some request's chunk arrived between another's first and last message.
    assert any(len(v) > 2 for v in got.values())


def test_continuous_usage_and_usage_turned_off(server):
    async def go():
        async with websockets.connect(ws_url(server)) as ws:
            await ws.send(json.dumps({"id": "u", "type": "chat.completions", "body": chat_body(
                "Hi", max_tokens=4, stream_options={"include_usage": False})}))
            await ws.send(json.dumps({"id": "c", "type": "completions", "body": {
                "model": "smollm2", "prompt": "Hi", "max_tokens": 3,
                "stream_options": {"continuous_usage_stats": True}}}))
            return await collect(ws, ["u", "c"])
    got = run(go())
    assert got["u"][-1] == {"id": "u", "type": "done"}
    assert got["c"][-1]["usage"]["completion_tokens"] == 3
    assert all(m["data"]["usage"] is not None for m in got["c"][:-1])


def test_cancel_ends_the_request_as_cancelled(server):
    before = metric(get_text(server.base_url + "/metrics"), "inferd:request_success_total", finished_reason="abort")

    async def go():
        async with websockets.connect(ws_url(server)) as ws:
            await ws.send(json.dumps({"id": "long", "type": "completions", "body": {
                "model": "smollm2", "prompt": "Once upon a time", "max_tokens": 2000, "ignore_eos": True}}))
            await ws.send(json.dumps({"id": "short", "type": "completions", "body": {
                "model": "smollm2", "prompt": "Hello", "max_tokens": 20, "ignore_eos": True}}))
            seen = 0
            msgs = {"long": [], "short": []}
            while seen < 3:
                m = json.loads(await ws.recv())
                msgs[m["id"]].append(m)
                seen += m["id"] == "long"
            await ws.send(json.dumps({"id": "long", "type": "cancel"}))
            await ws.send(json.dumps({"id": "never-sent", "type": "cancel"}))  # does nothing
            rest = await collect(ws, [i for i in ("long", "short") if not msgs[i] or msgs[i][-1]["type"] == "chunk"])
            for k, v in rest.items():
                msgs[k] += v
            # The socket is still usable after a cancel.
            await ws.send(json.dumps({"id": "after", "type": "completions", "body": {
                "model": "smollm2", "prompt": "Hi", "max_tokens": 2}}))
            msgs.update(await collect(ws, ["after"]))
            return msgs
    msgs = run(go())
    long = msgs["long"]
    assert long[-1]["type"] == "done" and long[-1]["cancelled"] is True, long[-1]
    assert long[-1]["usage"]["completion_tokens"] < 2000
    assert msgs["short"][-1]["usage"]["completion_tokens"] == 20
    assert "cancelled" not in msgs["short"][-1]
    assert msgs["after"][-1]["type"] == "done"
    wait_for(lambda: metric(get_text(server.base_url + "/metrics"), "inferd:request_success_total",
                            finished_reason="abort") == before + 1, what="one aborted request")


def test_abrupt_close_aborts_everything_and_frees_blocks(server):
    async def go():
        ws = await websockets.connect(ws_url(server))
        for i in range(3):
            await ws.send(json.dumps({"id": f"x{i}", "type": "completions", "body": {
                "model": "smollm2", "prompt": "Tell a long story " * 20, "max_tokens": 1500, "ignore_eos": True}}))
        for _ in range(6):
            await ws.recv()
        running = metric(get_text(server.base_url + "/metrics"), "inferd:num_requests_running")
        ws.transport.abort()  # TCP reset, no close frame
        return running
    assert run(go()) == 3
    wait_for(lambda: engine_idle(server), timeout=20, what="no running requests and an empty KV cache")


def test_protocol_errors_keep_the_socket_open(server):
    async def go():
        async with websockets.connect(ws_url(server)) as ws:
            out = []
            for raw in ["not json", json.dumps([1]), json.dumps({"type": "completions", "body": {}}),
                        json.dumps({"id": "t", "type": "embeddings", "body": {}}),
                        json.dumps({"id": "t", "type": "completions", "body": {}, "extra": 1}),
                        json.dumps({"id": "x" * 300, "type": "completions", "body": {}})]:
                await ws.send(raw)
                out.append(json.loads(await ws.recv()))
            await ws.send(json.dumps({"id": "s", "type": "completions", "body": {"prompt": "a", "stream": False}}))
            out.append(json.loads(await ws.recv()))
            await ws.send(json.dumps({"id": "nb", "type": "completions"}))
            out.append(json.loads(await ws.recv()))
            await ws.send(json.dumps({"id": "v", "type": "completions", "body": {"prompt": "a", "temperature": -1}}))
            out.append(json.loads(await ws.recv()))
            # A duplicate id while the first is in flight.
            long = {"model": "smollm2", "prompt": "a", "max_tokens": 200, "ignore_eos": True}
            await ws.send(json.dumps({"id": "d", "type": "completions", "body": long}))
            await ws.send(json.dumps({"id": "d", "type": "completions", "body": long}))
            dup = None
            while dup is None:
                m = json.loads(await ws.recv())
                if m["id"] is None:
                    dup = m
            await ws.send(json.dumps({"id": "d", "type": "cancel"}))
            await collect(ws, ["d"])
            return out, dup
    out, dup = run(go())
    for m in out[:6]:
        assert m["id"] is None and m["type"] == "error" and m["error"]["code"] == 400, m
    assert "malformed JSON" in out[0]["error"]["message"]
    assert "must be a JSON object" in out[1]["error"]["message"]
    assert "'id'" in out[2]["error"]["message"]
    assert "'type'" in out[3]["error"]["message"]
    assert "unknown field 'extra'" in out[4]["error"]["message"]
    assert out[6] == {"id": "s", "type": "error", "error": out[6]["error"]} and "always stream" in out[6]["error"]["message"]
    assert out[7]["id"] == "nb" and "'body'" in out[7]["error"]["message"]
    assert out[8]["id"] == "v" and out[8]["error"]["code"] == 400 and out[8]["error"]["param"] == "temperature"
    assert "already in flight" in dup["error"]["message"]


def test_binary_message_closes_with_1003(server):
    async def go():
        async with websockets.connect(ws_url(server)) as ws:
            await ws.send(b"\x00\x01")
            with pytest.raises(ConnectionClosed) as e:
                await asyncio.wait_for(ws.recv(), 10)
            return e.value.rcvd.code
    assert run(go()) == 1003


def test_not_an_upgrade_is_426(server):
    req = urllib.request.Request(server.base_url + "/v1/ws")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 426 and e.value.headers["Upgrade"] == "websocket"
    assert "WebSocket endpoint" in json.loads(e.value.read())["error"]["message"]


def test_oversized_message_closes_with_1009(start_server):
    s = start_server("--max-request-body", "100000")

    async def go():
        async with websockets.connect(ws_url(s), max_size=None) as ws:
            await ws.send(json.dumps({"id": "big", "type": "completions",
                                      "body": {"prompt": "a " * 100000, "max_tokens": 1}}))
            with pytest.raises(ConnectionClosed) as e:
                await asyncio.wait_for(ws.recv(), 10)
            code = e.value.rcvd.code
        async with websockets.connect(ws_url(s)) as ws:  # the server goes on
            await ws.send(json.dumps({"id": "ok", "type": "completions", "body": {"prompt": "a", "max_tokens": 1}}))
            got = await collect(ws, ["ok"])
        return code, got
    code, got = run(go())
    assert code == 1009
    assert got["ok"][-1]["type"] == "done"


def test_slow_reader_is_dropped_and_its_requests_aborted(start_server):
    s = start_server("--ws-max-queued-bytes", "16KiB")
    before = metric(get_text(s.base_url + "/metrics"), "inferd:request_success_total", finished_reason="abort")

    async def go():
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", s.port))
        ws = await websockets.connect(ws_url(s), sock=sock, max_queue=1)
        for i in range(16):
            await ws.send(json.dumps({"id": f"q{i}", "type": "completions", "body": {
                "model": "smollm2", "prompt": "Write a long essay", "max_tokens": 300, "ignore_eos": True,
                "logprobs": 20}}))  # ~2.5 KB a chunk: past what the kernel's socket buffers absorb
        ws.transport.pause_reading()  # never read again: the server's queue grows
        await asyncio.sleep(0.5)
        return ws
    loop = asyncio.new_event_loop()
    ws = loop.run_until_complete(go())
    try:
        wait_for(lambda: "reads too slowly" in s.log_text(), timeout=120, what="the slow reader dropped")
        wait_for(lambda: engine_idle(s), timeout=20, what="its requests aborted")
        aborted = metric(get_text(s.base_url + "/metrics"), "inferd:request_success_total", finished_reason="abort")
        assert aborted - before >= 1
    finally:
        ws.transport.abort()
        loop.close()


def test_ping_keeps_a_reading_client_and_drops_a_silent_one(start_server):
    s = start_server("--ws-ping-interval", "0.3")

    async def go():
        async with websockets.connect(ws_url(s), ping_interval=None) as alive:
            silent = await websockets.connect(ws_url(s), ping_interval=None)
            silent.transport.pause_reading()  # answers no ping
            await asyncio.sleep(2.0)  # about 7 ping intervals
            await alive.send(json.dumps({"id": "p", "type": "completions", "body": {"prompt": "a", "max_tokens": 1}}))
            got = await collect(alive, ["p"])
            silent.transport.resume_reading()
            with pytest.raises(ConnectionClosed):
                for _ in range(100):
                    await asyncio.wait_for(silent.recv(), 5)
            return got
    assert run(go())["p"][-1]["type"] == "done"


def test_api_key_as_header_or_query(start_server):
    s = start_server("--api-key", "sekret")

    async def ask(url, headers=None):
        async with websockets.connect(url, additional_headers=headers) as ws:
            await ws.send(json.dumps({"id": "k", "type": "completions", "body": {"prompt": "a", "max_tokens": 1}}))
            return (await collect(ws, ["k"]))["k"][-1]["type"]
    for url, headers in [(ws_url(s), None), (ws_url(s, "?api_key=wrong"), None),
                         (ws_url(s), {"Authorization": "Bearer wrong"})]:
        with pytest.raises(InvalidStatus) as e:
            run(ask(url, headers))
        assert e.value.response.status_code == 401
    assert run(ask(ws_url(s), {"Authorization": "Bearer sekret"})) == "done"
    assert run(ask(ws_url(s, "?api_key=sekret"))) == "done"


def test_disallowed_origin_is_403(start_server):
    s = start_server("--allowed-origins", '["http://good.example"]')

    async def ask(origin):
        async with websockets.connect(ws_url(s), origin=origin) as ws:
            await ws.send(json.dumps({"id": "o", "type": "completions", "body": {"prompt": "a", "max_tokens": 1}}))
            return (await collect(ws, ["o"]))["o"][-1]["type"]
    with pytest.raises(InvalidStatus) as e:
        run(ask("http://evil.example"))
    assert e.value.response.status_code == 403
    assert run(ask("http://good.example")) == "done"


def test_sigterm_finishes_requests_then_closes_1001(start_server):
    s = start_server()

    async def go():
        async with websockets.connect(ws_url(s)) as ws:
            await ws.send(json.dumps({"id": "t", "type": "completions", "body": {
                "prompt": "a", "max_tokens": 40, "ignore_eos": True}}))
            await ws.recv()
            s.proc.send_signal(15)
            got = await collect(ws, ["t"])
            with pytest.raises(ConnectionClosed) as e:
                await asyncio.wait_for(ws.recv(), 20)
            return got, e.value.rcvd.code
    got, code = run(go())
    assert got["t"][-1]["usage"]["completion_tokens"] == 40
    assert code == 1001
    s.proc.wait(timeout=30)
    assert s.proc.returncode == 0
