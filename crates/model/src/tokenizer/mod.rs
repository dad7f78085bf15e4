//! Tokenizers built from GGUF metadata (`tokenizer.ggml.*`).

pub mod pretokenize;
