//! WordPiece, as BERT-style vocabularies use it (`tokenizer.ggml.model = bert`;
//! llama-vocab.cpp, `llm_tokenizer_wpm_session`).
//!
//! The text is normalized and cut into words: accents stripped and lower-cased
//! (BertNormalizer, both on unless the model says otherwise), split at whitespace,
//! with every punctuation mark, ASCII symbol and CJK ideograph a word of its own;
//! control characters vanish. Each word then gets a leading `▁` and is covered by
//! the longest tokens that match from the left. A word that cannot be covered
//! completely becomes the unknown token.
//!
//! GGUF stores BERT's vocabulary rewritten: a word-initial piece `hello` is
//! `▁hello` and a continuation `##ing` is plain `ing`, so the greedy match needs
//! no `##` handling here.
//!
//! Lower-casing and accent stripping use llama.cpp's tables
//! ([`normalize_table`](super::normalize_table)): its "NFD" maps a precomposed
//! character to the first character of its decomposition (`é` to `e`), dropping the
//! accent outright, which a real NFD followed by mark removal would also do for
//! most, but not all, text.

use super::normalize_table::{LOWERCASE, NFD_RANGES};
use super::pretokenize::Flags;
use super::{Tokenizer, spm};

/// BertNormalizer settings (`tokenizer.ggml.normalizer.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Normalizer {
    /// Lower-case every character.
    pub lowercase: bool,
    /// Replace precomposed characters by their base and drop combining marks.
    pub strip_accents: bool,
}

/// llama.cpp's `unicode_tolower`: its one-to-one map, identity elsewhere.
fn to_lower(c: char) -> char {
    match LOWERCASE.binary_search_by_key(&(c as u32), |&(upper, _)| upper) {
        Ok(i) => char::from_u32(LOWERCASE[i].1).unwrap_or(c),
        Err(_) => c,
    }
}

/// llama.cpp's `unicode_cpts_normalize_nfd` for one codepoint.
fn strip_accent(c: char) -> char {
    let cp = c as u32;
    let i = NFD_RANGES.partition_point(|&(first, _, _)| first <= cp);
    match i.checked_sub(1).map(|i| NFD_RANGES[i]) {
        Some((_, last, base)) if cp <= last => char::from_u32(base).unwrap_or(c),
        _ => c,
    }
}

/// CJK ideographs, each a word of its own (HF `tokenizers`' ranges, including its
/// 0x2B920 start where the Unicode block starts at 0x2B820).
fn is_chinese(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF
        | 0x3400..=0x4DBF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F
        | 0x2B920..=0x2CEAF
        | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}

/// Appends the normalized words of `text` to `words` as ranges of `buf`, each
/// starting with `▁`. `buf` and `words` are cleared first.
fn split_words(
    text: &str,
    normalizer: Normalizer,
    buf: &mut String,
    words: &mut Vec<std::ops::Range<usize>>,
) {
    buf.clear();
    words.clear();
    let mut start: Option<usize> = None;
    let finish = |buf: &String, start: &mut Option<usize>, words: &mut Vec<_>| {
        if let Some(s) = start.take() {
            words.push(s..buf.len());
        }
    };
    for c in text.chars() {
        let c = if normalizer.strip_accents {
            strip_accent(c)
        } else {
            c
        };
        let flags = Flags::of(c);
        if flags.is_whitespace() {
            finish(buf, &mut start, words);
            continue;
        }
        if c == '\0' || c == char::REPLACEMENT_CHARACTER || flags.is_control() {
            continue;
        }
        if normalizer.strip_accents && flags.is_mark() {
            continue;
        }
        let alone =
            flags.is_punctuation() || ((c as u32) < 0x7F && flags.is_symbol()) || is_chinese(c);
        let c = if normalizer.lowercase { to_lower(c) } else { c };
        if alone {
            finish(buf, &mut start, words);
        }
        if start.is_none() {
            start = Some(buf.len());
            buf.push(spm::SPACE);
        }
        buf.push(c);
        if alone {
            finish(buf, &mut start, words);
        }
    }
    finish(buf, &mut start, words);
}

/// Tokenizes one text fragment into `output`.
pub(crate) fn tokenize(
    tokenizer: &Tokenizer,
    normalizer: Normalizer,
    text: &str,
    output: &mut Vec<u32>,
) {
    let mut buf = String::with_capacity(text.len() + 16);
    let mut words = Vec::new();
    split_words(text, normalizer, &mut buf, &mut words);
    for range in words {
        let word = &buf[range];
        let before = output.len();
        let mut pos = 0;
        while pos < word.len() {
            // The longest token starting here (llama.cpp tries every length up to
            // the longest token, in bytes; only whole characters can match).
            let longest = (word.len() - pos).min(tokenizer.max_token_len);
            let found = (1..=longest).rev().find_map(|len| {
                let piece = word.get(pos..pos + len)?;
                tokenizer.ids.get(piece).map(|&id| (id, len))
            });
            match found {
                Some((id, len)) => {
                    output.push(id);
                    pos += len;
                }
                None => {
                    output.truncate(before);
                    break;
                }
            }
        }
        if output.len() == before {
            output.extend(tokenizer.special.unk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str, lowercase: bool, strip_accents: bool) -> Vec<String> {
        let (mut buf, mut ranges) = (String::new(), Vec::new());
        let normalizer = Normalizer {
            lowercase,
            strip_accents,
        };
        split_words(text, normalizer, &mut buf, &mut ranges);
        ranges.into_iter().map(|r| buf[r].to_owned()).collect()
    }

    #[test]
    fn punctuation_symbols_and_ideographs_stand_alone() {
        assert_eq!(
            words("Hello, y'all! 1+1 我想", true, true),
            [
                "▁hello", "▁,", "▁y", "▁'", "▁all", "▁!", "▁1", "▁+", "▁1", "▁我", "▁想"
            ]
        );
    }

    #[test]
    fn accents_are_stripped_and_case_kept_when_asked() {
        assert_eq!(words("Äpfel Cửa", true, true), ["▁apfel", "▁cua"]);
        assert_eq!(words("Äpfel", false, false), ["▁Äpfel"]);
        // Only accent stripping drops combining marks.
        assert_eq!(words("e\u{301}", true, false), ["▁e\u{301}"]);
        assert_eq!(words("e\u{301}", true, true), ["▁e"]);
    }

    #[test]
    fn whitespace_splits_and_controls_vanish() {
        assert_eq!(
            words(" \t a\u{0}b \n\n c\u{7f} ", true, true),
            ["▁ab", "▁c"]
        );
        assert!(words(" \n\t ", true, true).is_empty());
    }
}
