//! Pieces of the DeepSeek pre-tokenizers (`llama-vocab.cpp`,
//! `LLAMA_VOCAB_PRE_TYPE_DEEPSEEK_LLM` / `_CODER` / `DEEPSEEK3_LLM`).
//!
//! llama.cpp matches the literal classes with `std::wregex`, codepoint by codepoint,
//! after turning non-ASCII whitespace into 0x0B; so whitespace is never in a class
//! even where a range covers it (U+3000 in the punctuation class, U+2000.. in the
//! CJK one).

use super::stl::matches_and_gaps;
use super::unicode::{Flags, char_at, decode, skip_chars, whitespace_run};

/// `[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]`
/// as ascending, merged ranges.
#[rustfmt::skip]
static LLM_LETTERS: [(char, char); 84] = [
    ('\u{41}', '\u{5A}'), ('\u{61}', '\u{7A}'), ('\u{B5}', '\u{B5}'), ('\u{C0}', '\u{D6}'), ('\u{D8}', '\u{F6}'), ('\u{F8}', '\u{1BA}'),
    ('\u{1BC}', '\u{1BF}'), ('\u{1C4}', '\u{293}'), ('\u{295}', '\u{2AF}'), ('\u{370}', '\u{373}'), ('\u{376}', '\u{377}'), ('\u{37B}', '\u{37D}'),
    ('\u{37F}', '\u{37F}'), ('\u{386}', '\u{386}'), ('\u{388}', '\u{38A}'), ('\u{38C}', '\u{38C}'), ('\u{38E}', '\u{3A1}'), ('\u{3A3}', '\u{3F5}'),
    ('\u{3F7}', '\u{481}'), ('\u{48A}', '\u{52F}'), ('\u{531}', '\u{556}'), ('\u{10A0}', '\u{10C5}'), ('\u{13A0}', '\u{13F5}'), ('\u{13F8}', '\u{13FD}'),
    ('\u{1C90}', '\u{1CBA}'), ('\u{1CBD}', '\u{1CBF}'), ('\u{1D00}', '\u{1D2B}'), ('\u{1D6B}', '\u{1D77}'), ('\u{1D79}', '\u{1D9A}'), ('\u{1E00}', '\u{1F15}'),
    ('\u{1F18}', '\u{1F1D}'), ('\u{1F20}', '\u{1F45}'), ('\u{1F48}', '\u{1F4D}'), ('\u{1F50}', '\u{1F57}'), ('\u{1F59}', '\u{1F59}'), ('\u{1F5B}', '\u{1F5B}'),
    ('\u{1F5D}', '\u{1F5D}'), ('\u{1F5F}', '\u{1F7D}'), ('\u{1F80}', '\u{1FB4}'), ('\u{1FB6}', '\u{1FBC}'), ('\u{1FBE}', '\u{1FBE}'), ('\u{1FC2}', '\u{1FC4}'),
    ('\u{1FC6}', '\u{1FCC}'), ('\u{1FD0}', '\u{1FD3}'), ('\u{1FD6}', '\u{1FDB}'), ('\u{1FE0}', '\u{1FEC}'), ('\u{1FF2}', '\u{1FF4}'), ('\u{1FF6}', '\u{1FFC}'),
    ('\u{2102}', '\u{2102}'), ('\u{2107}', '\u{2107}'), ('\u{210A}', '\u{2113}'), ('\u{2115}', '\u{2115}'), ('\u{2119}', '\u{211D}'), ('\u{2124}', '\u{2124}'),
    ('\u{2126}', '\u{2126}'), ('\u{2128}', '\u{2128}'), ('\u{212A}', '\u{212D}'), ('\u{212F}', '\u{2134}'), ('\u{2139}', '\u{2139}'), ('\u{213C}', '\u{213F}'),
    ('\u{2145}', '\u{2149}'), ('\u{214E}', '\u{214E}'), ('\u{2183}', '\u{2184}'), ('\u{2C00}', '\u{2C7B}'), ('\u{2C7E}', '\u{2CE4}'), ('\u{2CEB}', '\u{2CEE}'),
    ('\u{2CF2}', '\u{2CF3}'), ('\u{A640}', '\u{A66D}'), ('\u{A680}', '\u{A69B}'), ('\u{A722}', '\u{A76F}'), ('\u{A771}', '\u{A787}'), ('\u{A78B}', '\u{A78E}'),
    ('\u{AB70}', '\u{ABBF}'), ('\u{FB00}', '\u{FB06}'), ('\u{FB13}', '\u{FB17}'), ('\u{FF21}', '\u{FF3A}'), ('\u{FF41}', '\u{FF5A}'), ('\u{10400}', '\u{1044F}'),
    ('\u{104B0}', '\u{104D3}'), ('\u{104D8}', '\u{104FB}'), ('\u{10C80}', '\u{10CB2}'), ('\u{10CC0}', '\u{10CF2}'), ('\u{118A0}', '\u{118DF}'), ('\u{1E900}', '\u{1E943}'),
];

