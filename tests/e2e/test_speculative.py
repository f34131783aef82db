"""Speculative decoding through `inferd serve --speculative-config` and the real `openai` SDK
(issue 19, docs/speculative-decoding.md): the same greedy and seeded outputs as a server
without speculation — whole and streamed (several tokens per chunk, in order), with stop
strings, logprobs, n > 1 and structured outputs — the spec_decode_* counters in /metrics,
and a clear error for a config inferd cannot run."""
import json
import re
import urllib.request

import jsonschema
import openai
import pytest

# adaptive off: speculation on every step, so that the counts below do not depend on timings
# (with it on, the engine turns speculation off while it measures slower; unit-tested).
NGRAM = json.dumps({"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_min": 2,
                    "prompt_lookup_max": 5, "adaptive": False})

CODE = """def area(width, height):
    return width * height


def perimeter(width, height):
    return 2 * (width + height)
"""

REQUESTS = [
    dict(messages=[{"role": "user", "content": "Repeat this code exactly:\n\n" + CODE}], max_tokens=80,
         temperature=0),
    dict(messages=[{"role": "user", "content": "Copy this list: red, green, blue, red, green, blue, red."}],
         max_tokens=40, temperature=0, stop=["blue, red"]),
    dict(messages=[{"role": "user", "content": "Repeat: the cat sat on the mat, the cat sat on the mat."}],
         max_tokens=40, temperature=0.8, seed=11, n=2, logprobs=True, top_logprobs=2),
    dict(messages=[{"role": "user", "content": "Give a JSON object with a name and an age."}], max_tokens=60,
         temperature=0, response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": {
             "type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                              "age": {"type": "integer", "minimum": 0, "maximum": 120}},
             "required": ["name", "age"]}}}),
]


@pytest.fixture(scope="module")
def servers(inferd_bin, tmp_path_factory):
    from conftest import ServerProcess, _stop_and_check
    base = ServerProcess(inferd_bin, [], tmp_path_factory.mktemp("base"))
    spec = ServerProcess(inferd_bin, ["--speculative-config", NGRAM], tmp_path_factory.mktemp("spec"))
    yield base, spec
    _stop_and_check([base, spec])


def client(server):
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="x")


def summary(r):
    out = []
    for c in r.choices:
        lp = None
        if c.logprobs and c.logprobs.content:
            lp = [(t.token, round(t.logprob, 4), [(a.token, round(a.logprob, 4)) for a in t.top_logprobs])
                  for t in c.logprobs.content]
        out.append((c.index, c.message.content, c.finish_reason, lp))
    return out


@pytest.mark.parametrize("i", range(len(REQUESTS)))
def test_outputs_equal_those_without_speculation(servers, i):
    base, spec = servers
    a = client(base).chat.completions.create(model="smollm2", **REQUESTS[i])
    b = client(spec).chat.completions.create(model="smollm2", **REQUESTS[i])
    assert summary(a) == summary(b)
    assert a.usage.completion_tokens == b.usage.completion_tokens
    if "response_format" in REQUESTS[i]:
        jsonschema.validate(json.loads(b.choices[0].message.content),
                            REQUESTS[i]["response_format"]["json_schema"]["schema"])


def test_stream_carries_several_tokens_per_chunk_in_order(servers):
    base, spec = servers
    req = dict(REQUESTS[0], stream=True, stream_options={"include_usage": True})
    texts, chunks, usage = {}, {}, {}
    for name, s in (("base", base), ("spec", spec)):
        parts = []
        for ch in client(s).chat.completions.create(model="smollm2", **req):
            if ch.usage:
                usage[name] = ch.usage.completion_tokens
            for c in ch.choices:
                if c.delta.content:
                    parts.append(c.delta.content)
        texts[name], chunks[name] = "".join(parts), len(parts)
    assert texts["spec"] == texts["base"]
    assert usage["spec"] == usage["base"]
    # The code is repeated from the prompt: accepted drafts arrive together.
    assert chunks["spec"] < chunks["base"], chunks


def metric(server, name):
    with urllib.request.urlopen(server.base_url + "/metrics") as r:
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        m = re.match(r"^" + re.escape(name) + r"(\{[^}]*\})? (\S+)$", line)
        if m:
            values[m.group(1) or ""] = float(m.group(2))
    return values


def test_metrics_count_drafts_and_acceptance(servers):
    base, spec = servers
    client(spec).chat.completions.create(model="smollm2", **REQUESTS[0])
    drafts = sum(metric(spec, "inferd:spec_decode_num_drafts_total").values())
    draft_tokens = sum(metric(spec, "inferd:spec_decode_num_draft_tokens_total").values())
    accepted = sum(metric(spec, "inferd:spec_decode_num_accepted_tokens_total").values())
    per_pos = metric(spec, "inferd:spec_decode_num_accepted_tokens_per_pos_total")
    assert drafts > 0 and 0 < accepted <= draft_tokens
    assert len(per_pos) == 4 and sum(per_pos.values()) == accepted
    assert all(f'position="{i}"' in k for i, k in enumerate(sorted(per_pos)))
    assert metric(base, "inferd:spec_decode_num_drafts_total") == {}  # no series without speculation


@pytest.mark.parametrize("config, message", [
    ('{"method": "eagle", "num_speculative_tokens": 2}', 'method "eagle" is not implemented'),
    ('{"model": "/models/draft.gguf", "num_speculative_tokens": 2}', "draft model /models/draft.gguf"),
    ('{"method": "ngram"}', "num_speculative_tokens"),
    ('{"method": "ngram", "num_speculative_tokens": 2, "bogus": 1}', '"bogus" is not supported'),
    ("not json", "not valid JSON"),
])
def test_bad_config_is_a_clear_error_at_start(start_server, config, message):
    s = start_server("--speculative-config", config, wait=False)
    assert s.proc.wait(timeout=60) != 0
    assert message in s.log_text()
