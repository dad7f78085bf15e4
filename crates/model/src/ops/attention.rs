//! Causal multi-head attention with grouped-query heads over the f16 KV cache,
//! optionally restricted to a sliding window.
//!
//! This follows llama.cpp's non-flash path (`build_attn_mha` in
//! src/llama-graph.cpp): `kq = K·q` with q converted to f16 (the `vec_dot_type`
//! of an f16 cache), `softmax(kq · kq_scale + mask)` in f32, then `V·p` with the
//! probabilities converted to f16. Reproducing those two roundings keeps hearth
//! within float noise of llama.cpp instead of within f16 noise.
//!
//! Sliding window (llama.cpp's `LLAMA_SWA_TYPE_STANDARD`): a query at position
//! `p` sees key positions `j` with `p - j < window`. Soft-capping follows the
//! `hparams.attn_soft_cap` branch of `build_attn_mha` (scale, tanh, scale).

use kernels::formats::float::{f16_to_f32, f32_to_f16};
use kernels::pool::{SharedSlice, ThreadPool};

use super::softmax;
use crate::kv_cache::KvLayer;

/// The shape of one layer's attention.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionShape {
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads; each serves `n_head / n_head_kv` query heads.
    pub n_head_kv: usize,
    /// Values per head.
    pub head_dim: usize,
    /// Multiplier of `q·k` before the softmax (usually `1/sqrt(head_dim)`).
    pub kq_scale: f32,
    /// Sliding window in positions, if the layer uses one.
    pub window: Option<usize>,
    /// Attention logit soft-capping (gemma2): each `q·k` becomes
    /// `cap · tanh(q·k / cap)` before `kq_scale` and the softmax.
    pub softcap: Option<f32>,
}

/// Scratch floats [`attention`] needs for a context of `n_ctx` positions.
pub fn scratch_len(pool: &ThreadPool, n_ctx: usize, head_dim: usize) -> usize {
    pool.n_threads() * (n_ctx + head_dim)
}

/// Attention for `n_tokens = q.len() / (n_head * head_dim)` queries at positions
/// `pos0, pos0 + 1, ...`, whose keys and values are already in `cache` (rows
/// `0..pos0 + n_tokens`). Writes `out` with the same shape as `q`:
/// (n_tokens, n_head * head_dim).
pub fn attention(
    pool: &ThreadPool,
    shape: &AttentionShape,
    cache: KvLayer<'_>,
    q: &[f32],
    pos0: usize,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    let q_dim = shape.n_head * shape.head_dim;
    let n_tokens = q.len() / q_dim;
    let n_pairs = n_tokens * shape.n_head;
    let n_tasks = pool.n_threads();
    let per_task = scratch.len() / n_tasks;
    let outs = SharedSlice::new(out);
    let tmps = SharedSlice::new(scratch);
    pool.run(n_tasks, &|task| {
        // SAFETY: task `task` alone uses scratch slot `task`.
        let tmp = unsafe { tmps.slice_mut(task * per_task, per_task) };
        for pair in (task..n_pairs).step_by(n_tasks) {
            let (t, h) = (pair / shape.n_head, pair % shape.n_head);
            let at = t * q_dim + h * shape.head_dim;
            // SAFETY: each (token, head) pair is handled by exactly one task and
            // owns its `head_dim` outputs.
            let out_head = unsafe { outs.slice_mut(at, shape.head_dim) };
            attend(
                shape,
                cache,
                &q[at..at + shape.head_dim],
                pos0 + t,
                h,
                tmp,
                out_head,
            );
        }
    });
}