/// DeepSeek LLM's letter class (see [`LLM_LETTERS`]).
pub(super) fn is_llm_letter(c: char) -> bool {
    let i = LLM_LETTERS.partition_point(|&(first, _)| first <= c);
    i > 0 && c <= LLM_LETTERS[i - 1].1
}

/// DeepSeek LLM's punctuation class `[!-/:-~！-／：-～‘-‟　-。]` (note `:-~` takes in
/// the ASCII letters, and U+3000 is whitespace, so never matches).
pub(super) fn is_llm_punctuation(c: char) -> bool {
    matches!(c, '!'..='/' | ':'..='~' | '！'..='／' | '：'..='～' | '‘'..='‟' | '\u{3001}'..='。')
}

/// `[一-龥ࠀ-一가-퟿]`, shared by both DeepSeek pre-tokenizers: U+0800..=U+9FA5 and
/// the Hangul block U+AC00..=U+D7FF, less whitespace.
pub(super) fn is_cjk(c: char) -> bool {
    matches!(c, '\u{0800}'..='\u{9FA5}' | '\u{AC00}'..='\u{D7FF}') && !Flags::of(c).is_whitespace()
}

/// `[一-龥぀-ゟ゠-ヿ]` (DeepSeek V3): CJK ideographs, hiragana and katakana.
pub(super) fn is_han_or_kana(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FA5}' | '\u{3040}'..='\u{30FF}')
}

/// DeepSeek V3's last regex, on the collapsed text:
/// ``[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+``.
/// Digits and other chars no alternative takes are left in the gaps.
pub(super) fn v3_words<'a>(text: &'a str, emit: &mut impl FnMut(&'a str)) {
    let is_word = |c: char| {
        let f = Flags::regex(c);
        f.is_letter() || f.is_mark()
    };
    let is_punctuation = |c: char| {
        let f = Flags::regex(c);
        f.is_punctuation() || f.is_symbol()
    };
    matches_and_gaps(
        text,
        |text, pos| {
            let (c, after_c) = decode(text, pos)?;
            let next = char_at(text, after_c);
            // [!-/:-@[-`{-~][A-Za-z]+
            if c.is_ascii_punctuation() && next.is_some_and(|n| n.is_ascii_alphabetic()) {
                return Some(skip_chars(text, after_c, |c| c.is_ascii_alphabetic()));
            }
            // [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+: with the prefix, else without
            // (a mark may be both the prefix and the start of the word)
            let flags = Flags::regex(c);
            let has_prefix = c != '\r' && c != '\n' && !(flags.is_letter() || is_punctuation(c));
            if has_prefix && next.is_some_and(is_word) {
                return Some(skip_chars(text, after_c, is_word));
            }
            if is_word(c) {
                return Some(skip_chars(text, pos, is_word));
            }
            // ' ?[\p{P}\p{S}]+[\r\n]*'
            let body = if c == ' ' && next.is_some_and(is_punctuation) {
                after_c
            } else {
                pos
            };
            let end = skip_chars(text, body, is_punctuation);
            if end > body {
                return Some(skip_chars(text, end, |c| c == '\r' || c == '\n'));
            }
            whitespace_run(text, pos).map(|run| run.lines_then_spaces_end(text.len()))
        },
        emit,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llm_letter_ranges_are_ascending_and_disjoint() {
        for pair in LLM_LETTERS.windows(2) {
            assert!(pair[0].0 <= pair[0].1 && pair[0].1 < pair[1].0, "{pair:?}");
        }
    }

    #[test]
    fn classes_hold_their_edges() {
        assert!(is_llm_letter('A') && is_llm_letter('µ') && is_llm_letter('\u{1E943}'));
        assert!(!is_llm_letter('×') && !is_llm_letter('0') && !is_llm_letter('\u{1E944}'));
        assert!(
            is_llm_punctuation('a') && is_llm_punctuation('。') && !is_llm_punctuation('\u{3000}')
        );
        assert!(
            is_cjk('中')
                && is_cjk('\u{0800}')
                && is_cjk('한')
                && !is_cjk('\u{3000}')
                && !is_cjk('\u{9FA6}')
        );
    }
}
