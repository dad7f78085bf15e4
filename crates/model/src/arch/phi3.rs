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

use super::common::{
    self, Decoder, Dims, Linear, Loader, Out, Step, embed, norm_rows, output_head, project,
    rope_qk, self_attention,
};
use crate::ModelError;
use crate::loader::{Hparams, Tensor};
use crate::ops::attention::AttentionShape;
use crate::ops::rope::{Rope, RopeMode};
use crate::ops::{add_assign, swiglu};

/// Hyper-parameters, from the `phi3.*` metadata keys.
#[derive(Clone, Debug)]
pub struct Config {
    /// Shared sizes.
    pub dims: Dims,
    /// RoPE parameters after applying the scaling keys (NEOX pairing).
    pub rope: Rope,
}

impl Config {
    /// Reads the hyper-parameters as llama.cpp's `llama_model_phi3` does.
    pub fn from_metadata(gguf: &GgufModel) -> Result<Config, ModelError> {
        let dims = Dims::from_metadata(gguf, "phi3")?;
        let hp = Hparams::new(gguf.metadata(), "phi3");
        let rope = common::rope_from_hparams(&hp, RopeMode::Neox, dims.n_rot, dims.n_ctx_train)?;
        Ok(Config { dims, rope })
    }
}

/// The attention input projections: fused as phi3 files have them, or split.
// One per layer, made once at load: the larger split variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Qkv {
    /// (n_embd, n_head * head_dim + 2 * n_head_kv * head_dim)
    Fused(Linear),
    Split {
        /// (n_embd, n_head * head_dim)
        q: Linear,
        /// (n_embd, n_head_kv * head_dim)
        k: Linear,
        /// (n_embd, n_head_kv * head_dim)
        v: Linear,
    },
}

/// One transformer block's weights.
#[derive(Debug)]
struct Layer {
    /// (n_embd)
    attn_norm: Vec<f32>,
    qkv: Qkv,
    /// (n_head * head_dim, n_embd)
    o: Linear,
    /// (n_embd)
    ffn_norm: Vec<f32>,
    /// (n_embd, 2 * n_ff): gate rows first, then up rows.
    gate_up: Linear,
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
    /// (n_embd, n_vocab), `token_embd` when tied; optional bias (n_vocab).
    output: Linear,
    /// (n_rot / 2) LongRoPE factors for contexts beyond the original length.
    rope_long: Option<Vec<f32>>,
    /// (n_rot / 2) LongRoPE factors for contexts within it.
    rope_short: Option<Vec<f32>>,
}

