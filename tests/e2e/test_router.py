"""`inferd router` in front of real `inferd serve` replicas (docs/router.md, issue 20).

Loopback only; every load here is bounded in count and time. The clients are the real openai
SDK and plain HTTP."""
import concurrent.futures as cf
import json
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest

REPLICA_FLAGS = ["--threads", "1"]


def get_json(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def get_text(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def post(url, body, headers=None, timeout=60):
    """(status, headers, body text) of a POST, HTTP errors included."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def metric(text, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        m = re.match(r'^([^{ ]+)(\{[^}]*\})? (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def start_router(start_server, backends, *flags, wait=True):
    args = ["--host", "127.0.0.1", "--port", "{port}", "--health-check-interval", "0.2", "--disable-access-log"]
    for b in backends:
        args += ["--backend", b.base_url]
    return start_server(exact=[*args, *map(str, flags)], command="router", wait=wait)


def wait_for(pred, timeout=30, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def backend_status(router, replica):
    for b in get_json(router.base_url + "/router/status")["backends"]:
        if b["backend"] == f"127.0.0.1:{replica.port}":
            return b
    raise AssertionError(f"replica {replica.port} not in the router's status")


@pytest.fixture
def replicas(start_server):
    return [start_server(*REPLICA_FLAGS) for _ in range(2)]


def test_router_forwards_the_openai_api(start_server, replicas):
    router = start_router(start_server, replicas)
    direct = openai.OpenAI(base_url=replicas[0].base_url + "/v1", api_key="x")
    routed = openai.OpenAI(base_url=router.base_url + "/v1", api_key="x")
    msgs = [{"role": "user", "content": "Name three colors."}]
    want = direct.chat.completions.create(model="smollm2", messages=msgs, max_tokens=12, temperature=0)
    got = routed.chat.completions.create(model="smollm2", messages=msgs, max_tokens=12, temperature=0)
    assert got.choices[0].message.content == want.choices[0].message.content
    stream = routed.chat.completions.create(model="smollm2", messages=msgs, max_tokens=12, temperature=0,
                                            stream=True)
    chunks = [c for c in stream if c.choices and c.choices[0].delta.content]
    assert len(chunks) > 1  # passed through chunk by chunk, not as one body
    assert "".join(c.choices[0].delta.content for c in chunks) == want.choices[0].message.content
    assert [m.id for m in routed.models.list().data] == ["smollm2"]
    # A stream's [DONE] reaches the client before the replica's body ends; the counters
    # follow when it does.
    wait_for(lambda: metric(get_text(router.base_url + "/metrics"), "inferd_router_client_requests_total",
                            code="2xx") >= 3, what="the router to count the three answers")
    text = get_text(router.base_url + "/metrics")
    assert metric(text, "inferd_router_requests_total", code="2xx") >= 3
    assert metric(text, "inferd_router_backend_up") == 2
    # Unknown routes are the router's own 404, in OpenAI's error shape.
    status, _, body = post(router.base_url + "/nope", {})
    assert status == 404 and json.loads(body)["error"]["code"] == 404


def test_expect_100_continue_is_answered_by_the_router(start_server, replicas):
    import http.client
    router = start_router(start_server, replicas[:1])
    conn = http.client.HTTPConnection("127.0.0.1", router.port, timeout=30)
    body = json.dumps({"model": "smollm2", "prompt": "hi", "max_tokens": 2}).encode()
    conn.request("POST", "/v1/completions", body=body,
                 headers={"Content-Type": "application/json", "Expect": "100-continue"})
    r = conn.getresponse()
    assert r.status == 200, r.read()
    assert json.loads(r.read())["usage"]["completion_tokens"] == 2


def test_stream_closed_right_after_done_counts_as_answered(start_server):
    """A client that resets its connection as soon as it has read `data: [DONE]` (as the openai
    SDK closes after [DONE]) got the whole answer: the router counts a 2xx, never a 499, even
    when the reset reaches it before the replica's end of body."""
    import socket
    import struct
    replica = start_server(*REPLICA_FLAGS)
    router = start_router(start_server, [replica])
    body = json.dumps({"model": "smollm2", "prompt": "Hello", "max_tokens": 3, "stream": True}).encode()
    request = (f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    n = 12
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", router.port), timeout=30)
        s.sendall(request)
        got = b""
        while b"data: [DONE]" not in got:
            chunk = s.recv(65536)
            assert chunk, got
            got += chunk
        assert got.startswith(b"HTTP/1.1 200"), got[:200]
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        s.close()
    wait_for(lambda: metric(get_text(router.base_url + "/metrics"), "inferd_router_requests_total",
                            code="2xx") >= n, what="the replica's ends of body")
    text = get_text(router.base_url + "/metrics")
    assert metric(text, "inferd_router_client_requests_total", code="2xx") == n
    assert metric(text, "inferd_router_client_requests_total", code="499") == 0


def test_client_disconnect_aborts_on_the_replica(start_server):
    replica = start_server(*REPLICA_FLAGS)
    router = start_router(start_server, [replica])
    routed = openai.OpenAI(base_url=router.base_url + "/v1", api_key="x")
    stream = routed.completions.create(model="smollm2", prompt="Once upon a time", max_tokens=2000,
                                       temperature=0, stream=True, extra_body={"ignore_eos": True})
    next(iter(stream))
    stream.close()
    wait_for(lambda: metric(get_text(replica.base_url + "/metrics"), "inferd:request_success_total",
                            finished_reason="abort") == 1, what="the replica to abort the request")
    assert metric(get_text(replica.base_url + "/metrics"), "inferd:num_requests_running") == 0


def test_replica_killed_and_restarted_mid_run(start_server, inferd_bin, tmp_path):
    reps = [start_server(*REPLICA_FLAGS) for _ in range(3)]
    router = start_router(start_server, reps, "--policy", "round-robin", "--max-retries", "3",
                          "--circuit-failure-threshold", "2", "--circuit-open-seconds", "0.5")
    url = router.base_url + "/v1/completions"
    results = []  # (kind, outcome)
    lock = threading.Lock()
    stop = threading.Event()

    def one_stream(i):
        req = urllib.request.Request(url, method="POST", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"model": "smollm2", "prompt": f"Story {i}:", "max_tokens": 24,
                                                      "temperature": 0, "stream": True}).encode())
        got_bytes, outcome = False, None
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                for line in r:
                    got_bytes = True
                    if line.startswith(b"data: ") and b'"error"' in line:
                        outcome = "error-event"
                    if line.strip() == b"data: [DONE]":
                        outcome = outcome or "ok"
        except urllib.error.HTTPError as e:
            outcome = f"http-{e.code}"
        except Exception as e:  # noqa: BLE001 - the test classifies every failure
            outcome = f"exception-{type(e).__name__}"
        return got_bytes, outcome or "cut"

    def client(i):
        n = 0
        while not stop.is_set():
            if n % 2 == 0:
                status, _, body = post(url, {"model": "smollm2", "prompt": f"Fact {i}.{n}:", "max_tokens": 16,
                                             "temperature": 0})
                with lock:
                    results.append(("plain", "ok" if status == 200 else f"http-{status}: {body[:200]}"))
            else:
                got_bytes, outcome = one_stream(f"{i}.{n}")
                with lock:
                    results.append(("stream-started" if got_bytes else "stream", outcome))
            n += 1

    with cf.ThreadPoolExecutor(6) as pool:
        futs = [pool.submit(client, i) for i in range(6)]
        wait_for(lambda: len(results) >= 12, timeout=120, what="load to start")
        victim = reps[1]
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        wait_for(lambda: backend_status(router, victim)["circuit"] == "open"
                 or not backend_status(router, victim)["healthy"], what="the router to notice the kill")
        n_at_kill = len(results)
        wait_for(lambda: len(results) >= n_at_kill + 12, timeout=120, what="load to go on without the victim")
        restarted = start_server(*REPLICA_FLAGS, port=victim.port)
        wait_for(lambda: backend_status(router, restarted)["healthy"]
                 and backend_status(router, restarted)["circuit"] == "closed", what="the restarted replica")
        served_before = metric(get_text(restarted.base_url + "/metrics"), "inferd:request_success_total")
        wait_for(lambda: metric(get_text(restarted.base_url + "/metrics"), "inferd:request_success_total")
                 > served_before, timeout=60, what="traffic to reach the restarted replica")
        stop.set()
        for f in futs:
            f.result()
    # Every request that had not started streaming succeeded (retried on another replica);
    # a stream cut by the kill ended with an error event, never silently.
    for kind, outcome in results:
        if kind in ("plain", "stream"):
            assert outcome == "ok", (kind, outcome)
        else:
            assert outcome in ("ok", "error-event"), (kind, outcome)
    text = get_text(router.base_url + "/metrics")
    label = f"127.0.0.1:{victim.port}"
    assert metric(text, "inferd_router_circuit_transitions_total", backend=label, to="open") >= 1
    assert metric(text, "inferd_router_circuit_transitions_total", backend=label, to="closed") >= 1


def multi_turn_workload(client, conversations=4, turns=4):
    """Conversations about a pasted document each (their own long prefix), a turn at a time
    over all conversations. 4 conversations over 3 replicas: round-robin moves each
    conversation to another replica every turn."""
    items = ["nails", "hammers", "paint", "saws", "glue", "tape", "screws", "drills"]
    for t in range(turns):
        for c in range(conversations):
            doc = " ".join(f"Item {k} of order {c}: {items[(c + k) % len(items)]}, {k + 3} units, shelf {c}-{k}."
                           for k in range(24))
            msgs = [{"role": "system", "content": "Answer briefly."},
                    {"role": "user", "content": f"Here is order {c}: {doc}"}]
            for k in range(t):
                msgs += [{"role": "assistant", "content": f"Noted, answer {k}."},
                         {"role": "user", "content": f"Question {k + 1} about order {c}?"}]
            client.chat.completions.create(model="smollm2", messages=msgs, max_tokens=4, temperature=0)


def prefix_hit_rate(replicas):
    hits = queries = 0.0
    for r in replicas:
        text = get_text(r.base_url + "/metrics")
        hits += metric(text, "inferd:prefix_cache_hits_total")
        queries += metric(text, "inferd:prefix_cache_queries_total")
    return hits / queries


def test_prefix_routing_keeps_conversations_together(start_server):
    rates = {}
    for policy in ("prefix", "round-robin"):
        reps = [start_server(*REPLICA_FLAGS) for _ in range(3)]
        router = start_router(start_server, reps, "--policy", policy)
        multi_turn_workload(openai.OpenAI(base_url=router.base_url + "/v1", api_key="x"))
        rates[policy] = prefix_hit_rate(reps)
        text = get_text(router.base_url + "/metrics")
        if policy == "prefix":
            assert metric(text, "inferd_router_routing_decisions_total", kind="prefix_hit") > 0
        for r in [router, *reps]:
            r.stop()
    # Each later turn of a conversation finds its whole history on the replica that served
    # the earlier turns; round-robin sends it elsewhere.
    assert rates["prefix"] > rates["round-robin"] * 2, rates


def canary_load(router, n, max_tokens=1):
    """Up to n completions through the router, stopping once the canary has a verdict; then
    waits for the verdict (the evaluation runs every second). Returns (statuses, status JSON)."""
    url, statuses = router.base_url + "/v1/completions", []

    def state():
        return get_json(router.base_url + "/router/status")["canary"]["state"]
    for i in range(n):
        statuses.append(post(url, {"model": "smollm2", "prompt": f"n{i}", "max_tokens": max_tokens})[0])
        if state() != "active":
            break
    wait_for(lambda: state() != "active", timeout=10, what="the canary's verdict")
    return statuses, get_json(router.base_url + "/router/status")


def test_canary_with_errors_is_rolled_back(start_server):
    stable = start_server(*REPLICA_FLAGS)
    canary = start_server(*REPLICA_FLAGS, "--inject-error-rate", "0.6")
    # A high breaker threshold, so that the verdict comes from the window's error rate.
    router = start_router(start_server, [stable], "--canary", canary.base_url, "--canary-weight", "40",
                          "--canary-window", "60", "--canary-min-requests", "8", "--circuit-failure-threshold", "50")
    url = router.base_url + "/v1/completions"
    statuses, st = canary_load(router, 80, max_tokens=2)
    assert 500 in statuses  # the canary did fail some
    assert st["canary"]["state"] == "rolled_back", st
    assert st["canary"]["weight"] == 0
    assert "error rate" in st["canary"]["reason"]
    text = get_text(router.base_url + "/metrics")
    assert metric(text, "inferd_router_canary_rollbacks_total") == 1
    assert metric(text, "inferd_router_canary_weight") == 0
    # After the rollback nothing goes to the canary.
    served = metric(get_text(canary.base_url + "/metrics"), "inferd:request_success_total")
    for i in range(10):
        assert post(url, {"model": "smollm2", "prompt": f"m{i}", "max_tokens": 2})[0] == 200
    assert metric(get_text(canary.base_url + "/metrics"), "inferd:request_success_total") == served
    assert "rolled back" in router.log_text()


def test_canary_whose_circuit_opens_is_rolled_back(start_server):
    stable = start_server(*REPLICA_FLAGS)
    canary = start_server(*REPLICA_FLAGS, "--inject-error-rate", "1")
    router = start_router(start_server, [stable], "--canary", canary.base_url, "--canary-weight", "50",
                          "--canary-min-requests", "20", "--circuit-failure-threshold", "3")
    _, st = canary_load(router, 30)
    assert st["canary"]["state"] == "rolled_back", st
    assert st["canary"]["reason"] == "canary circuit opened after 3 consecutive failed requests"


def test_slow_canary_is_rolled_back_on_ttft(start_server):
    stable = start_server(*REPLICA_FLAGS)
    canary = start_server(*REPLICA_FLAGS, "--inject-delay", "0.3")
    router = start_router(start_server, [stable], "--canary", canary.base_url, "--canary-weight", "50",
                          "--canary-min-requests", "5", "--canary-max-ttft-ratio", "3")
    statuses, st = canary_load(router, 40)
    assert set(statuses) == {200}  # slow, not failing
    assert st["canary"]["state"] == "rolled_back"
    assert "TTFT p99" in st["canary"]["reason"], st["canary"]


def test_healthy_canary_is_kept_and_promoted(start_server):
    stable = start_server(*REPLICA_FLAGS)
    canary = start_server(*REPLICA_FLAGS)
    router = start_router(start_server, [stable], "--canary", canary.base_url, "--canary-weight", "40",
                          "--canary-window", "60", "--canary-min-requests", "8")
    url = router.base_url + "/v1/completions"
    for i in range(40):
        assert post(url, {"model": "smollm2", "prompt": f"n{i}", "max_tokens": 2, "temperature": 0})[0] == 200
    time.sleep(1.5)  # at least one evaluation after the load (--canary eval runs every second)
    st = get_json(router.base_url + "/router/status")
    assert st["canary"]["state"] == "active", st
    assert metric(get_text(canary.base_url + "/metrics"), "inferd:request_success_total") >= 4
    status, _, body = post(router.base_url + "/router/canary/promote", {})
    assert status == 200, body
    st = json.loads(body)
    assert st["canary"]["state"] == "promoted"
    assert all(not b["canary"] for b in st["backends"])
    assert post(router.base_url + "/router/canary/promote", {})[0] == 409


def test_rate_limit_per_key(start_server):
    replica = start_server(*REPLICA_FLAGS)
    router = start_router(start_server, [replica], "--rate-limit-rps", "0.2", "--rate-limit-burst", "2")
    url = router.base_url + "/v1/completions"
    body = {"model": "smollm2", "prompt": "hi", "max_tokens": 1}
    a = [post(url, body, {"Authorization": "Bearer key-a"}) for _ in range(3)]
    assert [s for s, _, _ in a] == [200, 200, 429]
    status, headers, text = a[2]
    assert int(headers["Retry-After"]) >= 1
    err = json.loads(text)["error"]
    assert err["type"] == "RateLimitError" and "API key" in err["message"]
    # Another key is unaffected.
    assert [post(url, body, {"Authorization": "Bearer key-b"})[0] for _ in range(2)] == [200, 200]
    text = get_text(router.base_url + "/metrics")
    assert metric(text, "inferd_router_rate_limited_total", scope="key") == 1


def test_tokens_per_minute_limit(start_server):
    replica = start_server(*REPLICA_FLAGS)
    router = start_router(start_server, [replica], "--rate-limit-tpm", "120")
    url = router.base_url + "/v1/completions"
    # Charged prompt bytes / 4 + max_tokens at admission: about 100 of the 120 per minute.
    body = {"model": "smollm2", "prompt": "hello there", "max_tokens": 90}
    assert post(url, body)[0] == 200
    status, headers, text = post(url, body)
    assert status == 429, text
    assert "tokens per minute" in json.loads(text)["error"]["message"]
    assert int(headers["Retry-After"]) >= 1


def test_backends_from_dns(start_server):
    replica = start_server(*REPLICA_FLAGS)
    router = start_server(exact=["--host", "127.0.0.1", "--port", "{port}", "--backend-dns",
                                 f"localhost:{replica.port}", "--dns-refresh", "0.5", "--health-check-interval",
                                 "0.2"], command="router")
    status, _, body = post(router.base_url + "/v1/completions", {"model": "smollm2", "prompt": "x", "max_tokens": 2})
    assert status == 200, body
    labels = [b["backend"] for b in get_json(router.base_url + "/router/status")["backends"]]
    assert f"127.0.0.1:{replica.port}" in labels


def test_two_dns_names_on_one_port_keep_their_own_backends(start_server):
    replica = start_server(*REPLICA_FLAGS)
    # Two names with different addresses (127.0.0.2 has no replica: it fails its health checks).
    router = start_server(exact=["--host", "127.0.0.1", "--port", "{port}", "--backend-dns", f"127.0.0.2:{replica.port}",
                                 "--backend-dns", f"127.0.0.1:{replica.port}", "--dns-refresh", "0.1",
                                 "--health-check-interval", "0.2"], command="router")
    wait_for(lambda: len(get_json(router.base_url + "/router/status")["backends"]) == 2, what="both names resolved")
    # Each name's lookup must not mark the other name's addresses as gone (they flapped).
    for _ in range(30):
        backends = get_json(router.base_url + "/router/status")["backends"]
        assert not any(b["removed"] for b in backends), backends
        time.sleep(0.05)
    assert post(router.base_url + "/v1/completions", {"model": "smollm2", "prompt": "x", "max_tokens": 2})[0] == 200


def test_request_timeout_is_a_504(start_server):
    replica = start_server(*REPLICA_FLAGS, "--inject-delay", "5")
    router = start_router(start_server, [replica], "--request-timeout", "1", "--max-retries", "0")
    status, _, body = post(router.base_url + "/v1/completions", {"model": "smollm2", "prompt": "x", "max_tokens": 1})
    assert status == 504, body
    assert "timed out" in json.loads(body)["error"]["message"]


def test_router_flag_errors(inferd_bin):
    def run(*args):
        return subprocess.run([str(inferd_bin), "router", *args], capture_output=True, text=True, timeout=30)
    r = run()
    assert r.returncode != 0 and "--backend" in r.stderr
    r = run("--backend", "http://127.0.0.1:1", "--policy", "random")
    assert r.returncode != 0 and "prefix" in r.stderr
    r = run("--backend", "http://127.0.0.1:1", "--canary-weight", "5")
    assert r.returncode != 0 and "--canary" in r.stderr
    r = run("--backend", "https://x:1")
    assert r.returncode != 0 and "https" in r.stderr
    r = run("--help")
    assert r.returncode == 0
    for flag in ("--backend", "--policy", "--rate-limit-rps", "--rate-limit-burst", "--rate-limit-tpm", "--canary",
                 "--canary-weight", "--request-timeout", "--max-retries", "--backend-dns"):
        assert flag in r.stdout


def test_no_healthy_backend_is_a_503(start_server, tmp_path):
    from conftest import free_port
    router = start_router(start_server, [], "--backend", f"http://127.0.0.1:{free_port()}", wait=False)
    wait_for(lambda: _health(router) == 503, what="the router to find its only backend down")
    status, headers, body = post(router.base_url + "/v1/completions", {"model": "smollm2", "prompt": "x"})
    assert status == 503 and headers.get("Retry-After") == "1"
    assert "no healthy backend" in json.loads(body)["error"]["message"]


def _health(router):
    try:
        with urllib.request.urlopen(router.base_url + "/health", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:  # noqa: BLE001 - not listening yet
        return None
