"""The gRPC API (docs/grpc.md, proto/inferd/v1/generation.proto) with the real `grpcio` client
against `inferd serve --grpc-port`: unary and streamed generation equal to the HTTP routes,
logprobs, chat messages, Tokenize, both health services, reflection, errors mapped to status
codes, deadlines and cancellation (the request is aborted and the engine goes idle), the API
key as metadata, concurrent streams, and a clean shutdown."""
import signal
import subprocess
import sys
import threading
import time

import openai
import pytest

grpc = pytest.importorskip("grpc", reason="pip install grpcio grpcio-tools (scripts/install-deps.sh)")
pytest.importorskip("grpc_tools", reason="pip install grpcio-tools (scripts/install-deps.sh)")
health_pb2 = pytest.importorskip("grpc_health.v1.health_pb2", reason="pip install grpcio-health-checking")
from grpc_health.v1 import health_pb2_grpc  # noqa: E402
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc  # noqa: E402

from conftest import ROOT, free_port  # noqa: E402
from test_router import get_text, metric, wait_for  # noqa: E402

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    """The client stubs, generated from the proto by grpc_tools.protoc (as a user would)."""
    out = tmp_path_factory.mktemp("proto")
    src = ROOT / "proto" / "inferd" / "v1"
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{src}", f"--python_out={out}",
                    f"--grpc_python_out={out}", str(src / "generation.proto")], check=True)
    sys.path.insert(0, str(out))
    try:
        import generation_pb2
        import generation_pb2_grpc
    finally:
        sys.path.remove(str(out))
    return generation_pb2, generation_pb2_grpc


class GrpcServer:
    def __init__(self, server, grpc_port, pb):
        self.http = server
        self.port = grpc_port
        self.channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.pb = pb[0]
        self.stub = pb[1].GenerationStub(self.channel)


@pytest.fixture(scope="module")
def gs(inferd_bin, tmp_path_factory, pb):
    from conftest import ServerProcess, _stop_and_check
    port = free_port()
    s = ServerProcess(inferd_bin, ["--grpc-port", port], tmp_path_factory.mktemp("grpc"))
    g = GrpcServer(s, port, pb)
    yield g
    g.channel.close()
    _stop_and_check([s])


def request(pb, prompt=PROMPT, **sampling):
    return pb.GenerateRequest(prompt=prompt, sampling=pb.SamplingParams(**sampling))


def engine_idle(server):
    text = get_text(server.base_url + "/metrics")
    return (metric(text, "inferd:num_requests_running") == 0 and metric(text, "inferd:num_requests_waiting") == 0
            and metric(text, "inferd:kv_cache_usage_perc") == 0)


def aborted(server):
    return metric(get_text(server.base_url + "/metrics"), "inferd:request_success_total", finished_reason="abort")


def test_stream_equals_the_http_route(gs):
    pb = gs.pb
    client = openai.OpenAI(base_url=gs.http.base_url + "/v1", api_key="x")
    http = client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=16, temperature=0,
                                     extra_body={"return_token_ids": True})
    msgs = list(gs.stub.GenerateStream(request(pb, max_tokens=16, temperature=0), timeout=60))
    assert "".join(m.text for m in msgs) == http.choices[0].text
    ids = [i for m in msgs for i in m.token_ids]
    assert ids == http.choices[0].token_ids
    assert len(ids) == 16
    # the last message carries the finish reason and the usage; no other does
    assert [m.finish_reason for m in msgs[:-1]] == [""] * (len(msgs) - 1)
    assert msgs[-1].finish_reason == "length"
    assert [m.HasField("usage") for m in msgs[:-1]] == [False] * (len(msgs) - 1)
    assert msgs[-1].usage.completion_tokens == 16
    assert msgs[-1].usage.prompt_tokens == http.usage.prompt_tokens
    assert all(m.id == msgs[0].id and m.id.startswith("cmpl-") for m in msgs)
    unary = gs.stub.Generate(request(pb, max_tokens=16, temperature=0), timeout=60)
    assert unary.text == http.choices[0].text and list(unary.token_ids) == ids
    assert unary.finish_reason == "length" and unary.usage.completion_tokens == 16