/// One query head at position `pos` attending over cache rows up to `pos`.
fn attend(
    shape: &AttentionShape,
    cache: KvLayer<'_>,
    q: &[f32],
    pos: usize,
    head: usize,
    tmp: &mut [f32],
    out: &mut [f32],
) {
    let hd = shape.head_dim;
    let kv_off = head / (shape.n_head / shape.n_head_kv) * hd;
    let first = shape.window.map_or(0, |w| (pos + 1).saturating_sub(w));
    let (q16, rest) = tmp.split_at_mut(hd);
    for (d, &s) in q16.iter_mut().zip(q) {
        *d = f16_to_f32(f32_to_f16(s));
    }
    let scores = &mut rest[..pos + 1 - first];
    for (s, j) in scores.iter_mut().zip(first..=pos) {
        let k = &cache.k[j * cache.kv_dim + kv_off..][..hd];
        let dot: f32 = q16.iter().zip(k).map(|(&a, &b)| a * f16_to_f32(b)).sum();
        let dot = match shape.softcap {
            Some(cap) => (dot * (1.0 / cap)).tanh() * cap,
            None => dot,
        };
        *s = dot * shape.kq_scale;
    }
    softmax(scores);
    out.fill(0.0);
    for (&p, j) in scores.iter().zip(first..=pos) {
        let p = f16_to_f32(f32_to_f16(p));
        let v = &cache.v[j * cache.kv_dim + kv_off..][..hd];
        for (o, &b) in out.iter_mut().zip(v) {
            *o += p * f16_to_f32(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv_cache::KvCache;

    fn shape(window: Option<usize>) -> AttentionShape {
        AttentionShape {
            n_head: 4,
            n_head_kv: 2,
            head_dim: 2,
            kq_scale: 1.0,
            window,
            softcap: None,
        }
    }

    /// A cache where key head `g` at position `j` is (j, g) and value head `g` is
    /// (j + 10 g, 1).
    fn cache(n: usize) -> KvCache {
        let mut kv = KvCache::new(1, n, 4);
        for j in 0..n {
            let jf = j as f32;
            kv.store(0, j, &[jf, 0.0, jf, 1.0], &[jf, 1.0, jf + 10.0, 1.0]);
        }
        kv
    }

    #[test]
    fn first_position_sees_only_itself_and_heads_share_kv_groups() {
        let pool = ThreadPool::new(2);
        let kv = cache(4);
        let q = vec![0.5f32; 8];
        let mut out = vec![0f32; 8];
        let mut scratch = vec![0f32; scratch_len(&pool, 4, 2)];
        attention(
            &pool,
            &shape(None),
            kv.layer(0),
            &q,
            0,
            &mut out,
            &mut scratch,
        );
        // Heads 0,1 use kv head 0 (value (0, 1)); heads 2,3 kv head 1 (value (10, 1)).
        assert_eq!(out, [0.0, 1.0, 0.0, 1.0, 10.0, 1.0, 10.0, 1.0]);
    }

    #[test]
    fn softcap_squashes_scores_before_the_softmax() {
        let pool = ThreadPool::new(1);
        let kv = cache(6);
        let q = [2.0f32, 0.0, 2.0, 0.0, 2.0, 0.0, 2.0, 0.0];
        let mut scratch = vec![0f32; scratch_len(&pool, 6, 2)];
        let mut out = [0f32; 8];
        let capped = AttentionShape {
            softcap: Some(1.5),
            ..shape(None)
        };
        attention(&pool, &capped, kv.layer(0), &q, 5, &mut out, &mut scratch);
        // Head 0: raw scores 2 j, capped to 1.5 tanh(2 j / 1.5); values j.
        let s: Vec<f32> = (0..6)
            .map(|j| 1.5 * (2.0 * j as f32 / 1.5).tanh())
            .collect();
        let m = s.iter().copied().fold(f32::MIN, f32::max);
        let z: f32 = s.iter().map(|x| (x - m).exp()).sum();
        let expect: f32 = s
            .iter()
            .enumerate()
            .map(|(j, x)| (x - m).exp() / z * j as f32)
            .sum();
        assert!((out[0] - expect).abs() < 1e-2, "{} vs {expect}", out[0]);
        // Uncapped, position 5 would take nearly all the weight.
        assert!(out[0] < 4.0);
    }

    #[test]
    fn matches_a_direct_softmax_and_window_drops_old_positions() {
        let pool = ThreadPool::new(3);
        let kv = cache(6);
        let q = [0.3f32, -0.2, 0.1, 0.4, 0.25, 0.5, -0.5, 0.125];
        let mut scratch = vec![0f32; scratch_len(&pool, 6, 2)];
        for window in [None, Some(3)] {
            let mut out = [0f32; 8];
            attention(
                &pool,
                &shape(window),
                kv.layer(0),
                &q,
                5,
                &mut out,
                &mut scratch,
            );
            let first = window.map_or(0, |w| 6 - w);
            // Head 0 (kv head 0): scores q0 * j over the visible positions.
            let s: Vec<f32> = (first..6).map(|j| 0.3 * j as f32).collect();
            let m = s.iter().copied().fold(f32::MIN, f32::max);
            let z: f32 = s.iter().map(|x| (x - m).exp()).sum();
            let expect: f32 = (first..6)
                .zip(&s)
                .map(|(j, x)| (x - m).exp() / z * j as f32)
                .sum();
            assert!(
                (out[0] - expect).abs() < 1e-2,
                "{window:?}: {} vs {expect}",
                out[0]
            );
            assert!((out[1] - 1.0).abs() < 1e-3);
        }
    }
}
