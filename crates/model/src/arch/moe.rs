//! The mixture-of-experts FFN (llama.cpp's `build_moe_ffn`): softmax gating
//! with renormalised weights, which llama, qwen3moe and mistral3 use, or
//! gpt-oss's softmax over the chosen experts' logits, with its biases on the
//! router and every expert projection.

use kernels::matmul::{matmul, matmul_expert};

use super::block::Act;
use super::common::{Dims, Step};
use crate::ModelError;
use crate::loader::Tensor;
use crate::ops::{add_assign, route_top_k, route_top_k_softmax};

/// How the router's logits choose the experts and weight their outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gating {
    /// Softmax over all experts, the top k by probability, their
    /// probabilities renormalised to sum to 1 (Mixtral, Qwen3 MoE).
    Softmax,
    /// The top k logits, weighted by the softmax over those k alone
    /// (gpt-oss: llama.cpp's `LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX_WEIGHT`).
    SoftmaxOfTopK,
}

/// A mixture-of-experts FFN: each token's top-k experts by router logit,
/// weighted as `gating` says.
#[derive(Debug)]
pub struct Moe {
    /// (n_embd, n_expert) router.
    pub router: Tensor,
    /// (n_expert) router bias.
    pub router_b: Option<Vec<f32>>,
    /// (n_embd, n_ff, n_expert)
    pub gate: Tensor,
    /// (n_ff, n_expert) biases of the gate projections.
    pub gate_b: Option<Vec<f32>>,
    /// (n_embd, n_ff, n_expert)
    pub up: Tensor,
    /// (n_ff, n_expert)
    pub up_b: Option<Vec<f32>>,
    /// (n_ff, n_embd, n_expert)
    pub down: Tensor,
    /// (n_embd, n_expert)
    pub down_b: Option<Vec<f32>>,
    /// Experts each token is routed to.
    pub n_used: usize,
    /// How the experts are chosen and weighted.
    pub gating: Gating,
}

/// Adds expert `expert`'s `width` values of `bias` (one row per expert) to
/// each `width`-wide row of `rows` (ggml_add_id), if there is a bias.
fn add_expert_bias(rows: &mut [f32], width: usize, bias: Option<&[f32]>, expert: usize) {
    if let Some(b) = bias {
        let b = &b[expert * width..(expert + 1) * width];
        for row in rows.chunks_exact_mut(width) {
            add_assign(row, b);
        }
    }
}

impl Moe {
    /// Mixture of experts over `h` into `proj` for `n` rows (llama.cpp's
    /// `build_moe_ffn`): each token's top-k experts run gated FFNs (with
    /// their biases), and their outputs, scaled by the routing weights, are
    /// summed in routing order.
    pub fn forward(
        &self,
        s: &mut Step<'_, '_>,
        n: usize,
        d: &Dims,
        act: Act,
    ) -> Result<(), ModelError> {
        let (gguf, pool) = (s.gguf, s.pool);
        let buf = &mut *s.buf;
        let (e, k, nx) = (d.n_embd, self.n_used, self.router.dims[1] as usize);
        let m = &mut buf.moe;
        let collecting = crate::imatrix::collecting();
        if collecting {
            crate::imatrix::record(&self.router.name, &buf.h[..n * e], e);
        }
        matmul(
            pool,
            &self.router.matrix(gguf),
            &buf.h[..n * e],
            &mut buf.act,
            &mut m.probs[..n * nx],
        )?;
        for t in 0..n {
            let logits = &mut m.probs[t * nx..(t + 1) * nx];
            if let Some(b) = &self.router_b {
                add_assign(logits, b);
            }
            let (experts, weights) = (
                &mut m.experts[t * k..(t + 1) * k],
                &mut m.weights[t * k..(t + 1) * k],
            );
            match self.gating {
                Gating::Softmax => route_top_k(logits, k, true, experts, weights),
                Gating::SoftmaxOfTopK => route_top_k_softmax(logits, k, experts, weights),
            }
        }
        for expert in 0..nx {
            m.rows.clear();
            for t in 0..n {
                for s in 0..k {
                    if m.experts[t * k + s] == expert {
                        m.rows.push((t, s));
                    }
                }
            }
            if m.rows.is_empty() {
                continue;
            }
            let r = m.rows.len();
            for (i, &(t, _)) in m.rows.iter().enumerate() {
                m.gathered[i * e..(i + 1) * e].copy_from_slice(&buf.h[t * e..(t + 1) * e]);
            }
            let nf = r * d.n_ff;
            let x = &m.gathered[..r * e];
            if collecting {
                for w in [&self.gate, &self.up] {
                    crate::imatrix::record_expert(&w.name, expert, nx, x, e);
                }
            }
            matmul_expert(
                pool,
                &self.gate.expert(gguf, expert),
                x,
                &mut buf.act,
                &mut buf.gate[..nf],
            )?;
            matmul_expert(
                pool,
                &self.up.expert(gguf, expert),
                x,
                &mut buf.act,
                &mut buf.up[..nf],
            )?;
            add_expert_bias(&mut buf.gate[..nf], d.n_ff, self.gate_b.as_deref(), expert);
            add_expert_bias(&mut buf.up[..nf], d.n_ff, self.up_b.as_deref(), expert);
            act.glu(&mut buf.gate[..nf], &buf.up[..nf]);
            if collecting {
                crate::imatrix::record_expert(&self.down.name, expert, nx, &buf.gate[..nf], d.n_ff);
            }
            matmul_expert(
                pool,
                &self.down.expert(gguf, expert),
                &buf.gate[..nf],
                &mut buf.act,
                &mut m.out[..r * e],
            )?;
            add_expert_bias(&mut m.out[..r * e], e, self.down_b.as_deref(), expert);
            for (i, &(t, s)) in m.rows.iter().enumerate() {
                let wt = m.weights[t * k + s];
                let slot = &mut m.slots[(t * k + s) * e..(t * k + s + 1) * e];
                for (d, &v) in slot.iter_mut().zip(&m.out[i * e..(i + 1) * e]) {
                    *d = v * wt;
                }
            }
        }
        for t in 0..n {
            let proj = &mut buf.proj[t * e..(t + 1) * e];
            proj.copy_from_slice(&m.slots[t * k * e..(t * k + 1) * e]);
            for s in 1..k {
                add_assign(proj, &m.slots[(t * k + s) * e..(t * k + s + 1) * e]);
            }
        }
        Ok(())
    }
}
