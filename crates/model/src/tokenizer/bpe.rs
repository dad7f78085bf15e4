//! BPE: the adjacent pieces of each pre-tokenized word are merged lowest merge rank
//! first (llama-vocab.cpp, `llm_tokenizer_bpe_session`). Byte-level vocabularies
//! (GPT-2 style) start from the word written in GPT-2's byte alphabet, one piece
//! per byte; SentencePiece-style ones (Gemma 4, llama.cpp's `byte_encode = false`)
//! start from the raw UTF-8 characters and fall back to `<0xNN>` byte tokens for a
//! final piece that is not a token.
//!
//! llama.cpp keys its merge table by the two piece strings. Here every string that
//! takes part in a merge is interned once at load time, so the hot loop looks up
//! `(left, right)` integer pairs and never builds strings.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use super::bytes;
use super::error::TokenizerError;
use super::pretokenize::PreTokenizer;
use super::{Tokenizer, spm};

/// Marks a piece that is not interned (it can take part in no merge).
const NO_PIECE: u32 = u32::MAX;

/// Merge tables built from `tokenizer.ggml.merges`.
pub(crate) struct BpeTables {
    /// `(left piece, right piece)` to `(rank, merged piece)`.
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// The token id of each interned piece, if the piece is a token.
    piece_token: Vec<Option<u32>>,
    /// Byte-level: the interned piece of each raw byte's one-character encoding.
    byte_piece: [u32; 256],
    /// Raw UTF-8 (`None` for byte-level vocabularies): the pieces of single
    /// characters and the `<0xNN>` fallback tokens.
    raw: Option<RawChars>,
}

/// Lookup tables for BPE on raw UTF-8 characters.
struct RawChars {
    /// The interned piece of each character of the Basic Multilingual Plane
    /// (`NO_PIECE` where it is none).
    bmp_piece: Vec<u32>,
    /// The interned pieces of characters beyond the BMP.
    other_piece: HashMap<char, u32>,
    /// The `<0xNN>` token of each byte, if the vocabulary has one.
    byte_token: [Option<u32>; 256],
    /// The characters other than `▁` that some piece has right before a `▁`.
    joins_space: HashSet<char>,
}

/// Splits a raw word before every `▁` run whose preceding character is not in
/// `joins_space`.
///
/// No merge can join the two sides of such a split: its result would be a piece
/// with that character right before a `▁`, and no piece has one. Candidate merges
/// on the two sides never overlap, so merging each chunk on its own performs the
/// same merges (lowest rank, then leftmost, within each chunk) as llama.cpp does
/// over the whole word. (Gemma 4's 514,906 merges have one such piece, `>▁</`.)
fn space_chunks<'a>(
    word: &'a str,
    joins_space: &'a HashSet<char>,
) -> impl Iterator<Item = &'a str> {
    let mut rest = word;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut prev = spm::SPACE;
        let split = rest
            .char_indices()
            .find(|&(_, c)| {
                let boundary =
                    c == spm::SPACE && prev != spm::SPACE && !joins_space.contains(&prev);
                prev = c;
                boundary
            })
            .map_or(rest.len(), |(i, _)| i);
        let (chunk, tail) = rest.split_at(split);
        rest = tail;
        Some(chunk)
    })
}

impl RawChars {
    fn piece(&self, c: char) -> u32 {
        match self.bmp_piece.get(c as usize) {
            Some(&piece) => piece,
            None => self.other_piece.get(&c).copied().unwrap_or(NO_PIECE),
        }
    }
}

