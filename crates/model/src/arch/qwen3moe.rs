//! The `qwen3moe` architecture: Qwen3-30B-A3B and Qwen3-235B-A22B as GGUF
//! files describe them. Follows llama.cpp's src/models/qwen3moe.cpp: qwen3's
//! attention (per-head q/k norms, NEOX RoPE) with a mixture of experts in
//! place of the FFN:
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
//!     p = softmax(Wrouter h); E = the expert_used_count most probable
//!     x += Σ_{e∈E} p_e / Σ_E p · Wdown_e (silu(Wgate_e h) * Wup_e h)
//! logits = Woutput (rmsnorm(x) · output_norm)   (Woutput tied to token_embd if absent)
//! ```
//!
//! The routing weights are renormalised over the chosen experts (the
//! checkpoints' `norm_topk_prob`, which llama.cpp always applies for this
//! architecture); there is no shared expert. Each expert's hidden width is
//! `expert_feed_forward_length` (768 for 30B-A3B), or as in llama.cpp
//! `feed_forward_length / expert_used_count` when the file lacks it.

use gguf::GgufModel;

use super::block::{Act, FfnParts, Parts, QkNorm};
use super::common;
use super::moe::Gating;
use super::standard::{BasicConfig, Standard};
use crate::ModelError;
use crate::loader::{Hparams, config};
use crate::ops::rope::RopeMode;

/// The qwen3moe architecture: the shared block with its config and weights.
pub type Qwen3Moe = Standard;

/// Reads the config (its `dims.n_ff` is each expert's width) and checks every
/// tensor.
pub fn load(gguf: &GgufModel) -> Result<Qwen3Moe, ModelError> {
    let mut c = BasicConfig::from_metadata(gguf, "qwen3moe", RopeMode::Neox)?;
    let hp = Hparams::new(gguf.metadata(), "qwen3moe");
    let (n_expert, n_used) = common::experts(&hp)?;
    if n_expert == 0 {
        return Err(config(
            &hp.key("expert_count"),
            "missing or 0 (a qwen3moe needs experts)",
        ));
    }
    let d = &mut c.dims;
    d.n_ff = match hp.opt_count("expert_feed_forward_length")? {
        Some(n) if n > 0 => n,
        _ => d.n_ff / n_used,
    };
    let parts = Parts {
        qk_norm: QkNorm::PerHead,
        ffn: FfnParts::Moe {
            n_expert,
            n_used,
            gating: Gating::Softmax,
        },
        ..Parts::PLAIN
    };
    Standard::load(gguf, c, &parts, Act::Silu)
}
