//! Codepoint classification exactly as llama.cpp's `unicode.cpp` sees it.
//!
//! llama.cpp does not ask the C++ library what a codepoint is: it carries its own
//! tables (`src/unicode-data.cpp`), one general category per codepoint plus a short
//! whitespace list. Pre-tokenization must agree with it on every codepoint, so
//! [`unicode_table`](super::unicode_table) is generated from those tables.
//!
//! Two views matter:
//! - the hand-written splitters (`unicode_regex_split_custom_*`) test the flags
//!   directly: [`Flags::of`];
//! - the `std::regex` fallback sees a "collapsed" text in which every non-ASCII
//!   codepoint became one byte standing for its category, or 0x0B when it is
//!   whitespace. `\p{L}` there means "letter and not whitespace", and `\s` means
//!   exactly llama.cpp's whitespace set (its ASCII members are the C locale's
//!   `isspace`). [`Flags::regex`] gives that view.

use super::unicode_table::{CATEGORY_RANGES, WHITESPACE};

/// The category bits and whitespace bit of one codepoint, laid out as llama.cpp's
/// `unicode_cpt_flags` (`unicode.h`). `Flags::NONE` is what llama.cpp's splitters
/// get for a position outside the current piece (`unicode_cpt_flags{}`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Flags(u16);

impl Flags {
    /// Outside the piece: no bit set, unlike any real codepoint.
    pub(crate) const NONE: Flags = Flags(0);
    const NUMBER: u16 = 0x0002;
    const LETTER: u16 = 0x0004;
    const SEPARATOR: u16 = 0x0008;
    const MARK: u16 = 0x0010;
    const PUNCTUATION: u16 = 0x0020;
    const SYMBOL: u16 = 0x0040;
    const CONTROL: u16 = 0x0080;
    const WHITESPACE: u16 = 0x0100;

    /// llama.cpp's `unicode_cpt_flags_from_cpt` (category and whitespace bits only).
    #[inline]
    pub(crate) fn of(c: char) -> Flags {
        let cp = c as u32;
        if cp < 0x80 {
            return ASCII_FLAGS[cp as usize];
        }
        let category = match BMP_CATEGORIES.get(cp as usize) {
            Some(&category) => category,
            None => {
                CATEGORY_RANGES[CATEGORY_RANGES.partition_point(|&(start, _)| start <= cp) - 1].1
            }
        };
        let mut bits = u16::from(category);
        // Every whitespace codepoint is a separator (Z) or a control (Cc).
        if bits & (Flags::SEPARATOR | Flags::CONTROL) != 0 && WHITESPACE.binary_search(&cp).is_ok()
        {
            bits |= Flags::WHITESPACE;
        }
        Flags(bits)
    }

    /// [`Flags::of`], or [`Flags::NONE`] past the end of the piece.
    #[inline]
    pub(crate) fn of_opt(c: Option<char>) -> Flags {
        c.map_or(Flags::NONE, Flags::of)
    }

    /// The flags as the collapsed `std::regex` text shows them: whitespace hides the
    /// category (llama.cpp writes 0x0B for it), everything else keeps it.
    #[inline]
    pub(crate) fn regex(c: char) -> Flags {
        let flags = Flags::of(c);
        if flags.is_whitespace() {
            Flags(Flags::WHITESPACE)
        } else {
            flags
        }
    }

    /// True for [`Flags::NONE`] (outside the piece).
    #[inline]
    pub(crate) fn is_none(self) -> bool {
        self.0 == 0
    }

    /// `\p{N}`.
    #[inline]
    pub(crate) fn is_number(self) -> bool {
        self.0 & Flags::NUMBER != 0
    }

    /// `\p{L}`.
    #[inline]
    pub(crate) fn is_letter(self) -> bool {
        self.0 & Flags::LETTER != 0
    }

    /// `\p{M}`.
    #[inline]
    pub(crate) fn is_mark(self) -> bool {
        self.0 & Flags::MARK != 0
    }

    /// `\p{P}`.
    #[inline]
    pub(crate) fn is_punctuation(self) -> bool {
        self.0 & Flags::PUNCTUATION != 0
    }

    /// `\p{S}`.
    #[inline]
    pub(crate) fn is_symbol(self) -> bool {
        self.0 & Flags::SYMBOL != 0
    }

