#!/usr/bin/env python3
"""Generate the tokenizer conformance fixtures in crates/model/tests/fixtures/tokenizer.

1. Writes a mixed-script training text and trains two small vocabularies on it:
   a SentencePiece BPE model with byte fallback (sentencepiece) and a byte-level
   BPE (HF tokenizers).
2. Writes them as vocab-only GGUF files with the metadata llama.cpp's
   convert_hf_to_gguf.py writes (tokens, scores, token types, merges, special ids),
   one BPE file per `tokenizer.ggml.pre` name under test.
3. Tokenizes every corpus entry with llama.cpp as the oracle: `llama-tokenize`
   (BOS when the model asks, with and without `--no-parse-special`) and a small C
   program linked against libllama (oracle.c) for the other settings and for
   detokenization.
4. Writes corpus.json and expected.json next to the GGUF files. For each vocabulary
   and corpus entry, expected.json holds:
   - `raw`: add_special = false, parse_special = false;
   - `tokenize`: `llama-tokenize --no-parse-special` (BOS where the model adds it);
   - `tokenize_special`: plain `llama-tokenize`, which parses special tokens;
   - `special`: add_special = true, parse_special = true;
   - `detok_raw`: detokenize(raw, remove_special = false, unparse_special = false);
   - `detok_special`: detokenize(special, remove_special = true, unparse_special = true).
   Id lists are stored only where they differ from `raw` (as `<key>_prefix` where
   they are one id, such as BOS, followed by `raw`); detokenizations are stored
   hex-encoded, only where they differ from the input text.

Needs: pip install sentencepiece tokenizers numpy (gguf-py is taken from the
llama.cpp sources), and a llama.cpp build:
    tools/tokenizer-fixtures/gen_fixtures.py --llama-cpp /path/to/llama.cpp
where /path/to/llama.cpp/build/bin holds llama-tokenize and libllama.so.
"""

import argparse
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "crates/model/tests/fixtures/tokenizer"

# The pre-tokenizers the BPE vocabulary is written with (tokenizer.ggml.pre).
BPE_PRES = [
    "default", "llama-bpe", "llama3", "qwen2", "gpt-2", "deepseek-llm",
    "deepseek-coder", "starcoder", "smaug-bpe", "tekken", "command-r",
]

WORDS = (
    "the of and to in is you that it he was for on are as with his they I at be this have from "
    "or one had by word but not what all were we when your can said there use an each which she do "
    "how their if will up other about out many then them these so some her would make like him into "
    "time has look two more write go see number no way could people my than first water been call who "
    "oil its now find long down day did get come made may part model token vocabulary merge score "
    "byte fallback server request stream decode encode sentence piece llama runtime memory cache"
).split()

SNIPPETS = [
    "fn main() {\n    println!(\"Hello, world!\");\n}\n",
    "def f(x):\n\treturn x ** 2 + 3 * x - 1  # comment\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }\r\n",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;\n",
    "<div class=\"note\">Don't panic!</div>\n",
    "if (x != null && y === undefined) { throw new Error('bad'); }\n",
]

SCRIPTS = [
    "我想在苹果公司工作。今天天气很好，我们去公园散步吧。",
    "日本語のテキストも少し含めます。東京は大きな都市です。",
    "한국어 문장도 있습니다. 서울은 아름다운 도시입니다.",
    "Привет, мир! Это небольшой тест токенизатора.",
    "مرحبا بالعالم، هذا اختبار صغير.",
    "שלום עולם, זו בדיקה קטנה.",
    "Ελληνικά γράμματα και λέξεις.",
    "café naïve résumé façade jalapeño Zürich",
    "👋 🌍 🚀 👍🏽 👩‍💻 🦙 ✅ 😀😃😄",
]


SYLLABLES = "ka ri to mu sen dal or en an ti ver gor pla stu ni ce lo wa ex pre con ing tion al ly er".split()


