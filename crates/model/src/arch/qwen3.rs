//! The `qwen3` architecture: Qwen1.5, Qwen3 and Qwen3.5 as GGUF files describe
//! them. Follows llama.cpp's src/models/qwen3.cpp step by step:
//!
//! ```text
//! x = token_embd[tokens]
//! for each layer:
//!     h = rmsnorm(x) · attn_norm
//!     q, k, v = Wq h + bq, Wk h + bk, Wv h + bv     (biases on q, k and v)
//!     q, k = rope(q), rope(k)                       (NEOX pairing)
//!     x += Wo attention(q, cache k, cache v)
//!     h = rmsnorm(x) · ffn_norm
//!     x += Wdown (silu(Wgate h) * Wup h)
//! logits = Woutput (rmsnorm(x) · output_norm) (+ output.bias)
//! ```
//!
//! `qwen3.attention.sliding_window` is ignored, as llama.cpp does (Qwen3 ships
//! with `use_sliding_window = false`).

use gguf::GgufModel;

use super::common::{
    self, Decoder, Dims, Linear, Loader, Out, Step, embed, norm_rows, norm_rows_in_place,
    output_head, project, rope_qk, self_attention,
};
use crate::ModelError;
use crate::loader::{Hparams, Tensor};
use crate::ops::attention::AttentionShape;
use crate::ops::rope::{Rope, RopeMode};
use crate::ops::{add_assign, swiglu};

/// Hyper-parameters, from the `qwen3.*` metadata keys.
#[derive(Clone, Debug)]
pub struct Config {
    /// Shared sizes.
    pub dims: Dims,
    /// RoPE parameters after applying the scaling keys (NEOX pairing).
    pub rope: Rope,
}

impl Config {
    /// Reads the hyper-parameters as llama.cpp's `llama_model_qwen3` does.
    pub fn from_metadata(gguf: &GgufModel) -> Result<Config, ModelError> {
        let dims = Dims::from_metadata(gguf, "qwen3")?;
        let hp = Hparams::new(gguf.metadata(), "qwen3");
        let rope = common::rope_from_hparams(&hp, RopeMode::Neox, dims.n_rot, dims.n_ctx_train)?;
        Ok(Config { dims, rope })
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
    /// (head_dim) RMS norm weights of each query head.
    q_norm: Vec<f32>,
    /// (head_dim) RMS norm weights of each key head.
    k_norm: Vec<f32>,
    /// (n_head * head_dim, n_embd)
    o: Linear,
    /// (n_embd)
    ffn_norm: Vec<f32>,
    /// (n_embd, n_ff)
    gate: Linear,
    /// (n_embd, n_ff)
    up: Linear,
    /// (n_ff, n_embd)
    down: Linear,
}

/// Views of every tensor (matrices stay in the memory map; the small vectors are
/// copied out as f32 at load).
#[derive(Debug)]
struct Weights {
    /// (n_embd, n_vocab)
    token_embd: Tensor,
    layers: Vec<Layer>,
    /// (n_embd)
    output_norm: Vec<f32>,
    /// (n_embd, n_vocab), `token_embd` when tied.
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
                    q_norm: t.vector(&format!("{p}.attn_q_norm.weight"), d.head_dim)?,
                    k_norm: t.vector(&format!("{p}.attn_k_norm.weight"), d.head_dim)?,
                    o: t.linear(&format!("{p}.attn_output"), qd, e)?,
                    ffn_norm: t.vector(&format!("{p}.ffn_norm.weight"), e)?,
                    gate: t.linear(&format!("{p}.ffn_gate"), e, f)?,
                    up: t.linear(&format!("{p}.ffn_up"), e, f)?,
                    down: t.linear(&format!("{p}.ffn_down"), f, e)?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Weights {
            output: t.output(&token_embd, d)?,
            output_norm: t.vector("output_norm.weight", e)?,
            token_embd,
            layers,
        })
    }
}

/// The qwen3 architecture: its config and weights.
#[derive(Debug)]
pub struct Qwen3 {
    /// Hyper-parameters.
    pub config: Config,
    weights: Weights,
}

impl Qwen3 {
    /// Reads the config and checks every tensor.
    pub fn load(gguf: &GgufModel) -> Result<Qwen3, ModelError> {
        let config = Config::from_metadata(gguf)?;
        let weights = Weights::load(gguf, &config.dims)?;
        Ok(Qwen3 { config, weights })
    }
}

impl Decoder for Qwen3 {
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

    fn rope(&self, _layer: usize, _n_ctx: usize) -> (Rope, Option<Vec<f32>>) {
        (self.config.rope.clone(), None)
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
        let shape = AttentionShape {
            n_head: d.n_head,
            n_head_kv: d.n_head_kv,
            head_dim: d.head_dim,
            kq_scale: 1.0 / (d.head_dim as f32).sqrt(),
            window: None,
            softcap: None,
        };
        let (gguf, pool) = (s.gguf, s.pool);

        embed(gguf, &w.token_embd, tokens, 1.0, &mut s.buf.x[..n * e])?;
        for (il, layer) in w.layers.iter().enumerate() {
            // Attention block: h = rmsnorm(x) · attn_norm; q, k, v; per-head norms.
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
            norm_rows_in_place(&mut b.q[..n * qd], &layer.q_norm, d.norm_eps, &mut b.head);
            norm_rows_in_place(&mut b.k[..n * kvd], &layer.k_norm, d.norm_eps, &mut b.head);
            rope_qk(
                s.seqs,
                &c.rope,
                &|_| None,
                d.head_dim,
                &mut b.q[..n * qd],
                &mut b.k[..n * kvd],
                &mut b.rope,
            );
            self_attention(s, il, &shape);
            let b = &mut *s.buf;
            project(
                gguf,
                pool,
                &layer.o,
                &b.attn[..n * qd],
                &mut b.act,
                &mut b.proj[..n * e],
            )?;
            add_assign(&mut b.x[..n * e], &b.proj[..n * e]);

            // Feed-forward block: x += Wdown (silu(Wgate h) * Wup h).
            norm_rows(
                &mut b.h[..n * e],
                &b.x[..n * e],
                &layer.ffn_norm,
                d.norm_eps,
            );
            let h = &b.h[..n * e];
            project(gguf, pool, &layer.gate, h, &mut b.act, &mut b.gate[..nf])?;
            project(gguf, pool, &layer.up, h, &mut b.act, &mut b.up[..nf])?;
            swiglu(&mut b.gate[..nf], &b.up[..nf]);
            project(
                gguf,
                pool,
                &layer.down,
                &b.gate[..nf],
                &mut b.act,
                &mut b.proj[..n * e],
            )?;
            add_assign(&mut b.x[..n * e], &b.proj[..n * e]);
        }

        // Output head, only for the rows asked for.
        match out {
            Some(out) => output_head(s, d, &w.output_norm, &w.output, None, out),
            None => Ok(()),
        }
    }
}
