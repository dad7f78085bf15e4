//! Tokenizers, chat templates and model architectures.
#![deny(missing_docs)]

pub mod chat;
pub mod sampler;
pub mod tokenizer;
