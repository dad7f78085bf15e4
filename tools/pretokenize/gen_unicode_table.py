#!/usr/bin/env python3
"""Generate crates/model/src/tokenizer/pretokenize/unicode_table.rs from llama.cpp.

llama.cpp classifies codepoints with its own tables (src/unicode-data.cpp, made by
scripts/gen-unicode-data.py from some Unicode version). Our pre-tokenizers must agree
with it on every codepoint, so we read those tables rather than Rust's `char` methods.

Usage: gen_unicode_table.py /path/to/llama.cpp/src/unicode-data.cpp > unicode_table.rs
"""
import re
import sys

MAX_CODEPOINTS = 0x110000
# Contraction matching (`(?i:'s|'t|...)`) lowercases with unicode_tolower and then
# compares to ASCII letters; we use ASCII lowercasing instead, which is only sound
# if no codepoint other than A-Z lowercases to one of these letters.
CONTRACTION_LETTERS = set("stmdrevl")


def section(text, name):
    start = text.index(name)
    body_start = text.index("{", text.index("=", start)) + 1
    end = text.index("};", body_start)
    return text[body_start:end]


def main():
    text = open(sys.argv[1], encoding="utf-8").read()

    ranges = [
        (int(a, 16), int(b, 16))
        for a, b in re.findall(r"\{0x([0-9A-Fa-f]+), 0x([0-9A-Fa-f]+)\}", section(text, "unicode_ranges_flags"))
    ]
    assert ranges[0][0] == 0 and ranges[-1][0] == MAX_CODEPOINTS
    assert all(a[0] < b[0] for a, b in zip(ranges, ranges[1:]))
    ranges = ranges[:-1]
    # Every range carries exactly one category bit; llama.cpp's collapsing of
    # categories for std::regex relies on that, and so do we.
    assert all(bin(flags).count("1") == 1 and flags <= 0x80 for _, flags in ranges)
    merged = []
    for start, flags in ranges:
        if not merged or merged[-1][1] != flags:
            merged.append((start, flags))

    whitespace = [int(x, 16) for x in re.findall(r"0x([0-9A-Fa-f]+)", section(text, "unicode_set_whitespace"))]
    assert whitespace == sorted(whitespace)
    # Flags::of only looks a codepoint up in WHITESPACE when it is a separator or a control.
    for cp in whitespace:
        category = [flags for start, flags in merged if start <= cp][-1]
        assert category in (0x08, 0x80), hex(cp)

    lowercase = re.findall(r"\{0x([0-9A-Fa-f]+), 0x([0-9A-Fa-f]+)\}", section(text, "unicode_map_lowercase"))
    for upper, lower in lowercase:
        upper, lower = int(upper, 16), int(lower, 16)
        if lower < 0x80 and chr(lower) in CONTRACTION_LETTERS:
            assert ord("A") <= upper <= ord("Z"), hex(upper)

    out = sys.stdout
    out.write("//! Codepoint categories and whitespace, generated from llama.cpp's\n")
    out.write("//! `src/unicode-data.cpp` by `tools/pretokenize/gen_unicode_table.py`; do not edit.\n\n")
    out.write("/// `(first codepoint, category bit)`: each category holds up to the next entry's start\n")
    out.write("/// (the last one up to U+10FFFF). Bits as llama.cpp's `unicode_cpt_flags`.\n")
    out.write("#[rustfmt::skip]\n")
    out.write(f"pub(super) static CATEGORY_RANGES: [(u32, u8); {len(merged)}] = [\n")
    per_line = 6
    for i in range(0, len(merged), per_line):
        row = ", ".join(f"(0x{s:05X}, 0x{f:02X})" for s, f in merged[i:i + per_line])
        out.write(f"    {row},\n")
    out.write("];\n\n")
    out.write("/// llama.cpp's `unicode_set_whitespace`, ascending.\n")
    out.write("#[rustfmt::skip]\n")
    out.write(f"pub(super) static WHITESPACE: [u32; {len(whitespace)}] = [\n")
    for i in range(0, len(whitespace), 8):
        row = ", ".join(f"0x{c:04X}" for c in whitespace[i:i + 8])
        out.write(f"    {row},\n")
    out.write("];\n")


if __name__ == "__main__":
    main()
