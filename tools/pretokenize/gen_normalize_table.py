#!/usr/bin/env python3
"""Generate crates/model/src/tokenizer/normalize_table.rs from llama.cpp.

The WordPiece (BERT) tokenizer lower-cases and strips accents the way llama.cpp's
`unicode_tolower` and `unicode_cpts_normalize_nfd` do, from llama.cpp's own tables
(src/unicode-data.cpp): a one-to-one lowercase map, and "NFD" ranges that map each
precomposed codepoint to the first codepoint of its decomposition (so the accent
is dropped, not split off). Rust's `char::to_lowercase` and a real NFD differ from
these, so we read the tables rather than the standard library.

Usage: gen_normalize_table.py /path/to/llama.cpp/src/unicode-data.cpp > normalize_table.rs
"""
import re
import sys


def section(text, name):
    start = text.index(name)
    body_start = text.index("{", text.index("=", start)) + 1
    end = text.index("};", body_start)
    return text[body_start:end]


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    hexes = r"0x([0-9A-Fa-f]+)"
    lowercase = [
        (int(a, 16), int(b, 16))
        for a, b in re.findall(r"\{" + hexes + r", " + hexes + r"\}", section(text, "unicode_map_lowercase"))
    ]
    assert lowercase == sorted(lowercase) and len({a for a, _ in lowercase}) == len(lowercase)
    nfd = [
        (int(a, 16), int(b, 16), int(c, 16))
        for a, b, c in re.findall(
            r"\{" + hexes + r", " + hexes + r", " + hexes + r"\}", section(text, "unicode_ranges_nfd")
        )
    ]
    # Sorted, non-overlapping ranges: a binary search finds the one holding a codepoint.
    assert all(a <= b for a, b, _ in nfd)
    assert all(x[1] < y[0] for x, y in zip(nfd, nfd[1:]))

    out = sys.stdout
    out.write("//! Lower-casing and accent stripping for WordPiece, generated from llama.cpp's\n")
    out.write("//! `src/unicode-data.cpp` by `tools/pretokenize/gen_normalize_table.py`; do not edit.\n\n")
    out.write("/// llama.cpp's `unicode_map_lowercase`: `(codepoint, lowercase)`, ascending.\n")
    out.write("#[rustfmt::skip]\n")
    out.write(f"pub(super) static LOWERCASE: [(u32, u32); {len(lowercase)}] = [\n")
    for i in range(0, len(lowercase), 6):
        row = ", ".join(f"(0x{a:05X}, 0x{b:05X})" for a, b in lowercase[i:i + 6])
        out.write(f"    {row},\n")
    out.write("];\n\n")
    out.write("/// llama.cpp's `unicode_ranges_nfd`: `(first, last, replacement)`, ascending;\n")
    out.write("/// every codepoint in `first..=last` becomes `replacement`.\n")
    out.write("#[rustfmt::skip]\n")
    out.write(f"pub(super) static NFD_RANGES: [(u32, u32, u32); {len(nfd)}] = [\n")
    for i in range(0, len(nfd), 4):
        row = ", ".join(f"(0x{a:05X}, 0x{b:05X}, 0x{c:05X})" for a, b, c in nfd[i:i + 4])
        out.write(f"    {row},\n")
    out.write("];\n")


if __name__ == "__main__":
    main()
