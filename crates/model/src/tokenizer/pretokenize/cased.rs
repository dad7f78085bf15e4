//! The case-aware pre-tokenizers (Tekken, GPT-4o / Llama 4), as llama.cpp runs them
//! through `std::regex` (`llama-vocab.cpp`, `LLAMA_VOCAB_PRE_TYPE_TEKKEN` / `_GPT4O`).
//!
//! The original patterns split words at case changes with `\p{Lu}`, `\p{Ll}`, …;
//! `std::regex` has no such classes, so llama.cpp rewrites them with lookaheads:
//! "upper" is `(?=[\p{L}])([^a-z])` and "lower" is `(?=[\p{L}])([^A-Z])`. On the
//! collapsed text a non-ASCII letter is neither `a-z` nor `A-Z`, so it counts as
//! both upper and lower; only ASCII letters have a case here. Matching follows
//! ECMAScript's order: first alternative first, greedy quantifiers giving back one
//! char at a time.

use super::custom::contraction_end;
use super::unicode::{Flags, char_at, decode, skip_chars, whitespace_run};

/// The shape of one case-aware pattern:
/// `[^\r\n\p{L}\p{N}]?U*L+C|[^\r\n\p{L}\p{N}]?U+L*C|\p{N}{1,max}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
/// where U is upper, L lower and C an optional contraction.
#[derive(Clone, Copy)]
pub(super) struct CaseStyle {
    /// Words may end with `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?`.
    pub(super) contractions: bool,
    /// Longest run of digits in one word: 1 for `\p{N}`, 3 for `\p{N}{1,3}`.
    pub(super) max_digits: usize,
}

/// `[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
pub(super) const TEKKEN: CaseStyle = CaseStyle {
    contractions: false,
    max_digits: 1,
};

/// As [`TEKKEN`], with contractions after words and `\p{N}{1,3}`.
pub(super) const GPT4O: CaseStyle = CaseStyle {
    contractions: true,
    max_digits: 3,
};

/// Splits `text` with the pattern `style` describes. Every char starts a match of
/// one of the alternatives, so there are no gaps between words.
pub(super) fn split<'a>(style: CaseStyle, text: &'a str, emit: &mut impl FnMut(&'a str)) {
    let mut pos = 0;
    while let Some((c, after_c)) = decode(text, pos) {
        let end = word_end(style, text, pos, c, after_c);
        emit(&text[pos..end]);
        pos = end;
    }
}

fn word_end(style: CaseStyle, text: &str, pos: usize, c: char, after_c: usize) -> usize {
    let flags = Flags::regex(c);
    // [^\r\n\p{L}\p{N}]? before either case pattern: tried with the prefix, then without.
    let has_prefix = c != '\r' && c != '\n' && !flags.is_letter() && !flags.is_number();
    let starts = [has_prefix.then_some(after_c), Some(pos)];
    let cased = starts
        .iter()
        .flatten()
        .find_map(|&start| upper_then_lower(text, start))
        .or_else(|| {
            starts
                .iter()
                .flatten()
                .find_map(|&start| upper_run_then_lower(text, start))
        });
    if let Some(end) = cased {
        if style.contractions && char_at(text, end) == Some('\'') {
            return contraction_end(text, end + 1, |c| c.to_ascii_lowercase()).unwrap_or(end);
        }
        return end;
    }
    if flags.is_number() {
        // \p{N}{1,max}
        let mut end = pos;
        for _ in 0..style.max_digits {
            match decode(text, end) {
                Some((d, next)) if Flags::regex(d).is_number() => end = next,
                _ => break,
            }
        }
        return end;
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n/]*'
    let is_other = |c: char| {
        let f = Flags::regex(c);
        !(f.is_whitespace() || f.is_letter() || f.is_number())
    };
    let body = if c == ' ' && char_at(text, after_c).is_some_and(is_other) {
        after_c
    } else {
        pos
    };
    let end = skip_chars(text, body, is_other);
    if end > body {
        return skip_chars(text, end, |c| matches!(c, '\r' | '\n' | '/'));
    }
    whitespace_run(text, pos).map_or(after_c, |run| run.lines_then_spaces_end(text.len()))
}

/// "Upper" in the collapsed text: a letter outside `a-z`.
fn is_upper(c: char) -> bool {
    Flags::regex(c).is_letter() && !c.is_ascii_lowercase()
}

/// "Lower" in the collapsed text: a letter outside `A-Z`.
fn is_lower(c: char) -> bool {
    Flags::regex(c).is_letter() && !c.is_ascii_uppercase()
}

/// `U*L+` from `pos`: the greedy `U*` gives back chars until `L+` can start, which
/// is either right after the uppers or at the last of them that is also lower.
fn upper_then_lower(text: &str, pos: usize) -> Option<usize> {
    let mut end = pos;
    let mut last_lower_end = None;
    while let Some((c, next)) = decode(text, end) {
        if !is_upper(c) {
            break;
        }
        if is_lower(c) {
            last_lower_end = Some(next);
        }
        end = next;
    }
    if char_at(text, end).is_some_and(is_lower) {
        return Some(skip_chars(text, end, is_lower));
    }
    last_lower_end
}

/// `U+L*` from `pos`.
fn upper_run_then_lower(text: &str, pos: usize) -> Option<usize> {
    let end = skip_chars(text, pos, is_upper);
    (end > pos).then(|| skip_chars(text, end, is_lower))
}
