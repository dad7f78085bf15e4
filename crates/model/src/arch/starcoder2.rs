//! The `starcoder2` architecture: StarCoder2 3B, 7B and 15B as GGUF files
//! describe them. Follows llama.cpp's src/models/starcoder2.cpp: the shared
//! block with LayerNorms that have biases, biases on every projection, and a
//! plain (ungated) GELU MLP:
//!
//! ```text
//! x = token_embd[tokens]
//! for each layer:
//!     h = layernorm(x) · attn_norm + attn_norm_b
//!     q, k, v = Wq h + bq, Wk h + bk, Wv h + bv
//!     q, k = rope(q), rope(k)                       (NEOX pairing)
//!     x += Wo attention(q, cache k, cache v) + bo
//!     h = layernorm(x) · ffn_norm + ffn_norm_b
//!     x += Wdown gelu(Wup h + bup) + bdown
//! logits = Woutput (layernorm(x) · output_norm + output_norm_b)   (tied if absent)
//! ```
//!
//! The norms' epsilon is `attention.layer_norm_epsilon` (not the RMS key).
//! `starcoder2.attention.sliding_window` is ignored, as llama.cpp does.

use gguf::GgufModel;

use super::block::{Act, FfnParts, NormKind, Parts};
use super::standard::{BasicConfig, Standard};
use crate::ModelError;
use crate::loader::Hparams;
use crate::ops::rope::RopeMode;

/// The starcoder2 architecture: the shared block with its config and weights.
pub type Starcoder2 = Standard;

/// Reads the config as llama.cpp's `llama_model_starcoder2` does and checks
/// every tensor.
pub fn load(gguf: &GgufModel) -> Result<Starcoder2, ModelError> {
    let mut c = BasicConfig::from_metadata(gguf, "starcoder2", RopeMode::Neox)?;
    let hp = Hparams::new(gguf.metadata(), "starcoder2");
    c.layer_norm_eps(&hp)?;
    let parts = Parts {
        norm: NormKind::LayerBias,
        ffn: FfnParts::Plain,
        ..Parts::PLAIN
    };
    Standard::load(gguf, c, &parts, Act::Gelu)
}