impl BpeTables {
    /// Interns the vocabulary and the merges. The first occurrence of a repeated
    /// merge keeps its rank, as in llama.cpp. `byte_encode` selects byte-level BPE
    /// over BPE on raw UTF-8.
    pub(crate) fn build(
        ids: &HashMap<String, u32>,
        merges: &[String],
        byte_encode: bool,
    ) -> Result<Self, TokenizerError> {
        let mut piece_of: HashMap<String, u32> = HashMap::with_capacity(ids.len() + merges.len());
        let mut piece_token: Vec<Option<u32>> = Vec::with_capacity(ids.len() + merges.len());
        for (text, &id) in ids {
            piece_of.insert(text.clone(), piece_token.len() as u32);
            piece_token.push(Some(id));
        }

        let mut merge_table = HashMap::with_capacity(merges.len());
        for (rank, merge) in merges.iter().enumerate() {
            // llama.cpp splits at the first space after the first byte.
            let split = merge
                .as_bytes()
                .iter()
                .skip(1)
                .position(|&b| b == b' ')
                .map(|pos| pos + 1)
                .ok_or_else(|| TokenizerError::MalformedMerge {
                    index: rank,
                    merge: merge.clone(),
                })?;
            let (left, right) = (&merge[..split], &merge[split + 1..]);
            let side = |piece: &str| {
                piece_of
                    .get(piece)
                    .copied()
                    .ok_or_else(|| TokenizerError::MergeNotInVocab {
                        index: rank,
                        merge: merge.clone(),
                        piece: piece.to_owned(),
                    })
            };
            let (left_piece, right_piece) = (side(left)?, side(right)?);
            let merged = format!("{left}{right}");
            let merged_piece = match piece_of.get(&merged) {
                Some(&piece) => piece,
                None => {
                    let piece = piece_token.len() as u32;
                    piece_of.insert(merged, piece);
                    piece_token.push(None);
                    piece
                }
            };
            merge_table
                .entry((left_piece, right_piece))
                .or_insert((rank as u32, merged_piece));
        }

        let mut byte_piece = [NO_PIECE; 256];
        let mut buf = [0u8; 4];
        for (byte, slot) in byte_piece.iter_mut().enumerate() {
            let encoded = bytes::byte_to_char(byte as u8).encode_utf8(&mut buf);
            *slot = piece_of.get(&*encoded).copied().unwrap_or(NO_PIECE);
        }

        let raw = (!byte_encode).then(|| {
            let mut bmp_piece = vec![NO_PIECE; 0x10000];
            let mut other_piece = HashMap::new();
            for (text, &piece) in &piece_of {
                let mut chars = text.chars();
                if let (Some(c), None) = (chars.next(), chars.next()) {
                    match bmp_piece.get_mut(c as usize) {
                        Some(slot) => *slot = piece,
                        None => {
                            other_piece.insert(c, piece);
                        }
                    }
                }
            }
            let byte_token =
                std::array::from_fn(|byte| ids.get(&format!("<0x{byte:02X}>")).copied());
            let mut joins_space = HashSet::new();
            for text in piece_of.keys() {
                let mut prev = spm::SPACE;
                for c in text.chars() {
                    if c == spm::SPACE && prev != spm::SPACE {
                        joins_space.insert(prev);
                    }
                    prev = c;
                }
            }
            RawChars {
                bmp_piece,
                other_piece,
                byte_token,
                joins_space,
            }
        });

        Ok(Self {
            merges: merge_table,
            piece_token,
            byte_piece,
            raw,
        })
    }
}

/// One piece of a word: raw bytes `word[start..start + len]`.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    /// Byte length in the raw word; 0 once merged into its left neighbour.
    len: usize,
    piece: u32,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate merge, ordered lowest rank first, then leftmost
/// (llama.cpp `llm_bigram_bpe::comparator`).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Bigram {
    rank: u32,
    left: usize,
    right: usize,
    left_piece: u32,
    right_piece: u32,
    merged: u32,
}

/// Buffers reused across the words of one `encode` call.
pub(crate) struct Session<'t> {
    tokenizer: &'t Tokenizer,
    tables: &'t BpeTables,
    symbols: Vec<Symbol>,
    queue: BinaryHeap<Reverse<Bigram>>,
    encoded: String,
}

impl<'t> Session<'t> {
    pub(crate) fn new(tokenizer: &'t Tokenizer, tables: &'t BpeTables) -> Self {
        Self {
            tokenizer,
            tables,
            symbols: Vec::new(),
            queue: BinaryHeap::new(),
            encoded: String::new(),
        }
    }

    /// Tokenizes one pre-tokenized word (raw text, not yet byte-encoded).
    pub(crate) fn tokenize_word(&mut self, word: &str, output: &mut Vec<u32>) {
        let raw = word.as_bytes();
        if raw.is_empty() {
            return;
        }
        if self.tokenizer.ignore_merges || self.whole_newlines(word) {
            let text = match self.tables.raw {
                Some(_) => word,
                None => {
                    self.encoded.clear();
                    bytes::encode_into(raw, &mut self.encoded);
                    &self.encoded
                }
            };
            if let Some(&id) = self.tokenizer.ids.get(text) {
                output.push(id);
                return;
            }
        }

        match self.tables.raw.as_ref().map(|chars| &chars.joins_space) {
            None => self.merge(word, output),
            Some(joins_space) => {
                // Merged on its own, each chunk gives the tokens it gives inside
                // the word (see `space_chunks`), with a much smaller work queue.
                for chunk in space_chunks(word, joins_space) {
                    self.merge(chunk, output);
                }
            }
        }
    }

