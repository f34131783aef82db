"""The JSON-schema corpus (tests/e2e/schema_corpus/, 200+ schemas modelled on real API objects
and function definitions) through the real `openai` SDK against `inferd serve` with the
embedded model: for every schema a greedy request (temperature 0, `response_format`
json_schema) and a sampled one (temperature 1.0, fixed seed, `structured_outputs.json` via
extra_body); each output must finish with "stop", json.loads, and validate with jsonschema
(the validator class of the schema's $schema, default Draft 2020-12) including the string
formats XGrammar 0.2.9 enforces.

All requests are sent at once from a thread pool so the server batches them; the per-schema
tests only look up their result. Set INFERD_SCHEMA_CORPUS_REPORT=path to write every
request's outcome as JSON (what bench/schema_corpus.py also reads)."""
import concurrent.futures
import datetime
import ipaddress
import json
import os
import pathlib
import re
import time

import jsonschema
import openai
import pytest

CORPUS_DIR = pathlib.Path(__file__).resolve().parent / "schema_corpus"
CORPUS = {p.stem: json.loads(p.read_text()) for p in sorted(CORPUS_DIR.glob("*.json"))}

# 512 keeps the file near 2 minutes on 2 cores. A model that loops inside a value the schema
# leaves unbounded is closed by the engine before max_tokens (GrammarState::FinishWithin), so
# every output must finish and validate (INFERD_SCHEMA_CORPUS_MAX_TOKENS to try another limit).
MAX_TOKENS = int(os.environ.get("INFERD_SCHEMA_CORPUS_MAX_TOKENS", 512))
SEED = 7
CONCURRENCY = int(os.environ.get("INFERD_SCHEMA_CORPUS_CONCURRENCY", 16))
MODES = {
    # mode: (temperature, how the schema is sent)
    "greedy": (0.0, "response_format"),
    "sampled": (1.0, "structured_outputs"),
}

# The string formats XGrammar 0.2.9 turns into a regex (JSONFormatToRegexPattern in
# cpp/json_schema_converter.cc); any other format is not enforced, so it is not checked here.
XGRAMMAR_FORMATS = ("email", "date", "time", "date-time", "duration", "ipv4", "ipv6", "hostname", "uuid", "uri",
                    "uri-reference", "uri-template", "json-pointer", "relative-json-pointer")

# Checkers for the formats jsonschema checks only with optional packages (rfc3987, fqdn,
# isoduration, uri-template, rfc3339-validator): written here from the RFCs, independent of
# XGrammar's regexes, so that a missing package never turns a check off.
_DATE = r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
_TIME = r"([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)"
_PCT = r"%[0-9A-Fa-f]{2}"
_UNRESERVED_SUBDELIMS = r"[A-Za-z0-9\-._~!$&'()*+,;=]"
_URI_CHARS = re.compile(rf"^({_UNRESERVED_SUBDELIMS}|[:/?#\[\]@]|{_PCT})*$")
_DUR = re.compile(r"^P(?!$)((\d+Y)?(\d+M)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?|\d+W)$")


def _valid_date(s):
    try:
        datetime.date.fromisoformat(s)
        return True
    except ValueError:
        return False


def _uri_reference(s):
    if not _URI_CHARS.match(s):
        return False
    m = re.match(r"^(([^:/?#]+):)?(//([^/?#]*))?([^?#]*)(\?([^#]*))?(#(.*))?$", s)
    if m.group(2) is not None and not re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*$", m.group(2)):
        return False
    if m.group(4) is not None and "[" not in m.group(4) and re.search(r"[\[\]]", m.group(4)):
        return False
    return "#" not in (m.group(9) or "") and not re.search(r"[\[\]]", m.group(5) + (m.group(7) or ""))