    /// `\p{C}`.
    #[inline]
    pub(crate) fn is_control(self) -> bool {
        self.0 & Flags::CONTROL != 0
    }

    /// `\s`: llama.cpp's `unicode_set_whitespace`.
    #[inline]
    pub(crate) fn is_whitespace(self) -> bool {
        self.0 & Flags::WHITESPACE != 0
    }
}

/// [`Flags::of`] for ASCII, computed at compile time from the same tables.
static ASCII_FLAGS: [Flags; 128] = ascii_flags();

/// The category byte of every codepoint of the Basic Multilingual Plane, expanded at
/// compile time from [`CATEGORY_RANGES`] (64 KiB; most text never leaves the BMP).
static BMP_CATEGORIES: [u8; 0x10000] = bmp_categories();

const fn bmp_categories() -> [u8; 0x10000] {
    let mut table = [0; 0x10000];
    let mut range = 0;
    while range < CATEGORY_RANGES.len() && CATEGORY_RANGES[range].0 < 0x10000 {
        let end = if range + 1 < CATEGORY_RANGES.len() && CATEGORY_RANGES[range + 1].0 < 0x10000 {
            CATEGORY_RANGES[range + 1].0
        } else {
            0x10000
        };
        let mut cp = CATEGORY_RANGES[range].0;
        while cp < end {
            table[cp as usize] = CATEGORY_RANGES[range].1;
            cp += 1;
        }
        range += 1;
    }
    table
}

const fn ascii_flags() -> [Flags; 128] {
    let mut table = [Flags::NONE; 128];
    let mut range = 0;
    while range < CATEGORY_RANGES.len() && CATEGORY_RANGES[range].0 < 0x80 {
        let end = if range + 1 < CATEGORY_RANGES.len() {
            CATEGORY_RANGES[range + 1].0
        } else {
            0x80
        };
        let mut cp = CATEGORY_RANGES[range].0;
        while cp < end && cp < 0x80 {
            table[cp as usize] = Flags(CATEGORY_RANGES[range].1 as u16);
            cp += 1;
        }
        range += 1;
    }
    let mut i = 0;
    while i < WHITESPACE.len() && WHITESPACE[i] < 0x80 {
        let cp = WHITESPACE[i] as usize;
        table[cp] = Flags(table[cp].0 | Flags::WHITESPACE);
        i += 1;
    }
    table
}

/// The char starting at byte `pos` of `text` (a char boundary), if any.
#[inline]
pub(crate) fn char_at(text: &str, pos: usize) -> Option<char> {
    text.get(pos..).and_then(|rest| rest.chars().next())
}

/// The char at `pos` and the byte offset just past it.
#[inline]
pub(crate) fn decode(text: &str, pos: usize) -> Option<(char, usize)> {
    char_at(text, pos).map(|c| (c, pos + c.len_utf8()))
}

/// Byte offset past the run of chars from `pos` whose [`Flags::of`] satisfy `keep`.
#[inline]
pub(crate) fn skip_flags(text: &str, mut pos: usize, keep: impl Fn(Flags) -> bool) -> usize {
    while let Some((c, next)) = decode(text, pos) {
        if !keep(Flags::of(c)) {
            break;
        }
        pos = next;
    }
    pos
}

/// Byte offset past the run of chars from `pos` that satisfy `keep`.
#[inline]
pub(crate) fn skip_chars(text: &str, mut pos: usize, keep: impl Fn(char) -> bool) -> usize {
    while let Some((c, next)) = decode(text, pos) {
        if !keep(c) {
            break;
        }
        pos = next;
    }
    pos
}

/// A run of whitespace, measured the way llama.cpp's splitters do.
pub(crate) struct WhitespaceRun {
    /// Number of whitespace chars.
    count: usize,
    /// Byte offset where the last whitespace char starts.
    last_start: usize,
    /// Byte offset past the run.
    end: usize,
    /// Byte offset past the last `\r` or `\n` of the run, if any.
    newline_end: Option<usize>,
}

/// The run of whitespace starting at `pos`, if `pos` starts whitespace.
pub(crate) fn whitespace_run(text: &str, pos: usize) -> Option<WhitespaceRun> {
    let mut run = WhitespaceRun {
        count: 0,
        last_start: pos,
        end: pos,
        newline_end: None,
    };
    while let Some((c, next)) = decode(text, run.end) {
        if !Flags::of(c).is_whitespace() {
            break;
        }
        if c == '\r' || c == '\n' {
            run.newline_end = Some(next);
        }
        run.count += 1;
        run.last_start = run.end;
        run.end = next;
    }
    (run.count > 0).then_some(run)
}

