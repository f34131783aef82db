"""Structured outputs in the offline API (vLLM's ``StructuredOutputsParams``): outputs
validate against their constraint, the older ``guided_decoding`` spelling maps onto it, and
bad constraints raise ``ValueError`` with the reason."""
import json
import re

import jsonschema
import pytest

from inferd import SamplingParams, StructuredOutputsParams

SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                           "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]},
                                                    "maxItems": 3}},
          "required": ["name", "tags"]}


def test_json_regex_and_choice_outputs_match(llm):
    params = [
        SamplingParams(max_tokens=120, temperature=0, structured_outputs=StructuredOutputsParams(json=SCHEMA)),
        SamplingParams(max_tokens=120, temperature=0.9, seed=4, n=2,
                       structured_outputs=StructuredOutputsParams(json=json.dumps(SCHEMA), disable_any_whitespace=True)),
        SamplingParams(max_tokens=20, temperature=0.7, seed=1,
                       structured_outputs=StructuredOutputsParams(regex=r"[0-9]{4}-[0-9]{2}-[0-9]{2}")),
        SamplingParams(max_tokens=8, temperature=0, guided_decoding={"choice": ["red", "green", "blue"]}),
    ]
    outs = llm.generate(["A user record:", "A user record:", "A date:", "A colour:"], params)
    for o in outs[0].outputs + outs[1].outputs:
        assert o.finish_reason == "stop", o.text
        jsonschema.validate(json.loads(o.text), SCHEMA)
    # No whitespace beyond the canonical separators (", ", ": "): equal to json.dumps' layout
    # once string literals are blanked (a string may hold "\u00ed" or the character itself).
    literal = re.compile(r'"(?:[^"\\]|\\.)*"')
    for o in outs[1].outputs:
        assert literal.sub('""', o.text) == literal.sub('""', json.dumps(json.loads(o.text))), o.text
    assert re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", outs[2].outputs[0].text)
    assert outs[3].outputs[0].text in ("red", "green", "blue")


def test_constraint_checks():
    with pytest.raises(ValueError, match="none are specified"):
        StructuredOutputsParams()
    with pytest.raises(ValueError, match="multiple are specified"):
        StructuredOutputsParams(regex="a", choice=["a"])
    with pytest.raises(ValueError, match="XGrammar"):
        StructuredOutputsParams(regex="a", whitespace_pattern=" ")


def test_bad_constraint_is_a_value_error(llm):
    with pytest.raises(ValueError, match="cannot be compiled"):
        llm.generate("x", SamplingParams(max_tokens=2, structured_outputs=StructuredOutputsParams(regex="(")))
