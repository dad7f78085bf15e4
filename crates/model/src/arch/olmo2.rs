//! The `olmo2` architecture: OLMo 2 (1B, 7B, 13B, 32B) as GGUF files describe
//! it. Follows llama.cpp's src/models/olmo2.cpp: no norms before the
//! sub-blocks, RMS norms after them, and RMS norms over whole q and k rows:
//!
//! ```text
//! x = token_embd[tokens]
//! for each layer:
//!     q, k, v = Wq x, Wk x, Wv x
//!     q, k = rmsnorm(q) · q_norm, rmsnorm(k) · k_norm     (all heads together)
//!     q, k = rope(q), rope(k)                             (NEOX pairing)
//!     x += rmsnorm(Wo attention(q, cache k, cache v)) · attn_post_norm
//!     x += rmsnorm(Wdown (silu(Wgate x) * Wup x)) · ffn_post_norm
//! logits = Woutput (rmsnorm(x) · output_norm)
//! ```
//!
//! OLMo 3 files (this architecture with `attention.sliding_window`) are a
//! config error: their sliding-window layers are not run here.

use gguf::GgufModel;

use super::block::{Act, Parts, QkNorm};
use super::standard::{BasicConfig, Standard};
use crate::ModelError;
use crate::loader::{Hparams, config};
use crate::ops::rope::RopeMode;

/// The olmo2 architecture: the shared block with its config and weights.
pub type Olmo2 = Standard;

/// Reads the config as llama.cpp's `llama_model_olmo2` does and checks every
/// tensor.
pub fn load(gguf: &GgufModel) -> Result<Olmo2, ModelError> {
    let c = BasicConfig::from_metadata(gguf, "olmo2", RopeMode::Neox)?;
    let hp = Hparams::new(gguf.metadata(), "olmo2");
    if hp
        .opt_count("attention.sliding_window")?
        .is_some_and(|w| w > 0)
    {
        return Err(config(
            &hp.key("attention.sliding_window"),
            "an OLMo 3 file, whose sliding-window layers hearth does not run",
        ));
    }
    let parts = Parts {
        qk_norm: QkNorm::Whole,
        pre_norms: false,
        post_norms: true,
        ..Parts::PLAIN
    };
    Standard::load(gguf, c, &parts, Act::Silu)
}
