//! GGUF v2/v3: reading through mmap, writing, and defensive parsing.
#![deny(missing_docs)]

mod types;

pub use types::TensorType;
