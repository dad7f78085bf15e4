//! The `mistral3` architecture: Mistral Small 3.x and Ministral 3 (text) as
//! GGUF files describe them. Follows llama.cpp's src/models/mistral3.cpp:
//! llama's block (NORMAL RoPE, dense or mixture-of-experts FFN) with YaRN as
//! these checkpoints configure it and Llama 4's attention temperature:
//!
//! ```text
//! x = token_embd[tokens]
//! for each layer:
//!     h = rmsnorm(x) · attn_norm
//!     q, k, v = Wq h, Wk h, Wv h
//!     q, k = rope(q), rope(k)            (YaRN: rope.scaling.yarn_beta_fast/slow,
//!                                         magnitude by yarn_log_multiplier)
//!     q = q · (ln(floor(pos / n_ctx_orig) + 1) · temperature_scale + 1)
//!     x += Wo attention(q, cache k, cache v)
//!     h = rmsnorm(x) · ffn_norm
//!     x += Wdown (silu(Wgate h) * Wup h)    (or the top-k mixture of experts)
//! logits = Woutput (rmsnorm(x) · output_norm)   (tied if absent)
//! ```
//!
//! With `rope.scaling.yarn_log_multiplier` set, YaRN's magnitude factor is
//! `mscale(factor, 1) / mscale(factor, log_mul)` (llama.cpp's `llama_context`
//! constructor), still cancelled by `1 / (1 + 0.1 ln factor)` and times
//! `rope.scaling.attn_factor`.

use gguf::GgufModel;

use super::block::{self, Act, FfnParts, Finish, LayerAttn, Parts, Temperature, Weights};
use super::common::{self, Decoder, Dims, Loader, Out, Step};
use super::moe::Gating;
use super::standard::BasicConfig;
use crate::ModelError;
use crate::loader::{Hparams, Tensor};
use crate::ops::rope::{Rope, RopeMode};

/// Hyper-parameters, from the `mistral3.*` metadata keys.
#[derive(Clone, Debug)]
pub struct Config {
    /// Shared sizes and the RoPE (NORMAL pairing, YaRN as the file says).
    pub base: BasicConfig,
    /// Experts per MoE layer and experts used per token; (0, 0) when dense.
    pub experts: (usize, usize),
    /// `attention.temperature_scale`, if set and non-zero.
    pub temperature: Option<Temperature>,
}

impl Config {
    /// Reads the hyper-parameters as llama.cpp's `llama_model_mistral3` does.
    pub fn from_metadata(gguf: &GgufModel) -> Result<Config, ModelError> {
        let mut base = BasicConfig::from_metadata(gguf, "mistral3", RopeMode::Normal)?;
        let hp = Hparams::new(gguf.metadata(), "mistral3");
        let rope = &mut base.rope;
        if let Some(beta) = hp.opt_f32("rope.scaling.yarn_beta_fast")? {
            rope.beta_fast = beta;
        }
        if let Some(beta) = hp.opt_f32("rope.scaling.yarn_beta_slow")? {
            rope.beta_slow = beta;
        }
        let log_mul = hp.opt_f32("rope.scaling.yarn_log_multiplier")?;
        if let Some(log_mul) = log_mul.filter(|&m| m != 0.0 && rope.ext_factor != 0.0) {
            let factor = 1.0 / rope.freq_scale;
            let mscale = |m: f32| {
                if factor <= 1.0 {
                    1.0
                } else {
                    0.1 * m * factor.ln() + 1.0
                }
            };
            rope.attn_factor = mscale(1.0) / mscale(log_mul);
            rope.attn_factor *= 1.0 / (1.0 + 0.1 * factor.ln());
            rope.attn_factor *= hp.opt_f32("rope.scaling.attn_factor")?.unwrap_or(1.0);
        }
        let temperature = hp
            .opt_f32("attention.temperature_scale")?
            .filter(|&t| t != 0.0)
            .map(|scale| Temperature {
                scale,
                floor_scale: rope.n_ctx_orig as f32,
            });
        Ok(Config {
            experts: common::experts(&hp)?,
            temperature,
            base,
        })
    }
}

/// The mistral3 architecture: its config and weights.
#[derive(Debug)]
pub struct Mistral3 {
    /// Hyper-parameters.
    pub config: Config,
    weights: Weights,
    /// (n_rot / 2) RoPE frequency factors (`rope_freqs.weight`), if any.
    rope_freqs: Option<Vec<f32>>,
}

impl Mistral3 {
    /// Reads the config and checks every tensor.
    pub fn load(gguf: &GgufModel) -> Result<Mistral3, ModelError> {
        let config = Config::from_metadata(gguf)?;
        let d = &config.base.dims;
        let ffn = match config.experts {
            (0, _) => FfnParts::Gated,
            (n_expert, n_used) => FfnParts::Moe {
                n_expert,
                n_used,
                gating: Gating::Softmax,
            },
        };
        let t = Loader::new(gguf);
        let weights = Weights::load(
            &t,
            d,
            &Parts {
                ffn,
                ..Parts::PLAIN
            },
        )?;
        let rope_freqs = t.opt_vector("rope_freqs.weight", d.n_rot / 2)?;
        Ok(Mistral3 {
            config,
            weights,
            rope_freqs,
        })
    }
}

impl Decoder for Mistral3 {
    fn dims(&self) -> &Dims {
        &self.config.base.dims
    }

    fn experts(&self) -> Option<(usize, usize)> {
        let (n_expert, n_used) = self.config.experts;
        (n_expert > 0).then_some((n_expert, n_used))
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
        let factors = |_| self.rope_freqs.as_deref();
        let mut at = LayerAttn::plain(d, &c.base.rope);
        at.rope_factors = &factors;
        at.temperature = c.temperature;

        w.embed(s, tokens, 1.0)?;
        for (il, layer) in w.layers.iter().enumerate() {
            block::sequential_layer(s, il, n, layer, d, &at, Act::Silu)?;
        }
        w.output(s, d, Finish::None, out)
    }
}