    /// Merges the pieces of `word` (a whole byte-level word, or a chunk of a raw
    /// one) and emits its tokens.
    fn merge(&mut self, word: &str, output: &mut Vec<u32>) {
        let raw = word.as_bytes();
        // The initial symbols: each raw byte is one character of the byte-level
        // word, or each character of the raw word.
        self.symbols.clear();
        self.queue.clear();
        match &self.tables.raw {
            None => {
                for (i, &byte) in raw.iter().enumerate() {
                    self.symbols.push(Symbol {
                        start: i,
                        len: 1,
                        piece: self.tables.byte_piece[byte as usize],
                        prev: i.checked_sub(1),
                        next: (i + 1 < raw.len()).then_some(i + 1),
                    });
                }
            }
            Some(chars) => {
                for (index, (start, c)) in word.char_indices().enumerate() {
                    let len = c.len_utf8();
                    self.symbols.push(Symbol {
                        start,
                        len,
                        piece: chars.piece(c),
                        prev: index.checked_sub(1),
                        next: (start + len < raw.len()).then_some(index + 1),
                    });
                }
            }
        }
        for right in 1..self.symbols.len() {
            self.try_add_bigram(right - 1, right);
        }

        while let Some(Reverse(bigram)) = self.queue.pop() {
            let left = self.symbols[bigram.left];
            let right = self.symbols[bigram.right];
            // Skip candidates whose pieces changed since they were queued.
            if left.len == 0
                || right.len == 0
                || left.piece != bigram.left_piece
                || right.piece != bigram.right_piece
            {
                continue;
            }
            let merged = &mut self.symbols[bigram.left];
            merged.len += right.len;
            merged.piece = bigram.merged;
            merged.next = right.next;
            self.symbols[bigram.right].len = 0;
            if let Some(next) = right.next {
                self.symbols[next].prev = Some(bigram.left);
            }
            if let Some(prev) = left.prev {
                self.try_add_bigram(prev, bigram.left);
            }
            if let Some(next) = right.next {
                self.try_add_bigram(bigram.left, next);
            }
        }

        for i in 0..self.symbols.len() {
            let symbol = self.symbols[i];
            if symbol.len == 0 {
                continue;
            }
            match self.tables.piece_token.get(symbol.piece as usize) {
                Some(Some(id)) => output.push(*id),
                _ => self.emit_unknown(&raw[symbol.start..symbol.start + symbol.len], output),
            }
        }
    }

    /// Gemma 4 takes a word of newlines that is itself a token whole (llama.cpp
    /// ggml-org/llama.cpp#21343).
    fn whole_newlines(&self, word: &str) -> bool {
        self.tokenizer.pre == Some(PreTokenizer::Gemma4) && word.bytes().all(|b| b == b'\n')
    }

    /// A final piece that is not a token. Byte-level: llama.cpp looks up each byte
    /// of its *encoded* text as a one-byte token and drops the bytes that have none.
    /// Raw UTF-8: each byte becomes its `<0xNN>` token, where there is one.
    fn emit_unknown(&mut self, raw: &[u8], output: &mut Vec<u32>) {
        if let Some(chars) = &self.tables.raw {
            output.extend(
                raw.iter()
                    .filter_map(|&byte| chars.byte_token[byte as usize]),
            );
            return;
        }
        self.encoded.clear();
        bytes::encode_into(raw, &mut self.encoded);
        if let Some(&id) = self.tokenizer.ids.get(self.encoded.as_str()) {
            output.push(id);
            return;
        }
        let mut buf = [0u8; 4];
        for &byte in self.encoded.as_bytes() {
            if byte.is_ascii() {
                let single = char::from(byte).encode_utf8(&mut buf);
                output.extend(self.tokenizer.ids.get(&*single).copied());
            }
        }
    }

    fn try_add_bigram(&mut self, left: usize, right: usize) {
        let (left_piece, right_piece) = (self.symbols[left].piece, self.symbols[right].piece);
        if left_piece == NO_PIECE || right_piece == NO_PIECE {
            return;
        }
        if let Some(&(rank, merged)) = self.tables.merges.get(&(left_piece, right_piece)) {
            self.queue.push(Reverse(Bigram {
                rank,
                left,
                right,
                left_piece,
                right_piece,
                merged,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_chunks_split_only_where_no_piece_joins() {
        let joins = HashSet::from(['>']);
        let chunks: Vec<&str> = space_chunks("a▁b▁▁c>▁d▁", &joins).collect();
        assert_eq!(chunks, ["a", "▁b", "▁▁c>▁d", "▁"]);
        let chunks: Vec<&str> = space_chunks("▁▁x", &joins).collect();
        assert_eq!(chunks, ["▁▁x"]);
    }
}
