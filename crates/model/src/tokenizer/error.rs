//! Errors raised while building a tokenizer from GGUF metadata.

use thiserror::Error;

/// Why a tokenizer could not be built from a model's `tokenizer.ggml.*` metadata.
#[derive(Debug, Error)]
pub enum TokenizerError {
    /// A required key is absent, or a key holds a value of the wrong type.
    #[error("tokenizer metadata key '{key}': {message}")]
    Metadata {
        /// The GGUF key, e.g. `tokenizer.ggml.tokens`.
        key: &'static str,
        /// What the GGUF reader reported.
        message: String,
    },
    /// `tokenizer.ggml.model` names a tokenizer family hearth does not implement.
    #[error("unsupported tokenizer model '{0}' (supported: llama, gpt2, gemma4, bert)")]
    UnknownModel(String),
    /// `tokenizer.ggml.tokens` is present but holds no tokens.
    #[error("tokenizer.ggml.tokens is empty")]
    EmptyVocab,
    /// A per-token array is shorter than the token list.
    #[error("{key} has {found} entries, expected at least {expected} (one per token)")]
    LengthMismatch {
        /// The GGUF key of the short array.
        key: &'static str,
        /// The number of tokens.
        expected: usize,
        /// The number of entries found.
        found: usize,
    },
    /// A BPE merge is not of the form `left right`.
    #[error("tokenizer.ggml.merges[{index}] = {merge:?} is not two space-separated pieces")]
    MalformedMerge {
        /// Position in the merges array.
        index: usize,
        /// The merge text as stored.
        merge: String,
    },
    /// A BPE merge refers to a piece that is not in the vocabulary.
    #[error("tokenizer.ggml.merges[{index}] = {merge:?} refers to {piece:?}, which is not a token")]
    MergeNotInVocab {
        /// Position in the merges array.
        index: usize,
        /// The merge text as stored.
        merge: String,
        /// The side of the merge that is missing from the vocabulary.
        piece: String,
    },
    /// The pre-tokenizer belongs to a tokenizer model of its own (`whitespace`)
    /// that hearth does not implement.
    #[error("pre-tokenizer '{0}' needs its own tokenizer model, which hearth does not implement")]
    UnsupportedPreTokenizer(String),
    /// A byte-level BPE vocabulary has no `tokenizer.ggml.merges`.
    #[error("tokenizer.ggml.merges is missing (required for BPE vocabularies)")]
    MissingMerges,
}
