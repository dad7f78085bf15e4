//! The `qwen2` architecture: Qwen1.5, Qwen2 and Qwen2.5 as GGUF files describe
//! them. Follows llama.cpp's src/models/qwen2.cpp step by step:
//!
//! ```text
//! x = token_embd[tokens]
//! for each layer:
//!     h = rmsnorm(x) · attn_norm
//!     q, k, v = Wq h + bq, Wk h + bk, Wv h + bv     (biases on q, k and v)
//!     q, k = rope(q), rope(k)                       (NEOX pairing)
//!     x += Wo attention(q, cache k, cache v)
//!     h = rmsnorm(x) · ffn_norm
//!     x += Wdown (silu(Wgate h) * Wup h)
//! logits = Woutput (rmsnorm(x) · output_norm) (+ output.bias)
//! ```
//!
//! `qwen2.attention.sliding_window` is ignored, as llama.cpp does (Qwen2 ships
//! with `use_sliding_window = false`).

use gguf::GgufModel;

use super::block::{Act, Parts};
use super::standard::{BasicConfig, Standard};
use crate::ModelError;
use crate::ops::rope::RopeMode;

/// Hyper-parameters, from the `qwen2.*` metadata keys (NEOX RoPE pairing).
pub type Config = BasicConfig;

/// The qwen2 architecture: the shared block with its config and weights.
pub type Qwen2 = Standard;

/// Reads the config and checks every tensor.
pub fn load(gguf: &GgufModel) -> Result<Qwen2, ModelError> {
    let config = Config::from_metadata(gguf, "qwen2", RopeMode::Neox)?;
    Standard::load(gguf, config, &Parts::PLAIN, Act::Silu)
}