def _hostname(s):
    if not s or len(s) > 253:
        return False
    return all(re.match(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$", label) for label in s.split("."))


_FALLBACK_CHECKERS = {
    "date": lambda s: bool(re.fullmatch(_DATE, s)) and _valid_date(s),
    "time": lambda s: bool(re.fullmatch(_TIME, s)),
    "date-time": lambda s: bool(re.fullmatch(_DATE + r"[Tt]" + _TIME, s)) and _valid_date(s[:10]),
    "duration": lambda s: bool(_DUR.match(s)),
    "uri": lambda s: bool(re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*:", s)) and _uri_reference(s),
    "uri-reference": _uri_reference,
    "hostname": _hostname,
    "ipv4": lambda s: bool(re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", s)) and _ipv4(s),
    "uuid": lambda s: bool(re.fullmatch(r"[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}", s)),
    "email": lambda s: bool(re.fullmatch(r"[^@\s]+@[^@\s]+", s)),
}


def _ipv4(s):
    try:
        ipaddress.IPv4Address(s)
        return True
    except ValueError:
        return False


def format_checker():
    """A FormatChecker for exactly the formats XGrammar enforces: jsonschema's own checker where
    it has one (it needs optional packages for some), else the fallback above."""
    library = jsonschema.Draft202012Validator.FORMAT_CHECKER
    checker = jsonschema.FormatChecker(formats=())
    for name in XGRAMMAR_FORMATS:
        if name in library.checkers:
            func, raises = library.checkers[name]
            checker.checks(name, raises)(func)
        elif name in _FALLBACK_CHECKERS:
            fallback = _FALLBACK_CHECKERS[name]
            checker.checks(name)(lambda v, f=fallback: not isinstance(v, str) or f(v))
    return checker


FORMAT_CHECKER = format_checker()


def validator_for(schema):
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema, format_checker=FORMAT_CHECKER)


def prompt_for(schema):
    what = schema.get("description") or schema.get("title") or "the requested data"
    return f"{what} Reply with the JSON only, using short realistic values."


def request_kwargs(name, schema, mode, max_tokens=MAX_TOKENS):
    temperature, how = MODES[mode]
    kw = dict(model="smollm2", messages=[{"role": "user", "content": prompt_for(schema)}], max_tokens=max_tokens,
              temperature=temperature, seed=SEED)
    if how == "response_format":
        kw["response_format"] = {"type": "json_schema",
                                 "json_schema": {"name": re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64], "schema": schema,
                                                 "strict": True}}
    else:
        kw["extra_body"] = {"structured_outputs": {"json": schema}}
    return kw


def run_one(client, name, mode, max_tokens=MAX_TOKENS):
    """One request; returns a JSON-able record of what came back and what it means."""
    schema = CORPUS[name]
    kw = request_kwargs(name, schema, mode, max_tokens)
    rec = {"schema": name, "mode": mode, "max_tokens": max_tokens}
    t0 = time.monotonic()
    try:
        r = client.chat.completions.create(**kw)
    except openai.APIStatusError as e:
        rec.update(kind="http_error", status=e.status_code, reason=str(e), seconds=time.monotonic() - t0)
        return rec
    except Exception as e:  # connection errors, timeouts
        rec.update(kind="exception", reason=repr(e), seconds=time.monotonic() - t0)
        return rec
    c = r.choices[0]
    rec.update(seconds=time.monotonic() - t0, finish_reason=c.finish_reason, content=c.message.content,
               completion_tokens=r.usage.completion_tokens if r.usage else None)
    rec.update(classify(schema, c.finish_reason, c.message.content))
    return rec


def classify(schema, finish_reason, content):
    if finish_reason != "stop":
        return {"kind": "length" if finish_reason == "length" else "finish_" + str(finish_reason),
                "reason": f"finish_reason {finish_reason!r}"}
    try:
        doc = json.loads(content)
    except (TypeError, ValueError) as e:
        return {"kind": "not_json", "reason": str(e)}
    errors = sorted(validator_for(schema).iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        return {"kind": "invalid", "reason": f"at {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"}
    return {"kind": "pass"}


def run_corpus(base_url, names=None, modes=tuple(MODES), max_tokens=MAX_TOKENS, concurrency=CONCURRENCY):
    """Every (schema, mode) request at once through `concurrency` threads; returns the records
    in corpus order and the wall time."""
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="x", timeout=600, max_retries=0)
    jobs = [(n, m) for n in (names or sorted(CORPUS)) for m in modes]
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        records = list(pool.map(lambda job: run_one(client, *job, max_tokens=max_tokens), jobs))
    return records, time.monotonic() - t0


def describe(rec):
    kw = request_kwargs(rec["schema"], CORPUS[rec["schema"]], rec["mode"], rec["max_tokens"])
    kw.pop("model")
    return (f"schema {rec['schema']} ({rec['mode']}): {rec['kind']}: {rec.get('reason')}\n"
            f"schema: {json.dumps(CORPUS[rec['schema']])}\n"
            f"request: {json.dumps(kw)[:3000]}\n"
            f"output ({rec.get('completion_tokens')} tokens): {rec.get('content')!r}")


@pytest.fixture(scope="module")
def corpus_results(server):
    records, seconds = run_corpus(server.base_url)
    summary = {}
    for r in records:
        summary.setdefault(r["mode"], {}).setdefault(r["kind"], []).append(r["schema"])
    print(f"\nschema corpus: {len(records)} requests in {seconds:.1f}s: " +
          "; ".join(f"{m}: " + ", ".join(f"{k} {len(v)}" for k, v in sorted(kinds.items()))
                    for m, kinds in summary.items()))
    report = os.environ.get("INFERD_SCHEMA_CORPUS_REPORT")
    if report:
        pathlib.Path(report).write_text(json.dumps({"seconds": seconds, "records": records}, indent=1))
    return {(r["schema"], r["mode"]): r for r in records}


def test_corpus_size_and_schemas_are_valid():
    assert len(CORPUS) >= 200
    for name, schema in CORPUS.items():
        assert re.fullmatch(r"\d{3}_[a-z0-9_]+", name), name
        jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator).check_schema(schema)


def test_format_checker_covers_xgrammar_formats():
    assert set(FORMAT_CHECKER.checkers) >= set(XGRAMMAR_FORMATS) - {"uri-template"}
    assert not FORMAT_CHECKER.conforms("2023-02-30", "date")
    assert not FORMAT_CHECKER.conforms("not a uri", "uri")
    assert FORMAT_CHECKER.conforms("https://example.com/a?b=c#d", "uri")
    assert FORMAT_CHECKER.conforms("P1DT2H", "duration") and not FORMAT_CHECKER.conforms("P", "duration")
    assert not FORMAT_CHECKER.conforms("-bad-.example", "hostname")


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_schema_output_validates(corpus_results, name, mode):
    rec = corpus_results[(name, mode)]
    if rec["kind"] != "pass":
        pytest.fail(describe(rec), pytrace=False)


def test_every_output_validates(corpus_results):
    """The share the issue measures (100%), printed for the record."""
    valid = [r for r in corpus_results.values() if r["kind"] == "pass"]
    print(f"\nschema corpus: {len(valid)} of {len(corpus_results)} outputs valid")
    assert len(valid) == len(corpus_results)


@pytest.mark.parametrize("string_schema", [{"type": "string", "maxLength": 10}, {"type": "string", "minLength": 2},
                                           {"type": "string"}, {"type": "string", "pattern": "^.{1,5}$"}])
def test_strings_never_hold_raw_control_characters(server, string_schema):
    """A JSON string cannot hold U+0000..U+001F unescaped. logit_bias pushes the tab and U+0001
    tokens; the grammar must still mask them inside the string (here without free whitespace, so
    a tab can only go into the string)."""
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    tok = client.post("/../tokenize", body={"model": "smollm2", "prompt": "\t\x01"}, cast_to=object)["tokens"]
    schema = {"type": "object", "properties": {"a": string_schema}, "required": ["a"], "additionalProperties": False}
    r = client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "Give a JSON object."}],
                                       max_tokens=40, temperature=0, logit_bias={str(t): 100 for t in tok},
                                       extra_body={"structured_outputs": {"json": schema, "disable_any_whitespace": True}})
    text = r.choices[0].message.content
    assert not re.search(r"[\x00-\x1f]", text), f"raw control character in {text[:80]!r} for {string_schema}"
    assert r.choices[0].finish_reason == "stop", text
    jsonschema.validate(json.loads(text), schema)
