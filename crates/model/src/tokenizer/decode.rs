//! Token ids back to text: per-token pieces, whole-sequence detokenization and
//! streaming (llama-vocab.cpp, `token_to_piece` and `detokenize`).

use super::{TokenAttr, Tokenizer, TokenizerKind, bytes, spm};

/// Tokens whose text is rendered only when the caller asks for special tokens.
const HIDDEN_UNLESS_SPECIAL: TokenAttr =
    TokenAttr(TokenAttr::CONTROL.bits() | TokenAttr::UNKNOWN.bits());

impl Tokenizer {
    /// The bytes a token stands for, rendering control and unknown tokens too
    /// (llama.cpp `token_to_piece(.., special = true)`); computed once at load time.
    pub(crate) fn build_piece(&self, id: u32) -> Vec<u8> {
        let attr = self.attrs[id as usize];
        let text = self.texts[id as usize].as_str();
        if attr.intersects(HIDDEN_UNLESS_SPECIAL | TokenAttr::USER_DEFINED) {
            return text.as_bytes().to_vec();
        }
        if attr.intersects(TokenAttr::NORMAL) {
            return match self.kind {
                TokenizerKind::Bpe if !self.escape_whitespaces => decode_byte_level(text),
                TokenizerKind::Spm | TokenizerKind::Bpe | TokenizerKind::Wpm => {
                    text.replace(spm::SPACE, " ").into_bytes()
                }
            };
        }
        if attr.intersects(TokenAttr::BYTE) {
            // `<0xNN>`: llama.cpp reads the two hex digits after "<0x".
            return text
                .get(3..5)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .map(|byte| vec![byte])
                .unwrap_or_default();
        }
        // Unused and undefined tokens render as nothing.
        Vec::new()
    }

    /// The bytes of one token. With `special = false`, control and unknown tokens
    /// render as nothing. Pieces need not be valid UTF-8 on their own (byte tokens,
    /// partial characters); concatenate them, or use [`StreamDecoder`].
    pub fn token_to_piece(&self, id: u32, special: bool) -> &[u8] {
        if !special && self.token_attr(id).intersects(HIDDEN_UNLESS_SPECIAL) {
            return &[];
        }
        self.pieces.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// Converts ids back to bytes, like llama.cpp's `llama_detokenize`.
    ///
    /// `remove_special` drops a leading BOS and trailing EOS where the model adds
    /// them; `unparse_special` renders control tokens as their text. The space SPM
    /// tokenization put in front of the text is removed again.
    pub fn decode(&self, ids: &[u32], remove_special: bool, unparse_special: bool) -> Vec<u8> {
        let mut ids = ids;
        let mut remove_space = self.add_space_prefix;
        if remove_special
            && self.add_bos
            && let Some((&first, rest)) = ids.split_first()
            && Some(first) == self.special.bos
        {
            // llama.cpp keeps the next token's leading space in this case.
            remove_space = false;
            ids = rest;
        }
        if remove_special
            && self.add_eos
            && let Some((&last, rest)) = ids.split_last()
            && Some(last) == self.special.eos
        {
            ids = rest;
        }

        let mut text = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let mut piece = self.token_to_piece(id, unparse_special);
            if remove_space {
                piece = piece.strip_prefix(b" ").unwrap_or(piece);
                remove_space = false;
            }
            text.extend_from_slice(piece);
        }
        if self.clean_spaces {
            clean_up_spaces(&mut text);
        }
        text
    }

    /// [`decode`](Self::decode) as a string, replacing invalid UTF-8 with U+FFFD.
    pub fn decode_lossy(&self, ids: &[u32], remove_special: bool, unparse_special: bool) -> String {
        String::from_utf8_lossy(&self.decode(ids, remove_special, unparse_special)).into_owned()
    }
}

/// Reverses GPT-2's byte-to-character mapping. A character outside the mapping
/// becomes `[UNK_BYTE_0x..<text>]`, as in llama.cpp's `llama_decode_text`.
fn decode_byte_level(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match bytes::char_to_byte(c) {
            Some(byte) => out.push(byte),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                let mut buf = [0u8; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    out.extend_from_slice(format!("{byte:02x}").as_bytes());
                }
                out.extend_from_slice(text.as_bytes());
                out.push(b']');
            }
        }
    }
    out
}

/// `clean_up_tokenization_spaces`, in llama.cpp's three in-place passes: drop the
/// space before `? ! . ,`; turn ` ' ` into `'`; drop the space before `'s`, `'m`,
/// `'re` and `'ve`. The passes read bytes they may already have rewritten, so they
/// are kept index for index as in `llama_vocab::impl::detokenize`.
fn clean_up_spaces(text: &mut Vec<u8>) {
    let n1 = text.len();
    let mut total = usize::from(n1 > 0);
    for i in 1..n1 {
        let x = text[i];
        if text[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            total -= 1;
        }
        text[total] = x;
        total += 1;
    }

    let n2 = total;
    total = usize::from(n2 > 0);
    let mut i = 1;
    while i < n2 {
        let x = text[i];
        if x == b'\'' && i + 1 < n2 && text[i - 1] == b' ' && text[i + 1] == b' ' {
            total -= 1;
            i += 1;
            text[i] = 0;
        }
        text[total] = x;
        total += 1;
        i += 1;
    }

    let n3 = total;
    total = usize::from(n3 > 0);
    for i in 1..n3 {
        let x = text[i];
        if text[i - 1] == b' ' && x == b'\'' && i + 1 < n3 {
            let x1 = text[i + 1];
            let x2 = if i + 2 < n3 { Some(text[i + 2]) } else { None };
            if matches!(x1, b's' | b'm') || (matches!(x1, b'r' | b'v') && x2 == Some(b'e')) {
                total -= 1;
            }
        }
        text[total] = x;
        total += 1;
    }
    text.truncate(total);
}

/// Turns a stream of token ids into text, releasing only complete UTF-8.
///
/// Bytes of a character split across tokens (byte-fallback tokens, byte-level
/// BPE pieces) are held back until the character is complete. The SPM leading
/// space is dropped from the first piece, as [`Tokenizer::decode`] does. Bytes that
/// can never form valid UTF-8 come out as U+FFFD rather than stalling the stream.
#[derive(Debug)]
pub struct StreamDecoder<'t> {
    tokenizer: &'t Tokenizer,
    special: bool,
    first: bool,
    pending: Vec<u8>,
}

impl<'t> StreamDecoder<'t> {
    /// A decoder for a fresh sequence. With `special`, control tokens render as
    /// their text.
    pub fn new(tokenizer: &'t Tokenizer, special: bool) -> Self {
        Self {
            tokenizer,
            special,
            first: true,
            pending: Vec::new(),
        }
    }

    /// Adds one token and returns the text that is now complete (possibly empty).
    pub fn push(&mut self, id: u32) -> String {
        let mut piece = self.tokenizer.token_to_piece(id, self.special);
        if self.first {
            if self.tokenizer.add_space_prefix {
                piece = piece.strip_prefix(b" ").unwrap_or(piece);
            }
            self.first = false;
        }
        self.pending.extend_from_slice(piece);
        self.take_complete()
    }

    /// Ends the stream, returning whatever is still held back (incomplete UTF-8
    /// becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        self.first = true;
        rest
    }

    fn take_complete(&mut self) -> String {
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return out;
                }
                Err(err) => {
                    let valid = err.valid_up_to();
                    // The first `valid` bytes are valid UTF-8, so nothing is replaced.
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match err.error_len() {
                        // An incomplete character at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        // Bytes that cannot start or continue a character.
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }
}