def test_logprobs_match_the_http_route(gs):
    pb = gs.pb
    client = openai.OpenAI(base_url=gs.http.base_url + "/v1", api_key="x")
    http = client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=6, temperature=0, logprobs=3)
    for resp in (gs.stub.Generate(request(pb, max_tokens=6, temperature=0, logprobs=3), timeout=60),
                 gs.stub.GenerateStream(request(pb, max_tokens=6, temperature=0, logprobs=3), timeout=60)):
        msgs = [resp] if isinstance(resp, pb.GenerateResponse) else list(resp)
        lps = [lp for m in msgs for lp in m.logprobs]
        ids = [i for m in msgs for i in m.token_ids]
        assert [lp.token_id for lp in lps] == ids and len(ids) == 6
        want = http.choices[0].logprobs
        assert [lp.logprob for lp in lps] == pytest.approx(want.token_logprobs, abs=1e-4)
        for lp, top_want in zip(lps, want.top_logprobs):
            assert len(lp.top_logprobs) == 3
            assert lp.top_logprobs[0].token_id == lp.token_id  # greedy: the most likely one
            assert [t.logprob for t in lp.top_logprobs] == pytest.approx(sorted(top_want.values(), reverse=True),
                                                                        abs=1e-4)


def test_chat_messages(gs):
    pb = gs.pb
    client = openai.OpenAI(base_url=gs.http.base_url + "/v1", api_key="x")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a color."}]
    http = client.chat.completions.create(model="smollm2", messages=messages, max_tokens=20, temperature=0)
    req = pb.GenerateRequest(messages=pb.ChatMessages(messages=[pb.ChatMessage(**m) for m in messages]),
                             sampling=pb.SamplingParams(max_tokens=20, temperature=0))
    unary = gs.stub.Generate(req, timeout=60)
    assert unary.text == http.choices[0].message.content
    assert unary.id.startswith("chatcmpl-")
    msgs = list(gs.stub.GenerateStream(req, timeout=60))
    assert "".join(m.text for m in msgs) == unary.text
    assert [i for m in msgs for i in m.token_ids] == list(unary.token_ids)
    assert msgs[-1].finish_reason == http.choices[0].finish_reason


def test_prompt_token_ids_and_stop(gs):
    pb = gs.pb
    ids = list(gs.stub.Tokenize(pb.TokenizeRequest(prompt=PROMPT), timeout=10).token_ids)
    by_text = gs.stub.Generate(request(pb, max_tokens=10, temperature=0), timeout=60)
    by_ids = gs.stub.Generate(pb.GenerateRequest(prompt_token_ids=pb.TokenIds(ids=ids),
                                                 sampling=pb.SamplingParams(max_tokens=10, temperature=0)), timeout=60)
    assert list(by_ids.token_ids) == list(by_text.token_ids)
    stop_at = by_text.text.strip().split()[1]  # a word in the middle
    stopped = gs.stub.Generate(request(pb, max_tokens=10, temperature=0, stop=[stop_at]), timeout=60)
    assert stopped.finish_reason == "stop" and stop_at not in stopped.text
    assert by_text.text.startswith(stopped.text)


def test_tokenize_equals_the_http_route(gs):
    pb = gs.pb
    import json
    import urllib.request
    body = json.dumps({"model": "smollm2", "prompt": "Hello, gRPC world!"}).encode()
    with urllib.request.urlopen(urllib.request.Request(gs.http.base_url + "/tokenize", body,
                                                       {"Content-Type": "application/json"})) as r:
        http = json.load(r)
    got = gs.stub.Tokenize(pb.TokenizeRequest(prompt="Hello, gRPC world!"), timeout=10)
    assert list(got.token_ids) == http["tokens"] and got.count == http["count"]
    assert got.max_model_len == 2048
    chat = gs.stub.Tokenize(pb.TokenizeRequest(messages=pb.ChatMessages(
        messages=[pb.ChatMessage(role="user", content="hi")])), timeout=10)
    assert chat.count > 3  # the template's markers around "hi"


