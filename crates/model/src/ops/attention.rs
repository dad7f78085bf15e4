//! Causal multi-head attention with grouped-query heads over the f16 KV cache,
//! optionally restricted to a sliding window.
//!
//! This follows llama.cpp's non-flash path (`build_attn_mha` in
//! src/llama-graph.cpp): `kq = K·q` with q rounded to f16 (the `vec_dot_type`
//! of an f16 cache) and an f16 dot product, `softmax(kq · kq_scale + mask)` in
//! f32, then `V·p` with the probabilities rounded to f16. Reproducing those two
//! roundings keeps hearth within float noise of llama.cpp instead of within f16
//! noise.
//!
//! The work is organised for the memory traffic, not per head: the query heads
//! that share a key/value head (grouped-query attention, up to [`GROUP`] at a
//! time) are processed together, so each key row and each value row of the
//! cache is read and converted once for all of them, with the SIMD F16 kernels
//! of the dispatch table. Only the score rows of the heads being processed are
//! kept (one row of the visible context per head and thread), never the score
//! matrix of the batch. A flash-attention pass with an online softmax (Dao et
//! al. 2022) would not need the rows either, but its probabilities are relative
//! to a running maximum, so they cannot be rounded to f16 the way llama.cpp
//! rounds the normalised ones; tried, it moved a greedy near-tie of the tiny
//! MoE Q4_0 logits fixture past its margin.
//!
//! Sliding window (llama.cpp's `LLAMA_SWA_TYPE_STANDARD`): a query at position
//! `p` sees key positions `j` with `p - j < window`. Soft-capping follows the
//! `hparams.attn_soft_cap` branch of `build_attn_mha` (scale, tanh, scale).

use kernels::TensorType;
use kernels::formats::float::{f16_to_f32, f32_to_f16};
use kernels::pool::{SharedSlice, ThreadPool};

use super::softmax;
use crate::kv_cache::KvLayer;

/// Query heads processed together over one key/value head; larger groups are
/// split into runs of this many.
const GROUP: usize = 8;

/// Keys whose scores the AVX-512 loop computes together: their rows are
/// widened to f32 once for all heads, and their 16 dot products reduced to one
/// vector of scores.
const KEY_BLOCK: usize = 16;

// The cache's f16 bits are handed to the kernels as little-endian bytes.
const _: () = assert!(cfg!(target_endian = "little"));

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

/// Floats of one thread's scratch for a context of `n_ctx` positions: per
/// head of a group its f16 query (as f16 bits, half a float per value, and
/// widened back to f32), accumulator and score row, and [`KEY_BLOCK`] key rows (or one value row) in f32.
fn per_thread(n_ctx: usize, head_dim: usize) -> usize {
    GROUP * (head_dim.div_ceil(2) + 2 * head_dim + n_ctx) + KEY_BLOCK * head_dim
}

/// Scratch floats [`attention`] needs for a context of `n_ctx` positions.
pub fn scratch_len(pool: &ThreadPool, n_ctx: usize, head_dim: usize) -> usize {
    pool.n_threads() * per_thread(n_ctx, head_dim)
}

/// Views f16 bits as the little-endian bytes the kernels read.
fn f16_bytes(bits: &[u16]) -> &[u8] {
    // SAFETY: u8 has alignment 1 and every byte pattern is valid; the length
    // covers exactly the same memory; the target is little-endian (asserted).
    unsafe { std::slice::from_raw_parts(bits.as_ptr().cast::<u8>(), bits.len() * 2) }
}