impl WhitespaceRun {
    /// End of the word for `\s+(?!\S)|\s+` in a piece of `piece_len` bytes: all of
    /// the run, except that a run of two or more followed by a non-space leaves its
    /// last char to start the next word.
    pub(crate) fn spaces_end(&self, piece_len: usize) -> usize {
        if self.count > 1 && self.end < piece_len {
            self.last_start
        } else {
            self.end
        }
    }

    /// End of the word for `\s*[\r\n]+|\s+(?!\S)|\s+`: up to and including the
    /// last `\r` or `\n` of the run if it has one, else as [`Self::spaces_end`].
    pub(crate) fn lines_then_spaces_end(&self, piece_len: usize) -> usize {
        self.newline_end
            .unwrap_or_else(|| self.spaces_end(piece_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// llama.cpp collapses ASCII for `std::regex` with hard-coded sets (`k_ucat_map` in
    /// `unicode_regex_split`) instead of its tables; the `regex` view is only right if
    /// the tables agree with those sets on all of ASCII.
    #[test]
    fn ascii_categories_match_llama_cpp_collapse_sets() {
        for b in 0u8..0x80 {
            let c = char::from(b);
            let f = Flags::regex(c);
            assert_eq!(f.is_number(), c.is_ascii_digit(), "{c:?}");
            assert_eq!(f.is_letter(), c.is_ascii_alphabetic(), "{c:?}");
            assert_eq!(
                f.is_punctuation(),
                "!\"#%&'()*,-./:;?@[\\]_{}".contains(c),
                "{c:?}"
            );
            assert_eq!(f.is_symbol(), "$+<=>^`|~".contains(c), "{c:?}");
            assert!(!f.is_mark());
            assert_eq!(f.is_whitespace(), " \t\n\x0B\x0C\r".contains(c), "{c:?}");
        }
    }

    #[test]
    fn classifies_known_codepoints() {
        assert!(Flags::of('é').is_letter());
        assert!(Flags::of('中').is_letter());
        assert!(Flags::of('٣').is_number());
        assert!(Flags::of('\u{0301}').is_mark());
        assert!(Flags::of('“').is_punctuation());
        assert!(Flags::of('€').is_symbol());
        assert!(Flags::of('\u{3000}').is_whitespace());
        assert!(Flags::of('\u{0085}').is_whitespace());
        assert!(!Flags::of('\u{200B}').is_whitespace());
        assert!(!Flags::of('\u{1C}').is_whitespace());
        assert!(!Flags::of('\u{10FFFF}').is_none());
        assert!(Flags::of_opt(None).is_none());
    }

    #[test]
    fn regex_view_hides_category_of_whitespace() {
        let nbsp = Flags::regex('\u{00A0}');
        assert_eq!(nbsp, Flags(Flags::WHITESPACE));
        assert_eq!(
            Flags::of('\u{00A0}').0,
            Flags::SEPARATOR | Flags::WHITESPACE
        );
    }

    /// Every codepoint against llama.cpp's own `unicode_cpt_flags_from_cpt`, as
    /// recorded by `tools/pretokenize/harness.cpp` (runs of equal flags).
    #[test]
    fn every_codepoint_classifies_as_in_llama_cpp() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/pretokenize/llama_cpp_splits.json"
        );
        let fixture: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("fixture"))
                .expect("fixture JSON");
        let runs: Vec<(u32, u16)> =
            serde_json::from_value(fixture["flag_runs"].clone()).expect("flag_runs");
        assert_eq!(runs.first().map(|r| r.0), Some(0));
        let mut checked = 0;
        for (i, &(start, flags)) in runs.iter().enumerate() {
            let end = runs.get(i + 1).map_or(0x11_0000, |r| r.0);
            for c in (start..end).filter_map(char::from_u32) {
                assert_eq!(Flags::of(c).0, flags, "U+{:04X}", c as u32);
                checked += 1;
            }
        }
        assert_eq!(checked, 0x11_0000 - 0x800);
    }
}
