"""Tokenization: inferd vs llama.cpp on a few hundred varied strings.

llama.cpp side: the binding's Llama.tokenize (llama_tokenize on a vocab-only model), itself
cross-checked against the llama-tokenize tool on a sample. Flags: add_special False,
parse_special False for all strings; add_special True on a subset; parse_special True on
the special-token-like strings.
"""

import json
import subprocess

import pytest

BASE = [
    # English, punctuation, contractions, casing
    "Hello world", "Hello, world!", "hello World HELLO wOrLd", "I'm, you're, he's, we'll, they'd",
    "Don't stop—believing.", "The quick brown fox jumps over the lazy dog.",
    "e.g. i.e. etc. vs. Mr. Dr. St.", "a", "A", "ab", " ", "  ", "\n", "\t", "",
    "CamelCaseIdentifierName", "snake_case_identifier_name", "SCREAMING_SNAKE_CASE",
    "“Smart quotes” and ‘single’ ones", "ellipsis… and en–dash and em—dash",
    # whitespace runs
    "a  b   c    d     e", "   leading spaces", "trailing spaces   ", "\n\n\nthree newlines",
    "tab\tseparated\tvalues", "mixed \t \n \r\n whitespace", "line1\nline2\r\nline3\rline4",
    " " * 17 + "x", "\n" * 9, "x" + "\t" * 5 + "y", "\u00a0non-breaking\u00a0space",
    "\u3000ideographic space", "zero\u200bwidth\u200bspace",
    # numbers
    "0", "7", "42", "123", "1234", "12345", "1234567890", "3.14159", "-273.15", "1e-10",
    "6.022e23", "1,000,000", "0x1F3A", "0b101101", "2024-01-15", "12:34:56", "+1 (555) 123-4567",
    "version 1.2.3-rc.4", "100%", "$19.99", "€50", "¥1000", "٣٤٥ Arabic-Indic digits",
    "१२३ Devanagari digits", "①②③ circled", "Ⅻ roman numeral",
    # code
    "def f(x):\n    return x ** 2\n", "int main() { return 0; }",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}", "if x != None and y >= 3:",
    "#include <stdio.h>", "const auto& [k, v] = *it;", "SELECT * FROM users WHERE id = 42;",
    "<div class=\"container\">\n  <p>Hi</p>\n</div>", '{"key": [1, 2.5, null, true], "s": "v"}',
    "x = lambda a, b: a if a > b else b", "fn main() -> Result<(), Box<dyn Error>> {}",
    "$ ls -la | grep '.py' > out.txt 2>&1", "https://example.com/path?q=1&r=two#frag",
    "user@example.org", "C:\\Windows\\System32\\drivers", "/usr/local/bin/python3",
    "// comment\n/* block */\n# hash", "a+=1;b-=2;c*=3;d/=4;e%=5", "===!==<=>=>>=<<=",
    "@decorator\nclass Foo(Bar):\n    pass", "`backticks` and ```fenced```",
    # Unicode scripts
    "Ελληνικά: Καλημέρα κόσμε", "Русский: Привет, мир!", "Українська мова",
    "日本語のテキストです。", "中文：你好，世界！", "한국어 문장입니다.", "עברית: שלום עולם",
    "العربية: مرحبا بالعالم", "हिन्दी: नमस्ते दुनिया", "ไทย: สวัสดีชาวโลก", "Tiếng Việt có dấu",
    "ქართული ენა", "Հայերեն", "தமிழ் மொழி", "বাংলা ভাষা", "ᚠᚢᚦᚨᚱᚲ runes", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math",
    "Ünïcödé àçcéñts: naïve café résumé", "Straße Fußgänger ß", "İstanbul ıi", "ǅ ǈ ǋ titlecase",
    "e\u0301 combining acute", "n\u0303 combining tilde", "Å vs A\u030a", "ﬁ ligature ﬂ",
    "ＦＵＬＬＷＩＤＴＨ ｌａｔｉｎ", "½ ¼ ¾ fractions", "©®™ symbols", "→ ← ↑ ↓ ⇒ ∀ ∃ ∑ ∫ √ ∞",
    # emoji
    "😀", "👍🏽", "👨‍👩‍👧‍👦 family", "🇫🇷🇯🇵 flags", "❤️ red heart", "emoji at end 🎉",
    "🚀🚀🚀", "text😀text", "1️⃣ keycap", "🏳️‍🌈",
    # special-token-like text (must stay plain text when parse_special is False)
    "<|im_start|>", "<|im_end|>", "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>", "<s>", "</s>", "<unk>", "<pad>", "[INST] hi [/INST]", "<|eot_id|>",
    "<|begin_of_text|>", "<<SYS>>", "<|im_start", "im_start|>", "< |im_start| >",
    "<|IM_START|>", "<|im_start|><|im_start|>", "text<|endoftext|>text", "<repo_name>",
    "<filename>", "<gh_stars>", "<jupyter_code>",
    # odd repetitions / long tokens
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "abababababababababab", "!!!!!!!!!!????????",
    "------------------------------------------", "==========", "__init__", "........",
    "Pneumonoultramicroscopicsilicovolcanoconiosis", "supercalifragilisticexpialidocious",
    "a" * 200, "lorem " * 30,
]

