//! GPT-2's reversible byte-to-character mapping used by byte-level BPE vocabularies.
//!
//! Every byte maps to one printable code point: the printable Latin-1 bytes
//! `!`..`~`, `¡`..`¬` and `®`..`ÿ` map to themselves and the remaining 68 bytes map
//! to U+0100, U+0101, ... in byte order (OpenAI's `bytes_to_unicode`, reproduced by
//! llama.cpp's unicode.cpp `unicode_byte_to_utf8_map`).

/// The code point each byte is written as inside a byte-level BPE vocabulary.
const BYTE_TO_CHAR: [u32; 256] = build_byte_to_char();

/// The highest code point used by the mapping (U+0143).
const MAX_MAPPED: usize = 0x143;

/// The inverse of [`BYTE_TO_CHAR`]: code point to byte, `u16::MAX` where unused.
const CHAR_TO_BYTE: [u16; MAX_MAPPED + 1] = build_char_to_byte();

const fn is_printable_latin1(b: u32) -> bool {
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)
}

const fn build_byte_to_char() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut next_extra = 0u32;
    let mut b = 0u32;
    while b < 256 {
        table[b as usize] = if is_printable_latin1(b) {
            b
        } else {
            next_extra += 1;
            255 + next_extra
        };
        b += 1;
    }
    table
}

const fn build_char_to_byte() -> [u16; MAX_MAPPED + 1] {
    let mut table = [u16::MAX; MAX_MAPPED + 1];
    let mut b = 0usize;
    while b < 256 {
        table[BYTE_TO_CHAR[b] as usize] = b as u16;
        b += 1;
    }
    table
}

/// The character that stands for `byte` in a byte-level BPE vocabulary.
pub(crate) fn byte_to_char(byte: u8) -> char {
    // Every table entry is below U+0144, a valid scalar value.
    char::from_u32(BYTE_TO_CHAR[byte as usize]).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// The byte a vocabulary character stands for, if it is one of the 256 mapped ones.
pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    match CHAR_TO_BYTE.get(c as usize) {
        Some(&b) if b != u16::MAX => Some(b as u8),
        _ => None,
    }
}

/// Appends the byte-level encoding of `raw` to `out`.
pub(crate) fn encode_into(raw: &[u8], out: &mut String) {
    out.extend(raw.iter().map(|&b| byte_to_char(b)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_matches_gpt2() {
        assert_eq!(byte_to_char(b'a'), 'a');
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(0), '\u{100}');
        assert_eq!(byte_to_char(0xad), '\u{143}');
    }

    #[test]
    fn mapping_round_trips_every_byte() {
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(byte_to_char(b)), Some(b));
        }
        assert_eq!(char_to_byte('€'), None);
        assert_eq!(char_to_byte('\u{144}'), None);
    }
}
