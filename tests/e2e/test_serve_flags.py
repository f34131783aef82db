"""Server flags that change defaults: --generation-config, --served-model-name."""

import json

import openai


def test_generation_config_folder_sets_defaults(start_server, tmp_path):
    (tmp_path / "generation_config.json").write_text(json.dumps({"max_new_tokens": 3, "temperature": 0.0}))
    server = start_server("--generation-config", str(tmp_path))
    c = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    msgs = [{"role": "user", "content": "Write a long poem about the sea."}]
    a = c.chat.completions.create(model="smollm2", messages=msgs, extra_body={"ignore_eos": True})
    b = c.chat.completions.create(model="smollm2", messages=msgs, extra_body={"ignore_eos": True})
    assert a.usage.completion_tokens == 3 and a.choices[0].finish_reason == "length"
    assert a.choices[0].message.content == b.choices[0].message.content  # temperature 0 from the file
    # A request's own values win over the defaults.
    r = c.chat.completions.create(model="smollm2", messages=msgs, max_tokens=5, extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 5


def test_generation_config_vllm_ignores_model_defaults(start_server, tmp_path):
    server = start_server("--generation-config", "vllm")
    c = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    r = c.completions.create(model="smollm2", prompt="Hello", extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 16  # OpenAI's completions default


def test_bad_generation_config_folder_fails_at_start(inferd_bin, tmp_path):
    import subprocess
    from conftest import _model_path
    p = subprocess.run([str(inferd_bin), "serve", _model_path(), "--port", "0", "--generation-config",
                        str(tmp_path / "missing")], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "--generation-config" in p.stderr and "missing" in p.stderr, p.stderr


def test_several_served_model_names(start_server):
    # The fixture already names the model "smollm2"; more names add aliases.
    server = start_server("--served-model-name", "a", "b")
    c = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    assert [m.id for m in c.models.list().data] == ["smollm2", "a", "b"]
    assert c.completions.create(model="b", prompt="Hi", max_tokens=1).model == "b"
    # Responses without a model name report the first one.
    r = c.with_options().post("/completions", body={"prompt": "Hi", "max_tokens": 1}, cast_to=object)
    assert r["model"] == "smollm2"
    try:
        c.completions.create(model="c", prompt="Hi", max_tokens=1)
        raise AssertionError("expected 404")
    except openai.NotFoundError as e:
        assert "`c`" in e.message