SPECIAL_LIKE = [s for s in BASE if "<" in s and ">" in s and "|" in s] + [
    "<|endoftext|>", "<|im_start|>system\nYou are helpful.<|im_end|>"]


def _corpus():
    out, seen = [], set()

    def add(s):
        if s not in seen:
            seen.add(s)
            out.append(s)

    for s in BASE:
        add(s)
    # Context variants: pre-tokenizer boundaries shift with a leading space or newline.
    for s in BASE:
        if s.strip():
            add(" " + s)
            add(s + "\n")
            add("\n" + s + " ")
    return out


CORPUS = _corpus()


def _ref_tokenize(llama_vocab, texts, add_special, parse_special):
    return [llama_vocab.tokenize(t.encode("utf-8"), add_bos=add_special, special=parse_special)
            for t in texts]


def _ours(run_inferd_json, model_path, tmp_path, texts, flags):
    f = tmp_path / "strings.jsonl"
    f.write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in texts),
                 encoding="utf-8")
    res = run_inferd_json(["tokenize", "--model", model_path, "--json", *flags, "--file", f],
                          all_lines=True)
    assert len(res) == len(texts), f"inferd gave {len(res)} lines for {len(texts)} strings"
    return [list(r["tokens"]) for r in res]


def _compare(name, texts, ours, ref, reference_report):
    bad = [(t, o, r) for t, o, r in zip(texts, ours, ref) if o != r]
    reference_report.record(name, strings=len(texts), identical=len(texts) - len(bad),
                            mismatched=len(bad))
    msg = "\n".join(f"  {t!r}:\n    inferd    {o}\n    llama.cpp {r}" for t, o, r in bad[:15])
    assert not bad, f"{len(bad)}/{len(texts)} strings tokenize differently:\n{msg}"


def test_corpus_size():
    assert len(CORPUS) >= 300, len(CORPUS)


def test_binding_matches_llama_tokenize_tool(llamacpp, llama_vocab, model_path):
    """The binding path we compare against is the same tokenizer as llama-tokenize."""
    sample = CORPUS[::12] + SPECIAL_LIKE[:3]
    for text in sample:
        for add_special, parse_special in ((False, False), (True, False), (False, True)):
            args = [llamacpp.tokenize, "-m", model_path, "--stdin", "--ids", "--log-disable",
                    "--no-escape"]
            if not add_special:
                args.append("--no-bos")
            if not parse_special:
                args.append("--no-parse-special")
            r = subprocess.run([str(a) for a in args], input=text.encode(),
                               capture_output=True, timeout=60)
            assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
            tool = json.loads(r.stdout.decode().strip().splitlines()[-1])
            binding = llama_vocab.tokenize(text.encode(), add_bos=add_special,
                                           special=parse_special)
            assert tool == binding, (text, add_special, parse_special, tool, binding)


def test_tokenize_plain(run_inferd_json, model_path, llama_vocab, tmp_path, reference_report):
    ours = _ours(run_inferd_json, model_path, tmp_path, CORPUS, [])
    ref = _ref_tokenize(llama_vocab, CORPUS, add_special=False, parse_special=False)
    _compare("tokenize_plain", CORPUS, ours, ref, reference_report)


def test_tokenize_add_special(run_inferd_json, model_path, llama_vocab, tmp_path,
                              reference_report):
    texts = CORPUS[::10]
    ours = _ours(run_inferd_json, model_path, tmp_path, texts, ["--add-special-tokens"])
    ref = _ref_tokenize(llama_vocab, texts, add_special=True, parse_special=False)
    _compare("tokenize_add_special", texts, ours, ref, reference_report)


def test_tokenize_parse_special(run_inferd_json, model_path, llama_vocab, tmp_path,
                                reference_report):
    texts = SPECIAL_LIKE
    ours = _ours(run_inferd_json, model_path, tmp_path, texts, ["--parse-special"])
    ref = _ref_tokenize(llama_vocab, texts, add_special=False, parse_special=True)
    _compare("tokenize_parse_special", texts, ours, ref, reference_report)


@pytest.mark.parametrize("text", ["Hello world", "<|im_start|>user\nHi<|im_end|>", "日本語 😀"])
def test_tokenize_single_string(text, run_inferd_json, model_path, llama_vocab):
    """The positional-TEXT form of the CLI (no --file)."""
    ours = run_inferd_json(["tokenize", "--model", model_path, "--json", text])["tokens"]
    assert ours == llama_vocab.tokenize(text.encode(), add_bos=False, special=False)
