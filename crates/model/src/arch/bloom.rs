//! The `bloom` architecture: BigScience's BLOOM as GGUF files describe it.
//! Follows llama.cpp's src/models/bloom.cpp: no RoPE, positions enter through
//! ALiBi (a per-head linear penalty on the distance, maximum bias 8, which
//! llama.cpp fixes), LayerNorms with biases (one more on the embeddings), a
//! fused q|k|v projection and every projection with a bias, a plain GELU MLP:
//!
//! ```text
//! x = layernorm(token_embd[tokens]) · token_embd_norm + b
//! for each layer:
//!     h = layernorm(x) · attn_norm + b
//!     q|k|v = Wqkv h + bqkv
//!     s_h(p, j) = slope_h · -(p - j) + q·k / sqrt(head_dim)
//!     x += Wo attention(s) + bo
//!     h = layernorm(x) · ffn_norm + b
//!     x += Wdown gelu(Wup h + bup) + bdown
//! logits = Woutput (layernorm(x) · output_norm + b)   (Woutput tied to token_embd if absent)
//! ```
//!
//! The slopes are ggml's (`soft_max` with `max_bias = 8`): with `m` the
//! largest power of two at most `n_head`, head `h < m` gets
//! `(2^(-8/m))^(h+1)`, the others `(2^(-4/m))^(2(h-m)+1)`.

use gguf::GgufModel;

use super::block::{self, Act, FfnParts, Finish, LayerAttn, Norm, NormKind, Parts, Weights};
use super::common::{Decoder, Dims, Loader, Out, Step};
use super::standard::BasicConfig;
use crate::ModelError;
use crate::loader::{Hparams, Tensor};
use crate::ops::rope::{Rope, RopeMode};

/// llama.cpp's `f_max_alibi_bias` for BLOOM.
const MAX_ALIBI_BIAS: f32 = 8.0;

/// The bloom architecture: config, weights, the embedding norm and the ALiBi
/// slopes.
#[derive(Debug)]
pub struct Bloom {
    /// Shared sizes (the RoPE in it is never applied).
    pub config: BasicConfig,
    weights: Weights,
    /// `token_embd_norm`: LayerNorm of the embeddings.
    embd_norm: Norm,
    /// (n_head) ALiBi slope of each head.
    slopes: Vec<f32>,
}

/// ggml-cpu's ALiBi slopes for `n_head` heads (`soft_max_f32`), with `powf`
/// in f32 as there.
pub fn alibi_slopes(n_head: usize, max_bias: f32) -> Vec<f32> {
    let m = 1u32 << (n_head as u32).ilog2();
    let m0 = 2f32.powf(-max_bias / m as f32);
    let m1 = 2f32.powf(-(max_bias / 2.0) / m as f32);
    (0..n_head as u32)
        .map(|h| {
            if h < m {
                m0.powf((h + 1) as f32)
            } else {
                m1.powf((2 * (h - m) + 1) as f32)
            }
        })
        .collect()
}

/// Reads the config as llama.cpp's `llama_model_bloom` does and checks every
/// tensor.
pub fn load(gguf: &GgufModel) -> Result<Bloom, ModelError> {
    let mut config = BasicConfig::from_metadata(gguf, "bloom", RopeMode::Normal)?;
    config.layer_norm_eps(&Hparams::new(gguf.metadata(), "bloom"))?;
    let d = &config.dims;
    let parts = Parts {
        norm: NormKind::LayerBias,
        fused_qkv: true,
        ffn: FfnParts::Plain,
        ..Parts::PLAIN
    };
    let t = Loader::new(gguf);
    let weights = Weights::load(&t, d, &parts)?;
    let embd_norm = Norm::load(&t, "token_embd_norm", d.n_embd, NormKind::LayerBias)?;
    let slopes = alibi_slopes(d.n_head, MAX_ALIBI_BIAS);
    Ok(Bloom {
        config,
        weights,
        embd_norm,
        slopes,
    })
}

impl Decoder for Bloom {
    fn dims(&self) -> &Dims {
        &self.config.dims
    }

    fn fused(&self) -> bool {
        self.weights.fused()
    }

    fn matrices(&self) -> Vec<&Tensor> {
        self.weights.matrices()
    }

    fn rope(&self, _layer: usize, _n_ctx: usize) -> Option<(Rope, Option<Vec<f32>>)> {
        None
    }

    fn forward_batch(
        &self,
        s: &mut Step<'_, '_>,
        tokens: &[u32],
        out: Option<Out<'_>>,
    ) -> Result<(), ModelError> {
        let (d, w, n) = (&self.config.dims, &self.weights, tokens.len());
        let e = d.n_embd;
        let at = LayerAttn {
            rope: None,
            alibi: Some(&self.slopes),
            ..LayerAttn::plain(d, &self.config.rope)
        };
        w.embed(s, tokens, 1.0)?;
        block::norm(s, n, e, Some(&self.embd_norm), d.norm_eps);
        let b = &mut *s.buf;
        b.x[..n * e].copy_from_slice(&b.h[..n * e]);
        for (il, layer) in w.layers.iter().enumerate() {
            block::sequential_layer(s, il, n, layer, d, &at, Act::Gelu)?;
        }
        w.output(s, d, Finish::None, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slopes_halve_geometrically_and_interleave_past_a_power_of_two() {
        assert_eq!(
            alibi_slopes(4, 8.0),
            [0.25, 0.0625, 0.015_625, 0.003_906_25]
        );
        // 6 heads: 4 from 2^(-8/4), then 2 from 2^(-4/4) at odd powers.
        let six = alibi_slopes(6, 8.0);
        assert_eq!(six[..4], alibi_slopes(4, 8.0)[..]);
        assert_eq!(six[4..], [0.5, 0.125]);
    }
}
