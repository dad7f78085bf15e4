//! The `llama` architecture: Llama 2, 3, 3.1, 3.2, CodeLlama, DeepSeek-Coder,
//! Mistral and Mixtral as GGUF files describe them (`general.architecture =
//! "llama"`). Follows llama.cpp's src/models/llama.cpp graph step by step:
//!
//! ```text
//! x = token_embd[tokens]
//! for each layer:
//!     h = rmsnorm(x) · attn_norm
//!     q, k, v = Wq h, Wk h, Wv h            (grouped-query: fewer k/v heads)
//!     q, k = rope(q), rope(k)               (NORMAL pairing, llama3 factors, YaRN)
//!     x += Wo attention(q, cache k, cache v)
//!     h = rmsnorm(x) · ffn_norm
//!     x += Wdown (silu(Wgate h) * Wup h)    (or the top-k mixture of experts)
//! logits = Woutput (rmsnorm(x) · output_norm)   (Woutput tied to token_embd if absent)
//! ```
//!
//! Shapes are written ggml-style, row length first: `(n_embd, n_vocab)` is
//! `n_vocab` rows of `n_embd`.
//!
//! Sliding window: llama.cpp ignores `llama.attention.sliding_window` for this
//! architecture; hearth applies it when the file sets it (Mistral v0.1's 4096),
//! which only changes results for sequences longer than the window.

use gguf::GgufModel;

use super::block::{self, Act, FfnParts, Finish, LayerAttn, Parts, Weights};
use super::common::{self, Decoder, Dims, Loader, Out, Step};
use super::moe::Gating;
use crate::ModelError;
use crate::loader::{Hparams, Tensor, config};
use crate::ops::rope::{Rope, RopeMode};

/// Tokens processed together in one pass through the layers; longer inputs are
/// split. Bounds the activation buffers; weights are read once per batch.
pub const N_BATCH: usize = 256;

/// Hyper-parameters, from the `llama.*` metadata keys.
#[derive(Clone, Debug)]
pub struct Config {
    /// Shared sizes (`n_ff` per expert for MoE).
    pub dims: Dims,
    /// Experts per MoE layer (`llama.expert_count`); 0 for a dense model.
    pub n_expert: usize,
    /// Experts each token is routed to (`llama.expert_used_count`).
    pub n_expert_used: usize,
    /// RoPE parameters after applying the scaling keys (NORMAL pairing).
    pub rope: Rope,
    /// `llama.attention.sliding_window`, when set and positive.
    pub window: Option<usize>,
}

impl Config {
    /// Reads the hyper-parameters the way llama.cpp's `llama_model::load_hparams`
    /// does for this architecture.
    pub fn from_metadata(gguf: &GgufModel) -> Result<Config, ModelError> {
        let dims = Dims::from_metadata(gguf, "llama")?;
        let hp = Hparams::new(gguf.metadata(), "llama");
        // llama.cpp's graph asserts n_rot == n_embd_head.
        if dims.n_rot != dims.head_dim {
            return Err(config(
                &hp.key("rope.dimension_count"),
                &format!("{} must equal the head size {}", dims.n_rot, dims.head_dim),
            ));
        }
        let (n_expert, n_expert_used) = common::experts(&hp)?;
        Ok(Config {
            rope: common::rope_from_hparams(&hp, RopeMode::Normal, dims.n_rot, dims.n_ctx_train)?,
            window: hp.opt_count("attention.sliding_window")?.filter(|&w| w > 0),
            n_expert,
            n_expert_used,
            dims,
        })
    }
}

/// The llama architecture: its config and weights.
#[derive(Debug)]
pub struct Llama {
    /// Hyper-parameters.
    pub config: Config,
    weights: Weights,
    /// (head_dim / 2) llama3-style RoPE frequency factors (`rope_freqs.weight`).
    rope_freqs: Option<Vec<f32>>,
}

impl Llama {
    /// Reads the config and checks every tensor.
    pub fn load(gguf: &GgufModel) -> Result<Llama, ModelError> {
        let config = Config::from_metadata(gguf)?;
        let d = &config.dims;
        let ffn = match config.n_expert {
            0 => FfnParts::Gated,
            n_expert => FfnParts::Moe {
                n_expert,
                n_used: config.n_expert_used,
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
        let rope_freqs = t.opt_vector("rope_freqs.weight", d.head_dim / 2)?;
        Ok(Llama {
            config,
            weights,
            rope_freqs,
        })
    }
}

impl Decoder for Llama {
    fn dims(&self) -> &Dims {
        &self.config.dims
    }

    fn n_batch(&self) -> usize {
        N_BATCH
    }

    fn experts(&self) -> Option<(usize, usize)> {
        let c = &self.config;
        (c.n_expert > 0).then_some((c.n_expert, c.n_expert_used))
    }

    fn matrices(&self) -> Vec<&Tensor> {
        self.weights.matrices()
    }

    fn rope(&self, _layer: usize, _n_ctx: usize) -> Option<(Rope, Option<Vec<f32>>)> {
        Some((self.config.rope.clone(), self.rope_freqs.clone()))
    }

    fn forward_batch(
        &self,
        s: &mut Step<'_, '_>,
        tokens: &[u32],
        out: Option<Out<'_>>,
    ) -> Result<(), ModelError> {
        let c = &self.config;
        let (d, w, n) = (&c.dims, &self.weights, tokens.len());
        let mut at = LayerAttn::plain(d, &c.rope);
        at.shape.window = c.window;
        let factors = |_| self.rope_freqs.as_deref();
        at.rope_factors = &factors;

        w.embed(s, tokens, 1.0)?;
        for (il, layer) in w.layers.iter().enumerate() {
            block::sequential_layer(s, il, n, layer, d, &at, Act::Silu)?;
        }
        w.output(s, d, Finish::None, out)
    }
}