def training_text(rng: random.Random) -> str:
    # Made-up words and random CJK / Cyrillic runs widen the vocabulary beyond WORDS.
    vocab = WORDS + ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(3000)]
    lines = []
    for _ in range(20000):
        kind = rng.random()
        if kind < 0.08:
            lo, hi = rng.choice([(0x4E00, 0x4FFF), (0x3041, 0x3096), (0x0430, 0x044F), (0xAC00, 0xAD00)])
            line = "".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(3, 20)))
        elif kind < 0.55:
            n = rng.randint(4, 18)
            words = [rng.choice(vocab) for _ in range(n)]
            if rng.random() < 0.3:
                words[0] = words[0].capitalize()
            if rng.random() < 0.2:
                words.insert(rng.randrange(len(words)), rng.choice(["I'm", "don't", "they'll", "it's", "we've", "you're", "HE'S"]))
            line = " ".join(words) + rng.choice([".", "!", "?", ",", ":", ""])
        elif kind < 0.7:
            line = rng.choice(SNIPPETS)
        elif kind < 0.85:
            line = rng.choice(SCRIPTS)
        else:
            line = " ".join(str(rng.randint(0, 10 ** rng.randint(1, 9))) for _ in range(rng.randint(1, 6)))
        lines.append(line)
    return "\n".join(lines) + "\n"


def corpus() -> list:
    """The conformance corpus: (name, text) pairs covering what the issue lists."""
    entries = [
        ("empty", ""),
        ("space", " "),
        ("two_spaces", "  "),
        ("tab", "\t"),
        ("newline", "\n"),
        ("crlf", "\r\n"),
        ("hello", "Hello world"),
        ("leading_space", " Hello world"),
        ("trailing_spaces", "Hello world   "),
        ("leading_trailing", "   Hello   world   "),
        ("whitespace_runs", "a  b   c    d     e\n\n\nf \n g\t\th \t \t i"),
        ("tabs", "\tindented\n\t\tmore\tand\tmore\t"),
        ("crlf_lines", "line one\r\nline two\r\n\r\nline four\r\n"),
        ("digits", "1 12 123 1234 12345 123456 1234567 12345678 123456789 1234567890 12345678901234567890"),
        ("digits_mixed", "3.14159 v1.2.3 0x1F 1e-9 10,000,000 $99.99 50% 2024-01-31T12:00:00Z"),
        ("contractions", "I'm sure you don't know they'll come; we've said it's theirs, you're right, he'd go."),
        ("contractions_upper", "HE'S HERE. I'M OK. DON'T! THEY'LL SEE. WE'VE WON. 'S 'T 'RE 'VE 'M 'LL 'D"),
        ("apostrophes", "''' '' ' rock 'n' roll ' quoted ' 'tis"),
        ("cjk", "我想在苹果公司工作。今天天气很好！日本語のテキスト。한국어 문장입니다."),
        ("cjk_mixed", "我想在apple工作1314151天～ 東京2024年"),
        ("emoji", "👋 hello 🌍🚀 ok 🦙🦙 ✅"),
        ("emoji_skin_tones", "👍🏻 👍🏼 👍🏽 👍🏾 👍🏿 🧑🏽‍🚀 👩🏿‍💻"),
        ("emoji_zwj", "👨‍👩‍👧‍👦 😶‍🌫️ 🏳️‍🌈"),
        ("combining", "e\u0301 a\u0300 n\u0303 o\u0308 Zu\u0308rich, A\u030a\u0327, Hindi नमस्ते, Thai สวัสดี"),
        ("precomposed", "é à ñ ö Zürich Åç"),
        ("rtl_arabic", "مرحبا بالعالم، كيف حالك؟ ١٢٣"),
        ("rtl_hebrew", "שלום עולם, מה שלומך?"),
        ("rtl_mixed", "English then עברית then العربية then 123."),
        ("cyrillic_greek", "Привет, мир! нещо на Български. Ελληνικά."),
        ("khmer", "កាន់តែពិសេសអាច😁"),
        ("code_rust", "fn main() {\n    let x: Vec<u32> = (0..10).map(|i| i * 2).collect();\n    println!(\"{x:?}\");\n}\n"),
        ("code_python", "def f(x):\n\tif x >= 0:\n\t\treturn x ** 2  # square\n\treturn -x\n"),
        ("code_c", "int main(void){for(int i=0;i<10;i++){printf(\"%d\\n\",i);}return 0;}"),
        ("punctuation", "Hello, world! How are you? Fine... thanks!!! (yes) [no] {maybe} <tag> a--b a---b"),
        ("symbols", "------======= \"\"\"\"......!!!!!!?????? ```````  ~~~ ### @@@ $$$ %%% ^^^ &&& *** +++"),
        ("control_chars", "a\x00b\x01c\x07d\x1b[0me\x7ff\x0bg\x0ch"),
        ("nbsp_and_friends", "non\u00a0breaking\u2009thin\u200bzero\u3000ideographic\ufeffbom"),
        ("chktxt", "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"),
        ("rare_chars", "ʬ ʭ ʮ ꙮ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈 ᚠᛇᚻ ⌘ ⌥ ∮ ∑ ∫"),
        ("special_chat", "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"),
        ("special_spaced", "  <|im_start|>  spaced  <|im_end|>  "),
        ("special_adjacent", "<|im_end|><|im_end|>x<|im_start|><|endoftext|>"),
        ("special_bos_eos", "<s>hello</s> <unk> [INST] do it [/INST]"),
        ("special_user_defined", "call <tool_call> now [INST]and[INST] again"),
        ("special_partial", "<|im_end| <|im_start <|endoftext"),
        ("long_word", "abcdefghijklmnopqrstuvwxyz" * 385),
        ("long_spaces", " " * 300 + "x" + "\n" * 50),
        ("mixed_paragraph", "The quick brown fox (日本) jumps over 13 lazy dogs 🐕🐕 — naïve café, ½ price!\r\n\tNext line: x = 42;\n"),
    ]
    assert len({n for n, _ in entries}) == len(entries)
    return [{"name": n, "text": t} for n, t in entries]


