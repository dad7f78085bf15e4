//! The `gemma2` architecture: Gemma 2 as GGUF files describe it. Follows
//! llama.cpp's src/models/gemma2.cpp step by step:
//!
//! ```text
//! x = token_embd[tokens] · sqrt(n_embd)
//! for each layer (even layers slide over a window, odd layers see everything):
//!     h = rmsnorm(x) · attn_norm
//!     q, k, v = Wq h, Wk h, Wv h
//!     q, k = rope(q), rope(k)                      (NEOX pairing)
//!     a = attention(q · attention_scale, cache k, cache v)
//!             with scores soft-capped: cap · tanh(s / cap)
//!     x += rmsnorm(Wo a) · attn_post_norm
//!     h = rmsnorm(x) · ffn_norm
//!     x += rmsnorm(Wdown (gelu(Wgate h) * Wup h)) · ffn_post_norm
//! logits = final_cap · tanh(token_embd (rmsnorm(x) · output_norm) / final_cap)
//! ```
//!
//! Gemma's RMS norm multiplies by `1 + weight`; the converter stores `1 + weight`,
//! so at run time it is the plain RMS norm. The output head is always the token
//! embedding matrix (llama.cpp ignores an `output.weight`).

use gguf::GgufModel;

use super::common::{
    self, Decoder, Dims, Linear, Loader, Out, Step, embed, norm_rows, output_head, project,
    rope_qk, self_attention,
};
use crate::ModelError;
use crate::loader::{Hparams, Tensor};
use crate::ops::attention::AttentionShape;
use crate::ops::rope::{Rope, RopeMode};
use crate::ops::{add_assign, geglu};

/// Hyper-parameters, from the `gemma2.*` metadata keys.
#[derive(Clone, Debug)]
pub struct Config {
    /// Shared sizes.
    pub dims: Dims,
    /// RoPE of the global layers (NEOX pairing).
    pub rope: Rope,
    /// RoPE of the sliding-window layers: `rope.freq_base_swa` if set, else
    /// the global base.
    pub rope_swa: Rope,
    /// `attention.sliding_window` (default 4096).
    pub window: usize,
    /// Per layer: whether it uses the sliding window
    /// (`attention.sliding_window_pattern`, default every other layer from 0).
    pub swa_layers: Vec<bool>,
    /// Multiplier of q before attention: `1/sqrt(head_dim)`, or
    /// `1/sqrt(n_embd / n_head)` for the 27B model (46 layers), after
    /// gemma_pytorch's `query_pre_attn_scalar` as llama.cpp hard-codes it.
    pub attention_scale: f32,
    /// `attn_logit_softcapping` (default 50).
    pub attn_softcap: f32,
    /// `final_logit_softcapping` (default 30).
    pub final_softcap: f32,
}

impl Config {
    /// Reads the hyper-parameters as llama.cpp's `llama_model_gemma2` does.
    pub fn from_metadata(gguf: &GgufModel) -> Result<Config, ModelError> {
        let dims = Dims::from_metadata(gguf, "gemma2")?;
        let md = gguf.metadata();
        let hp = Hparams::new(md, "gemma2");
        let rope = common::rope_from_hparams(&hp, RopeMode::Neox, dims.n_rot, dims.n_ctx_train)?;
        let rope_swa = Rope {
            freq_base: hp.opt_f32("rope.freq_base_swa")?.unwrap_or(rope.freq_base),
            ..rope.clone()
        };
        let attention_scale = if dims.n_layer == 46 {
            1.0 / ((dims.n_embd / dims.n_head) as f32).sqrt()
        } else {
            1.0 / (dims.head_dim as f32).sqrt()
        };
        Ok(Config {
            swa_layers: common::swa_layers(md, &hp, dims.n_layer, 2)?,
            window: hp.opt_count("attention.sliding_window")?.unwrap_or(4096),
            attn_softcap: hp.opt_f32("attn_logit_softcapping")?.unwrap_or(50.0),
            final_softcap: hp.opt_f32("final_logit_softcapping")?.unwrap_or(30.0),
            attention_scale,
            rope,
            rope_swa,
            dims,
        })
    }
}

