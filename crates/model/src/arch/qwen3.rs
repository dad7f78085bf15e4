//! The `qwen3` architecture: Qwen3 (dense) as GGUF files describe it. Follows
//! llama.cpp's src/models/qwen3.cpp step by step:
//!
//! ```text
//! x = token_embd[tokens]
//! for each layer:
//!     h = rmsnorm(x) · attn_norm
//!     q, k, v = Wq h, Wk h, Wv h
//!     q, k = rmsnorm(q) · q_norm, rmsnorm(k) · k_norm     (per head)
//!     q, k = rope(q), rope(k)                             (NEOX pairing)
//!     x += Wo attention(q, cache k, cache v)
//!     h = rmsnorm(x) · ffn_norm
//!     x += Wdown (silu(Wgate h) * Wup h)
//! logits = Woutput (rmsnorm(x) · output_norm)   (Woutput tied to token_embd if absent)
//! ```
//!
//! `qwen3.attention.sliding_window` is ignored, as llama.cpp does (Qwen3 ships
//! with `use_sliding_window = false`).

use gguf::GgufModel;

use super::block::{Act, Parts, QkNorm};
use super::standard::{BasicConfig, Standard};
use crate::ModelError;
use crate::ops::rope::RopeMode;

/// Hyper-parameters, from the `qwen3.*` metadata keys (NEOX RoPE pairing).
pub type Config = BasicConfig;

/// The qwen3 architecture: the shared block with its config and weights.
pub type Qwen3 = Standard;

/// Reads the config and checks every tensor.
pub fn load(gguf: &GgufModel) -> Result<Qwen3, ModelError> {
    let config = Config::from_metadata(gguf, "qwen3", RopeMode::Neox)?;
    let parts = Parts {
        qk_norm: QkNorm::PerHead,
        ..Parts::PLAIN
    };
    Standard::load(gguf, config, &parts, Act::Silu)
}
