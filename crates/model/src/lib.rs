//! Tokenizers, chat templates and model architectures.
#![deny(missing_docs)]
