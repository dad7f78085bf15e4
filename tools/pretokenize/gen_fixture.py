#!/usr/bin/env python3
"""Generate crates/model/tests/fixtures/pretokenize/llama_cpp_splits.json.

The oracle is llama.cpp itself: this script reads the pre-tokenizer regex lists and
the `tokenizer.ggml.pre` name mapping out of llama.cpp's src/llama-vocab.cpp, builds
harness.cpp against llama.cpp's src/unicode.cpp, and records how
`unicode_regex_split` splits a generated corpus under every pre-tokenizer we cover.

Usage: gen_fixture.py /path/to/llama.cpp > llama_cpp_splits.json
Needs g++ (C++17). Deterministic for a given llama.cpp source tree.
"""
import json
import os
import random
import re
import subprocess
import sys
import tempfile

# llama.cpp pre-tokenizer types (LLAMA_VOCAB_PRE_TYPE_*) that hearth implements.
SUPPORTED = [
    "DEFAULT", "LLAMA3", "DBRX", "SMAUG", "CHATGLM4",
    "QWEN2", "STABLELM2", "HUNYUAN", "SOLAR_OPEN", "GROK_2", "QWEN35",
    "GPT2", "MPT", "OLMO", "JAIS", "TRILLION", "GRANITE_DOCLING",
    "STARCODER", "REFACT", "COMMAND_R", "SMOLLM", "CODESHELL", "EXAONE", "MINERVA", "MELLUM2",
    "DEEPSEEK_LLM", "DEEPSEEK_CODER", "FALCON",
    "DEEPSEEK3_LLM", "HUNYUAN_DENSE", "JOYAI_LLM", "HY_V4",
    "TEKKEN", "GPT4O", "MINIMAX_M2",
    "PORO", "BLOOM", "GPT3_FINNISH", "VIKING",
    "GEMMA4", "SARVAM_MOE", "LAGUNA", "WHITESPACE",
]

LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"')


def parse_regexes(src):
    """LLAMA_VOCAB_PRE_TYPE_* -> list of C++ string literals (still escaped)."""
    body = src[src.index("struct llm_tokenizer_bpe : llm_tokenizer"):]
    body = body[:body.index("std::vector<std::string> regex_exprs;")]
    regexes, pending, current = {}, [], None
    for line in body.splitlines():
        stripped = line.strip()
        if stripped.startswith("//"):
            continue
        m = re.match(r"case LLAMA_VOCAB_PRE_TYPE_(\w+):", stripped)
        if m:
            pending.append(m.group(1))
        elif stripped == "default:":
            pending.append("DEFAULT")
        elif stripped.startswith("regex_exprs = {"):
            current = []
        elif current is not None and stripped.startswith("};"):
            for name in pending:
                regexes[name] = current
            current = None
        elif current is not None and stripped.startswith('"'):
            current.append(LITERAL.match(stripped).group(1))
        elif stripped == "break;":
            pending = []
    return regexes


def parse_names(src):
    """tokenizer.ggml.pre value -> LLAMA_VOCAB_PRE_TYPE_* (the branch in llama_vocab::impl::load)."""
    body = src[src.index('} else if (tokenizer_pre == "default") {'):]
    body = body[:body.index("unknown pre-tokenizer type")]
    names, pending = {}, []
    for line in body.splitlines():
        pending += re.findall(r'tokenizer_pre == "([^"]+)"', line)
        m = re.search(r"pre_type = LLAMA_VOCAB_PRE_TYPE_(\w+);", line)
        if m:
            for name in pending:
                names[name] = m.group(1)
            pending = []
    return names


