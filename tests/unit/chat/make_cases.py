#!/usr/bin/env python3
"""Generates jinja_cases.inc for chat_template_test.cc: each case's expected output is what
Python's jinja2 renders, in the environment transformers uses (see
tests/reference/test_chat_templates.py). Rerun after editing CASES:

    python3 tests/unit/chat/make_cases.py > tests/unit/chat/jinja_cases.inc
"""
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "reference"))
import test_chat_templates as ref  # noqa: E402

# (name, template, context). Context keys become template variables.
CASES = [
    # --- output, literals, operators
    ("Text", "hello", {}),
    ("Ints", "{{ 1 + 2 }} {{ 7 - 10 }} {{ 3 * 4 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }}", {}),
    ("Floats", "{{ 10 / 4 }} {{ 1.5 * 2 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1e-5 }} {{ 2 ** -1 }} {{ 3.0 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }}", {}),
    ("Strings", "{{ 'a' ~ 1 ~ none ~ true }}|{{ 'ab' * 3 }}|{{ \"x\" 'y' }}|{{ 'a\\nb\\t\\u00e9\\x41' }}", {}),
    ("NoneAndBools", "{{ none }} {{ None }} {{ true }} {{ False }} {{ x }}|", {}),
    ("ListRepr", "{{ [1, 'a', none, true, 1.5, {'k': \"it's\"}] }} {{ (1,) }} {{ (1, 2) }} {{ () }}", {}),
    ("DictRepr", "{{ {'a': 1, 'b': [2, 3]} }} {{ {} }} {{ {1: 'x', 2: 'y'} }}", {}),
    ("StrRepr", "{{ ['a\"b', \"c'd\", 'e\\\\f', 'g\\nh', 'ü'] }}", {}),
    ("Compare", "{{ 1 < 2 }} {{ 2 <= 1 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 1 != 2 }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 5 }} {{ [1, 2] < [1, 3] }}", {}),
    ("In", "{{ 'a' in 'cat' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }} {{ 'x' in y }}", {}),
    ("Logic", "{{ 1 and 2 }} {{ 0 and 2 }} {{ 0 or 'x' }} {{ not 0 }} {{ not [] }} {{ none or [] }}", {}),
    ("CondExpr", "{{ 'y' if 1 else 'n' }} {{ 'y' if 0 else 'n' }} [{{ 'y' if 0 }}] {{ 1 if 0 else 2 if 1 else 3 }}", {}),
    ("Precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ -2 ** 2 }} {{ 2 ~ (3 + 4) }} {{ 'a' ~ 'b' + 'c' }} {{ not 1 == 2 }} {{ -3|abs }}", {}),
    ("Slicing", "{{ 'abcdef'[1:4] }} {{ 'abcdef'[::-1] }} {{ [1,2,3,4][1:] }} {{ [1,2,3,4][:-1] }} {{ [1,2,3,4][::2] }} {{ 'héllo'[1] }} {{ [1,2,3][-1] }}", {}),
    ("Subscript", "{{ d.a }} {{ d['a'] }} {{ d.missing }}|{{ l[0] }} {{ l[5] }}|{{ d.items is defined }}", {"d": {"a": 1}, "l": [9]}),
    # --- whitespace control
    ("TrimBlocks", "{% if true %}\nyes\n{% endif %}\nend", {}),
    ("LstripBlocks", "  {% if true %}\n  x\n  {% endif %}\n", {}),
    ("Minus", "a  {{- 'b' -}}  c\n  {%- if true -%}  d  {%- endif %}", {}),
    ("Plus", "  {%+ if true %}x{% endif %}", {}),
    ("Comments", "a {# c #} b\n  {# line #}\nc{#- x -#}  d", {}),
    ("VarNoTrim", "{{ 'a' }}\nb", {}),
    ("CRLF", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\n", {}),
    ("TrailingNewline", "a\n\n", {}),
    ("Raw", "{% raw %}{{ x }} {% if %}{% endraw %}|  {% raw -%}  a  {%- endraw %}\n|{% raw %}\n  b\n  {% endraw %}\nc", {}),
    # --- statements
    ("IfElif", "{% for x in [1, 2, 3] %}{% if x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %},{% endfor %}", {}),
    ("ForLoop", "{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}", {}),
    ("ForPrevNext", "{% for x in [1, 2, 3] %}{{ loop.previtem }}-{{ loop.nextitem }}|{% endfor %}", {}),
    ("ForCycle", "{% for x in range(5) %}{{ loop.cycle('a', 'b') }}{% endfor %}", {}),
    ("ForElse", "{% for x in [] %}x{% else %}empty{% endfor %}|{% for x in none_list %}x{% else %}undef{% endfor %}", {}),
    ("ForFilter", "{% for x in range(10) if x is odd %}{{ x }}{{ loop.length }},{% endfor %}", {}),
    ("ForUnpack", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for a, b in [[1, 2], (3, 4)] %}{{ a + b }}{% endfor %}", {"d": {"x": 1, "y": 2}}),
    ("ForDict", "{% for k in d %}{{ k }}{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("BreakContinue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("LoopScope", "{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = x + i %}{{ x }},{% endfor %}{{ x }}", {}),
    ("IfNoScope", "{% if true %}{% set y = 5 %}{% endif %}{{ y }}", {}),
    ("NestedLoops", "{% for a in [1, 2] %}{% for b in 'xy' %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{{ loop.index }}|{% endfor %}", {}),
    ("SetTuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = 1, 2 %}{{ t }}", {}),
    ("BlockSet", "{% set x %}\n  hi {{ 1 }}\n{% endset %}[{{ x }}]{% set y | upper %}abc{% endset %}{{ y }}", {}),
    ("Namespace", "{% set ns = namespace(n=0, s='') %}{% for x in [1, 2, 3] %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}{{ ns.missing }}|", {}),
    ("Macro", "{% macro m(a, b=2, c='z') %}{{ a }}{{ b }}{{ c }}{% endmacro %}{{ m(1) }} {{ m(1, 3) }} {{ m(1, c='q') }} {{ m() }}", {}),
    ("MacroRecursion", "{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(4) }}", {}),
    ("MacroSeesGlobals", "{% set g = 'G' %}{% macro m() %}{{ g }}{{ messages|length }}{% endmacro %}{{ m() }}", {"messages": [1, 2]}),
    ("MacroDefaultUsesArg", "{% macro m(a, b=a * 2) %}{{ a }},{{ b }}{% endmacro %}{{ m(3) }}", {}),
    ("CallBlock", "{% macro w(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call w('b') %}inner{% endcall %}", {}),
    ("FilterBlock", "{% filter upper %}abc {{ 'd' }}{% endfilter %}|{% filter trim %}  x  {% endfilter %}|", {}),
    ("Generation", "{% generation %}gen{{ 1 }}{% endgeneration %}", {}),
    ("RangeForms", "{{ range(3)|list }} {{ range(1, 4)|list }} {{ range(10, 0, -3)|list }} {{ range(0)|list }}", {}),
    ("DictGlobal", "{{ dict(a=1, b='x') }} {{ dict(a=1)|tojson }}", {}),
    # --- tests
    ("TestsTypes", "{{ x is defined }} {{ y is defined }} {{ y is undefined }} {{ n is none }} {{ 's' is string }} {{ d is mapping }} {{ l is mapping }} {{ l is iterable }} {{ 's' is iterable }} {{ 3 is iterable }} {{ l is sequence }} {{ d is sequence }}", {"x": 1, "n": None, "d": {}, "l": []}),
    ("TestsNumbers", "{{ 1 is number }} {{ 1.5 is number }} {{ 1 is integer }} {{ 1.0 is integer }} {{ 1.0 is float }} {{ true is boolean }} {{ true is true }} {{ 0 is false }} {{ false is false }} {{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }}", {}),
    ("TestsCompare", "{{ 1 is equalto 1 }} {{ 1 is eq 2 }} {{ 1 is ne 2 }} {{ 'a' is in 'cat' }} {{ 'ab' is lower }} {{ 'AB' is upper }} {{ 2 is gt 1 }} {{ 1 is not none }} {{ x is not defined }}", {}),
    ("UndefinedBehaviour", "[{{ u }}] {{ u is defined }} {{ u|length }} {{ u|default('d') }} {{ u|string }}| {% for x in u %}x{% endfor %}{{ u == u }} {{ u ~ 'a' }} {{ u|list }} {{ u|items|list }}", {}),
    ("DefaultFilter", "{{ n|default('d') }} {{ ''|default('d') }} {{ ''|default('d', true) }} {{ 0|d(5, boolean=true) }} {{ u|d }}|", {"n": None}),
    # --- filters
    ("StringFilters", "{{ '  x y  '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ 'aBc'|upper }}{{ 'aBc'|lower }}|{{ 'hello wORLD-foo(bar'|title }}|{{ 'hELLO world'|capitalize }}|{{ 'a b  c'|wordcount }}", {}),
    ("LengthFilter", "{{ 'héllo'|length }} {{ [1, 2]|count }} {{ {'a': 1}|length }}", {}),
    ("FirstLast", "{{ [1, 2, 3]|first }} {{ [1, 2, 3]|last }} {{ 'abc'|first }} {{ []|first }}|", {}),
    ("Join", "{{ [1, 'a', none]|join(', ') }} {{ ['x', 'y']|join }} {{ users|join(', ', attribute='name') }}", {"users": [{"name": "a"}, {"name": "b"}]}),
    ("Replace", "{{ 'aaa'|replace('a', 'b') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ 'abc'|replace('', '-') }}", {}),
    ("ListFilter", "{{ 'abc'|list }} {{ {'a': 1, 'b': 2}|list }} {{ (1, 2)|list }}", {}),
    ("MapSelect", "{{ users|map(attribute='name')|list }} {{ users|selectattr('admin')|map(attribute='name')|join }} {{ users|rejectattr('admin')|list|length }} {{ [1, 2, 3, 4]|select('odd')|list }} {{ [1, 2, 3]|reject('equalto', 2)|list }} {{ ['a', 'b']|map('upper')|list }} {{ users|selectattr('name', 'equalto', 'b')|list }}", {"users": [{"name": "a", "admin": True}, {"name": "b", "admin": False}]}),
    ("GeneratorOnePass", "{% set g = [1, 2, 3]|map('string') %}{{ g|first }}{{ g|list }}{{ g|list }}|{% set h = [1, 2, 3]|select %}{{ 2 in h }}{{ h|list }}|{% for x in g %}{{ x }}{% else %}none{% endfor %}", {}),
    ("MapDefault", "{{ users|map(attribute='age', default=0)|list }}", {"users": [{"age": 3}, {}]}),
    ("ItemsDictsort", "{{ d|items|list }} {{ d|dictsort }} {{ d|dictsort(reverse=true) }} {{ d|dictsort(by='value') }} {{ {'B': 1, 'a': 2}|dictsort }} {{ {'B': 1, 'a': 2}|dictsort(true) }}", {"d": {"b": 2, "a": 3, "c": 1}}),
    ("Unique", "{{ [1, 2, 1, 3]|unique|list }} {{ ['a', 'A', 'b']|unique|list }} {{ ['a', 'A']|unique(case_sensitive=true)|list }}", {}),
    ("SortReverse", "{{ [3, 1, 2]|sort }} {{ [3, 1, 2]|sort(reverse=true) }} {{ ['b', 'A', 'c']|sort }} {{ users|sort(attribute='n')|map(attribute='n')|list }} {{ [1, 2]|reverse|list }} {{ 'abc'|reverse }}", {"users": [{"n": 2}, {"n": 1}]}),
    ("PercentFormat", "{{ '%s-%d' % ('a', 3) }} {{ '%05.1f|%-4s|' % (2.25, 'x') }} {{ 'v=%s' % [1] }} {{ '%(a)s' % {'a': 1} }} {{ 'abc' % [] }} {{ '100%%' % () }}", {}),
    ("FloatDivmod", "{{ 123456789012 // 0.1 }} {{ -0.0 % 1e16 }} {{ -7.5 // 2 }} {{ 7.5 % -2 }} {{ 1e16 }} {{ 1 / 3 }}", {}),
    ("FuzzFound", "{{ 0.1 is even }} {{ 2.5 is divisibleby(2) }} {{ 0|round(1) }} {{ u is callable }} {{ {'k': 1} is lower }} {{ (1, 2) in {'a': 1} }}", {}),
    ("ErrIndentNonString", "{{ 2|indent(2) }}", {}),
    ("ErrIntUndefined", "{{ u|int }}", {}),
    ("ErrUniqueUnhashable", "{{ [[1], [1]]|unique|list }}", {}),
    ("Numbers", "{{ '42'|int }} {{ '4.7'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ 3.9|int }} {{ '2.5'|float }} {{ 'x'|float }} {{ -3|abs }} {{ -2.5|abs }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 2.1|round(0, 'ceil') }} {{ 2.9|round(method='floor') }}", {}),
    ("MinMaxSum", "{{ [3, 1, 2]|max }} {{ [3, 1, 2]|min }} {{ [1, 2, 3]|sum }} {{ ['b', 'A']|max }}", {}),
    ("StringFilter", "{{ 1|string }} {{ none|string }} {{ [1]|string }} {{ true|string }}", {}),
    ("Indent", "{{ 'a\\nb\\n\\nc'|indent }}|{{ 'a\\nb'|indent(2, first=true) }}|{{ 'a\\n\\nb'|indent(2, blank=true) }}|{{ 'x\\ny'|indent('> ') }}", {}),
    ("ToJson", "{{ d|tojson }}\n{{ d|tojson(indent=2) }}\n{{ d|tojson(sort_keys=true) }}\n{{ 'é\"<'|tojson }} {{ 'é'|tojson(ensure_ascii=true) }} {{ [1, 2.5, none, true]|tojson }} {{ d|tojson(separators=(',', ':')) }}", {"d": {"b": [1, {"x": None}], "a": "ü", "c": {}, "e": []}}),
    ("SafeMarkup", "{{ 'a<'|safe + 'b<' }} {{ 'x' + '<y'|safe }} {{ ('<'|safe ~ '<') }} {{ '<&>'|e }}", {}),
    # --- methods
    ("StrMethods", "{{ '  x  '.strip() }}|{{ 'xxyxx'.strip('x') }}|{{ '  x'.lstrip() }}|{{ 'x  '.rstrip() }}|{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }}", {}),
    ("StrMethods2", "{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} {{ 'aBc'.upper() }} {{ 'aBc'.lower() }} {{ 'hello world'.title() }} {{ 'abc'.replace('b', 'X') }} {{ 'abcb'.find('b') }} {{ 'abc'.find('z') }} {{ 'abcb'.rfind('b') }} {{ 'abcb'.count('b') }}", {}),
    ("StrFormat", "{{ '{} and {}'.format(1, 'a') }} {{ '{0}{1}{0}'.format('x', 'y') }} {{ '{name}!'.format(name='n') }} {{ '{{}}'.format() }}", {}),
    ("StrMethods3", "{{ '-'.join(['a', 'b']) }} {{ 'a\\nb\\r\\nc'.splitlines() }} {{ '42'.isdigit() }} {{ 'ab'.isalpha() }} {{ ' '.isspace() }} {{ 'hello'.capitalize() }} {{ '5'.zfill(3) }} {{ 'x'.center(5) }}|", {}),
    ("DictMethods", "{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 0) }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.items()|list }}", {"d": {"a": 1, "b": 2}}),
    ("ListMethods", "{{ l.index(2) }} {{ l.count(1) }}", {"l": [1, 2, 1]}),
    # --- globals
    ("StrftimeNow", "{{ strftime_now('%Y-%m-%d %H:%M %B %d, %Y %b') }}", {}),
    ("BosEos", "{{ bos_token }}x{{ eos_token }}", {}),
    # --- errors
    ("ErrRaise", "{{ raise_exception('custom failure') }}", {}),
    ("ErrUndefinedAttr", "{{ u.x }}", {}),
    ("ErrUndefinedCall", "{{ u() }}", {}),
    ("ErrUndefinedAdd", "{{ u + 1 }}", {}),
    ("ErrNoneIter", "{% for x in n %}{% endfor %}", {"n": None}),
    ("ErrTypeAdd", "{{ 'a' + 1 }}", {}),
    ("ErrDivZero", "{{ 1 / 0 }}", {}),
    ("ErrUnknownFilter", "{{ 1|nosuchfilter }}", {}),
    ("ErrUnknownFilterInLoop", "{% if false %}{% for x in [] %}{{ x|nosuch }}{% endfor %}{% endif %}", {}),
    ("UnknownFilterInIfNotReached", "{% if false %}{{ x|nosuch }}{% endif %}{{ 1 if true else x|nosuch }}", {}),
    ("ErrUnknownFilterInIfReached", "{% if true %}{{ 1|nosuch }}{% endif %}", {}),
    ("ErrUnknownTest", "{{ 1 is nosuchtest }}", {}),
    ("ErrListAppend", "{% set l = [] %}{% set _ = l.append(1) %}", {}),
    ("ErrDictUpdate", "{% set d = {} %}{% set _ = d.update({'a': 1}) %}", {}),
    ("ErrNamespaceSet", "{% set x = 1 %}{% set x.y = 2 %}", {}),
    ("ErrGeneratorJson", "{{ [1]|map('string')|tojson }}", {}),
    ("ErrGeneratorLength", "{{ [1]|select|length }}", {}),
    ("ErrRangeTooBig", "{{ range(1000000)|length }}", {}),
    ("ErrMacroArgs", "{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", {}),
    ("NoneAttr", "{{ n.x }}|{{ n['x'] }}|", {"n": None}),
    ("ErrSyntaxUnclosed", "{% if x %}", {}),
    ("ErrSyntaxTag", "{% frobnicate %}", {}),
    ("ErrSyntaxExpr", "{{ 1 + }}", {}),
    ("ErrBreakOutsideLoop", "{% if true %}{% break %}{% endif %}", {}),
    ("ErrBreakInMacroInLoop", "{% for i in [1] %}{% macro m() %}{% continue %}{% endmacro %}{% endfor %}", {}),
    ("ErrSyntaxEndfor", "{% for x in y %}{% endif %}", {}),
]


def render(src, ctx):
    env = ref.ENV
    try:
        t = env.from_string(src)
    except Exception as e:  # noqa: BLE001
        return None, f"{type(e).__name__}: {e}"
    full = dict(bos_token="<s>", eos_token="</s>")
    full.update(ctx)
    try:
        return t.render(**full), None
    except Exception as e:  # noqa: BLE001
        return None, f"{type(e).__name__}: {e}"


def cpp_str(s):
    # A C++ string literal holding exactly the UTF-8 bytes of s.
    out = '"'
    for b in s.encode("utf-8"):
        c = chr(b)
        if c == '"':
            out += '\\"'
        elif c == "\\":
            out += "\\\\"
        elif c == "\n":
            out += "\\n"
        elif c == "\r":
            out += "\\r"
        elif c == "\t":
            out += "\\t"
        elif 0x20 <= b < 0x7F and c != "?":
            out += c
        else:
            out += '""\\x%02x""' % b
    return out + '"'


def main():
    print("// Generated by make_cases.py from jinja2 " + ref.jinja2.__version__ + "; do not edit.")
    print("// {name, template, context JSON, expected output, expect_error}")
    for name, src, ctx in CASES:
        text, err = render(src, ctx)
        if err is not None and not name.startswith("Err"):
            sys.exit(f"case {name}: jinja2 failed unexpectedly: {err}")
        if err is None and name.startswith("Err"):
            sys.exit(f"case {name}: jinja2 rendered {text!r}, expected an error")
        print(f"{{{cpp_str(name)}, {cpp_str(src)}, {cpp_str(json.dumps(ctx, ensure_ascii=False))}, "
              f"{cpp_str(text or '')}, {'true' if err else 'false'}}},  // {err or ''}".rstrip(" /"))


if __name__ == "__main__":
    main()