/// Attention for `n_tokens = q.len() / (n_head * head_dim)` queries at positions
/// `pos0, pos0 + 1, ...`, whose keys and values are already in `cache` (rows
/// `0..pos0 + n_tokens`). Writes `out` with the same shape as `q`:
/// (n_tokens, n_head * head_dim). `scratch` holds [`scratch_len`] floats.
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
    let group = shape.n_head / shape.n_head_kv;
    let runs_per_kv = group.div_ceil(GROUP);
    // One work item: a token, a key/value head and a run of its query heads.
    let n_items = n_tokens * shape.n_head_kv * runs_per_kv;
    let n_slots = pool.n_threads().min(n_items).max(1);
    let n_ctx = cache.k.len() / cache.kv_dim.max(1);
    let per_slot = per_thread(n_ctx, shape.head_dim);
    assert!(
        scratch.len() >= n_slots * per_slot,
        "attention scratch of {} floats, {} needed",
        scratch.len(),
        n_slots * per_slot
    );
    let outs = SharedSlice::new(out);
    let tmps = SharedSlice::new(scratch);
    pool.run(n_slots, &|slot| {
        // SAFETY: slot `slot` alone uses scratch slot `slot`.
        let tmp = unsafe { tmps.slice_mut(slot * per_slot, per_slot) };
        for item in (slot..n_items).step_by(n_slots) {
            let t = item / (shape.n_head_kv * runs_per_kv);
            let kv_head = item / runs_per_kv % shape.n_head_kv;
            let run = item % runs_per_kv;
            let first_head = kv_head * group + run * GROUP;
            let heads = first_head..(first_head + GROUP).min((kv_head + 1) * group);
            let at = t * q_dim + heads.start * shape.head_dim;
            let len = heads.len() * shape.head_dim;
            // SAFETY: each (token, run of heads) is one item, handled by exactly
            // one slot, and owns those heads' outputs.
            let out_heads = unsafe { outs.slice_mut(at, len) };
            attend(
                shape,
                cache,
                &q[at..at + len],
                pos0 + t,
                kv_head,
                tmp,
                out_heads,
            );
        }
    });
}