def test_health_services_and_reflection(gs):
    pb = gs.pb
    assert gs.stub.Health(pb.HealthRequest(), timeout=10).status == pb.HealthResponse.SERVING
    health = health_pb2_grpc.HealthStub(gs.channel)
    for name in ("", "inferd.v1.Generation"):
        assert health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10).status == \
            health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as e:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND

    refl = reflection_pb2_grpc.ServerReflectionStub(gs.channel)
    req = reflection_pb2.ServerReflectionRequest(list_services="")
    services = {s.name for r in refl.ServerReflectionInfo(iter([req]), timeout=10)
                for s in r.list_services_response.service}
    assert {"inferd.v1.Generation", "grpc.health.v1.Health"} <= services
    req = reflection_pb2.ServerReflectionRequest(file_containing_symbol="inferd.v1.Generation")
    (resp,) = list(refl.ServerReflectionInfo(iter([req]), timeout=10))
    assert resp.file_descriptor_response.file_descriptor_proto  # what grpcurl needs to call it


def test_errors_map_to_status_codes(gs):
    pb = gs.pb
    cases = [
        (request(pb, temperature=-1), grpc.StatusCode.INVALID_ARGUMENT, "temperature"),
        (pb.GenerateRequest(model="no-such-model", prompt="x"), grpc.StatusCode.NOT_FOUND, "no-such-model"),
        (pb.GenerateRequest(), grpc.StatusCode.INVALID_ARGUMENT, "prompt"),
        (request(pb, max_tokens=5000), grpc.StatusCode.INVALID_ARGUMENT, "2048"),
        (request(pb, logprobs=1000), grpc.StatusCode.INVALID_ARGUMENT, "logprobs"),
    ]
    for req, code, words in cases:
        for call in (gs.stub.Generate, lambda r, **kw: list(gs.stub.GenerateStream(r, **kw))):
            with pytest.raises(grpc.RpcError) as e:
                call(req, timeout=30)
            assert e.value.code() == code, (req, e.value.details())
            assert words in e.value.details(), e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        gs.stub.Tokenize(pb.TokenizeRequest(model="nope", prompt="x"), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_deadline_aborts_the_request(gs):
    pb = gs.pb
    before = aborted(gs.http)
    started = time.time()
    for call in (gs.stub.Generate, lambda r, **kw: list(gs.stub.GenerateStream(r, **kw))):
        with pytest.raises(grpc.RpcError) as e:
            call(request(pb, max_tokens=1900, ignore_eos=True), timeout=1.0)
        assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.time() - started < 30
    wait_for(lambda: aborted(gs.http) == before + 2, timeout=30)
    wait_for(lambda: engine_idle(gs.http), timeout=30)


def test_cancel_aborts_the_request(gs):
    pb = gs.pb
    before = aborted(gs.http)
    call = gs.stub.GenerateStream(request(pb, max_tokens=1900, ignore_eos=True), timeout=120)
    got = [next(call) for _ in range(3)]
    assert all(m.token_ids for m in got)
    call.cancel()
    with pytest.raises(grpc.RpcError) as e:
        list(call)
    assert e.value.code() == grpc.StatusCode.CANCELLED
    wait_for(lambda: aborted(gs.http) == before + 1, timeout=30)
    wait_for(lambda: engine_idle(gs.http), timeout=30)
    # the channel goes on serving
    assert gs.stub.Generate(request(pb, max_tokens=3, temperature=0), timeout=60).usage.completion_tokens == 3


def test_concurrent_streams(gs):
    pb = gs.pb
    results, errors = {}, []

    def one(i):
        try:
            msgs = list(gs.stub.GenerateStream(request(pb, prompt=f"Story number {i}:", max_tokens=24 + i,
                                                       ignore_eos=True, seed=i), timeout=120))
            results[i] = msgs
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    ids = set()
    for i, msgs in results.items():
        assert sum(len(m.token_ids) for m in msgs) == 24 + i
        assert msgs[-1].finish_reason == "length" and msgs[-1].usage.completion_tokens == 24 + i
        assert len({m.id for m in msgs}) == 1
        ids.add(msgs[0].id)
    assert len(ids) == 8
    wait_for(lambda: engine_idle(gs.http), timeout=30)


def test_api_key_as_metadata(start_server, pb):
    port = free_port()
    s = start_server("--grpc-port", port, "--api-key", "sekret")
    g = GrpcServer(s, port, pb)
    try:
        for md in ([], [("authorization", "Bearer wrong")], [("authorization", "sekret")]):
            with pytest.raises(grpc.RpcError) as e:
                g.stub.Generate(request(g.pb, max_tokens=2), metadata=md, timeout=30)
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED, md
            with pytest.raises(grpc.RpcError) as e:
                list(g.stub.GenerateStream(request(g.pb, max_tokens=2), metadata=md, timeout=30))
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED, md
        ok = g.stub.Generate(request(g.pb, max_tokens=2), metadata=[("authorization", "Bearer sekret")], timeout=30)
        assert ok.usage.completion_tokens == 2
        # like POST /tokenize and GET /health over HTTP: no key needed
        assert g.stub.Tokenize(g.pb.TokenizeRequest(prompt="hi"), timeout=10).count > 0
        assert g.stub.Health(g.pb.HealthRequest(), timeout=10).status == g.pb.HealthResponse.SERVING
    finally:
        g.channel.close()


def test_sigterm_drains_streams_then_not_serving(start_server, pb):
    port = free_port()
    s = start_server("--grpc-port", port)
    g = GrpcServer(s, port, pb)
    health = health_pb2_grpc.HealthStub(g.channel)
    try:
        call = g.stub.GenerateStream(request(g.pb, max_tokens=60, ignore_eos=True), timeout=120)
        first = next(call)
        s.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status ==
                 health_pb2.HealthCheckResponse.NOT_SERVING, timeout=10)
        rest = list(call)  # the request in flight finishes
        assert sum(len(m.token_ids) for m in [first, *rest]) == 60
        assert rest[-1].finish_reason == "length"
        assert s.proc.wait(timeout=60) == 0
        assert "gRPC /inferd.v1.Generation/GenerateStream" in s.log_text()
    finally:
        g.channel.close()


