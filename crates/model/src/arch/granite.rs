//! The `granite` architecture: IBM Granite 3.x (dense) as GGUF files describe
//! it. Follows llama.cpp's src/models/granite.cpp: llama's block with four
//! multipliers from the file:
//!
//! ```text
//! x = token_embd[tokens] · embedding_scale
//! for each layer:
//!     h = rmsnorm(x) · attn_norm
//!     q, k, v = Wq h, Wk h, Wv h
//!     q, k = rope(q), rope(k)                       (NORMAL pairing)
//!     x += residual_scale · Wo attention(q, cache k, cache v)
//!                 (scores scaled by attention.scale, not 1/sqrt(head_dim))
//!     h = rmsnorm(x) · ffn_norm
//!     x += residual_scale · Wdown (silu(Wgate h) * Wup h)
//! logits = Woutput (rmsnorm(x) · output_norm) / logit_scale   (tied if absent)
//! ```
//!
//! `embedding_scale`, `residual_scale` and `attention.scale` are optional (0
//! or absent: not applied), `logit_scale` is required, as in llama.cpp.

use gguf::GgufModel;

use super::block::{self, Act, Finish, LayerAttn, Parts, Weights};
use super::common::{Decoder, Dims, Loader, Out, Step};
use super::standard::BasicConfig;
use crate::ModelError;
use crate::loader::{Hparams, Tensor, config};
use crate::ops::rope::{Rope, RopeMode};

/// Hyper-parameters, from the `granite.*` metadata keys.
#[derive(Clone, Debug)]
pub struct Config {
    /// Shared sizes and the RoPE (NORMAL pairing).
    pub base: BasicConfig,
    /// `embedding_scale`: multiplier of the embeddings.
    pub embedding_scale: Option<f32>,
    /// `residual_scale`: multiplier of each sub-block's output.
    pub residual_scale: Option<f32>,
    /// `attention.scale`: multiplier of the attention scores.
    pub attention_scale: Option<f32>,
    /// `logit_scale`: divisor of the logits.
    pub logit_scale: f32,
}

impl Config {
    /// Reads the hyper-parameters as llama.cpp's `llama_model_granite` does.
    pub fn from_metadata(gguf: &GgufModel) -> Result<Config, ModelError> {
        let base = BasicConfig::from_metadata(gguf, "granite", RopeMode::Normal)?;
        let hp = Hparams::new(gguf.metadata(), "granite");
        let nonzero = |key: &str| -> Result<Option<f32>, ModelError> {
            Ok(hp.opt_f32(key)?.filter(|&v| v != 0.0))
        };
        Ok(Config {
            embedding_scale: nonzero("embedding_scale")?,
            residual_scale: nonzero("residual_scale")?,
            attention_scale: nonzero("attention.scale")?,
            logit_scale: nonzero("logit_scale")?
                .ok_or_else(|| config(&hp.key("logit_scale"), "missing or 0"))?,
            base,
        })
    }
}

/// The granite architecture: its config and weights.
#[derive(Debug)]
pub struct Granite {
    /// Hyper-parameters.
    pub config: Config,
    weights: Weights,
    /// (n_rot / 2) llama3-style RoPE frequency factors (`rope_freqs.weight`).
    rope_freqs: Option<Vec<f32>>,
}

impl Granite {
    /// Reads the config and checks every tensor.
    pub fn load(gguf: &GgufModel) -> Result<Granite, ModelError> {
        let config = Config::from_metadata(gguf)?;
        let d = &config.base.dims;
        let t = Loader::new(gguf);
        let weights = Weights::load(&t, d, &Parts::PLAIN)?;
        let rope_freqs = t.opt_vector("rope_freqs.weight", d.n_rot / 2)?;
        Ok(Granite {
            config,
            weights,
            rope_freqs,
        })
    }

    /// `proj *= residual_scale` for `n` rows, if the model scales.
    fn scale_residual(&self, s: &mut Step<'_, '_>, n: usize) {
        if let Some(scale) = self.config.residual_scale {
            let e = self.config.base.dims.n_embd;
            s.buf.proj[..n * e].iter_mut().for_each(|v| *v *= scale);
        }
    }
}

impl Decoder for Granite {
    fn dims(&self) -> &Dims {
        &self.config.base.dims
    }

    fn matrices(&self) -> Vec<&Tensor> {
        self.weights.matrices()
    }

    fn rope(&self, _layer: usize, _n_ctx: usize) -> Option<(Rope, Option<Vec<f32>>)> {
        Some((self.config.base.rope.clone(), self.rope_freqs.clone()))
    }

    fn forward_batch(
        &self,
        s: &mut Step<'_, '_>,
        tokens: &[u32],
        out: Option<Out<'_>>,
    ) -> Result<(), ModelError> {
        let c = &self.config;
        let (d, w, n) = (&c.base.dims, &self.weights, tokens.len());
        let (e, eps) = (d.n_embd, d.norm_eps);
        let factors = |_| self.rope_freqs.as_deref();
        let mut at = LayerAttn::plain(d, &c.base.rope);
        at.rope_factors = &factors;
        if let Some(scale) = c.attention_scale {
            at.shape.kq_scale = scale;
        }

        w.embed(s, tokens, c.embedding_scale.unwrap_or(1.0))?;
        for (il, layer) in w.layers.iter().enumerate() {
            block::norm(s, n, e, layer.attn_norm.as_ref(), eps);
            block::attention(s, il, n, &layer.attn, d, &at)?;
            self.scale_residual(s, n);
            block::residual(s, n, e, None, eps);
            block::norm(s, n, e, layer.ffn_norm.as_ref(), eps);
            block::ffn(s, n, &layer.ffn, d, Act::Silu)?;
            self.scale_residual(s, n);
            block::residual(s, n, e, None, eps);
        }
        w.output(s, d, Finish::Scale(1.0 / c.logit_scale), out)
    }
}
