"""A real Prometheus server scrapes a live `inferd serve` and the values read back through
its query API match what the requests did."""

import socket
import json

import openai

from prometheus import PrometheusHarness


def test_prometheus_scrapes_live_server(start_server):
    server = start_server()
    c = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    tokens = 0
    for i in range(3):
        r = c.completions.create(model="smollm2", prompt=f"Number {i}:", max_tokens=5, temperature=0,
                                 extra_body={"ignore_eos": True})
        assert r.choices[0].finish_reason == "length"
        tokens += r.usage.completion_tokens
    r = c.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "Hi"}], max_tokens=3,
                                  extra_body={"ignore_eos": True})
    tokens += r.usage.completion_tokens
    # The same prompt twice: the second hits the prefix cache.
    long_prompt = "The quick brown fox jumps over the lazy dog. " * 8
    for _ in range(2):
        c.completions.create(model="smollm2", prompt=long_prompt, max_tokens=1)
        tokens += 1
    # One request aborted by its client.
    host, port = server.base_url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)))
    body = json.dumps({"prompt": "abort me", "max_tokens": 1000, "stream": True, "ignore_eos": True}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + str(len(body)).encode() +
              b"\r\n\r\n" + body)
    got = b""
    while b"data: {" not in got:
        chunk = s.recv(4096)
        assert chunk, got
        got += chunk
    s.close()

    with PrometheusHarness(target=f"127.0.0.1:{server.port}") as prom:
        prom.wait_for_up()
        lab = '{model_name="smollm2"}'
        prom.wait_for(f'inferd:request_success_total{{model_name="smollm2",finished_reason="abort"}}',
                      lambda res: res and res[0][1] == 1)
        assert prom.value(f'inferd:request_success_total{{finished_reason="length"}}') == 6
        assert prom.value(f"inferd:num_requests_running{lab}") == 0
        assert prom.value(f"inferd:num_requests_waiting{lab}") == 0
        assert prom.value(f"inferd:kv_cache_usage_perc{lab}") == 0
        gen = prom.value(f"inferd:generation_tokens_total{lab}")
        assert tokens <= gen < tokens + 1000  # plus what the aborted request made
        assert prom.value(f"inferd:prompt_tokens_total{lab}") > 0
        assert prom.value(f"inferd:prefix_cache_hits_total{lab}") >= 64
        assert prom.value(f"inferd:prefix_cache_queries_total{lab}") >= prom.value(
            f"inferd:prefix_cache_hits_total{lab}")
        assert prom.value(f"inferd:num_preemptions_total{lab}") == 0
        # Histograms: one observation per finished request (TTFT for those with a token).
        assert prom.value(f"inferd:e2e_request_latency_seconds_count{lab}") == 7
        assert prom.value(f"inferd:request_queue_time_seconds_count{lab}") == 7
        assert prom.value(f"inferd:time_to_first_token_seconds_count{lab}") == 7
        itl = prom.value(f"inferd:inter_token_latency_seconds_count{lab}")
        assert itl >= 3 * 4 + 2
        p50 = prom.value(f"histogram_quantile(0.5, inferd:e2e_request_latency_seconds_bucket{lab})")
        assert 0 < p50 < 60
        assert prom.value(f"inferd:time_to_first_token_seconds_sum{lab}") > 0
