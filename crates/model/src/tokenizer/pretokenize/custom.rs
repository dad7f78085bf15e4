//! Ports of llama.cpp's hand-written splitters (`unicode.cpp`,
//! `unicode_regex_split_custom_gpt2`, `_llama3`, `_qwen2`, `_qwen35`).
//!
//! llama.cpp runs these instead of `std::regex` when a pre-tokenizer's regex is one
//! of the well-known GPT-2 / Llama 3 / Qwen patterns. They mostly agree with the
//! textbook regex, but where they do not, they are what llama.cpp tokenizes with,
//! so they are followed step by step here (including the quirks noted inline).
//! Positions are byte offsets into the piece; "outside the piece" reads as
//! [`Flags::NONE`], like llama.cpp's `_get_flags` past `offset_end`.

use super::unicode::{Flags, char_at, decode, skip_flags, whitespace_run};

/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)` (GPT-2),
/// plus the trailing `\s+` that llama.cpp's port adds.
pub(super) fn gpt2<'a>(text: &'a str, emit: &mut impl FnMut(&'a str)) {
    let mut pos = 0;
    while let Some((c, after_c)) = decode(text, pos) {
        let end = gpt2_word_end(text, pos, c, after_c);
        emit(&text[pos..end]);
        pos = end;
    }
}

/// End of the GPT-2 word starting with `c` at `pos`.
fn gpt2_word_end(text: &str, pos: usize, c: char, after_c: usize) -> usize {
    // 's|'t|'re|'ve|'m|'ll|'d (case-sensitive)
    if c == '\''
        && let Some(end) = contraction_end(text, after_c, |c| c)
    {
        return end;
    }
    // ' ?' then \p{L}+, \p{N}+ or [^\s\p{L}\p{N}]+, judged on the char after the space.
    let (body, flags) = if c == ' ' {
        (after_c, Flags::of_opt(char_at(text, after_c)))
    } else {
        (pos, Flags::of(c))
    };
    if flags.is_letter() {
        return skip_flags(text, body, Flags::is_letter);
    }
    if flags.is_number() {
        return skip_flags(text, body, Flags::is_number);
    }
    let is_other = |f: Flags| !(f.is_whitespace() || f.is_letter() || f.is_number() || f.is_none());
    if is_other(flags) {
        return skip_flags(text, body, is_other);
    }
    whitespace_run(text, pos).map_or(after_c, |run| run.spaces_end(text.len()))
}

/// Shape of the Llama 3 family of splitters.
#[derive(Clone, Copy)]
pub(super) struct Llama3Style {
    /// Longest run of digits in one word: 3 for `\p{N}{1,3}` (Llama 3), 1 for `\p{N}` (Qwen2).
    pub(super) max_digits: usize,
    /// Whether words take marks: `[\p{L}\p{M}]+` (Qwen3.5) instead of `\p{L}+`.
    pub(super) marks_in_words: bool,
}

impl Llama3Style {
    /// `\p{L}`, or `[\p{L}\p{M}]` when words take marks.
    #[inline]
    fn is_word(self, f: Flags) -> bool {
        f.is_letter() || (self.marks_in_words && f.is_mark())
    }
}

/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
/// (Llama 3) and its Qwen2 / Qwen3.5 variants, per `style`.
pub(super) fn llama3<'a>(style: Llama3Style, text: &'a str, emit: &mut impl FnMut(&'a str)) {
    let mut pos = 0;
    while let Some((c, after_c)) = decode(text, pos) {
        let flags = Flags::of(c);
        if flags.is_number() {
            // \p{N}{1,max}: the whole run of digits, cut every `max_digits`
            let mut start = pos;
            let mut digits = 0;
            while let Some((d, next)) = decode(text, pos) {
                if !Flags::of(d).is_number() {
                    break;
                }
                pos = next;
                digits += 1;
                if digits == style.max_digits {
                    emit(&text[start..pos]);
                    start = pos;
                    digits = 0;
                }
            }
            if start < pos {
                emit(&text[start..pos]);
            }
            continue;
        }
        let end = llama3_word_end(style, text, pos, c, flags, after_c);
        emit(&text[pos..end]);
        pos = end;
    }
}

/// End of the Llama 3 word starting with `c` (not a number) at `pos`.
fn llama3_word_end(
    style: Llama3Style,
    text: &str,
    pos: usize,
    c: char,
    flags: Flags,
    after_c: usize,
) -> usize {
    // (?i:'s|'t|'re|'ve|'m|'ll|'d). llama.cpp lowercases with its own table; the only
    // codepoints it maps onto these ASCII letters are A-Z (checked by the generator).
    if c == '\''
        && let Some(end) = contraction_end(text, after_c, |c| c.to_ascii_lowercase())
    {
        return end;
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+ — the prefix may be any other char, whitespace included
    if !(c == '\r' || c == '\n')
        && (style.is_word(flags) || style.is_word(Flags::of_opt(char_at(text, after_c))))
    {
        return skip_flags(text, after_c, |f| style.is_word(f));
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'. llama.cpp tests "is a real codepoint" on `c` itself,
    // not on the char after the space; for a lone trailing space both paths agree.
    let is_other = |f: Flags| !(f.is_whitespace() || style.is_word(f) || f.is_number());
    let (body, next_flags) = if c == ' ' {
        (after_c, Flags::of_opt(char_at(text, after_c)))
    } else {
        (pos, flags)
    };
    if is_other(next_flags) {
        let end = skip_flags(text, body, |f| is_other(f) && !f.is_none());
        return end
            + text[end..]
                .bytes()
                .take_while(|&b| b == b'\r' || b == b'\n')
                .count();
    }
    whitespace_run(text, pos).map_or(after_c, |run| run.lines_then_spaces_end(text.len()))
}

/// End of a contraction whose apostrophe ends at `pos`, comparing the following
/// chars after `fold`: `s t m d` (one letter) or `re ve ll` (two).
pub(super) fn contraction_end(
    text: &str,
    pos: usize,
    fold: impl Fn(char) -> char,
) -> Option<usize> {
    let (first, after_first) = decode(text, pos)?;
    let first = fold(first);
    if matches!(first, 's' | 't' | 'm' | 'd') {
        return Some(after_first);
    }
    let (second, after_second) = decode(text, after_first)?;
    matches!((first, fold(second)), ('r', 'e') | ('v', 'e') | ('l', 'l')).then_some(after_second)
}
