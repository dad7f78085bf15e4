//! Splitting special tokens out of text before it is tokenized
//! (llama-vocab.cpp, `tokenizer_st_partition`).
//!
//! Special tokens are tried longest first; each one is searched for in every text
//! fragment still left, splitting the fragment around every occurrence. Without
//! `parse_special`, control and unknown tokens are not searched for, so text such
//! as `<|im_end|>` in user content stays text; user-defined tokens always are.

use std::ops::Range;

use super::{TokenAttr, Tokenizer};

/// A piece of the input: text still to be tokenized, or a special token's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fragment {
    /// Byte range of the input text.
    Text(Range<usize>),
    /// A special token found in the text.
    Token(u32),
}

/// Whitespace as C's `isspace` sees it in the "C" locale, which llama.cpp uses
/// for the `lstrip` / `rstrip` token attributes.
fn is_c_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Splits `text` into text fragments and special tokens.
pub(crate) fn partition(tokenizer: &Tokenizer, text: &str, parse_special: bool) -> Vec<Fragment> {
    if text.is_empty() {
        return Vec::new();
    }
    let bytes = text.as_bytes();
    let mut fragments = vec![Fragment::Text(0..text.len())];
    let mut next = Vec::new();
    for &id in &tokenizer.special_by_length {
        let attr = tokenizer.attrs[id as usize];
        if !parse_special && attr.intersects(TokenAttr::CONTROL | TokenAttr::UNKNOWN) {
            continue;
        }
        let needle = tokenizer.texts[id as usize].as_str();
        // Cheap rejection: most special tokens never occur in the text.
        if !fragments
            .iter()
            .any(|f| matches!(f, Fragment::Text(r) if text[r.clone()].contains(needle)))
        {
            continue;
        }
        next.clear();
        for fragment in fragments.drain(..) {
            let Fragment::Text(range) = fragment else {
                next.push(fragment);
                continue;
            };
            let mut rest = range;
            while let Some(pos) = text[rest.clone()].find(needle) {
                let found = rest.start + pos;
                let mut left_end = found;
                if attr.intersects(TokenAttr::LSTRIP) {
                    while left_end > rest.start && is_c_space(bytes[left_end - 1]) {
                        left_end -= 1;
                    }
                }
                if left_end > rest.start {
                    next.push(Fragment::Text(rest.start..left_end));
                }
                next.push(Fragment::Token(id));
                let mut right_start = found + needle.len();
                if attr.intersects(TokenAttr::RSTRIP) {
                    while right_start < rest.end && is_c_space(bytes[right_start]) {
                        right_start += 1;
                    }
                }
                rest = right_start..rest.end;
            }
            if !rest.is_empty() {
                next.push(Fragment::Text(rest));
            }
        }
        std::mem::swap(&mut fragments, &mut next);
    }
    fragments
}
