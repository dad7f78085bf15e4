//! Hand-written equivalents of the regexes llama.cpp runs through `std::regex`
//! (`unicode_regex_split_stl`), each with the semantics it has there.
//!
//! How llama.cpp applies such a regex to a piece: `std::regex_iterator` finds the
//! leftmost match (ECMAScript: alternatives in order, greedy quantifiers with
//! backtracking), and both the matches and the gaps between them become words.
//! `$` and lookaheads see the end of the piece as the end of the text.
//!
//! The regex does not see Unicode: with `\p{..}` in it, llama.cpp first collapses
//! every non-ASCII codepoint to one byte for its category (0x0B for whitespace), so
//! `\p{L}` is "a letter that is not whitespace" and `[^a-z]` matches every non-ASCII
//! letter ([`Flags::regex`]). Without `\p{..}`, it matches codepoints with
//! `std::wregex`, non-ASCII whitespace again replaced by 0x0B; in both cases `\s`
//! is exactly llama.cpp's whitespace set.

use super::unicode::{Flags, char_at, decode, skip_chars};

/// `[X]+`: maximal runs of chars in X; the runs of other chars between them are words too.
pub(super) fn runs<'a>(
    text: &'a str,
    in_class: impl Fn(char) -> bool,
    emit: &mut impl FnMut(&'a str),
) {
    let mut pos = 0;
    while let Some(c) = char_at(text, pos) {
        let inside = in_class(c);
        let end = skip_chars(text, pos, |c| in_class(c) == inside);
        emit(&text[pos..end]);
        pos = end;
    }
}

/// `[X]`: every char in X alone; the runs of other chars between them are words too.
pub(super) fn each<'a>(
    text: &'a str,
    in_class: impl Fn(char) -> bool,
    emit: &mut impl FnMut(&'a str),
) {
    let mut pos = 0;
    while let Some((c, after_c)) = decode(text, pos) {
        let end = if in_class(c) {
            after_c
        } else {
            skip_chars(text, pos, |c| !in_class(c))
        };
        emit(&text[pos..end]);
        pos = end;
    }
}

/// Splits `text` into the matches that `match_at` reports and the gaps between them.
/// `match_at(text, pos)` is the end of the regex's match starting at `pos`, if one
/// does; it must never report an empty match.
pub(super) fn matches_and_gaps<'a>(
    text: &'a str,
    match_at: impl Fn(&str, usize) -> Option<usize>,
    emit: &mut impl FnMut(&'a str),
) {
    let mut gap_start = 0;
    let mut pos = 0;
    while let Some((_, after)) = decode(text, pos) {
        match match_at(text, pos) {
            Some(end) => {
                if gap_start < pos {
                    emit(&text[gap_start..pos]);
                }
                emit(&text[pos..end]);
                pos = end;
                gap_start = end;
            }
            None => pos = after,
        }
    }
    if gap_start < text.len() {
        emit(&text[gap_start..]);
    }
}

/// `[0-9][0-9][0-9]`: three ASCII digits, leftmost first, so a run of digits
/// gives triples from its start and its last one or two digits join the gap.
pub(super) fn digit_triples<'a>(text: &'a str, emit: &mut impl FnMut(&'a str)) {
    matches_and_gaps(
        text,
        |text, pos| {
            let digits = text.as_bytes()[pos..]
                .iter()
                .take(3)
                .take_while(|b| b.is_ascii_digit())
                .count();
            (digits == 3).then_some(pos + 3)
        },
        emit,
    );
}

/// `\p{N}{1,3}`: runs of numbers cut every three chars from the left; the rest are gaps.
pub(super) fn number_triples<'a>(text: &'a str, emit: &mut impl FnMut(&'a str)) {
    matches_and_gaps(
        text,
        |text, pos| {
            let mut end = pos;
            for _ in 0..3 {
                match decode(text, end) {
                    Some((d, next)) if Flags::regex(d).is_number() => end = next,
                    _ => break,
                }
            }
            (end > pos).then_some(end)
        },
        emit,
    );
}

/// `\s?[X]+`: a run of X, with the whitespace char just before it if there is one.
pub(super) fn space_then_run<'a>(
    text: &'a str,
    in_class: impl Fn(char) -> bool,
    emit: &mut impl FnMut(&'a str),
) {
    matches_and_gaps(
        text,
        |text, pos| {
            let (c, after_c) = decode(text, pos)?;
            let body = if Flags::of(c).is_whitespace() {
                after_c
            } else {
                pos
            };
            let end = skip_chars(text, body, &in_class);
            (end > body).then_some(end)
        },
        emit,
    );
}

/// `\s+$`: the whitespace at the end of the piece becomes a word of its own.
pub(super) fn trailing_whitespace<'a>(text: &'a str, emit: &mut impl FnMut(&'a str)) {
    let body = text.trim_end_matches(|c| Flags::of(c).is_whitespace());
    if !body.is_empty() {
        emit(body);
    }
    if body.len() < text.len() {
        emit(&text[body.len()..]);
    }
}

/// ` ?[^(\s|.,!?…。，、।۔،)]+` (BLOOM, Poro, Viking, GPT-3 Finnish): runs of anything
/// but whitespace and these stops, with one space before the run if there is one.
/// The parentheses and `|` are part of the class (it is a bracket expression).
pub(super) fn bloom<'a>(text: &'a str, emit: &mut impl FnMut(&'a str)) {
    let in_class = |c: char| {
        !(Flags::of(c).is_whitespace()
            || matches!(
                c,
                '(' | '|'
                    | '.'
                    | ','
                    | '!'
                    | '?'
                    | '…'
                    | '。'
                    | '，'
                    | '、'
                    | '।'
                    | '۔'
                    | '،'
                    | ')'
            ))
    };
    matches_and_gaps(
        text,
        |text, pos| {
            let (c, after_c) = decode(text, pos)?;
            let body = if c == ' ' { after_c } else { pos };
            let end = skip_chars(text, body, in_class);
            (end > body).then_some(end)
        },
        emit,
    );
}
