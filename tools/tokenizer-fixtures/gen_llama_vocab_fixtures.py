#!/usr/bin/env python3
"""Generate crates/model/tests/fixtures/tokenizer/llama_vocabs.json: what llama.cpp
does with some of its own vocabularies beyond the `.inp`/`.out` cases that
tests/tokenizer_llama_vocabs.rs already checks (those are add_special = false,
parse_special = false only).

For each vocabulary in VOCABS (files of llama.cpp's models/ directory, as
tools/fetch-llama-vocabs.sh unpacks them) it records, with oracle.c linked against
libllama:
- `specials`: BOS, EOS, EOT, SEP, PAD and newline ids (-1 for none), the add_bos /
  add_eos / add_sep flags, and every end-of-generation id;
- `cases`: for every entry of corpus.json and of EXTRA, as gen_fixtures.py stores
  them: `raw` ids (add_special = false, parse_special = false), `special` ids
  (add_special = true, parse_special = true; as `special_prefix` when that is one
  id followed by `raw`), and the detokenizations `detok_raw` and `detok_special`
  (hex, only where they differ from the text).

The vocabularies themselves are not committed; the test reads them from
HEARTH_LLAMA_VOCAB_DIR.

Usage: gen_llama_vocab_fixtures.py --llama-cpp /path/to/llama.cpp [--vocabs DIR]
where /path/to/llama.cpp/build/bin holds libllama.so.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from gen_fixtures import run_oracle

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "crates/model/tests/fixtures/tokenizer"

# The vocabularies of tokenizer kinds that no locally trained fixture covers.
VOCABS = ["ggml-vocab-gemma-4.gguf", "ggml-vocab-bert-bge.gguf"]

# Entries that exercise these vocabularies' own special tokens.
EXTRA = [
    {"name": "gemma4_turns", "text": "<bos><|turn>user\nHi  there<turn|>\n<|turn>model\n<|channel>x<channel|>"},
    {"name": "gemma4_tool", "text": "<|tool_call>call:f{a:<|\"|>b<|\"|>}<tool_call|><|tool_response>"},
    {"name": "bert_specials", "text": "[CLS] Hello, World! [SEP] [MASK] [UNK] [PAD]"},
    {"name": "bert_accents", "text": "Ünïcödé ÇÀFÉ naïve résumé ﬁne Ⅻ ǅ"},
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-cpp", type=Path, required=True)
    ap.add_argument("--vocabs", type=Path, help="llama.cpp's models/ directory (default: fetch it)")
    args = ap.parse_args()
    llama = args.llama_cpp.resolve()
    bin_dir = llama / "build/bin"
    vocab_dir = args.vocabs or Path(
        subprocess.run([str(REPO / "tools/fetch-llama-vocabs.sh")], check=True, capture_output=True, text=True)
        .stdout.strip())

    entries = json.loads((FIXTURES / "corpus.json").read_text(encoding="utf-8")) + EXTRA
    texts = [e["text"] for e in entries]
    out = {"extra_corpus": EXTRA}
    with tempfile.TemporaryDirectory() as tmp:
        oracle = Path(tmp) / "oracle"
        subprocess.run(["cc", "-O1", "-o", str(oracle), str(Path(__file__).with_name("oracle.c")),
                        f"-I{llama / 'include'}", f"-I{llama / 'ggml/include'}", f"-L{bin_dir}", "-lllama",
                        f"-Wl,-rpath,{bin_dir}"], check=True)
        for file in VOCABS:
            path = vocab_dir / file
            lines = subprocess.run([str(oracle), str(path), "--specials"], check=True,
                                   capture_output=True, text=True).stdout.splitlines()
            v = [int(x) for x in lines[0].split()[1:]]
            specials = dict(zip(["bos", "eos", "eot", "sep", "pad", "nl"], v[:6]))
            specials.update(add_bos=bool(v[6]), add_eos=bool(v[7]), add_sep=bool(v[8]))
            specials["eog"] = [int(x) for x in lines[1].split()[1:]]
            cases = {}
            for entry, res in zip(entries, run_oracle(oracle, path, texts)):
                raw = res["raw"]
                case = {"raw": raw}
                special = res["special"]
                if special != raw:
                    if len(special) == len(raw) + 1 and special[1:] == raw:
                        case["special_prefix"] = special[:1]
                    else:
                        case["special"] = special
                text_hex = entry["text"].encode("utf-8").hex()
                for key in ("detok_raw", "detok_special"):
                    if res[key] != text_hex:
                        case[key] = res[key]
                cases[entry["name"]] = case
            out[file] = {"specials": specials, "cases": cases}
            print(f"{file}: {len(cases)} cases", file=sys.stderr)

    with open(FIXTURES / "llama_vocabs.json", "w", encoding="utf-8") as f:
        f.write("{\n")
        items = list(out.items())
        for i, (key, value) in enumerate(items):
            sep = "," if i + 1 < len(items) else ""
            if key == "extra_corpus":
                f.write(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}{sep}\n")
                continue
            f.write(f" {json.dumps(key)}: {{\n  \"specials\": {json.dumps(value['specials'])},\n  \"cases\": {{\n")
            cases = list(value["cases"].items())
            for j, (name, case) in enumerate(cases):
                csep = "," if j + 1 < len(cases) else ""
                f.write(f"   {json.dumps(name)}: {json.dumps(case, separators=(',', ':'))}{csep}\n")
            f.write(f"  }}\n }}{sep}\n")
        f.write("}\n")


if __name__ == "__main__":
    main()
