//! The mixture-of-experts FFN (llama.cpp's `build_moe_ffn` with softmax
//! gating and renormalised weights), which llama, qwen3moe and mistral3 use.

use kernels::matmul::{matmul, matmul_expert};

use super::block::Act;
use super::common::{Dims, Step};
use crate::ModelError;
use crate::loader::Tensor;
use crate::ops::{add_assign, route_top_k};

/// A mixture-of-experts FFN: each token's top-k experts by softmax router
/// probability, their weights renormalised to sum to 1.
#[derive(Debug)]
pub struct Moe {
    /// (n_embd, n_expert) router.
    pub router: Tensor,
    /// (n_embd, n_ff, n_expert)
    pub gate: Tensor,
    /// (n_embd, n_ff, n_expert)
    pub up: Tensor,
    /// (n_ff, n_embd, n_expert)
    pub down: Tensor,
    /// Experts each token is routed to.
    pub n_used: usize,
}

impl Moe {
    /// Mixture of experts over `h` into `proj` for `n` rows (llama.cpp's
    /// `build_moe_ffn` with softmax gating and renormalised weights): each
    /// token's top-k experts run gated FFNs, and their outputs, scaled by the
    /// routing weights, are summed in routing order.
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
            route_top_k(
                &mut m.probs[t * nx..(t + 1) * nx],
                k,
                true,
                &mut m.experts[t * k..(t + 1) * k],
                &mut m.weights[t * k..(t + 1) * k],
            );
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