def test_slow_reader_is_ended_and_its_request_aborted(start_server, pb):
    """A client that stops reading: HTTP/2 flow control stalls the server's writes, the output
    queues up to --ws-max-queued-bytes (the limit for gRPC streams too), then the call ends with
    RESOURCE_EXHAUSTED and the request is aborted; memory stays bounded."""
    port = free_port()
    s = start_server("--grpc-port", port, "--ws-max-queued-bytes", "4KiB")
    # No BDP probing and a small window on the client, so that the stall comes early.
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.http2.bdp_probe", 0),
                                                                 ("grpc.http2.initial_stream_window_size", 16384)])
    try:
        stub = pb[1].GenerationStub(channel)
        before = aborted(s)
        call = stub.GenerateStream(request(pb[0], max_tokens=1900, ignore_eos=True, logprobs=20), timeout=300)
        first = next(call)  # the request runs; now read nothing
        assert first.token_ids
        wait_for(lambda: aborted(s) == before + 1, timeout=120, what="the slow reader's request aborted")
        with pytest.raises(grpc.RpcError) as e:
            for _ in call:
                pass
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "unread" in e.value.details()
        wait_for(lambda: engine_idle(s), timeout=30)
    finally:
        channel.close()


def test_grpc_port_taken_is_a_clear_error(inferd_bin, tmp_path):
    import socket
    from conftest import ServerProcess
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        s = ServerProcess(inferd_bin, ["--grpc-port", taken.getsockname()[1]], tmp_path, wait=False)
        assert s.proc.wait(timeout=60) == 1
        assert f"--grpc-port: cannot listen on 127.0.0.1:{taken.getsockname()[1]}" in s.log_text()
        s.stop()