/// One transformer block's weights.
#[derive(Debug)]
struct Layer {
    /// (n_embd)
    attn_norm: Vec<f32>,
    /// (n_embd, n_head * head_dim)
    q: Linear,
    /// (n_embd, n_head_kv * head_dim)
    k: Linear,
    /// (n_embd, n_head_kv * head_dim)
    v: Linear,
    /// (n_head * head_dim, n_embd)
    o: Linear,
    /// (n_embd) norm of the attention output before the residual add.
    attn_post_norm: Vec<f32>,
    /// (n_embd)
    ffn_norm: Vec<f32>,
    /// (n_embd, n_ff)
    gate: Linear,
    /// (n_embd, n_ff)
    up: Linear,
    /// (n_ff, n_embd)
    down: Linear,
    /// (n_embd) norm of the feed-forward output before the residual add.
    ffn_post_norm: Vec<f32>,
}

/// Views of every tensor (matrices stay in the memory map; the small vectors are
/// copied out as f32 at load).
#[derive(Debug)]
struct Weights {
    /// (n_embd, n_vocab), also the output head.
    token_embd: Tensor,
    layers: Vec<Layer>,
    /// (n_embd)
    output_norm: Vec<f32>,
    /// `token_embd` as a projection.
    output: Linear,
}

impl Weights {
    fn load(gguf: &GgufModel, d: &Dims) -> Result<Weights, ModelError> {
        let t = Loader::new(gguf);
        let (e, f, qd, kvd) = (d.n_embd, d.n_ff, d.q_dim(), d.kv_dim());
        let token_embd = t.matrix("token_embd.weight", e, d.n_vocab)?;
        let layers = (0..d.n_layer)
            .map(|i| {
                let p = format!("blk.{i}");
                Ok(Layer {
                    attn_norm: t.vector(&format!("{p}.attn_norm.weight"), e)?,
                    q: t.linear(&format!("{p}.attn_q"), e, qd)?,
                    k: t.linear(&format!("{p}.attn_k"), e, kvd)?,
                    v: t.linear(&format!("{p}.attn_v"), e, kvd)?,
                    o: t.linear(&format!("{p}.attn_output"), qd, e)?,
                    attn_post_norm: t.vector(&format!("{p}.post_attention_norm.weight"), e)?,
                    ffn_norm: t.vector(&format!("{p}.ffn_norm.weight"), e)?,
                    gate: t.linear(&format!("{p}.ffn_gate"), e, f)?,
                    up: t.linear(&format!("{p}.ffn_up"), e, f)?,
                    down: t.linear(&format!("{p}.ffn_down"), f, e)?,
                    ffn_post_norm: t.vector(&format!("{p}.post_ffw_norm.weight"), e)?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Weights {
            output: Linear {
                w: token_embd.clone(),
                b: None,
            },
            output_norm: t.vector("output_norm.weight", e)?,
            token_embd,
            layers,
        })
    }
}

/// The gemma2 architecture: its config and weights.
#[derive(Debug)]
pub struct Gemma2 {
    /// Hyper-parameters.
    pub config: Config,
    weights: Weights,
}

impl Gemma2 {
    /// Reads the config and checks every tensor.
    pub fn load(gguf: &GgufModel) -> Result<Gemma2, ModelError> {
        let config = Config::from_metadata(gguf)?;
        let weights = Weights::load(gguf, &config.dims)?;
        Ok(Gemma2 { config, weights })
    }
}

impl Decoder for Gemma2 {
    fn dims(&self) -> &Dims {
        &self.config.dims
    }

    fn matrices(&self) -> Vec<&Tensor> {
        let mut all = vec![&self.weights.output.w];
        for l in &self.weights.layers {
            all.extend([
                &l.q.w, &l.k.w, &l.v.w, &l.o.w, &l.gate.w, &l.up.w, &l.down.w,
            ]);
        }
        all
    }

    fn rope(&self, layer: usize, _n_ctx: usize) -> (Rope, Option<Vec<f32>>) {
        let c = &self.config;
        let rope = if c.swa_layers[layer] {
            &c.rope_swa
        } else {
            &c.rope
        };
        (rope.clone(), None)
    }

    fn forward_batch(
        &self,
        s: &mut Step<'_, '_>,
        tokens: &[u32],
        out: Option<Out<'_>>,
    ) -> Result<(), ModelError> {
        let c = &self.config;
        let d = &c.dims;
        let w = &self.weights;
        let n = tokens.len();
        let (e, qd, kvd, nf) = (d.n_embd, d.q_dim(), d.kv_dim(), n * d.n_ff);
        let (gguf, pool) = (s.gguf, s.pool);

        // Embeddings scaled by sqrt(n_embd).
        let scale = (e as f32).sqrt();
        embed(gguf, &w.token_embd, tokens, scale, &mut s.buf.x[..n * e])?;
        for (il, layer) in w.layers.iter().enumerate() {
            let swa = c.swa_layers[il];
            let (rope, window) = if swa {
                (&c.rope_swa, Some(c.window))
            } else {
                (&c.rope, None)
            };
            let shape = AttentionShape {
                n_head: d.n_head,
                n_head_kv: d.n_head_kv,
                head_dim: d.head_dim,
                // q is scaled before attention instead (ggml_scale on Qcur).
                kq_scale: 1.0,
                window,
                softcap: Some(c.attn_softcap),
            };

            // Attention block: h = rmsnorm(x) · attn_norm; q, k, v; RoPE.
            let b = &mut *s.buf;
            norm_rows(
                &mut b.h[..n * e],
                &b.x[..n * e],
                &layer.attn_norm,
                d.norm_eps,
            );
            let h = &b.h[..n * e];
            project(gguf, pool, &layer.q, h, &mut b.act, &mut b.q[..n * qd])?;
            project(gguf, pool, &layer.k, h, &mut b.act, &mut b.k[..n * kvd])?;
            project(gguf, pool, &layer.v, h, &mut b.act, &mut b.v[..n * kvd])?;
            rope_qk(
                s.seqs,
                rope,
                &|_| None,
                d.head_dim,
                &mut b.q[..n * qd],
                &mut b.k[..n * kvd],
                &mut b.rope,
            );
            b.q[..n * qd]
                .iter_mut()
                .for_each(|v| *v *= c.attention_scale);
            self_attention(s, il, &shape);
            // x += rmsnorm(Wo a) · attn_post_norm
            let b = &mut *s.buf;
            project(
                gguf,
                pool,
                &layer.o,
                &b.attn[..n * qd],
                &mut b.act,
                &mut b.proj[..n * e],
            )?;
            norm_rows(
                &mut b.h[..n * e],
                &b.proj[..n * e],
                &layer.attn_post_norm,
                d.norm_eps,
            );
            add_assign(&mut b.x[..n * e], &b.h[..n * e]);

            // Feed-forward block: x += rmsnorm(Wdown (gelu(Wgate h) * Wup h)) · ffn_post_norm.
            norm_rows(
                &mut b.h[..n * e],
                &b.x[..n * e],
                &layer.ffn_norm,
                d.norm_eps,
            );
            let h = &b.h[..n * e];
            project(gguf, pool, &layer.gate, h, &mut b.act, &mut b.gate[..nf])?;
            project(gguf, pool, &layer.up, h, &mut b.act, &mut b.up[..nf])?;
            geglu(&mut b.gate[..nf], &b.up[..nf]);
            project(
                gguf,
                pool,
                &layer.down,
                &b.gate[..nf],
                &mut b.act,
                &mut b.proj[..n * e],
            )?;
            norm_rows(
                &mut b.h[..n * e],
                &b.proj[..n * e],
                &layer.ffn_post_norm,
                d.norm_eps,
            );
            add_assign(&mut b.x[..n * e], &b.h[..n * e]);
        }

        // Output head with the final soft-cap, only for the rows asked for.
        match out {
            Some(out) => output_head(s, d, &w.output_norm, &w.output, Some(c.final_softcap), out),
            None => Ok(()),
        }
    }
}
