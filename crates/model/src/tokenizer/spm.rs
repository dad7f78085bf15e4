//! SentencePiece-style tokenization: repeatedly merge the adjacent pair whose
//! concatenation is the highest-scoring token, then fall back to `<0xNN>` byte
//! tokens for what is left (llama-vocab.cpp, `llm_tokenizer_spm_session`).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::Tokenizer;

/// The character SentencePiece writes for a space (U+2581 LOWER ONE EIGHTH BLOCK).
pub(crate) const SPACE: char = '\u{2581}';

/// Whether no token of the vocabulary has a [`SPACE`] after another character,
/// i.e. every token is `▁*` followed by text without `▁`.
pub(crate) fn tokens_allow_word_chunks<'a>(mut texts: impl Iterator<Item = &'a str>) -> bool {
    texts.all(|text| !text.trim_start_matches(SPACE).contains(SPACE))
}

/// Splits escaped text before every `▁` run that follows another character.
///
/// llama.cpp merges the whole text at once. When no token has a `▁` after another
/// character ([`tokens_allow_word_chunks`]), no candidate pair can straddle such a
/// split, and the merges inside each piece happen in the same relative order
/// (highest score, then leftmost), so merging piece by piece gives identical tokens
/// while keeping the work queue small and cache-resident.
pub(crate) fn words(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut prev_space = true;
        let split = rest
            .char_indices()
            .find(|&(_, c)| {
                let is_space = c == SPACE;
                let boundary = is_space && !prev_space;
                prev_space = is_space;
                boundary
            })
            .map_or(rest.len(), |(i, _)| i);
        let (word, tail) = rest.split_at(split);
        rest = tail;
        Some(word)
    })
}

/// One run of text in the merge chain: `text[start..start + len]`.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    /// Byte length; 0 once merged into its left neighbour.
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate merge of two adjacent symbols.
struct Bigram {
    left: usize,
    right: usize,
    score: f32,
    /// Byte length of the merged text, to detect candidates made stale by
    /// an earlier merge.
    len: usize,
}

impl Ord for Bigram {
    /// The best candidate is the highest score; ties go to the leftmost pair
    /// (llama.cpp `llm_bigram_spm::comparator`).
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Bigram {}

/// Buffers reused across the fragments of one `encode` call.
pub(crate) struct Session<'t> {
    tokenizer: &'t Tokenizer,
    symbols: Vec<Symbol>,
    queue: BinaryHeap<Bigram>,
}

impl<'t> Session<'t> {
    pub(crate) fn new(tokenizer: &'t Tokenizer) -> Self {
        Self {
            tokenizer,
            symbols: Vec::new(),
            queue: BinaryHeap::new(),
        }
    }

    /// Tokenizes whitespace-escaped text (spaces already replaced by [`SPACE`]).
    pub(crate) fn tokenize(&mut self, text: &str, output: &mut Vec<u32>) {
        self.symbols.clear();
        self.queue.clear();
        for (start, c) in text.char_indices() {
            let index = self.symbols.len();
            self.symbols.push(Symbol {
                start,
                len: c.len_utf8(),
                prev: index.checked_sub(1),
                next: (start + c.len_utf8() < text.len()).then_some(index + 1),
            });
        }
        for right in 1..self.symbols.len() {
            self.try_add_bigram(text, right - 1, right);
        }

        while let Some(bigram) = self.queue.pop() {
            let left = self.symbols[bigram.left];
            let right = self.symbols[bigram.right];
            // Skip candidates whose symbols changed since they were queued.
            if left.len == 0 || right.len == 0 || left.len + right.len != bigram.len {
                continue;
            }
            self.symbols[bigram.left].len += right.len;
            self.symbols[bigram.left].next = right.next;
            self.symbols[bigram.right].len = 0;
            if let Some(next) = right.next {
                self.symbols[next].prev = Some(bigram.left);
            }
            if let Some(prev) = left.prev {
                self.try_add_bigram(text, prev, bigram.left);
            }
            if let Some(next) = right.next {
                self.try_add_bigram(text, bigram.left, next);
            }
        }

        let mut index = (!self.symbols.is_empty()).then_some(0);
        while let Some(i) = index {
            let symbol = self.symbols[i];
            self.emit(&text[symbol.start..symbol.start + symbol.len], output);
            index = symbol.next;
        }
    }

    /// Emits a final symbol: its token, or one byte token per byte.
    ///
    /// llama.cpp's `resegment` also consults a table of the merges that built the
    /// symbol, but a merged symbol is always a token (merges only form tokens), so
    /// only unmerged single characters reach the byte fallback.
    fn emit(&self, piece: &str, output: &mut Vec<u32>) {
        if let Some(&id) = self.tokenizer.ids.get(piece) {
            output.push(id);
            return;
        }
        for &byte in piece.as_bytes() {
            // llama.cpp aborts when a byte has no token; we emit `<unk>` instead.
            if let Some(id) =
                self.tokenizer.byte_tokens[byte as usize].or(self.tokenizer.special.unk)
            {
                output.push(id);
            }
        }
    }

    fn try_add_bigram(&mut self, text: &str, left: usize, right: usize) {
        let start = self.symbols[left].start;
        let len = self.symbols[left].len + self.symbols[right].len;
        let Some(&id) = self.tokenizer.ids.get(&text[start..start + len]) else {
            return;
        };
        self.queue.push(Bigram {
            left,
            right,
            score: self.tokenizer.scores[id as usize],
            len,
        });
    }
}