def corpus(rng):
    texts = [
        "Hello world", " Hello world", "Hello  world  ", "I'm don't they'll we've she'd it's you're",
        "I'M DON'T THEY'LL WE'VE SHE'D IT'S YOU'RE 'S 'LL 'Re 'rE", "''s 's' ' s 'x 'l 'll'll",
        "tab\there\t\tand\r\nwindows\r\n\r\nline", "\n\n\n", "\r\n", " \n \n ", "a \n\tb", "   leading", "trailing   ",
        "x" + " " * 20 + "y", " " * 7, "\t" * 3, "1", "12", "123", "1234", "12345", "123456", "1234567",
        "12345678901234567890", "3.14159 2,718 1e-10 0x1F -42", "٣٤٥ ১২৩ ௧௨ 一二三 ①②③ Ⅻ ½",
        "def f(x):\n    return x**2  # square\n", "fn main() { println!(\"{}\", 1 + 2); }",
        "for (int i = 0; i < n; ++i) { a[i] = b[i] * c; }", "<html><body class=\"x\">&amp;</body></html>",
        "https://example.com/path?q=1&r=two#frag", "user@example.org", "C:\\Windows\\System32",
        "你好，世界！这是一个测试。", "日本語のテキストとカタカナ、ひらがな。", "한국어 텍스트입니다.",
        "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Привет, мир! ЁЖИК", "Ελληνικά κείμενα",
        "👋🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇫🇷", "e\u0301 a\u0300\u0301 \u0301\u0302", "Zalgo t\u0337\u0336e\u0335x\u0334t",
        "HTMLParser iPhone McDonald ÉCOLE straße ǅemal ΣΊΣΥΦΟΣ", "camelCaseWord snake_case_word SCREAMING_CASE",
        "\u00a0nbsp\u00a0 \u3000ideographic\u3000 \u2028line\u2029para \u0085nel \u200bzwsp \u2009thin",
        "\x01\x02\x07\x1b[0m\x7f \x1c\x1d\x1e\x1f", "ａｂｃ　ＡＢＣ！＂＃１２３", "µÀÖØöøƺ ǅ Ａｚ",
        "...!!!???,,, ;;; ::: --- ___ ***", "$100 + 50% = <x> ^ ~y | `z`", "a/b/c//d\n/e", "x/\n/\r\n",
        "It’s “quoted” — dash – en … ellipsis", "¿Qué? ¡Sí! «guillemets»", "Ǆ ǅ ǆ ﬁ ﬂ ẞ",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟘𝟙𝟚 𐍈 𓀀 𠀀𠀁", "\ue000\uf8ff \U000f0000 \ufffd \ufeff", "한국어123abc中文!?",
    ]
    pool = [
        " ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\n\n", " \n", "\u00a0", "\u3000", "\u2009", "\u0085", "\u000b", "\u000c",
        "a", "word", "Word", "WORD", "HTTPServer", "iOS", "é", "É", "straße", "Ǆ", "ǅ", "ǆ",
        "'s", "'S", "'t", "'re", "'RE", "'ve", "'m", "'ll", "'Ll", "'d", "'", "''", "'x",
        "0", "7", "42", "123", "2024", "9876543", "٣", "½", "Ⅻ", "①",
        ".", ",", "!", "?", "...", "-", "_", "/", "//", "\\", "$", "+", "<", "=", ">", "^", "~", "|", "`", "@", "#", "%", "&", "*", "(", ")", "[", "]", "{", "}", "\"", ";", ":",
        "中", "文字", "日本", "カタカナ", "ひら", "한글", "ㄱ", "龥", "一", "ࠀ", "가", "퟿",
        "مرحبا", "שלום", "नमस्ते", "\u0301", "\u0300\u0301", "\u0e31", "😀", "👍🏽", "👨‍👩‍👧", "\u200d", "\ufe0f",
        "“", "”", "—", "…", "。", "，", "、", "！", "？", "（", "）", "«", "»", "¿", "€", "£", "©", "±",
        "ａ", "Ａ", "１", "µ", "ß", "\x02", "\x01", "\x1f", "\x7f", "\u00ad", "\ue000", "\U000e0001", "\U0010fffd",
    ]
    alphabet = list(" \t\n\r\u000baAzZéÉǅ1٣½'sSlLrReEvVdDmMtT./$_-!\u00a0\u3000\u2028\u0085\u0301中한😀🏽\u200d`")
    for _ in range(900):
        texts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 12))))
    for _ in range(900):
        texts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24))))
    for _ in range(30):
        texts.append("".join(rng.choice(pool) for _ in range(rng.randint(40, 80))))
    planes = [(0x0, 0x7F), (0x80, 0x7FF), (0x800, 0xFFFF), (0x10000, 0x10FFFF), (0x1F300, 0x1FAFF), (0x20000, 0x2FFFF)]
    for _ in range(500):
        chars = []
        for _ in range(rng.randint(1, 16)):
            lo, hi = rng.choice(planes)
            cp = rng.randint(lo, hi)
            while 0xD800 <= cp <= 0xDFFF or cp == 0:
                cp = rng.randint(lo, hi)
            chars.append(chr(cp))
        texts.append("".join(chars))
    return texts


def main():
    root = sys.argv[1]
    src = open(os.path.join(root, "src", "llama-vocab.cpp"), encoding="utf-8").read()
    regexes = parse_regexes(src)
    names = parse_names(src)
    names["default"] = "DEFAULT"
    supported = [p for p in SUPPORTED if p in regexes]

    # One family per distinct regex list; every supported pre type points at one.
    families, family_of = {}, {}
    for pre in supported:
        key = tuple(regexes[pre])
        families.setdefault(key, pre)
        family_of[pre] = families[key]

    texts = corpus(random.Random(20240607))
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "pre_types.inc"), "w", encoding="utf-8") as inc:
            for key, pre in families.items():
                inc.write("{ \"%s\", { %s } },\n" % (pre, ", ".join('"%s"' % r for r in key)))
        exe = os.path.join(tmp, "harness")
        here = os.path.dirname(os.path.abspath(__file__))
        subprocess.run(["g++", "-O2", "-std=c++17", "-I", tmp, "-I", os.path.join(root, "src"),
                        os.path.join(here, "harness.cpp"), os.path.join(root, "src", "unicode.cpp"),
                        os.path.join(root, "src", "unicode-data.cpp"), "-o", exe], check=True)
        corpus_bytes = b"\0".join(t.encode("utf-8") for t in texts)
        # libstdc++'s std::regex recurses per character; give it room.
        run = subprocess.run(["bash", "-c", "ulimit -s unlimited && " + exe], input=corpus_bytes,
                             capture_output=True, check=True)

    flag_runs, splits, current = [], {}, None
    for line in run.stdout.decode("ascii").split("\n")[:-1]:
        if line.startswith("F "):
            _, start, flags = line.split()
            flag_runs.append([int(start), int(flags)])
        elif line.startswith("P "):
            current = line[2:]
            splits[current] = []
        else:
            splits[current].append(line)

    fixture = {
        "source": "llama.cpp src/unicode.cpp unicode_regex_split(text, regex_exprs, byte_encode=false), "
                  "regex_exprs and names from src/llama-vocab.cpp; see tools/pretokenize/gen_fixture.py",
        "names": {n: family_of[p] for n, p in sorted(names.items()) if p in family_of},
        "unsupported_names": sorted(n for n, p in names.items() if p not in family_of),
        "flag_runs": flag_runs,
        "texts": texts,
        "splits": splits,
    }
    json.dump(fixture, sys.stdout, ensure_ascii=False, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
