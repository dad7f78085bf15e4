//! The `phi3` architecture: Phi-3, Phi-3.5 and Phi-4 (dense) as GGUF files
//! describe them. Follows llama.cpp's src/models/phi3.cpp step by step:
//!
//! ```text
//! x = token_embd[tokens]
//! for each layer:
//!     h = rmsnorm(x) · attn_norm
//!     q | k | v = Wqkv h                      (one fused projection)
//!     q, k = rope(q, f), rope(k, f)           (NEOX pairing, LongRoPE factors f)
//!     x += Wo attention(q / sqrt(head_dim), cache k, cache v)
//!     h = rmsnorm(x) · ffn_norm
//!     g | u = Wup h                           (fused gate and up, 2 n_ff wide)
//!     x += Wdown (silu(g) * u)
//! logits = Woutput (rmsnorm(x) · output_norm)
//! ```
//!
//! LongRoPE: files of the 128k-context models carry per-pair frequency factors
//! `rope_factors_long` and `rope_factors_short`; like llama.cpp's
//! `get_rope_factors`, the long ones apply when the sequence's context exceeds
//! `rope.scaling.original_context_length`. llama.cpp compares its context
//! rounded up to a multiple of 256 (`GGML_PAD(n_ctx, 256)`); hearth compares the
//! state's exact `n_ctx`, so the two pick differently only for contexts within
//! 255 positions below the original length. `rope.scaling.attn_factor` (the
//! converter's `sqrt(1 + ln(scale) / ln(n_ctx_orig))`) scales cos and sin.
//!
//! `phi3.attention.sliding_window` is ignored, as llama.cpp does ("Phi SWA is
//! currently disabled").

use gguf::GgufModel;

use super::block::{self, Act, FfnParts, Finish, LayerAttn, Parts, Weights};
use super::common::{Decoder, Dims, Loader, Out, Step};
use super::standard::BasicConfig;
use crate::ModelError;
use crate::loader::Tensor;
use crate::ops::rope::{Rope, RopeMode};

/// Hyper-parameters, from the `phi3.*` metadata keys (NEOX RoPE pairing).
pub type Config = BasicConfig;

/// The phi3 architecture: its config and weights.
#[derive(Debug)]
pub struct Phi3 {
    /// Hyper-parameters.
    pub config: Config,
    weights: Weights,
    /// (n_rot / 2) LongRoPE factors for contexts beyond the original length.
    rope_long: Option<Vec<f32>>,
    /// (n_rot / 2) LongRoPE factors for contexts within it.
    rope_short: Option<Vec<f32>>,
}

impl Phi3 {
    /// Reads the config and checks every tensor.
    pub fn load(gguf: &GgufModel) -> Result<Phi3, ModelError> {
        let config = Config::from_metadata(gguf, "phi3", RopeMode::Neox)?;
        let d = &config.dims;
        let t = Loader::new(gguf);
        let parts = Parts {
            fused_qkv: true,
            ffn: FfnParts::FusedGateUp,
            ..Parts::PLAIN
        };
        let weights = Weights::load(&t, d, &parts)?;
        let rope_long = t.opt_vector("rope_factors_long.weight", d.n_rot / 2)?;
        let rope_short = t.opt_vector("rope_factors_short.weight", d.n_rot / 2)?;
        Ok(Phi3 {
            config,
            weights,
            rope_long,
            rope_short,
        })
    }

    /// The LongRoPE factors for a sequence of `n_ctx` positions.
    fn rope_factors(&self, n_ctx: usize) -> Option<&[f32]> {
        if n_ctx > self.config.rope.n_ctx_orig {
            self.rope_long.as_deref()
        } else {
            self.rope_short.as_deref()
        }
    }
}

impl Decoder for Phi3 {
    fn dims(&self) -> &Dims {
        &self.config.dims
    }

    fn fused(&self) -> bool {
        true
    }

    fn matrices(&self) -> Vec<&Tensor> {
        self.weights.matrices()
    }

    fn rope(&self, _layer: usize, n_ctx: usize) -> Option<(Rope, Option<Vec<f32>>)> {
        Some((
            self.config.rope.clone(),
            self.rope_factors(n_ctx).map(<[f32]>::to_vec),
        ))
    }

    fn forward_batch(
        &self,
        s: &mut Step<'_, '_>,
        tokens: &[u32],
        out: Option<Out<'_>>,
    ) -> Result<(), ModelError> {
        let c = &self.config;
        let (d, w, n) = (&c.dims, &self.weights, tokens.len());
        let factors = |n_ctx| self.rope_factors(n_ctx);
        let mut at = LayerAttn::plain(d, &c.rope);
        at.rope_factors = &factors;
        // q is scaled before attention instead of the scores (ggml_scale on Qcur).
        at.q_scale = Some(at.shape.kq_scale);
        at.shape.kq_scale = 1.0;

        w.embed(s, tokens, 1.0)?;
        for (il, layer) in w.layers.iter().enumerate() {
            block::sequential_layer(s, il, n, layer, d, &at, Act::Silu)?;
        }
        w.output(s, d, Finish::None, out)
    }
}
