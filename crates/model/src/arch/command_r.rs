//! The `command-r` architecture: Cohere's Command R (35B) as GGUF files
//! describe it, and the Cohere family's decoder ([`Cohere`]), which cohere2
//! configures too. Follows
//! llama.cpp's src/models/command-r.cpp: parallel blocks (attention and FFN
//! read the same normed input), LayerNorms without bias, the output head
//! tied to the embeddings, and the logits scaled by `logit_scale`:
//!
//! ```text
//! x = token_embd[tokens]
//! for each layer:
//!     h = layernorm(x) · attn_norm
//!     q, k, v = Wq h, Wk h, Wv h
//!     q, k = rope(q), rope(k)                       (NORMAL pairing)
//!     x = (x + Wdown (silu(Wgate h) * Wup h)) + Wo attention(q, cache k, cache v)
//! logits = logit_scale · token_embd (layernorm(x) · output_norm)
//! ```
//!
//! The norms' epsilon is `attention.layer_norm_epsilon`. Command R+ (64 layers
//! and more) adds per-head q/k LayerNorms with a weight row per head, which
//! llama.cpp reads by the layer count; hearth refuses such a file with a
//! config error rather than run it without them.

use gguf::GgufModel;

use super::block::{self, Act, Finish, LayerAttn, NormKind, Parts, Weights};
use super::common::{Decoder, Dims, Loader, Out, Step};
use super::standard::BasicConfig;
use crate::ModelError;
use crate::loader::{Hparams, Tensor, config};
use crate::ops::rope::{Rope, RopeMode};

/// Hyper-parameters of a Cohere model.
#[derive(Clone, Debug)]
pub struct Config {
    /// Shared sizes and the RoPE (NORMAL pairing).
    pub base: BasicConfig,
    /// `logit_scale`: the logits' multiplier.
    pub logit_scale: Option<f32>,
    /// Per layer: whether it slides over `window` positions (cohere2: three
    /// of every four layers); none does in command-r.
    pub swa_layers: Vec<bool>,
    /// Positions a sliding layer sees.
    pub window: usize,
    /// Whether the global (not sliding) layers rotate q and k: command-r's
    /// do, cohere2's have no positions at all.
    pub global_rope: bool,
}

impl Config {
    /// Reads the keys of `{arch}.`: the shared sizes,
    /// `attention.layer_norm_epsilon` and `logit_scale`. Wo is square, so
    /// `n_head * head_dim` must be `n_embd`.
    pub fn from_metadata(gguf: &GgufModel, arch: &str) -> Result<Config, ModelError> {
        let mut base = BasicConfig::from_metadata(gguf, arch, RopeMode::Normal)?;
        let hp = Hparams::new(gguf.metadata(), arch);
        base.layer_norm_eps(&hp)?;
        let d = &base.dims;
        if d.q_dim() != d.n_embd {
            return Err(config(
                &hp.key("attention.key_length"),
                &format!(
                    "{} heads of {} must make the embedding width {}",
                    d.n_head, d.head_dim, d.n_embd
                ),
            ));
        }
        Ok(Config {
            logit_scale: hp.opt_f32("logit_scale")?.filter(|&s| s != 0.0),
            swa_layers: vec![false; d.n_layer],
            window: 0,
            global_rope: true,
            base,
        })
    }
}

/// Reads Command R's config and checks every tensor.
pub fn load(gguf: &GgufModel) -> Result<Cohere, ModelError> {
    let config = Config::from_metadata(gguf, "command-r")?;
    let n_layer = config.base.dims.n_layer;
    if n_layer >= 64 {
        return Err(crate::loader::config(
            "command-r.block_count",
            &format!(
                "{n_layer} layers: a Command R+ file, whose per-head q/k LayerNorms hearth does not run"
            ),
        ));
    }
    Cohere::load(gguf, config)
}

/// A Cohere model: its config and weights.
#[derive(Debug)]
pub struct Cohere {
    /// Hyper-parameters.
    pub config: Config,
    weights: Weights,
}

impl Cohere {
    /// Finds and checks the tensors of a Cohere model.
    pub fn load(gguf: &GgufModel, config: Config) -> Result<Cohere, ModelError> {
        let parts = Parts {
            norm: NormKind::Layer,
            parallel: true,
            tied_output: true,
            ..Parts::PLAIN
        };
        let weights = Weights::load(&Loader::new(gguf), &config.base.dims, &parts)?;
        Ok(Cohere { config, weights })
    }

    /// Layer `il`'s RoPE (if any) and window (if it slides).
    fn layer_rope(&self, il: usize) -> (Option<&Rope>, Option<usize>) {
        let c = &self.config;
        if c.swa_layers[il] {
            (Some(&c.base.rope), Some(c.window))
        } else {
            (c.global_rope.then_some(&c.base.rope), None)
        }
    }
}

impl Decoder for Cohere {
    fn dims(&self) -> &Dims {
        &self.config.base.dims
    }

    fn matrices(&self) -> Vec<&Tensor> {
        self.weights.matrices()
    }

    fn rope(&self, layer: usize, _n_ctx: usize) -> Option<(Rope, Option<Vec<f32>>)> {
        let (rope, _) = self.layer_rope(layer);
        rope.map(|r| (r.clone(), None))
    }

    fn forward_batch(
        &self,
        s: &mut Step<'_, '_>,
        tokens: &[u32],
        out: Option<Out<'_>>,
    ) -> Result<(), ModelError> {
        let c = &self.config;
        let (d, w, n) = (&c.base.dims, &self.weights, tokens.len());
        w.embed(s, tokens, 1.0)?;
        for (il, layer) in w.layers.iter().enumerate() {
            let (rope, window) = self.layer_rope(il);
            let mut at = LayerAttn::plain(d, &c.base.rope);
            at.rope = rope;
            at.shape.window = window;
            block::parallel_layer(s, il, n, layer, d, &at, Act::Silu)?;
        }
        let finish = c.logit_scale.map_or(Finish::None, Finish::Scale);
        w.output(s, d, finish, out)
    }
}
