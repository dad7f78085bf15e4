//! Tokenizers built from GGUF metadata (`tokenizer.ggml.*`), matching llama.cpp
//! (src/llama-vocab.cpp) token for token.
//!
//! - [`TokenizerKind::Spm`] (`tokenizer.ggml.model = llama`): SentencePiece-style
//!   merges driven by token scores, with `<0xNN>` byte fallback (Llama 2, Mistral,
//!   Gemma, Phi-3).
//! - [`TokenizerKind::Bpe`] (`gpt2`): byte-level BPE with merge ranks after a
//!   pre-tokenizer chosen by `tokenizer.ggml.pre` (Llama 3, Qwen 2, DeepSeek, ...);
//!   (`gemma4`) the same merges on raw UTF-8 with spaces written `▁` and `<0xNN>`
//!   byte fallback (Gemma 4).
//! - [`TokenizerKind::Wpm`] (`bert`): WordPiece over lower-cased, accent-stripped
//!   words (BERT-style embedding models).
//!
//! Special tokens are split out of the text first. Control and unknown tokens are
//! recognised only when the caller asks (`parse_special`, for rendered chat
//! templates); user-defined tokens always are, as in llama.cpp and HF `tokenizers`.
//! Decoding goes through per-token pieces; [`StreamDecoder`] turns a stream of ids
//! into complete UTF-8 text.

mod bpe;
mod bytes;
mod decode;
mod error;
mod load;
mod normalize_table;
pub mod pretokenize;
mod special;
mod spm;
#[cfg(test)]
mod tests;
mod vocab;
mod wpm;

use std::collections::{HashMap, HashSet};

pub use decode::StreamDecoder;
pub use error::TokenizerError;
pub use vocab::{SpecialTokens, TokenAttr, TokenizerKind};

use bpe::BpeTables;
use pretokenize::PreTokenizer;
use special::Fragment;

/// A tokenizer for one model's vocabulary: text to token ids and back.
pub struct Tokenizer {
    kind: TokenizerKind,
    /// `tokenizer.ggml.pre` as stored (empty when absent).
    pre_name: String,
    /// The word splitter for byte-level BPE; `None` for SPM.
    pre: Option<PreTokenizer>,
    /// Token text by id.
    texts: Vec<String>,
    /// SPM merge scores by id (0 where the model has none).
    scores: Vec<f32>,
    /// Token attributes by id.
    attrs: Vec<TokenAttr>,
    /// Token id by text (the last id wins for duplicate texts, as in llama.cpp).
    ids: HashMap<String, u32>,
    special: SpecialTokens,
    /// Tokens that end generation.
    eog: HashSet<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    /// BPE: a pre-tokenized word that is itself a token is emitted whole.
    ignore_merges: bool,
    /// Decoding removes the space before `?!.,` and some contractions
    /// (`clean_up_tokenization_spaces`).
    clean_spaces: bool,
    /// BPE on raw UTF-8: spaces are written `▁` before merging, and back on decoding.
    escape_whitespaces: bool,
    /// WordPiece: lower-casing and accent stripping.
    normalizer: wpm::Normalizer,
    /// The longest token text, in bytes (bounds the WordPiece match).
    max_token_len: usize,
    /// Control, user-defined and unknown tokens, longest text first: the order in
    /// which they are split out of text.
    special_by_length: Vec<u32>,
    /// Each token's decoded bytes, as `token_to_piece(id, special = true)`.
    pieces: Vec<Vec<u8>>,
    /// SPM: no token has a `▁` after another character, so no merge can cross the
    /// start of a `▁` run and each such word can be merged on its own (see
    /// `encode_spm`).
    spm_word_chunks: bool,
    /// SPM byte fallback: the token for each byte, if the vocabulary has one.
    byte_tokens: [Option<u32>; 256],
    /// Merge tables (BPE only).
    bpe: Option<BpeTables>,
    /// Problems found while loading that llama.cpp also tolerates with a warning.
    warnings: Vec<String>,
}

impl std::fmt::Debug for Tokenizer {
    /// A summary: the tables hold hundreds of thousands of entries.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.kind)
            .field("pre", &self.pre_name)
            .field("n_vocab", &self.texts.len())
            .field("special", &self.special)
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .finish_non_exhaustive()
    }
}

impl Tokenizer {
    /// Builds the tokenizer described by a model's `tokenizer.ggml.*` metadata.
    pub fn from_metadata(metadata: &gguf::Metadata) -> Result<Self, TokenizerError> {
        load::from_metadata(metadata)
    }