/// The query heads in `q` (all sharing key/value head `kv_head`, at most
/// [`GROUP`]) at position `pos` attending over cache rows up to `pos`.
fn attend(
    shape: &AttentionShape,
    cache: KvLayer<'_>,
    q: &[f32],
    pos: usize,
    kv_head: usize,
    tmp: &mut [f32],
    out: &mut [f32],
) {
    let hd = shape.head_dim;
    let n = q.len() / hd;
    let f16 = kernels::traits(TensorType::F16).expect("F16 kernels always exist");
    let to_f16 = f16.from_f32.expect("F16 has a quantizer");
    let dot = f16.vec_dot.expect("F16 has a dot product");
    let kv_off = kv_head * hd;
    let first = shape.window.map_or(0, |w| (pos + 1).saturating_sub(w));
    let n_keys = pos + 1 - first;
    let n_ctx = cache.k.len() / cache.kv_dim;

    let (q16, rest) = tmp.split_at_mut(GROUP * hd.div_ceil(2));
    let (q32, rest) = rest.split_at_mut(GROUP * hd);
    let (acc, rest) = rest.split_at_mut(GROUP * hd);
    let (scores, rest) = rest.split_at_mut(GROUP * n_ctx);
    let block = &mut rest[..KEY_BLOCK * hd];
    // The f16 queries, as bytes, in the floats set aside for them.
    let q_row = hd.div_ceil(2) * 4;
    let q_bytes = {
        let floats = &mut q16[..n * hd.div_ceil(2)];
        // SAFETY: f32 storage viewed as bytes: alignment 1, any value valid; the
        // length covers the same memory.
        unsafe {
            std::slice::from_raw_parts_mut(floats.as_mut_ptr().cast::<u8>(), floats.len() * 4)
        }
    };
    for h in 0..n {
        to_f16(
            &q[h * hd..(h + 1) * hd],
            &mut q_bytes[h * q_row..h * q_row + 2 * hd],
        );
    }

    if avx512::usable(hd) {
        // The f16-rounded queries widened back to f32.
        for h in 0..n {
            (f16.to_f32)(
                &q_bytes[h * q_row..h * q_row + 2 * hd],
                &mut q32[h * hd..(h + 1) * hd],
            );
        }
        // SAFETY: `usable` checked the CPU and that `hd` is whole vectors; the
        // rows `first..=pos` are in the cache, `scores` holds `n` rows of
        // `n_ctx >= n_keys`, `block` holds `KEY_BLOCK * hd` floats and `acc`
        // `n * hd`.
        unsafe {
            avx512::scores(
                cache.k,
                cache.kv_dim,
                kv_off,
                first,
                n_keys,
                &q32[..n * hd],
                hd,
                scores,
                n_ctx,
                block,
            );
            for h in 0..n {
                let row = &mut scores[h * n_ctx..h * n_ctx + n_keys];
                if let Some(cap) = shape.softcap {
                    row.iter_mut()
                        .for_each(|s| *s = (*s * (1.0 / cap)).tanh() * cap);
                }
                avx512::softmax_f16(row, shape.kq_scale);
            }
            avx512::accumulate(
                cache.v,
                cache.kv_dim,
                kv_off,
                first,
                n_keys,
                scores,
                n_ctx,
                hd,
                &mut acc[..n * hd],
            );
        }
        out.copy_from_slice(&acc[..n * hd]);
        return;
    }

    // Portable loops: each key row read once for every head of the group.
    for (i, j) in (first..=pos).enumerate() {
        let k = f16_bytes(&cache.k[j * cache.kv_dim + kv_off..][..hd]);
        for h in 0..n {
            scores[h * n_ctx + i] = dot(hd, k, &q_bytes[h * q_row..h * q_row + 2 * hd]);
        }
    }
    for h in 0..n {
        for s in &mut scores[h * n_ctx..h * n_ctx + n_keys] {
            let dot = match shape.softcap {
                Some(cap) => (*s * (1.0 / cap)).tanh() * cap,
                None => *s,
            };
            *s = dot * shape.kq_scale;
        }
    }
    for h in 0..n {
        let row = &mut scores[h * n_ctx..h * n_ctx + n_keys];
        softmax(row);
        // llama.cpp multiplies V by the probabilities rounded to f16.
        row.iter_mut().for_each(|p| *p = f16_to_f32(f32_to_f16(*p)));
    }

    // V·p: each value row converted once for every head of the group.
    let v32 = &mut block[..hd];
    acc[..n * hd].fill(0.0);
    for (i, j) in (first..=pos).enumerate() {
        let v = f16_bytes(&cache.v[j * cache.kv_dim + kv_off..][..hd]);
        (f16.to_f32)(v, v32);
        for h in 0..n {
            let p = scores[h * n_ctx + i];
            for (a, &x) in acc[h * hd..(h + 1) * hd].iter_mut().zip(v32.iter()) {
                *a += p * x;
            }
        }
    }
    out.copy_from_slice(&acc[..n * hd]);
}

/// AVX-512 loops over the key and value rows: the f16 rows are widened in
/// registers (`vcvtph2ps`) and multiplied with f32 fused multiply-adds, the
/// softmax runs 16 lanes at a time, and the value accumulators stay in
/// registers across the rows.
mod avx512 {
    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::*;

    #[cfg(target_arch = "x86_64")]
    use super::KEY_BLOCK;