impl Weights {
    fn load(gguf: &GgufModel, d: &Dims) -> Result<Weights, ModelError> {
        let t = Loader::new(gguf);
        let (e, f, qd, kvd) = (d.n_embd, d.n_ff, d.q_dim(), d.kv_dim());
        let token_embd = t.matrix("token_embd.weight", e, d.n_vocab)?;
        let layers = (0..d.n_layer)
            .map(|i| {
                let p = format!("blk.{i}");
                let fused = format!("{p}.attn_qkv");
                let qkv = if t
                    .opt_matrix(&format!("{fused}.weight"), e, qd + 2 * kvd)?
                    .is_some()
                {
                    Qkv::Fused(t.linear(&fused, e, qd + 2 * kvd)?)
                } else {
                    Qkv::Split {
                        q: t.linear(&format!("{p}.attn_q"), e, qd)?,
                        k: t.linear(&format!("{p}.attn_k"), e, kvd)?,
                        v: t.linear(&format!("{p}.attn_v"), e, kvd)?,
                    }
                };
                Ok(Layer {
                    attn_norm: t.vector(&format!("{p}.attn_norm.weight"), e)?,
                    qkv,
                    o: t.linear(&format!("{p}.attn_output"), qd, e)?,
                    ffn_norm: t.vector(&format!("{p}.ffn_norm.weight"), e)?,
                    gate_up: t.linear(&format!("{p}.ffn_up"), e, 2 * f)?,
                    down: t.linear(&format!("{p}.ffn_down"), f, e)?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Weights {
            output: t.output(&token_embd, d)?,
            output_norm: t.vector("output_norm.weight", e)?,
            rope_long: t.opt_vector("rope_factors_long.weight", d.n_rot / 2)?,
            rope_short: t.opt_vector("rope_factors_short.weight", d.n_rot / 2)?,
            token_embd,
            layers,
        })
    }
}

/// The phi3 architecture: its config and weights.
#[derive(Debug)]
pub struct Phi3 {
    /// Hyper-parameters.
    pub config: Config,
    weights: Weights,
}

impl Phi3 {
    /// Reads the config and checks every tensor.
    pub fn load(gguf: &GgufModel) -> Result<Phi3, ModelError> {
        let config = Config::from_metadata(gguf)?;
        let weights = Weights::load(gguf, &config.dims)?;
        Ok(Phi3 { config, weights })
    }

    /// The LongRoPE factors for a sequence of `n_ctx` positions.
    fn rope_factors(&self, n_ctx: usize) -> Option<&[f32]> {
        let w = &self.weights;
        if n_ctx > self.config.rope.n_ctx_orig {
            w.rope_long.as_deref()
        } else {
            w.rope_short.as_deref()
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
        let mut all = vec![&self.weights.output.w];
        for l in &self.weights.layers {
            match &l.qkv {
                Qkv::Fused(qkv) => all.push(&qkv.w),
                Qkv::Split { q, k, v } => all.extend([&q.w, &k.w, &v.w]),
            }
            all.extend([&l.o.w, &l.gate_up.w, &l.down.w]);
        }
        all
    }

    fn rope(&self, _layer: usize, n_ctx: usize) -> (Rope, Option<Vec<f32>>) {
        (
            self.config.rope.clone(),
            self.rope_factors(n_ctx).map(<[f32]>::to_vec),
        )
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
            // q is scaled before attention instead (ggml_scale on Qcur).
            kq_scale: 1.0,
            window: None,
            softcap: None,
        };
        let q_scale = 1.0 / (d.head_dim as f32).sqrt();
        let (gguf, pool) = (s.gguf, s.pool);

        embed(gguf, &w.token_embd, tokens, 1.0, &mut s.buf.x[..n * e])?;
        for (il, layer) in w.layers.iter().enumerate() {
            // Attention block: h = rmsnorm(x) · attn_norm; q | k | v = Wqkv h.
            let b = &mut *s.buf;
            norm_rows(
                &mut b.h[..n * e],
                &b.x[..n * e],
                &layer.attn_norm,
                d.norm_eps,
            );
            let h = &b.h[..n * e];
            match &layer.qkv {
                Qkv::Fused(qkv) => {
                    let width = qd + 2 * kvd;
                    project(gguf, pool, qkv, h, &mut b.act, &mut b.qkv[..n * width])?;
                    for (t, row) in b.qkv[..n * width].chunks_exact(width).enumerate() {
                        b.q[t * qd..(t + 1) * qd].copy_from_slice(&row[..qd]);
                        b.k[t * kvd..(t + 1) * kvd].copy_from_slice(&row[qd..qd + kvd]);
                        b.v[t * kvd..(t + 1) * kvd].copy_from_slice(&row[qd + kvd..]);
                    }
                }
                Qkv::Split { q, k, v } => {
                    project(gguf, pool, q, h, &mut b.act, &mut b.q[..n * qd])?;
                    project(gguf, pool, k, h, &mut b.act, &mut b.k[..n * kvd])?;
                    project(gguf, pool, v, h, &mut b.act, &mut b.v[..n * kvd])?;
                }
            }
            rope_qk(
                s.seqs,
                &c.rope,
                &|n_ctx| self.rope_factors(n_ctx),
                d.head_dim,
                &mut b.q[..n * qd],
                &mut b.k[..n * kvd],
                &mut b.rope,
            );
            b.q[..n * qd].iter_mut().for_each(|v| *v *= q_scale);
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

            // Feed-forward block: g | u = Wup h; x += Wdown (silu(g) * u).
            norm_rows(
                &mut b.h[..n * e],
                &b.x[..n * e],
                &layer.ffn_norm,
                d.norm_eps,
            );
            let ff = d.n_ff;
            project(
                gguf,
                pool,
                &layer.gate_up,
                &b.h[..n * e],
                &mut b.act,
                &mut b.up[..2 * nf],
            )?;
            for (t, row) in b.up[..2 * nf].chunks_exact(2 * ff).enumerate() {
                let gate = &mut b.gate[t * ff..(t + 1) * ff];
                gate.copy_from_slice(&row[..ff]);
                swiglu(gate, &row[ff..]);
            }
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