    /// Converts text to token ids, with llama.cpp's `llama_tokenize` semantics.
    ///
    /// `add_special` adds BOS and/or EOS where the model asks for them
    /// (`tokenizer.ggml.add_bos_token` / `add_eos_token`); WordPiece always adds
    /// its CLS (as BOS) and SEP tokens, as llama.cpp does. `parse_special` lets
    /// control tokens written in the text (`<|im_start|>`) become their ids; leave it
    /// off for user content so that it cannot smuggle control tokens in.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let mut output = Vec::with_capacity(text.len() / 3 + 2);
        let fragments = special::partition(self, text, parse_special);
        let wpm = self.kind == TokenizerKind::Wpm;
        if add_special && (self.add_bos || wpm) {
            output.extend(self.special.bos);
        }
        match self.kind {
            TokenizerKind::Spm => self.encode_spm(text, &fragments, &mut output),
            TokenizerKind::Bpe => self.encode_bpe(text, &fragments, &mut output),
            TokenizerKind::Wpm => {
                for fragment in &fragments {
                    match *fragment {
                        Fragment::Text(ref range) => {
                            wpm::tokenize(self, self.normalizer, &text[range.clone()], &mut output)
                        }
                        Fragment::Token(id) => output.push(id),
                    }
                }
            }
        }
        if add_special && wpm {
            output.extend(self.special.sep);
        } else if add_special && self.add_eos {
            output.extend(self.special.eos);
        }
        output
    }

    fn encode_spm(&self, text: &str, fragments: &[Fragment], output: &mut Vec<u32>) {
        let mut session = spm::Session::new(self);
        let mut escaped = String::new();
        // A space is prepended to the text at the start and after each special token
        // (llama.cpp: `is_prev_special`, starting true).
        let mut prev_special = true;
        for fragment in fragments {
            match *fragment {
                Fragment::Text(ref range) => {
                    escaped.clear();
                    if self.add_space_prefix && prev_special {
                        escaped.push(spm::SPACE);
                    }
                    escaped.extend(
                        text[range.clone()]
                            .chars()
                            .map(|c| if c == ' ' { spm::SPACE } else { c }),
                    );
                    if self.spm_word_chunks {
                        for word in spm::words(&escaped) {
                            session.tokenize(word, output);
                        }
                    } else {
                        session.tokenize(&escaped, output);
                    }
                    prev_special = false;
                }
                Fragment::Token(id) => {
                    output.push(id);
                    prev_special = true;
                }
            }
        }
    }

    fn encode_bpe(&self, text: &str, fragments: &[Fragment], output: &mut Vec<u32>) {
        let (Some(tables), Some(pre)) = (&self.bpe, &self.pre) else {
            return;
        };
        let mut session = bpe::Session::new(self, tables);
        for fragment in fragments {
            match *fragment {
                Fragment::Text(ref range) => {
                    let escaped;
                    let mut fragment = &text[range.clone()];
                    if self.escape_whitespaces {
                        escaped = fragment.replace(' ', "\u{2581}");
                        fragment = &escaped;
                    }
                    let mut words = Vec::new();
                    pre.split(fragment, &mut words);
                    for word in &words {
                        session.tokenize_word(word, output);
                    }
                }
                Fragment::Token(id) => output.push(id),
            }
        }
    }

    /// The tokenizer family.
    pub fn kind(&self) -> TokenizerKind {
        self.kind
    }

    /// `tokenizer.ggml.pre` as stored in the model (empty when absent).
    pub fn pre_tokenizer_name(&self) -> &str {
        &self.pre_name
    }

    /// The number of tokens in the vocabulary.
    pub fn n_vocab(&self) -> usize {
        self.texts.len()
    }

    /// The stored text of a token (`▁the`, `Ġthe`, `<0x0A>`, `<|im_end|>`).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.texts.get(id as usize).map(String::as_str)
    }

    /// The id of the token whose stored text is exactly `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// A token's attributes (`UNDEFINED` for an id outside the vocabulary).
    pub fn token_attr(&self, id: u32) -> TokenAttr {
        self.attrs.get(id as usize).copied().unwrap_or_default()
    }

    /// A token's SPM score (0 for an id outside the vocabulary).
    pub fn token_score(&self, id: u32) -> f32 {
        self.scores.get(id as usize).copied().unwrap_or(0.0)
    }

    /// All special token ids.
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    /// Beginning-of-sequence token.
    pub fn bos(&self) -> Option<u32> {
        self.special.bos
    }

    /// End-of-sequence token.
    pub fn eos(&self) -> Option<u32> {
        self.special.eos
    }

    /// End-of-turn token.
    pub fn eot(&self) -> Option<u32> {
        self.special.eot
    }

    /// End-of-message token.
    pub fn eom(&self) -> Option<u32> {
        self.special.eom
    }

    /// Whether `encode(.., add_special = true, ..)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether `encode(.., add_special = true, ..)` appends EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// Whether SPM text gets a leading space (and decoding drops it again).
    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }

    /// Whether generating `id` ends generation (EOS, EOT, EOM, `<|im_end|>`, ...).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    /// The end-of-generation ids, ascending.
    pub fn eog_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.eog.iter().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Whether `id` is a control token (rendered only with `special = true`).
    pub fn is_control(&self, id: u32) -> bool {
        self.token_attr(id).intersects(TokenAttr::CONTROL)
    }

    /// Problems found while loading that were tolerated (unknown pre-tokenizer,
    /// out-of-range special ids, ...), for the caller to log.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}