def train_spm(work: Path, text_path: Path):
    import sentencepiece as spm
    prefix = work / "spm"
    spm.SentencePieceTrainer.train(
        input=str(text_path), model_prefix=str(prefix), model_type="bpe", vocab_size=2000,
        byte_fallback=True, character_coverage=0.995, split_digits=True,
        allow_whitespace_only_pieces=True, remove_extra_whitespaces=False,
        normalization_rule_name="identity", add_dummy_prefix=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        control_symbols=["<|im_start|>", "<|im_end|>", "<|endoftext|>"], user_defined_symbols=["[INST]", "[/INST]"],
        num_threads=2, minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_file=str(prefix) + ".model")
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        piece, score = sp.id_to_piece(i), sp.get_score(i)
        if sp.is_unknown(i):
            ty = 2
        elif sp.is_control(i):
            ty = 3
        elif sp.is_unused(i):
            ty = 5
        elif sp.is_byte(i):
            ty = 6
        elif piece in ("[INST]", "[/INST]"):
            # convert_hf_to_gguf.py marks tokens from added_tokens.json user-defined.
            ty, score = 4, -1000.0
        else:
            ty = 1
        tokens.append(piece)
        scores.append(score)
        types.append(ty)
    return tokens, scores, types


def train_bpe(text_path: Path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders, AddedToken
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=3000, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train([str(text_path)], trainer)
    tok.add_tokens([AddedToken("<tool_call>", special=False, normalized=False)])
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    added = {a["content"]: a for a in data["added_tokens"]}
    for content, a in added.items():
        vocab[content] = a["id"]
    n = max(vocab.values()) + 1
    tokens = [None] * n
    for t, i in vocab.items():
        tokens[i] = t
    types = []
    for t in tokens:
        if t in added:
            types.append(3 if added[t]["special"] else 4)
        else:
            types.append(1)
    return tokens, types, merges, vocab["<|endoftext|>"]


def write_gguf(path: Path, name: str, model: str, pre: str, tokens, types, scores=None, merges=None,
               bos=None, eos=None, unk=None, add_bos=None, add_eos=None, add_space_prefix=None):
    import gguf
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(name)
    w.add_block_count(1)
    w.add_context_length(256)
    w.add_embedding_length(64)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(1)
    w.add_tokenizer_model(model)
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    if scores is not None:
        w.add_token_scores(scores)
    w.add_token_types(types)
    if merges is not None:
        w.add_token_merges(merges)
    if bos is not None:
        w.add_bos_token_id(bos)
    if eos is not None:
        w.add_eos_token_id(eos)
    if unk is not None:
        w.add_unk_token_id(unk)
    if add_bos is not None:
        w.add_add_bos_token(add_bos)
    if add_eos is not None:
        w.add_add_eos_token(add_eos)
    if add_space_prefix is not None:
        w.add_add_space_prefix(add_space_prefix)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def run_llama_tokenize(bin_dir: Path, model: Path, text: str, work: Path, parse_special: bool) -> list:
    f = work / "input.txt"
    f.write_bytes(text.encode("utf-8"))
    # llama-tokenize parses special tokens by default; --no-parse-special turns that off.
    flags = [] if parse_special else ["--no-parse-special"]
    out = subprocess.run(
        [str(bin_dir / "llama-tokenize"), "-m", str(model), "-f", str(f), "--ids", "--log-disable", "--no-escape",
         *flags],
        check=True, capture_output=True)
    line = out.stdout.decode().strip().splitlines()[-1]
    return json.loads(line)


def run_oracle(oracle: Path, model: Path, texts: list) -> list:
    framed = b"".join(struct.pack("<I", len(b)) + b for b in (t.encode("utf-8") for t in texts))
    out = subprocess.run([str(oracle), str(model)], input=framed, check=True, capture_output=True).stdout.decode()
    lines = out.splitlines()
    assert len(lines) == 4 * len(texts), (len(lines), len(texts))
    results = []
    for i in range(len(texts)):
        r, s, d, p = lines[4 * i: 4 * i + 4]
        assert r[0] == "R" and s[0] == "S" and d[0] == "D" and p[0] == "P"
        results.append({
            "raw": [int(x) for x in r[1:].split()],
            "special": [int(x) for x in s[1:].split()],
            "detok_raw": d[2:],
            "detok_special": p[2:],
        })
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-cpp", type=Path, default=Path("/tmp/ref/llama.cpp"))
    args = ap.parse_args()
    llama = args.llama_cpp.resolve()
    bin_dir = llama / "build/bin"
    sys.path.insert(0, str(llama / "gguf-py"))

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        text_path = work / "train.txt"
        text_path.write_text(training_text(random.Random(1234)), encoding="utf-8")

        oracle = work / "oracle"
        subprocess.run(["cc", "-O1", "-o", str(oracle), str(Path(__file__).with_name("oracle.c")),
                        f"-I{llama / 'include'}", f"-I{llama / 'ggml/include'}", f"-L{bin_dir}", "-lllama",
                        f"-Wl,-rpath,{bin_dir}"], check=True)

        vocabs = {}
        tokens, scores, types = train_spm(work, text_path)
        spm_common = dict(model="llama", pre="default", tokens=tokens, types=types, scores=scores,
                          bos=1, eos=2, unk=0, add_bos=True, add_eos=False)
        vocabs["spm.gguf"] = dict(name="spm-test", **spm_common)
        vocabs["spm-phi3.gguf"] = dict(name="Phi-3 tokenizer test", **spm_common)
        vocabs["spm-noprefix.gguf"] = dict(name="spm-test", add_space_prefix=False, **spm_common)

        tokens, types, merges, eot = train_bpe(text_path)
        for pre in BPE_PRES:
            vocabs[f"bpe-{pre}.gguf"] = dict(name="bpe-test", model="gpt2", pre=pre, tokens=tokens,
                                             types=types, merges=merges, bos=eot, eos=eot)

        entries = corpus()
        texts = [e["text"] for e in entries]
        expected = {}
        for file, spec in vocabs.items():
            path = OUT / file
            write_gguf(path, **spec)
            oracle_out = run_oracle(oracle, path, texts)
            cases = {}
            for entry, res in zip(entries, oracle_out):
                raw = res["raw"]
                case = {"raw": raw}
                tokenized = run_llama_tokenize(bin_dir, path, entry["text"], work, parse_special=False)
                tokenized_special = run_llama_tokenize(bin_dir, path, entry["text"], work, parse_special=True)
                for key, ids in (("tokenize", tokenized), ("tokenize_special", tokenized_special),
                                 ("special", res["special"])):
                    if ids == raw:
                        continue
                    if len(ids) == len(raw) + 1 and ids[1:] == raw:
                        case[key + "_prefix"] = ids[:1]  # e.g. BOS followed by raw
                    else:
                        case[key] = ids
                # Detokenizations are stored (hex) only where they differ from the input.
                text_hex = entry["text"].encode("utf-8").hex()
                for key in ("detok_raw", "detok_special"):
                    if res[key] != text_hex:
                        case[key] = res[key]
                cases[entry["name"]] = case
            expected[file] = cases
            print(f"{file}: {path.stat().st_size} bytes", file=sys.stderr)

    (OUT / "corpus.json").write_text(json.dumps(entries, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    with open(OUT / "expected.json", "w", encoding="utf-8") as f:
        f.write("{\n")
        for i, (file, cases) in enumerate(expected.items()):
            f.write(f" {json.dumps(file)}: {{\n")
            for j, (name, res) in enumerate(cases.items()):
                sep = "," if j + 1 < len(cases) else ""
                f.write(f"  {json.dumps(name)}: {json.dumps(res, separators=(',', ':'))}{sep}\n")
            f.write(" }" + ("," if i + 1 < len(expected) else "") + "\n")
        f.write("}\n")


if __name__ == "__main__":
    main()
