"""Counts, for each JSON-schema feature, how many corpus schemas use it, and rewrites the table
in README.md between the COVERAGE markers: `python3 tests/e2e/schema_corpus/coverage.py [--write]`."""
import collections
import json
import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")


def walk(node, depth, out, refs):
    """Adds the features of one (sub)schema; depth counts nested object levels."""
    if isinstance(node, bool):
        return
    if not isinstance(node, dict):
        return
    t = node.get("type")
    types = t if isinstance(t, list) else [t] if t else []
    if isinstance(t, list):
        out.add("type array" + (" with null (nullable)" if "null" in t else ""))
    is_object = "object" in types or "properties" in node
    if is_object:
        depth += 1
        out.add("object")
        for level in (2, 3, 4):
            if depth >= level:
                out.add(f"nested objects, {level}+ levels")
        props = node.get("properties", {})
        req = set(node.get("required", []))
        if props == {} and not node.get("additionalProperties"):
            out.add("empty object schema (no properties)")
        if props and req and set(props) - req:
            out.add("required/optional mix")
        elif props and req >= set(props):
            out.add("all properties required")
        elif props and not req:
            out.add("all properties optional")
        ap = node.get("additionalProperties", "unset")
        out.add("additionalProperties: " + ("false" if ap is False else "true" if ap is True else
                                            "unset" if ap == "unset" else "schema"))
    if "null" in types and not isinstance(t, list):
        out.add("null type")
    if "boolean" in types:
        out.add("boolean")
    for k in ("enum", "const", "anyOf", "oneOf", "allOf", "pattern", "minItems", "maxItems", "minLength", "maxLength",
              "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "prefixItems", "propertyNames",
              "minProperties", "maxProperties", "default"):
        if k in node:
            out.add(k)
    if "enum" in node and None in node["enum"]:
        out.add("enum containing null")
    if "anyOf" in node and any(isinstance(s, dict) and s.get("type") == "null" for s in node["anyOf"]):
        out.add("anyOf with null (nullable, Pydantic style)")
    if "format" in node:
        out.add("format: " + node["format"])
    if "$ref" in node:
        ref = node["$ref"]
        out.add("$ref to #/$defs" if ref.startswith("#/$defs/") else "$ref to #/definitions" if ref.startswith(
            "#/definitions/") else "$ref (other)")
        refs.append(ref)
    if node.get("type") == "integer" and any(k in node for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
        out.add("integer with bounds")
    if node.get("type") == "number" and any(k in node for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
        out.add("number with bounds")
    if node.get("type") == "integer" and not any(k in node for k in ("maximum", "exclusiveMaximum", "enum", "const")):
        out.add("integer without an upper bound")
    if node.get("type") == "string" and not any(k in node for k in ("maxLength", "pattern", "format", "enum", "const")):
        out.add("string without maxLength/pattern/format")
    if node.get("type") == "array" and "maxItems" not in node and "prefixItems" not in node:
        out.add("array without maxItems")
    for k, v in node.items():
        if k in SCHEMA_MAPS and isinstance(v, dict):
            for sub in v.values():
                walk(sub, depth, out, refs)
        elif k in ("items", "additionalProperties", "not", "propertyNames", "contains"):
            if k == "items" and v is False:
                out.add("items: false (closed tuple)")
            walk(v, depth, out, refs)
        elif k in ("anyOf", "oneOf", "allOf", "prefixItems") and isinstance(v, list):
            for sub in v:
                walk(sub, depth, out, refs)


def recursive(schema):
    """True when some definition reaches itself through $refs."""
    defs = {**{f"#/$defs/{k}": v for k, v in schema.get("$defs", {}).items()},
            **{f"#/definitions/{k}": v for k, v in schema.get("definitions", {}).items()}}
    edges = {k: set(re.findall(r'"\$ref": "([^"]+)"', json.dumps(v))) for k, v in defs.items()}

    def reaches(start, target, seen):
        for n in edges.get(start, ()):
            if n == target or (n not in seen and reaches(n, target, seen | {n})):
                return True
        return False
    return any(reaches(k, k, {k}) for k in defs)


def features(schema):
    out, refs = set(), []
    walk(schema, 0, out, refs)
    if recursive(schema):
        out.add("recursive $ref")
    if schema == {}:
        out.add("empty schema {} (any JSON)")
    top = schema.get("type", "anyOf/oneOf/$ref/const" if schema else "any")
    out.add(f"top level: {top}")
    out.add("$schema: " + schema.get("$schema", "(none: 2020-12)"))
    if "$defs" in schema:
        out.add("$defs")
    if "definitions" in schema:
        out.add("definitions")
    return out


def table():
    corpus = {p.stem: json.loads(p.read_text()) for p in sorted(HERE.glob("*.json"))}
    counts = collections.Counter(f for s in corpus.values() for f in features(s))
    rows = [f"| {f} | {n} |" for f, n in sorted(counts.items(), key=lambda kv: kv[0].lower())]
    return len(corpus), "\n".join([f"{len(corpus)} schemas. Schemas using each feature (anywhere in the schema):", "",
                                   "| feature | schemas |", "|---|---|", *rows])


def main():
    n, text = table()
    if "--write" in sys.argv:
        readme = HERE / "README.md"
        body = readme.read_text()
        body = re.sub(r"(<!-- COVERAGE -->\n).*(<!-- /COVERAGE -->)", lambda m: m.group(1) + text + "\n" + m.group(2),
                      body, flags=re.S)
        readme.write_text(body)
    print(text)


if __name__ == "__main__":
    main()
