//! The rounding points of llama.cpp's non-flash attention, which hearth's
//! `ops::attention` must reproduce for its logits to track llama.cpp's (the
//! fixtures in tests/fixtures/logits are made with flash attention off).
//!
//! `build_attn_mha` (src/llama-graph.cpp) with an f16 KV cache computes, per
//! query head and position `pos`, in this order:
//!
//! 1. `kq = mul_mat(K, q)`: the f16 cache's `vec_dot_type` is F16, so q is
//!    rounded to f16 (round to nearest even) and each score is an f16·f16 dot
//!    product accumulated in f32;
//! 2. gemma2's soft-cap, when set: `kq = cap · tanh(kq · (1/cap))` (two
//!    `ggml_scale` around a `ggml_tanh`);
//! 3. `ggml_soft_max_ext(kq, mask, kq_scale)`: `s = kq · kq_scale + mask` (the
//!    causal / sliding-window mask is 0 or −inf), `max` over the row, `e =
//!    expf(s − max)` in f32, `Σe` accumulated in double (`ggml_float`), then
//!    `p = e · (float)(1/Σe)`;
//! 4. `kqv = mul_mat(V, p)`: V is f16, so **p is rounded to f16** before the
//!    f16·f16 dot product with each value column (accumulated in f32).
//!
//! Dropping a rounding (keeping p in f32, as a flash-style online softmax does)
//! moves each output by up to ~2⁻¹¹ relative: tiny, but enough to flip the
//! Q8_0 / F16 rounding of a downstream activation, after which the logits part
//! from llama.cpp's by ~1e-2 of their spread. Measured on the logits fixtures
//! with such a kernel in place: tiny-llama-F16 RMS error 3.9e-4 → 8.0e-4 of the
//! logit std, Q8_0 1.0e-2 → 1.6e-2, greedy decoding diverging sooner. A faster
//! kernel has to keep these roundings (an online softmax knows the final max
//! and sum only at the end, so it needs a second pass to apply f16(p) to V).
//! This test pins the outputs to the four steps above.

use kernels::formats::float::{f16_to_f32, f32_to_f16};
use kernels::pool::ThreadPool;
use model::kv_cache::KvCache;
use model::ops::attention::{AttentionShape, attention, scratch_len};

/// Largest allowed |hearth − reference| relative to the output's magnitude.
/// Both sides round at the same points; what remains is the order of f32
/// additions in the two dot products (~1e-7). Rounding p to f16 or not changes
/// outputs by ~1e-4 here, so this bound tells the two apart.
const TOL: f32 = 2e-6;

/// A deterministic pseudo-random sequence in [-2, 2).
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
        })
        .collect()
}

/// One head at position `pos`, computed as ggml's non-flash graph does (steps
/// 1-4 of the module doc).
fn ggml_head(
    kv: &KvCache,
    sh: &AttentionShape,
    q: &[f32],
    pos: usize,
    head: usize,
    round_p: bool,
) -> Vec<f32> {
    let layer = kv.layer(0);
    let hd = sh.head_dim;
    let off = head / (sh.n_head / sh.n_head_kv) * hd;
    let first = sh.window.map_or(0, |w| (pos + 1).saturating_sub(w));
    let q16: Vec<f32> = q.iter().map(|&x| f16_to_f32(f32_to_f16(x))).collect();
    let s: Vec<f32> = (first..=pos)
        .map(|j| {
            let k = &layer.k[j * layer.kv_dim + off..][..hd];
            let kq: f32 = q16.iter().zip(k).map(|(&a, &b)| a * f16_to_f32(b)).sum();
            let kq = match sh.softcap {
                Some(cap) => (kq * (1.0 / cap)).tanh() * cap,
                None => kq,
            };
            kq * sh.kq_scale
        })
        .collect();
    let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = s.iter().map(|&x| (x - max).exp()).collect();
    let sum: f64 = e.iter().map(|&x| f64::from(x)).sum();
    let inv = (1.0 / sum) as f32;
    let p: Vec<f32> = e
        .iter()
        .map(|&x| {
            let p = x * inv;
            if round_p {
                f16_to_f32(f32_to_f16(p))
            } else {
                p
            }
        })
        .collect();
    (0..hd)
        .map(|d| {
            (first..=pos)
                .zip(&p)
                .map(|(j, &p)| p * f16_to_f32(layer.v[j * layer.kv_dim + off + d]))
                .sum()
        })
        .collect()
}

fn check(window: Option<usize>, softcap: Option<f32>) {
    let pool = ThreadPool::new(2);
    let (n_head, n_head_kv, hd, n) = (4, 2, 16, 150);
    let kv_dim = n_head_kv * hd;
    let mut kv = KvCache::new(1, n, kv_dim);
    let k = values(n * kv_dim, 1);
    let v = values(n * kv_dim, 2);
    for j in 0..n {
        kv.store(
            0,
            j,
            &k[j * kv_dim..(j + 1) * kv_dim],
            &v[j * kv_dim..(j + 1) * kv_dim],
        );
    }
    let sh = AttentionShape {
        n_head,
        n_head_kv,
        head_dim: hd,
        kq_scale: 1.0 / (hd as f32).sqrt(),
        window,
        softcap,
    };
    let n_tokens = 3;
    let q = values(n_tokens * n_head * hd, 3);
    let mut out = vec![0f32; q.len()];
    let mut scratch = vec![0f32; scratch_len(&pool, n, hd)];
    let pos0 = n - n_tokens;
    attention(&pool, &sh, kv.layer(0), &q, pos0, &mut out, &mut scratch);
    let mut worst = 0f32;
    let mut unrounded_worst = 0f32;
    for t in 0..n_tokens {
        for h in 0..n_head {
            let at = (t * n_head + h) * hd;
            let qh = &q[at..at + hd];
            let want = ggml_head(&kv, &sh, qh, pos0 + t, h, true);
            let unrounded = ggml_head(&kv, &sh, qh, pos0 + t, h, false);
            let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
            for d in 0..hd {
                worst = worst.max((out[at + d] - want[d]).abs() / scale);
                unrounded_worst = unrounded_worst.max((unrounded[d] - want[d]).abs() / scale);
            }
        }
    }
    // The inputs must make the f16 rounding of p visible, or the check is void.
    assert!(
        unrounded_worst > 10.0 * TOL,
        "rounding p moves outputs by only {unrounded_worst:e}"
    );
    assert!(
        worst <= TOL,
        "{window:?} {softcap:?}: attention differs from ggml's non-flash rounding by {worst:e} \
         of the output (keeping p in f32 differs by {unrounded_worst:e})"
    );
}

#[test]
fn matches_ggml_non_flash_roundings() {
    check(None, None);
}

#[test]
fn matches_ggml_non_flash_roundings_with_window() {
    check(Some(40), None);
}

#[test]
fn matches_ggml_non_flash_roundings_with_softcap() {
    check(None, Some(1.5));
}