    /// Whether this CPU (at the selected level) runs these loops for heads of
    /// `hd` values.
    pub(super) fn usable(hd: usize) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            hd.is_multiple_of(16) && kernels::cpu_level() == kernels::Cpu::Avx512
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = hd;
            false
        }
    }

    /// The horizontal sums of 16 vectors, lane `j` holding that of `v[j]`,
    /// each summed in the order of `_mm512_reduce_add_ps` (halves: lane `l`
    /// plus lane `l + 8`, then `l + 4`, `l + 2`, `l + 1`), so every score is
    /// the one a reduction per key gives, bit for bit. Each step adds pairs of
    /// vectors after a shuffle, 15 additions for the 16 keys.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    pub(super) fn reduce16(v: &[__m512; 16]) -> __m512 {
        // Step 1 (lane l + lane l+8): t[m] holds v[2m]'s 8 partial sums in its
        // low half, v[2m + 1]'s in its high half.
        let t: [__m512; 8] = std::array::from_fn(|m| {
            let (a, b) = (v[2 * m], v[2 * m + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
                _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
            )
        });
        // Step 2 (l + l+4): u[m] holds keys 4m..4m+4, one per 128-bit lane.
        let u: [__m512; 4] = std::array::from_fn(|m| {
            let (a, b) = (t[2 * m], t[2 * m + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b),
                _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b),
            )
        });
        // Step 3 (l + l+2), within 128-bit lanes: w[m] holds u[2m]'s keys in
        // lanes 0-1 and u[2m + 1]'s in lanes 2-3 of each 128-bit lane.
        let w: [__m512; 2] = std::array::from_fn(|m| {
            let (a, b) = (u[2 * m], u[2 * m + 1]);
            _mm512_add_ps(
                _mm512_shuffle_ps::<0b01_00_01_00>(a, b),
                _mm512_shuffle_ps::<0b11_10_11_10>(a, b),
            )
        });
        // Step 4 (l + l+1): lane 4c + k holds key 4k + c.
        let s = _mm512_add_ps(
            _mm512_shuffle_ps::<0b10_00_10_00>(w[0], w[1]),
            _mm512_shuffle_ps::<0b11_01_11_01>(w[0], w[1]),
        );
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        _mm512_permutexvar_ps(order, s)
    }

    /// `scores[h * stride + i] = q[h] · k[first + i]` for `i < n_keys` and the
    /// heads of `q` (`hd` f32 each), keys at `kv_off` in rows of `kv_dim`.
    /// Each dot product is one f32 accumulator over the row, 16 values at a
    /// time, then reduced as `_mm512_reduce_add_ps` does (llamafile's tinyBLAS
    /// order, which llama.cpp takes for this product). Keys go in blocks of
    /// [`KEY_BLOCK`], widened once into `block` for all heads.
    ///
    /// # Safety
    /// AVX-512 F must be available, `hd` a multiple of 16, rows
    /// `first..first + n_keys` in `k`, `scores` at least
    /// `(heads - 1) * stride + n_keys` long and `block` `KEY_BLOCK * hd`.
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma,f16c,avx512f")]
    pub(super) unsafe fn scores(
        k: &[u16],
        kv_dim: usize,
        kv_off: usize,
        first: usize,
        n_keys: usize,
        q: &[f32],
        hd: usize,
        scores: &mut [f32],
        stride: usize,
        block: &mut [f32],
    ) {
        let n = q.len() / hd;
        assert!((first + n_keys) * kv_dim <= k.len() && kv_off + hd <= kv_dim);
        assert!(n >= 1 && scores.len() >= (n - 1) * stride + n_keys);
        assert!(block.len() >= KEY_BLOCK * hd);
        let row = |i: usize| k[(first + i) * kv_dim + kv_off..].as_ptr();
        let kb = block.as_mut_ptr();
        let whole = n_keys / KEY_BLOCK * KEY_BLOCK;
        for i0 in (0..whole).step_by(KEY_BLOCK) {
            for j in 0..KEY_BLOCK {
                let r = row(i0 + j);
                for d in (0..hd).step_by(16) {
                    // SAFETY: `d + 16 <= hd` values of key row i0 + j and of
                    // its slot in `block` (bounds asserted above).
                    unsafe {
                        let x = _mm512_cvtph_ps(_mm256_loadu_si256(r.add(d).cast()));
                        _mm512_storeu_ps(kb.add(j * hd + d), x);
                    }
                }
            }
            for h in 0..n {
                let qh = q[h * hd..].as_ptr();
                let mut dots = [_mm512_setzero_ps(); KEY_BLOCK];
                for d in (0..hd).step_by(16) {
                    // SAFETY: `d + 16 <= hd` values of query head h and of
                    // each widened key.
                    unsafe {
                        let qv = _mm512_loadu_ps(qh.add(d));
                        for (j, dot) in dots.iter_mut().enumerate() {
                            let kx = _mm512_loadu_ps(kb.add(j * hd + d));
                            *dot = _mm512_fmadd_ps(qv, kx, *dot);
                        }
                    }
                }
                // SAFETY: `i0 + 16 <= n_keys` scores of head h.
                unsafe {
                    _mm512_storeu_ps(scores[h * stride + i0..].as_mut_ptr(), reduce16(&dots))
                };
            }
        }
        for i in whole..n_keys {
            let r = row(i);
            for h in 0..n {
                let qh = q[h * hd..].as_ptr();
                let mut sum = _mm512_setzero_ps();
                for d in (0..hd).step_by(16) {
                    // SAFETY: `d + 16 <= hd` values of this key row and of
                    // query head h (bounds asserted above).
                    unsafe {
                        let kx = _mm512_cvtph_ps(_mm256_loadu_si256(r.add(d).cast()));
                        sum = _mm512_fmadd_ps(_mm512_loadu_ps(qh.add(d)), kx, sum);
                    }
                }
                scores[h * stride + i] = _mm512_reduce_add_ps(sum);
            }
        }
    }

    /// ggml's `ggml_v_expf` (ggml-cpu/vec.h), 16 lanes: lane for lane the
    /// value of [`crate::ops::ggml_expf`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,avx512f")]
    pub(super) fn expf(x: __m512) -> __m512 {
        let c = |bits: u32| _mm512_set1_ps(f32::from_bits(bits));
        let r = c(0x4b40_0000); // 0x1.8p23
        let z = _mm512_fmadd_ps(x, c(0x3fb8_aa3b), r); // log2(e)
        let n = _mm512_sub_ps(z, r);
        let b = _mm512_fnmadd_ps(n, c(0x35bf_be8e), _mm512_fnmadd_ps(n, c(0x3f31_7200), x));
        let out_of_range = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_abs_ps(n), c(0x4340_0000));
        let u = _mm512_mul_ps(b, b);
        let j = _mm512_fmadd_ps(
            _mm512_fmadd_ps(
                _mm512_fmadd_ps(c(0x3c07_2010), b, c(0x3d2b_9f17)),
                u,
                _mm512_fmadd_ps(c(0x3e2a_af33), b, c(0x3eff_fedb)),
            ),
            u,
            _mm512_fmadd_ps(c(0x3f7f_fff6), b, _mm512_set1_ps(1.0)),
        );
        let res = _mm512_scalef_ps(j, n);
        if out_of_range == 0 {
            return res;
        }
        let non_positive = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(n, _mm512_setzero_ps());
        let alt = _mm512_mask_blend_ps(
            non_positive,
            _mm512_set1_ps(f32::INFINITY),
            _mm512_setzero_ps(),
        );
        _mm512_mask_blend_ps(out_of_range, res, alt)
    }

    /// The softmax of `row · scale`, probabilities rounded to f16 (and kept as
    /// f32), as ggml's `soft_max` then the f16 conversion before `V·p`: the
    /// maximum, `e = exp(s - max)` with [`expf`], `Σe` as ggml's
    /// `ggml_vec_soft_max_f32` adds it over the padded row (each 16-lane
    /// block's `_mm512_reduce_add_ps` into a double; the last block masked),
    /// `p = e · (float)(1/Σe)`. Blocks start at the row's first key, which is
    /// ggml's alignment when that is cache cell 0 (not always so for
    /// sliding-window layers).
    ///
    /// # Safety
    /// AVX-512 F and F16C must be available.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c,avx512f")]
    pub(super) unsafe fn softmax_f16(row: &mut [f32], scale: f32) {
        let len = row.len();
        let whole = len / 16 * 16;
        let x = row.as_mut_ptr();
        let vscale = _mm512_set1_ps(scale);
        let mut vmax = _mm512_set1_ps(f32::NEG_INFINITY);
        for i in (0..whole).step_by(16) {
            // SAFETY: `i + 16 <= len`.
            unsafe {
                let s = _mm512_mul_ps(_mm512_loadu_ps(x.add(i)), vscale);
                _mm512_storeu_ps(x.add(i), s);
                vmax = _mm512_max_ps(vmax, s);
            }
        }
        let mut max = _mm512_reduce_max_ps(vmax);
        for s in &mut row[whole..] {
            *s *= scale;
            max = max.max(*s);
        }
        // ggml's score row spans the whole padded cache view (a multiple of 16
        // cells, masked ones at -inf), so every visible score goes through the
        // vector exp and every 16-lane block is summed with
        // `_mm512_reduce_add_ps`, masked lanes adding 0: the last partial block
        // is one masked vector here, not a libm tail.
        let vmax = _mm512_set1_ps(max);
        let mut sum = 0f64;
        let mut i = 0;
        while i < len {
            let lanes = (len - i).min(16);
            let mask: __mmask16 = (1u32 << lanes).wrapping_sub(1) as u16;
            // SAFETY: the mask covers lanes `i..i + lanes`, all within `row`.
            unsafe {
                let s = _mm512_mask_loadu_ps(vmax, mask, x.add(i));
                let e = _mm512_maskz_mov_ps(mask, expf(_mm512_sub_ps(s, vmax)));
                _mm512_mask_storeu_ps(x.add(i), mask, e);
                sum += f64::from(_mm512_reduce_add_ps(e));
            }
            i += lanes;
        }
        let inv = _mm512_set1_ps((1.0 / sum) as f32);
        let mut i = 0;
        while i < len {
            let lanes = (len - i).min(16);
            let mask: __mmask16 = (1u32 << lanes).wrapping_sub(1) as u16;
            // SAFETY: the mask covers lanes `i..i + lanes`, all within `row`.
            unsafe {
                let p = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, x.add(i)), inv);
                let p16 = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(p);
                _mm512_mask_storeu_ps(x.add(i), mask, _mm512_cvtph_ps(p16));
            }
            i += lanes;
        }
    }

    /// `acc[h] = Σ_i p[h][i] · v[first + i]` over `i < n_keys` for the heads of
    /// `acc` (`hd` each), probabilities `p[h][i] = scores[h * stride + i]`;
    /// each output summed in key order with one fused multiply-add per key.
    /// Tiles of up to 4 heads × 64 values keep their sums in registers over
    /// all the keys.
    ///
    /// # Safety
    /// As [`scores`], with `acc` a whole number of heads.
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma,f16c,avx512f")]
    pub(super) unsafe fn accumulate(
        v: &[u16],
        kv_dim: usize,
        kv_off: usize,
        first: usize,
        n_keys: usize,
        scores: &[f32],
        stride: usize,
        hd: usize,
        acc: &mut [f32],
    ) {
        let n = acc.len() / hd;
        assert!((first + n_keys) * kv_dim <= v.len() && kv_off + hd <= kv_dim);
        assert!(n >= 1 && scores.len() >= (n - 1) * stride + n_keys);
        let mut h = 0;
        while h < n {
            let heads = (n - h).min(4);
            let mut d = 0;
            while d < hd {
                let vecs = if hd - d >= 64 { 4 } else { 1 };
                let tile = Tile {
                    v,
                    kv_dim,
                    col: kv_off + d,
                    first,
                    n_keys,
                    p: &scores[h * stride..],
                    stride,
                };
                let out = &mut acc[h * hd + d..];
                // SAFETY: AVX-512 is available (caller); the tile's columns
                // `d..d + 16 * vecs` lie within the head.
                unsafe {
                    match (heads, vecs) {
                        (4, 4) => tile.run::<4, 4>(out, hd),
                        (3, 4) => tile.run::<3, 4>(out, hd),
                        (2, 4) => tile.run::<2, 4>(out, hd),
                        (1, 4) => tile.run::<1, 4>(out, hd),
                        (4, _) => tile.run::<4, 1>(out, hd),
                        (3, _) => tile.run::<3, 1>(out, hd),
                        (2, _) => tile.run::<2, 1>(out, hd),
                        _ => tile.run::<1, 1>(out, hd),
                    }
                }
                d += 16 * vecs;
            }
            h += heads;
        }
    }

    /// One register tile of [`accumulate`]: value columns `col..col + 16 V`
    /// for `H` heads whose probability rows start at `p` (`stride` apart).
    #[cfg(target_arch = "x86_64")]
    struct Tile<'a> {
        v: &'a [u16],
        kv_dim: usize,
        col: usize,
        first: usize,
        n_keys: usize,
        p: &'a [f32],
        stride: usize,
    }

    #[cfg(target_arch = "x86_64")]
    impl Tile<'_> {
        /// Writes the `H × 16 V` sums to `out` (head `h` at `h * hd`).
        ///
        /// # Safety
        /// AVX-512 F and F16C must be available.
        #[target_feature(enable = "avx2,fma,f16c,avx512f")]
        unsafe fn run<const H: usize, const V: usize>(&self, out: &mut [f32], hd: usize) {
            assert!((self.first + self.n_keys) * self.kv_dim <= self.v.len());
            assert!(self.col + 16 * V <= self.kv_dim);
            assert!(self.p.len() >= (H - 1) * self.stride + self.n_keys);
            assert!(out.len() >= (H - 1) * hd + 16 * V);
            let mut sums = [[_mm512_setzero_ps(); V]; H];
            let base = self.v[self.first * self.kv_dim + self.col..].as_ptr();
            let p = self.p.as_ptr();
            for i in 0..self.n_keys {
                // SAFETY: row first + i is in the cache and its columns
                // `col..col + 16 V` in the row; `p[h * stride + i]` is in the
                // probability rows (asserted above).
                unsafe {
                    let row = base.add(i * self.kv_dim);
                    let x: [__m512; V] = std::array::from_fn(|c| {
                        _mm512_cvtph_ps(_mm256_loadu_si256(row.add(16 * c).cast()))
                    });
                    for (h, sum) in sums.iter_mut().enumerate() {
                        let ph = _mm512_set1_ps(*p.add(h * self.stride + i));
                        for (s, &xc) in sum.iter_mut().zip(&x) {
                            *s = _mm512_fmadd_ps(ph, xc, *s);
                        }
                    }
                }
            }
            for (h, sum) in sums.iter().enumerate() {
                for (c, &s) in sum.iter().enumerate() {
                    // SAFETY: within `out` (asserted above).
                    unsafe { _mm512_storeu_ps(out[h * hd + 16 * c..].as_mut_ptr(), s) };
                }
            }
        }
    }

    /// Never called off x86-64: [`usable`] is false there.
    #[cfg(not(target_arch = "x86_64"))]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn scores(
        _: &[u16],
        _: usize,
        _: usize,
        _: usize,
        _: usize,
        _: &[f32],
        _: usize,
        _: &mut [f32],
        _: usize,
        _: &mut [f32],
    ) {
        unreachable!()
    }

    /// Never called off x86-64: [`usable`] is false there.
    #[cfg(not(target_arch = "x86_64"))]
    pub(super) unsafe fn softmax_f16(_: &mut [f32], _: f32) {
        unreachable!()
    }

    /// Never called off x86-64: [`usable`] is false there.
    #[cfg(not(target_arch = "x86_64"))]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn accumulate(
        _: &[u16],
        _: usize,
        _: usize,
        _: usize,
        _: usize,
        _: &[f32],
        _: usize,
        _: usize,
        _: &mut [f32],
    ) {
        unreachable!()
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

    /// Attention of one head computed directly: f16-rounded q and cache, one
    /// softmax over the whole visible row, in f64.
    fn direct(kv: &KvCache, sh: &AttentionShape, q: &[f32], pos: usize, head: usize) -> Vec<f64> {
        let layer = kv.layer(0);
        let hd = sh.head_dim;
        let off = head / (sh.n_head / sh.n_head_kv) * hd;
        let first = sh.window.map_or(0, |w| (pos + 1).saturating_sub(w));
        let r = |x: f32| f64::from(f16_to_f32(f32_to_f16(x)));
        let s: Vec<f64> = (first..=pos)
            .map(|j| {
                let k = &layer.k[j * layer.kv_dim + off..][..hd];
                let d: f64 = q
                    .iter()
                    .zip(k)
                    .map(|(&a, &b)| r(a) * f64::from(f16_to_f32(b)))
                    .sum();
                d * f64::from(sh.kq_scale)
            })
            .collect();
        let m = s.iter().copied().fold(f64::MIN, f64::max);
        let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
        (0..hd)
            .map(|d| {
                (first..=pos)
                    .zip(&s)
                    .map(|(j, x)| {
                        (x - m).exp() / z
                            * f64::from(f16_to_f32(layer.v[j * layer.kv_dim + off + d]))
                    })
                    .sum()
            })
            .collect()
    }

    #[test]
    fn grouped_heads_match_a_direct_softmax_over_long_rows() {
        // 8 values per head: the portable loops; 32, 80 (tiles of 64 and 16
        // values) and 64: the AVX-512 ones where the CPU has them.
        for hd in [8, 32, 64, 80] {
            grouped_heads_case(hd);
        }
    }

    fn grouped_heads_case(hd: usize) {
        // 10 query heads over 1 KV head (two runs of at most GROUP heads),
        // 200 positions, three queries at once, with and without a window.
        let pool = ThreadPool::new(2);
        let (n_head, n) = (10, 200);
        let mut rng = 7u32;
        let mut next = || {
            rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (rng >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
        };
        let mut kv = KvCache::new(1, n, hd);
        for j in 0..n {
            let k: Vec<f32> = (0..hd).map(|_| next()).collect();
            let v: Vec<f32> = (0..hd).map(|_| next()).collect();
            kv.store(0, j, &k, &v);
        }
        let q: Vec<f32> = (0..3 * n_head * hd).map(|_| next()).collect();
        let mut scratch = vec![0f32; scratch_len(&pool, n, hd)];
        for window in [None, Some(70)] {
            let sh = AttentionShape {
                n_head,
                n_head_kv: 1,
                head_dim: hd,
                kq_scale: 0.5,
                window,
                softcap: None,
            };
            let mut out = vec![0f32; q.len()];
            attention(&pool, &sh, kv.layer(0), &q, n - 3, &mut out, &mut scratch);
            for t in 0..3 {
                for h in 0..n_head {
                    let at = (t * n_head + h) * hd;
                    let want = direct(&kv, &sh, &q[at..at + hd], n - 3 + t, h);
                    for (d, w) in want.iter().enumerate() {
                        let got = f64::from(out[at + d]);
                        // p is rounded to f16 (relative 2^-11) before V·p; |v| < 2.
                        assert!(
                            (got - w).abs() < 2e-3,
                            "{window:?} t{t} h{h} d{d}: {got} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_reduce16_and_expf_match_the_per_vector_forms() {
        use std::arch::x86_64::*;
        if kernels::cpu_level() != kernels::Cpu::Avx512 {
            return;
        }
        let mut rng = 11u32;
        let mut next = || {
            rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((rng >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * 1e3
        };
        for _ in 0..50 {
            let lanes: Vec<[f32; 16]> = (0..16).map(|_| std::array::from_fn(|_| next())).collect();
            // SAFETY: AVX-512 checked above; each array is 16 floats.
            let (got, want) = unsafe {
                let v: [__m512; 16] = std::array::from_fn(|j| _mm512_loadu_ps(lanes[j].as_ptr()));
                let mut got = [0f32; 16];
                _mm512_storeu_ps(got.as_mut_ptr(), avx512::reduce16(&v));
                let want: Vec<f32> = v.iter().map(|&x| _mm512_reduce_add_ps(x)).collect();
                (got, want)
            };
            for j in 0..16 {
                assert_eq!(got[j].to_bits(), want[j].to_bits(), "key {j}");
            }
        }
        for i in (-1200..1200).step_by(16) {
            let x: [f32; 16] = std::array::from_fn(|l| (i + l as i32) as f32 * 0.173);
            let mut got = [0f32; 16];
            // SAFETY: AVX-512 checked above; 16 floats each.
            unsafe {
                _mm512_storeu_ps(got.as_mut_ptr(), avx512::expf(_mm512_loadu_ps(x.as_ptr())))
            };
            for l in 0..16 {
                let want = crate::ops::ggml_expf(x[l]);
                assert_eq!(got[l].to_bits(), want.to_bits(), "exp({})", x[l]);
            }
        }
    }
}
