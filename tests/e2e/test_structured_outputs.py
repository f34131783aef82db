"""Structured outputs through the real `openai` SDK against `inferd serve` (issue 18,
docs/structured-outputs.md): every constrained output parses and validates (jsonschema for
JSON, re.fullmatch for regexes and the EBNF grammar's language), greedy and sampled,
streamed and not, and a constraint that cannot compile is a 400 naming the problem."""
import json
import re

import jsonschema
import openai
import pytest

SCHEMAS = {
    "person": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 30},
                                                "age": {"type": "integer", "minimum": 0, "maximum": 150}},
               "required": ["name", "age"]},
    "weather_call": {"type": "object",
                     "properties": {"city": {"type": "string", "maxLength": 40},
                                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                     "required": ["city", "unit"], "additionalProperties": False},
    "list": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "integer", "minimum": -1000, "maximum": 1000},
                                                        "minItems": 1, "maxItems": 4}},
             "required": ["items"]},
    "nested_ref": {"type": "object", "$defs": {"point": {"type": "object", "properties": {
        "x": {"type": "number"}, "y": {"type": "number"}}, "required": ["x", "y"]}},
        "properties": {"start": {"$ref": "#/$defs/point"}, "end": {"$ref": "#/$defs/point"}},
        "required": ["start", "end"]},
    "any_of": {"type": "object", "properties": {"value": {"anyOf": [{"type": "boolean"}, {"type": "null"},
                                                                    {"type": "integer"}]}},
               "required": ["value"]},
}


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="x")


def chat(client, content, **kw):
    return client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": content}], **kw)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_json_schema_outputs_validate(client, name, temperature):
    schema = SCHEMAS[name]
    r = chat(client, f"Reply with a JSON object for: {name}.", max_tokens=200, temperature=temperature, seed=7,
             response_format={"type": "json_schema", "json_schema": {"name": name, "schema": schema}},
             extra_body={"top_p": 0.95})
    c = r.choices[0]
    assert c.finish_reason == "stop", c.message.content
    jsonschema.validate(json.loads(c.message.content), schema)


def test_structured_outputs_json_without_whitespace_and_n2(client):
    schema = SCHEMAS["weather_call"]
    r = client.completions.create(model="smollm2", prompt="Weather query as JSON:", max_tokens=120, n=2,
                                  temperature=1.0, seed=3,
                                  extra_body={"structured_outputs": {"json": schema, "disable_any_whitespace": True}})
    assert len(r.choices) == 2
    for c in r.choices:
        assert c.finish_reason == "stop"
        doc = json.loads(c.text)
        assert c.text == json.dumps(doc), c.text  # the fixed separators ", " and ": ", no other whitespace
        jsonschema.validate(doc, schema)


def test_json_object_and_legacy_guided_json(client):
    r = chat(client, "Describe a cat as JSON.", max_tokens=150, temperature=0,
             response_format={"type": "json_object"})
    if r.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(r.choices[0].message.content), dict)
    else:  # the grammar allows any JSON: a long one may run out of tokens, but never breaks the syntax
        assert r.choices[0].finish_reason == "length"
        assert r.choices[0].message.content.lstrip().startswith("{")
    r = client.completions.create(model="smollm2", prompt="A person:", max_tokens=100, temperature=0,
                                  extra_body={"guided_json": SCHEMAS["person"]})
    jsonschema.validate(json.loads(r.choices[0].text), SCHEMAS["person"])


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_regex_choice_and_grammar(client, temperature):
    regex = r"[A-Z][a-z]{2,8} [0-9]{1,3}"
    r = client.completions.create(model="smollm2", prompt="A street name and number:", max_tokens=30,
                                  temperature=temperature, seed=11, extra_body={"structured_outputs": {"regex": regex}})
    assert r.choices[0].finish_reason == "stop"
    assert re.fullmatch(regex, r.choices[0].text), r.choices[0].text
    choices = ["positive", "negative", "neutral"]
    r = chat(client, "Sentiment of 'I love it'?", max_tokens=10, temperature=temperature, seed=5,
             extra_body={"structured_outputs": {"choice": choices}})
    assert r.choices[0].message.content in choices
    r = chat(client, "Is the sky blue?", max_tokens=10, temperature=temperature, seed=5,
             extra_body={"guided_choice": ["yes", "no"]})
    assert r.choices[0].message.content in ("yes", "no")
    grammar = 'root ::= "(" num ("+" num)* ")"\nnum ::= [0-9]+'
    r = client.completions.create(model="smollm2", prompt="A sum:", max_tokens=40, temperature=temperature, seed=2,
                                  extra_body={"structured_outputs": {"grammar": grammar}})
    text = r.choices[0].text
    if r.choices[0].finish_reason == "stop":
        assert re.fullmatch(r"\(\d+(\+\d+)*\)", text), text
    else:
        assert re.fullmatch(r"\(\d+(\+\d+)*\+?\d*", text), text  # a prefix of the language


