//! The `gemma` architecture (Gemma 1: 2B, 7B, CodeGemma) and the Gemma
//! family's decoder ([`Gemma`]), which gemma2 and gemma3 configure too: the
//! shared block with GELU-gated FFNs, embeddings scaled by `sqrt(n_embd)`, q
//! scaled before attention instead of the scores, and per layer either a
//! sliding window with its own RoPE or global attention. Follows llama.cpp's
//! src/models/gemma.cpp, gemma2.cpp and gemma3.cpp:
//!
//! ```text
//! x = token_embd[tokens] · sqrt(n_embd)
//! for each layer (sliding or global, as the config says):
//!     h = rmsnorm(x) · attn_norm
//!     q, k, v = Wq h, Wk h, Wv h
//!     q, k = rmsnorm(q) · q_norm, rmsnorm(k) · k_norm     (per head, gemma3)
//!     q, k = rope(q), rope(k)                             (NEOX pairing)
//!     a = attention(q · attention_scale, cache k, cache v)
//!             (scores soft-capped: cap · tanh(s / cap), gemma2)
//!     x += rmsnorm(Wo a) · attn_post_norm
//!     h = rmsnorm(x) · ffn_norm
//!     x += rmsnorm(Wdown (gelu(Wgate h) * Wup h)) · ffn_post_norm
//! logits = Woutput (rmsnorm(x) · output_norm), soft-capped if the config says so
//! ```
//!
//! Gemma's RMS norm multiplies by `1 + weight`; the converter stores `1 + weight`,
//! so at run time it is the plain RMS norm.
//!
//! Gemma 1 is this without any of the parenthesised parts and without post
//! norms: every layer global, q scaled by `1/sqrt(head_dim)`, no soft-caps,
//! the output head always the token embeddings (llama.cpp reads no
//! `output.weight` for it).

use gguf::GgufModel;

use super::block::{self, Act, Finish, LayerAttn, Parts, Weights};
use super::common::{Decoder, Dims, Loader, Out, Step};
use super::standard::BasicConfig;
use crate::ModelError;
use crate::loader::Tensor;
use crate::ops::attention::AttentionShape;
use crate::ops::rope::{Rope, RopeMode};

/// Hyper-parameters of a Gemma model.
#[derive(Clone, Debug)]
pub struct Config {
    /// Shared sizes.
    pub dims: Dims,
    /// RoPE of the global layers (NEOX pairing).
    pub rope: Rope,
    /// RoPE of the sliding-window layers.
    pub rope_swa: Rope,
    /// Positions a sliding-window layer sees.
    pub window: usize,
    /// Per layer: whether it uses the sliding window.
    pub swa_layers: Vec<bool>,
    /// Multiplier of q before attention: `1/sqrt(head_dim)`, or for the
    /// largest models `1/sqrt(n_embd / n_head)`, after gemma_pytorch's
    /// `query_pre_attn_scalar` as llama.cpp hard-codes it.
    pub attention_scale: f32,
    /// `attn_logit_softcapping` (gemma2).
    pub attn_softcap: Option<f32>,
    /// `final_logit_softcapping`.
    pub final_softcap: Option<f32>,
}

/// Reads Gemma 1's hyper-parameters as llama.cpp's `llama_model_gemma` does
/// and checks every tensor.
pub fn load(gguf: &GgufModel) -> Result<Gemma, ModelError> {
    let BasicConfig { dims, rope } = BasicConfig::from_metadata(gguf, "gemma", RopeMode::Neox)?;
    let config = Config {
        swa_layers: vec![false; dims.n_layer],
        window: 0,
        attention_scale: 1.0 / (dims.head_dim as f32).sqrt(),
        attn_softcap: None,
        final_softcap: None,
        rope_swa: rope.clone(),
        rope,
        dims,
    };
    let parts = Parts {
        tied_output: true,
        ..Parts::PLAIN
    };
    Gemma::load(gguf, config, &parts)
}

/// A Gemma model: its config and weights.
#[derive(Debug)]
pub struct Gemma {
    /// Hyper-parameters.
    pub config: Config,
    weights: Weights,
}

impl Gemma {
    /// Finds and checks the tensors `parts` names for `config`.
    pub fn load(gguf: &GgufModel, config: Config, parts: &Parts) -> Result<Gemma, ModelError> {
        let weights = Weights::load(&Loader::new(gguf), &config.dims, parts)?;
        Ok(Gemma { config, weights })
    }

    /// Layer `il`'s RoPE and window.
    fn layer_rope(&self, il: usize) -> (&Rope, Option<usize>) {
        let c = &self.config;
        if c.swa_layers[il] {
            (&c.rope_swa, Some(c.window))
        } else {
            (&c.rope, None)
        }
    }
}

impl Decoder for Gemma {
    fn dims(&self) -> &Dims {
        &self.config.dims
    }

    fn matrices(&self) -> Vec<&Tensor> {
        self.weights.matrices()
    }

    fn rope(&self, layer: usize, _n_ctx: usize) -> Option<(Rope, Option<Vec<f32>>)> {
        Some((self.layer_rope(layer).0.clone(), None))
    }

    fn forward_batch(
        &self,
        s: &mut Step<'_, '_>,
        tokens: &[u32],
        out: Option<Out<'_>>,
    ) -> Result<(), ModelError> {
        let c = &self.config;
        let (d, w, n) = (&c.dims, &self.weights, tokens.len());

        w.embed(s, tokens, (d.n_embd as f32).sqrt())?;
        for (il, layer) in w.layers.iter().enumerate() {
            let (rope, window) = self.layer_rope(il);
            let at = LayerAttn {
                rope: Some(rope),
                rope_factors: &|_| None,
                shape: AttentionShape {
                    n_head: d.n_head,
                    n_head_kv: d.n_head_kv,
                    head_dim: d.head_dim,
                    // q is scaled before attention instead (ggml_scale on Qcur).
                    kq_scale: 1.0,
                    window,
                    softcap: c.attn_softcap,
                },
                q_scale: Some(c.attention_scale),
                temperature: None,
                alibi: None,
            };
            block::sequential_layer(s, il, n, layer, d, &at, Act::Gelu)?;
        }
        let finish = c.final_softcap.map_or(Finish::None, Finish::Softcap);
        w.output(s, d, finish, out)
    }
}