def test_streamed_constrained_output_equals_non_streamed(client):
    kw = dict(max_tokens=120, temperature=0,
              response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": SCHEMAS["person"]}})
    whole = chat(client, "A person as JSON.", **kw).choices[0].message.content
    parts = [ch.choices[0].delta.content or "" for ch in chat(client, "A person as JSON.", stream=True, **kw)
             if ch.choices]
    assert "".join(parts) == whole
    jsonschema.validate(json.loads(whole), SCHEMAS["person"])


@pytest.mark.parametrize("extra,fragment", [
    ({"structured_outputs": {"json": {"type": "object", "properties": 5}}}, "properties must be an object"),
    ({"structured_outputs": {"regex": "(unclosed"}}, "parenthesis is not closed"),
    ({"structured_outputs": {"grammar": "root ::= undefined_rule"}}, "structured_outputs.grammar"),
    ({"response_format": {"type": "structural_tag", "nonsense": 1}}, "structured_outputs.structural_tag"),
])
def test_constraints_that_do_not_compile_are_400(client, extra, fragment):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="smollm2", prompt="x", max_tokens=5, extra_body=extra)
    assert fragment in str(e.value)
    assert "cannot be compiled" in str(e.value)


def _token_ids(client, text):
    return client.post("/../tokenize", body={"model": "smollm2", "prompt": text}, cast_to=object)["tokens"]


@pytest.mark.parametrize("stream", [False, True])
def test_outputs_that_would_loop_finish_within_max_tokens(client, stream):
    """logit_bias pushes the model to write digits forever inside an unbounded integer (and a
    regex's repeated group); the engine forces the shortest completion before max_tokens, so
    the output still finishes with "stop" and validates, within the budget."""
    seven = {str(t): 30 for t in _token_ids(client, "7")}
    schema = {"type": "object", "properties": {"id": {"type": "integer"}, "tags": {"type": "array", "items": {
        "type": "string", "pattern": "^[a-z]+$"}, "minItems": 2}}, "required": ["id", "tags"]}
    cases = [({"json": schema}, lambda t: jsonschema.validate(json.loads(t), schema)),
             ({"regex": "[0-9]+(px|em)"}, lambda t: re.fullmatch("[0-9]+(px|em)", t) or pytest.fail(t))]
    for constraint, check in cases:
        for max_tokens in (48, 96):
            kw = dict(max_tokens=max_tokens, temperature=0, logit_bias=seven,
                      extra_body={"structured_outputs": constraint, "stream_options": {"include_usage": True}}
                      if stream else {"structured_outputs": constraint})
            if stream:
                chunks = list(chat(client, "Write an id.", stream=True, **kw))
                text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
                finish = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
                usage = [ch.usage for ch in chunks if ch.usage][-1]
                assert finish == ["stop"], (constraint, text)
            else:
                r = chat(client, "Write an id.", **kw)
                text, usage = r.choices[0].message.content, r.usage
                assert r.choices[0].finish_reason == "stop", (constraint, text)
            assert "7777" in text, text  # the bias did make the model loop
            check(text)
            assert usage.completion_tokens <= max_tokens


@pytest.mark.parametrize("schema,fragment", [
    ({"allOf": [{"type": "string"}, {"type": "integer"}]}, "no common type"),
    ({"allOf": [{"type": "string", "pattern": "^a"}, {"pattern": "b$"}]}, 'different "pattern"'),
    ({"allOf": [{"$ref": "#/$defs/missing"}]}, "points nowhere"),
])
def test_allof_that_cannot_be_merged_is_400(client, schema, fragment):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="smollm2", prompt="x", max_tokens=5,
                                  extra_body={"structured_outputs": {"json": schema}})
    assert "structured_outputs.json: allOf cannot be merged into one schema" in str(e.value)
    assert fragment in str(e.value), str(e.value)


def test_length_bounds_beside_a_pattern_are_kept_or_refused(client):
    """XGrammar would drop maxLength beside a pattern or format: a repeated character class
    takes it into the pattern (the output respects it), other combinations are a 400."""
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]+$", "maxLength": 4}},
              "required": ["code"], "additionalProperties": False}
    r = chat(client, "Give a long uppercase code.", max_tokens=40, temperature=0,
             logit_bias={str(t): 20 for t in _token_ids(client, "ABCDEFGH")},
             extra_body={"structured_outputs": {"json": schema}})
    doc = json.loads(r.choices[0].message.content)
    jsonschema.validate(doc, schema)
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="smollm2", prompt="x", max_tokens=5, extra_body={"structured_outputs": {
            "json": {"type": "string", "format": "email", "maxLength": 20}}})
    assert "minLength/maxLength is not supported" in str(e.value)
