//! Causal multi-head attention with grouped-query heads over the f16 KV cache,
//! optionally restricted to a sliding window. A quantized cache (q8_0, q4_0)
//! is read by llama.cpp's flash-attention loop instead ([`attention_quant`]);
//! what follows is the f16 path.
//!
//! This follows llama.cpp's non-flash path (`build_attn_mha` in
//! src/llama-graph.cpp): `kq = K·q` with q rounded to f16 (the `vec_dot_type`
//! of an f16 cache) and an f16 dot product, `softmax(kq · kq_scale + mask)` in
//! f32, then `V·p` with the probabilities rounded to f16. Reproducing those two
//! roundings keeps hearth within float noise of llama.cpp instead of within f16
//! noise.
//!
//! On AVX-512 the two products also add their terms in ggml's order there, so
//! the output is llama.cpp's bit for bit (tests/attention_fixtures.rs): for a
//! batch of two or more queries llama.cpp multiplies with llamafile's tinyBLAS
//! (16 f32 lanes per output, the terms of index `i` going to lane `i % 16`,
//! then `_mm512_reduce_add_ps`), for a single query with `ggml_vec_dot_f16`
//! (64 lanes, combined pairwise, then reduced the same way); for `V·p` the
//! index is the cache cell, so hearth's lanes follow absolute positions. The
//! portable loops (other CPUs, or heads of other than a multiple of 16 values)
//! sum `K·q` with the F16 kernels' dot product and `V·p` in key order: within
//! float noise of llama.cpp, whose AVX2 and NEON orders differ again.
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

use super::{attention_quant, softmax_with_sink};
use crate::kv_cache::{KvLayer, KvType};

/// Query heads processed together over one key/value head; larger groups are
/// split into runs of this many.
pub(super) const GROUP: usize = 8;

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

/// Partial sums kept per output value by the AVX-512 `V·p` loop: one per key
/// residue modulo `16 * SETS` (see [`avx512::accumulate`]), at most 4 sets.
const PARTIALS: usize = 64;

/// Floats of one thread's scratch for a context of `n_ctx` positions: per
/// head of a group its f16 query (as f16 bits, half a float per value, and
/// widened back to f32), output, score row and the `V·p` partial sums, and
/// [`KEY_BLOCK`] key rows (or one value row) in f32.
fn per_thread(n_ctx: usize, head_dim: usize) -> usize {
    let f16 = GROUP * (head_dim.div_ceil(2) + 2 * head_dim + n_ctx + PARTIALS * head_dim)
        + KEY_BLOCK * head_dim;
    f16.max(attention_quant::scratch_floats(head_dim))
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
    attention_with(
        pool,
        shape,
        HeadTerms::default(),
        cache,
        q,
        pos0,
        out,
        scratch,
    )
}

/// Per-head terms of the softmax that some architectures add, `n_head`
/// values each.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeadTerms<'a> {
    /// Learned attention sinks (gpt-oss): `sinks[h]` is an extra logit in head
    /// `h`'s softmax (not scaled by `kq_scale`), which takes probability mass
    /// but contributes no value (ggml's `soft_max` with a sinks tensor,
    /// llama.cpp's `ggml_soft_max_add_sinks`).
    pub sinks: Option<&'a [f32]>,
    /// ALiBi slopes (bloom): the score of key position `j` for the query at
    /// `p` becomes `slope[h] · -(p - j) + score · kq_scale`, one fused
    /// multiply-add as ggml-cpu's `soft_max` adds `slope · mask` (llama.cpp's
    /// mask holds `-|p - j|` for ALiBi models).
    pub alibi: Option<&'a [f32]>,
}

/// [`attention`] with per-head softmax terms (sinks, ALiBi).
#[allow(clippy::too_many_arguments)]
pub fn attention_with(
    pool: &ThreadPool,
    shape: &AttentionShape,
    terms: HeadTerms<'_>,
    cache: KvLayer<'_>,
    q: &[f32],
    pos0: usize,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    for t in [terms.sinks, terms.alibi].into_iter().flatten() {
        assert_eq!(t.len(), shape.n_head, "one value per query head");
    }
    let q_dim = shape.n_head * shape.head_dim;
    let n_tokens = q.len() / q_dim;
    let group = shape.n_head / shape.n_head_kv;
    let runs_per_kv = group.div_ceil(GROUP);
    // One work item: a token, a key/value head and a run of its query heads.
    let n_items = n_tokens * shape.n_head_kv * runs_per_kv;
    let n_slots = pool.n_threads().min(n_items).max(1);
    let n_ctx = cache.n_ctx;
    cache.check(pos0 + n_tokens);
    assert!(
        shape.head_dim.is_multiple_of(cache.ty.block_size()),
        "heads of {} values in a {} cache",
        shape.head_dim,
        cache.ty
    );
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
            let head_terms = HeadTerms {
                sinks: terms.sinks.map(|s| &s[heads.clone()]),
                alibi: terms.alibi.map(|s| &s[heads.clone()]),
            };
            if cache.ty != KvType::F16 {
                let q = &q[at..at + len];
                attention_quant::attend(
                    shape,
                    head_terms,
                    cache,
                    q,
                    pos0 + t,
                    kv_head,
                    tmp,
                    out_heads,
                );
                continue;
            }
            attend(
                shape,
                head_terms,
                cache,
                &q[at..at + len],
                pos0 + t,
                kv_head,
                // Batch-invariant mode: every query in the batch order.
                n_tokens == 1 && !kernels::matmul::batch_invariant(),
                tmp,
                out_heads,
            );
        }
    });
}

/// The query heads in `q` (all sharing key/value head `kv_head`, at most
/// [`GROUP`]) at position `pos` attending over cache rows up to `pos`.
/// `single`: the query is a batch's only token (decoding), for which ggml
/// sums its two products in another order than for a batch of several (see
/// [`avx512`]). `terms`: the heads' sinks and ALiBi slopes, if any.
#[allow(clippy::too_many_arguments)]
fn attend(
    shape: &AttentionShape,
    terms: HeadTerms<'_>,
    cache: KvLayer<'_>,
    q: &[f32],
    pos: usize,
    kv_head: usize,
    single: bool,
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
    let n_ctx = cache.n_ctx;

    let (q16, rest) = tmp.split_at_mut(GROUP * hd.div_ceil(2));
    let (q32, rest) = rest.split_at_mut(GROUP * hd);
    let (acc, rest) = rest.split_at_mut(GROUP * hd);
    let (scores, rest) = rest.split_at_mut(GROUP * n_ctx);
    let (partials, rest) = rest.split_at_mut(GROUP * PARTIALS * hd);
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
                cache.table,
                kv_off,
                first,
                n_keys,
                &q32[..n * hd],
                hd,
                scores,
                n_ctx,
                block,
                single,
            );
            for h in 0..n {
                let row = &mut scores[h * n_ctx..h * n_ctx + n_keys];
                if let Some(cap) = shape.softcap {
                    row.iter_mut()
                        .for_each(|s| *s = (*s * (1.0 / cap)).tanh() * cap);
                }
                let sink = terms.sinks.map(|s| s[h]);
                match terms.alibi.map(|a| a[h]) {
                    Some(slope) => {
                        alibi(row, slope, shape.kq_scale, pos - first);
                        avx512::softmax_f16(row, first % 16, 1.0, sink);
                    }
                    None => avx512::softmax_f16(row, first % 16, shape.kq_scale, sink),
                }
            }
            let acc = &mut acc[..n * hd];
            let partials = &mut partials[..n * PARTIALS * hd];
            let (v, kv_dim, table) = (cache.v, cache.kv_dim, cache.table);
            if single {
                avx512::accumulate::<4>(
                    v, kv_dim, table, kv_off, first, n_keys, scores, n_ctx, hd, acc, partials,
                );
            } else {
                avx512::accumulate::<1>(
                    v, kv_dim, table, kv_off, first, n_keys, scores, n_ctx, hd, acc, partials,
                );
            }
        }
        out.copy_from_slice(&acc[..n * hd]);
        return;
    }

    // Portable loops: each key row read once for every head of the group.
    for (i, j) in (first..=pos).enumerate() {
        let k = f16_bytes(&cache.k[cache.row(j) * cache.kv_dim + kv_off..][..hd]);
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
        if let Some(slope) = terms.alibi.map(|a| a[h]) {
            alibi(row, slope, 1.0, pos - first);
        }
        softmax_with_sink(row, terms.sinks.map(|s| s[h]));
        // llama.cpp multiplies V by the probabilities rounded to f16.
        row.iter_mut().for_each(|p| *p = f16_to_f32(f32_to_f16(*p)));
    }

    // V·p: each value row converted once for every head of the group.
    let v32 = &mut block[..hd];
    acc[..n * hd].fill(0.0);
    for (i, j) in (first..=pos).enumerate() {
        let v = f16_bytes(&cache.v[cache.row(j) * cache.kv_dim + kv_off..][..hd]);
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

/// ALiBi over one head's score row: `row[i]` (the key `last - i` positions
/// before the query) becomes `slope · -(last - i) + row[i] · scale`.
fn alibi(row: &mut [f32], slope: f32, scale: f32, last: usize) {
    for (i, s) in row.iter_mut().enumerate() {
        *s = slope.mul_add(-((last - i) as f32), *s * scale);
    }
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
    use crate::kv_cache::BlockTable;

    /// How many cells ahead a pass of [`accumulate`] prefetches.
    #[cfg(target_arch = "x86_64")]
    const PREFETCH: usize = 8;

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
    /// Keys go in blocks of [`KEY_BLOCK`], widened once into `block` for all
    /// heads. Each dot product is summed in the order of the ggml routine that
    /// llama.cpp runs for `mul_mat(K, q)`:
    /// - for a batch of queries (`!single`), llamafile's tinyBLAS: one f32
    ///   accumulator over the row, 16 values at a time, reduced as
    ///   `_mm512_reduce_add_ps` does;
    /// - for a single query, `ggml_vec_dot_f16`: four accumulators, value `d`
    ///   of each 64 going to accumulator `d / 16 % 4`, combined as
    ///   `(a0 + a2) + (a1 + a3)` and reduced as above, then the values past the
    ///   last whole 64 added one by one in f64.
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
        table: Option<BlockTable<'_>>,
        kv_off: usize,
        first: usize,
        n_keys: usize,
        q: &[f32],
        hd: usize,
        scores: &mut [f32],
        stride: usize,
        block: &mut [f32],
        single: bool,
    ) {
        let n = q.len() / hd;
        let cells = super::KvLayer {
            k,
            v: k,
            kv_dim,
            ty: crate::kv_cache::KvType::F16,
            row_len: kv_dim,
            k_rot: 0,
            v_rot: 0,
            n_ctx: 0,
            table,
        };
        cells.check(first + n_keys);
        assert!(kv_off + hd <= kv_dim);
        assert!(n >= 1 && scores.len() >= (n - 1) * stride + n_keys);
        assert!(block.len() >= KEY_BLOCK * hd);
        let row = |i: usize| k[cells.row(first + i) * kv_dim + kv_off..][..hd].as_ptr();
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
                if single {
                    // SAFETY: query head h and the block's widened keys.
                    dots = unsafe {
                        match hd {
                            64 => dots_single::<4>(qh, kb),
                            128 => dots_single::<8>(qh, kb),
                            _ => std::array::from_fn(|j| dot_parts(qh, kb.add(j * hd), hd)),
                        }
                    };
                } else {
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
                }
                let out = scores[h * stride + i0..][..KEY_BLOCK].as_mut_ptr();
                // SAFETY: `i0 + 16 <= n_keys` scores of head h.
                unsafe { _mm512_storeu_ps(out, reduce16(&dots)) };
                if single && !hd.is_multiple_of(64) {
                    for j in 0..KEY_BLOCK {
                        // SAFETY: key j of the block and the score just stored.
                        unsafe { *out.add(j) = tail_f64(*out.add(j), qh, kb.add(j * hd), hd) };
                    }
                }
            }
        }
        for i in whole..n_keys {
            let r = row(i);
            // The key widened once into the block's first row.
            for d in (0..hd).step_by(16) {
                // SAFETY: `d + 16 <= hd` values of this key row and of
                // `block` (bounds asserted above).
                unsafe {
                    let x = _mm512_cvtph_ps(_mm256_loadu_si256(r.add(d).cast()));
                    _mm512_storeu_ps(kb.add(d), x);
                }
            }
            for h in 0..n {
                let qh = q[h * hd..].as_ptr();
                scores[h * stride + i] = if single {
                    // SAFETY: `hd` floats of query head h and of the key.
                    unsafe { tail_f64(_mm512_reduce_add_ps(dot_parts(qh, kb, hd)), qh, kb, hd) }
                } else {
                    let mut sum = _mm512_setzero_ps();
                    for d in (0..hd).step_by(16) {
                        // SAFETY: `d + 16 <= hd` values of the key and of
                        // query head h.
                        unsafe {
                            let kx = _mm512_loadu_ps(kb.add(d));
                            sum = _mm512_fmadd_ps(_mm512_loadu_ps(qh.add(d)), kx, sum);
                        }
                    }
                    _mm512_reduce_add_ps(sum)
                };
            }
        }
    }

    /// [`dot_parts`] of a query of `16 NV` values (`NV` a multiple of 4, so
    /// no leftovers) with each of [`KEY_BLOCK`] keys, the query kept in
    /// registers.
    ///
    /// # Safety
    /// AVX-512 F must be available, `q` hold `16 NV` floats and `keys`
    /// `KEY_BLOCK` rows of them.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2,fma,avx512f")]
    unsafe fn dots_single<const NV: usize>(q: *const f32, keys: *const f32) -> [__m512; KEY_BLOCK] {
        // SAFETY: (both) within the query and the keys (caller).
        let qv: [__m512; NV] = std::array::from_fn(|i| unsafe { _mm512_loadu_ps(q.add(16 * i)) });
        std::array::from_fn(|j| {
            let mut parts = [_mm512_setzero_ps(); 4];
            for (i, &qi) in qv.iter().enumerate() {
                let x = unsafe { _mm512_loadu_ps(keys.add(j * 16 * NV + 16 * i)) };
                parts[i % 4] = _mm512_fmadd_ps(x, qi, parts[i % 4]);
            }
            _mm512_add_ps(
                _mm512_add_ps(parts[0], parts[2]),
                _mm512_add_ps(parts[1], parts[3]),
            )
        })
    }

    /// `ggml_vec_dot_f16`'s vector part for `a · b` (`hd` floats each, `hd` a
    /// multiple of 16): the four accumulators over the whole 64s of the row,
    /// combined as `(a0 + a2) + (a1 + a3)`, before the final reduction.
    ///
    /// # Safety
    /// AVX-512 F must be available and `a`, `b` hold `hd` floats.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2,fma,avx512f")]
    unsafe fn dot_parts(a: *const f32, b: *const f32, hd: usize) -> __m512 {
        let mut parts = [_mm512_setzero_ps(); 4];
        for d in (0..hd / 64 * 64).step_by(64) {
            for (j, part) in parts.iter_mut().enumerate() {
                // SAFETY: `d + 64 <= hd` (caller).
                unsafe {
                    let x = _mm512_loadu_ps(b.add(d + 16 * j));
                    *part = _mm512_fmadd_ps(x, _mm512_loadu_ps(a.add(d + 16 * j)), *part);
                }
            }
        }
        _mm512_add_ps(
            _mm512_add_ps(parts[0], parts[2]),
            _mm512_add_ps(parts[1], parts[3]),
        )
    }

    /// `ggml_vec_dot_f16`'s leftovers: `sum` plus, in f64 one at a time, the
    /// products of the values of `a · b` past the last whole 64.
    ///
    /// # Safety
    /// `a` and `b` hold `hd` floats.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    unsafe fn tail_f64(sum: f32, a: *const f32, b: *const f32, hd: usize) -> f32 {
        let mut s = f64::from(sum);
        for d in hd / 64 * 64..hd {
            // SAFETY: `d < hd` (caller).
            s += f64::from(unsafe { *a.add(d) * *b.add(d) });
        }
        s as f32
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
    /// `p = e · (float)(1/Σe)`. ggml's row spans the cache cells from 0, so
    /// its blocks are aligned to cells: `row[0]` is cell `16 k + lead` (a
    /// sliding window's row starts past cell 0), and the first block here
    /// holds it in lane `lead`, the lanes before it 0 as ggml's masked cells.
    /// A `sink` (gpt-oss) joins the maximum and adds `expf(sink - max)`
    /// (libm's) to `Σe` after the row, as ggml's `soft_max` does.
    ///
    /// # Safety
    /// AVX-512 F and F16C must be available.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c,avx512f")]
    pub(super) unsafe fn softmax_f16(row: &mut [f32], lead: usize, scale: f32, sink: Option<f32>) {
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
        if let Some(s) = sink {
            max = max.max(s);
        }
        // ggml's score row spans the whole padded cache view (a multiple of 16
        // cells, masked ones at -inf), so every visible score goes through the
        // vector exp and every 16-lane block is summed with
        // `_mm512_reduce_add_ps`, masked lanes adding 0: the last partial block
        // is one masked vector here, not a libm tail.
        let vmax = _mm512_set1_ps(max);
        let mut i = 0;
        while i < len {
            let lanes = (len - i).min(16);
            let mask: __mmask16 = (1u32 << lanes).wrapping_sub(1) as u16;
            // SAFETY: the mask covers lanes `i..i + lanes`, all within `row`.
            unsafe {
                let s = _mm512_mask_loadu_ps(vmax, mask, x.add(i));
                let e = expf(_mm512_sub_ps(s, vmax));
                _mm512_mask_storeu_ps(x.add(i), mask, e);
            }
            i += lanes;
        }
        // Σe by cell-aligned blocks: block b holds row[16 b - lead ..].
        let lead = lead % 16;
        let mut sum = 0f64;
        let mut b = 0;
        while b < len + lead {
            let lo = lead.saturating_sub(b);
            let hi = (len + lead - b).min(16);
            let mask: __mmask16 = (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as u16;
            // SAFETY: only the lanes `lo..hi` are read, which are
            // row[b + lo - lead..b + hi - lead], within `row`; the base
            // address of the masked-off lanes is never dereferenced.
            unsafe {
                let e = _mm512_maskz_loadu_ps(mask, x.wrapping_add(b).wrapping_sub(lead));
                sum += f64::from(_mm512_reduce_add_ps(e));
            }
            b += 16;
        }
        if let Some(s) = sink {
            sum += f64::from((s - max).exp());
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
    /// `acc` (`hd` each), probabilities `p[h][i] = scores[h * stride + i]`,
    /// each value summed in the order of the ggml routine llama.cpp runs for
    /// `mul_mat(V, p)` (its V is the transposed cache, a row per value, so the
    /// sum runs over the cache cells `c`, which are hearth's positions):
    /// - `SETS = 1`, a batch of queries: llamafile's tinyBLAS, 16 partial sums
    ///   with lane `c % 16` taking cell `c`'s product by a fused multiply-add in
    ///   increasing `c`, reduced as `_mm512_reduce_add_ps` (lane `l` plus lane
    ///   `l + 8`, then `l + 4`, then `(l0 + l2) + (l1 + l3)`);
    /// - `SETS = 4`, a single query: `ggml_vec_dot_f16`, 64 partial sums, cell
    ///   `c` going to lane `c % 16` of accumulator `c / 16 % 4`, the four
    ///   combined as `(a0 + a2) + (a1 + a3)` and reduced as above (llama.cpp
    ///   pads the cells to a multiple of 256, so there are no leftovers; the
    ///   padding and the masked cells have `p = 0` and add nothing).
    ///
    /// Here the vector lanes are 16 values of V and the partial sums of a cell
    /// residue are separate registers, so the final reduction is vertical
    /// additions in that order. A pass keeps one residue's partial sums of
    /// `H` heads × `16 V` values in registers (4 × 64 where there are as many, so that
    /// each value row is widened once for 4 heads); the cells go in chunks
    /// that stay in L2 (64 cells per pass), per chunk each pass loads its partial sums from `partials`
    /// (starts them at 0 in the first chunk), takes the chunk's cells of its
    /// set and residue (16 apart, prefetched [`PREFETCH`] cells ahead), and
    /// stores them back.
    ///
    /// # Safety
    /// As [`scores`], with `acc` a whole number of heads and `partials`
    /// `64 * acc.len()` floats.
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma,f16c,avx512f")]
    pub(super) unsafe fn accumulate<const SETS: usize>(
        v: &[u16],
        kv_dim: usize,
        table: Option<BlockTable<'_>>,
        kv_off: usize,
        first: usize,
        n_keys: usize,
        scores: &[f32],
        stride: usize,
        hd: usize,
        acc: &mut [f32],
        partials: &mut [f32],
    ) {
        let n = acc.len() / hd;
        let end = first + n_keys;
        let cells = super::KvLayer {
            k: v,
            v,
            kv_dim,
            ty: crate::kv_cache::KvType::F16,
            row_len: kv_dim,
            k_rot: 0,
            v_rot: 0,
            n_ctx: 0,
            table,
        };
        cells.check(end);
        assert!(kv_off + hd <= kv_dim);
        assert!(n >= 1 && scores.len() >= (n - 1) * stride + n_keys);
        assert!(hd.is_multiple_of(16) && partials.len() >= n * hd * 16 * SETS);
        assert!(SETS == 1 || SETS == 4);
        let super_block = 16 * SETS;
        // Whole super-blocks, aligned to absolute cells so that each block
        // keeps its set; 64 cells per pass (128 KiB of f16 values with 64 per
        // head and one set, 512 KiB with four).
        let chunk = (SETS * 64 * 1024 / (hd * super_block)).max(1) * super_block;
        let pass = Pass {
            v: v[kv_off..].as_ptr(),
            cells,
            kv_dim,
            p: scores.as_ptr(),
            stride,
            first,
            parts: partials.as_mut_ptr(),
            hd,
            sets: SETS,
        };
        let start = first / super_block * super_block;
        let mut c0 = start;
        while c0 < end {
            let c1 = (c0 + chunk).min(end);
            // The first chunk starts the partial sums at 0.
            let fresh = c0 == start;
            let mut h = 0;
            while h < n {
                let heads = match n - h {
                    1 => 1,
                    2 | 3 => 2,
                    _ => 4,
                };
                let mut d = 0;
                while d < hd {
                    let vecs = match (hd - d) / 16 {
                        1 => 1,
                        2 | 3 => 2,
                        _ => 4,
                    };
                    for set in 0..SETS {
                        for r in 0..16 {
                            let cells = (c0 + 16 * set + r)..c1;
                            // SAFETY: heads `h..h + heads` and values
                            // `d..d + 16 * vecs` are in `acc`, cells
                            // `first..end` in the cache and `p` (asserted
                            // above).
                            unsafe {
                                match (heads, vecs) {
                                    (4, 4) => pass.run::<4, 4>(h, d, set, cells, fresh),
                                    (4, 2) => pass.run::<4, 2>(h, d, set, cells, fresh),
                                    (4, _) => pass.run::<4, 1>(h, d, set, cells, fresh),
                                    (2, 4) => pass.run::<2, 4>(h, d, set, cells, fresh),
                                    (2, 2) => pass.run::<2, 2>(h, d, set, cells, fresh),
                                    (2, _) => pass.run::<2, 1>(h, d, set, cells, fresh),
                                    (_, 4) => pass.run::<1, 4>(h, d, set, cells, fresh),
                                    (_, 2) => pass.run::<1, 2>(h, d, set, cells, fresh),
                                    _ => pass.run::<1, 1>(h, d, set, cells, fresh),
                                }
                            }
                        }
                    }
                    d += 16 * vecs;
                }
                h += heads;
            }
            c0 += chunk;
        }
        let parts = partials.as_ptr();
        let set_len = 16 * 16;
        for h in 0..n {
            for d in (0..hd).step_by(16) {
                let at = (h * hd + d) / 16 * SETS * set_len;
                // SAFETY: the sets of values `d..d + 16` of head h in
                // `partials` and those values in `acc` (asserted above).
                unsafe {
                    let load = |set: usize, t: usize| {
                        _mm512_loadu_ps(parts.add(at + set * set_len + 16 * t))
                    };
                    let s: [__m512; 16] = std::array::from_fn(|t| {
                        if SETS == 1 {
                            load(0, t)
                        } else {
                            _mm512_add_ps(
                                _mm512_add_ps(load(0, t), load(2, t)),
                                _mm512_add_ps(load(1, t), load(3, t)),
                            )
                        }
                    });
                    let h8: [__m512; 8] = std::array::from_fn(|i| _mm512_add_ps(s[i], s[i + 8]));
                    let q4: [__m512; 4] = std::array::from_fn(|i| _mm512_add_ps(h8[i], h8[i + 4]));
                    let r = _mm512_add_ps(_mm512_add_ps(q4[0], q4[2]), _mm512_add_ps(q4[1], q4[3]));
                    _mm512_storeu_ps(acc[h * hd + d..][..16].as_mut_ptr(), r);
                }
            }
        }
    }

    /// What the passes of [`accumulate`] share: values of one key/value head
    /// from `v` (a row every `kv_dim`), probability rows from `p` (`stride`
    /// apart, entry `c - first` for cell `c`), visible cells `first..end`, and
    /// the partial sums, 16 floats for each (head, 16 values, set, residue).
    #[cfg(target_arch = "x86_64")]
    struct Pass<'a> {
        v: *const u16,
        /// The rows of the cells (through the block table of a paged cache).
        cells: super::KvLayer<'a>,
        kv_dim: usize,
        p: *const f32,
        stride: usize,
        first: usize,
        parts: *mut f32,
        hd: usize,
        sets: usize,
    }

    #[cfg(target_arch = "x86_64")]
    impl Pass<'_> {
        /// Heads `h0..h0 + H`, values `d..d + 16 V`, the cells `cells.start,
        /// cells.start + 16 * sets, ...` below `cells.end` (one residue of one
        /// set): adds their products to the partial sums of that residue (to
        /// 0 if `fresh`).
        ///
        /// # Safety
        /// AVX-512 F and F16C must be available; the heads, values and cells
        /// `first..end` must be within the buffers.
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c,avx512f")]
        unsafe fn run<const H: usize, const V: usize>(
            &self,
            h0: usize,
            d: usize,
            set: usize,
            cells: std::ops::Range<usize>,
            fresh: bool,
        ) {
            let r = cells.start % 16;
            let part = |h: usize, v: usize| {
                let vec = ((h0 + h) * self.hd + d) / 16 + v;
                // SAFETY: within `partials` (caller).
                unsafe { self.parts.add(((vec * self.sets + set) * 16 + r) * 16) }
            };
            // SAFETY: (all below) the partial sums, rows and probabilities
            // named are in their buffers (caller): a cell is read only when
            // within `first..end`.
            let mut sums: [[__m512; V]; H] = std::array::from_fn(|h| {
                std::array::from_fn(|v| {
                    if fresh {
                        _mm512_setzero_ps()
                    } else {
                        unsafe { _mm512_loadu_ps(part(h, v)) }
                    }
                })
            });
            let p: [*const f32; H] =
                std::array::from_fn(|h| self.p.wrapping_add((h0 + h) * self.stride));
            // The first cell of the residue at or after `first`.
            let mut c = cells.start;
            while c < self.first {
                c += 16 * self.sets;
            }
            let step = 16 * self.sets;
            let last = cells.end - 1;
            while c < cells.end {
                unsafe {
                    let row = self.v.add(self.cells.row(c) * self.kv_dim + d);
                    // The cells of a pass are far apart, beyond the hardware
                    // prefetchers' reach: fetch the row `PREFETCH` cells on.
                    let ahead = self.cells.row((c + PREFETCH * step).min(last));
                    let next = self.v.wrapping_add(ahead * self.kv_dim + d).cast::<i8>();
                    _mm_prefetch::<_MM_HINT_T0>(next);
                    _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(32 * V - 1));
                    let x: [__m512; V] = std::array::from_fn(|v| {
                        _mm512_cvtph_ps(_mm256_loadu_si256(row.add(16 * v).cast()))
                    });
                    for (h, sum) in sums.iter_mut().enumerate() {
                        let ph = _mm512_set1_ps(*p[h].add(c - self.first));
                        for (s, &xv) in sum.iter_mut().zip(&x) {
                            *s = _mm512_fmadd_ps(xv, ph, *s);
                        }
                    }
                }
                c += step;
            }
            for (h, row) in sums.iter().enumerate() {
                for (v, s) in row.iter().enumerate() {
                    unsafe { _mm512_storeu_ps(part(h, v), *s) };
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
        _: Option<BlockTable<'_>>,
        _: usize,
        _: usize,
        _: usize,
        _: &[f32],
        _: usize,
        _: &mut [f32],
        _: usize,
        _: &mut [f32],
        _: bool,
    ) {
        unreachable!()
    }

    /// Never called off x86-64: [`usable`] is false there.
    #[cfg(not(target_arch = "x86_64"))]
    pub(super) unsafe fn softmax_f16(_: &mut [f32], _: usize, _: f32, _: Option<f32>) {
        unreachable!()
    }

    /// Never called off x86-64: [`usable`] is false there.
    #[cfg(not(target_arch = "x86_64"))]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn accumulate<const SETS: usize>(
        _: &[u16],
        _: usize,
        _: Option<BlockTable<'_>>,
        _: usize,
        _: usize,
        _: usize,
        _: &[f32],
        _: usize,
        _: usize,
        _: &mut [f32],
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
    /// softmax over the whole visible row and the `sink` logit if any, in f64.
    fn direct(
        kv: &KvCache,
        sh: &AttentionShape,
        q: &[f32],
        pos: usize,
        head: usize,
        sink: Option<f32>,
    ) -> Vec<f64> {
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
        let sink = sink.map(f64::from);
        let m = s.iter().copied().chain(sink).fold(f64::MIN, f64::max);
        let z: f64 = s.iter().copied().chain(sink).map(|x| (x - m).exp()).sum();
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
        // 200 positions, three queries at once, with and without a window,
        // with and without attention sinks (from -20 to 16 against the largest
        // scores of about 15: from no share of the probability to nearly all).
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
        let sinks: Vec<f32> = (0..n_head).map(|h| (h as f32 - 5.0) * 4.0).collect();
        for (window, sinks) in [
            (None, None),
            (Some(70), None),
            (None, Some(&sinks[..])),
            (Some(70), Some(&sinks[..])),
        ] {
            let sh = AttentionShape {
                n_head,
                n_head_kv: 1,
                head_dim: hd,
                kq_scale: 0.5,
                window,
                softcap: None,
            };
            let mut out = vec![0f32; q.len()];
            attention_with(
                &pool,
                &sh,
                HeadTerms { sinks, alibi: None },
                kv.layer(0),
                &q,
                n - 3,
                &mut out,
                &mut scratch,
            );
            for t in 0..3 {
                for h in 0..n_head {
                    let at = (t * n_head + h) * hd;
                    let sink = sinks.map(|s| s[h]);
                    let want = direct(&kv, &sh, &q[at..at + hd], n - 3 + t, h, sink);
                    for (d, w) in want.iter().enumerate() {
                        let got = f64::from(out[at + d]);
                        // p is rounded to f16 (relative 2^-11) before V·p; |v| < 2.
                        assert!(
                            (got - w).abs() < 2e-3,
                            "{window:?} {sink:?} t{t} h{h} d{d}: {got} vs {w}"
                        );
                    }
                }
            }
        }
    }

    /// `_mm512_reduce_add_ps`'s order over 16 lanes.
    #[cfg(target_arch = "x86_64")]
    fn reduce_add(a: [f32; 16]) -> f32 {
        let h: [f32; 8] = std::array::from_fn(|i| a[i] + a[i + 8]);
        let q: [f32; 4] = std::array::from_fn(|i| h[i] + h[i + 4]);
        (q[0] + q[2]) + (q[1] + q[3])
    }

    /// ggml's two dot products, scalar: tinyBLAS' (`sets == 1`: 16 lanes by
    /// index mod 16) or `ggml_vec_dot_f16`'s (`sets == 4`: 64 lanes by index
    /// mod 64 over the whole 64s, combined as (a0 + a2) + (a1 + a3), the rest
    /// in f64), of `x[i] · y[i]` for `i` in `range` (lanes by absolute index;
    /// below `range.start` the products are 0).
    #[cfg(target_arch = "x86_64")]
    fn ggml_dot(
        sets: usize,
        range: std::ops::Range<usize>,
        x: impl Fn(usize) -> f32,
        y: impl Fn(usize) -> f32,
    ) -> f32 {
        let whole = if sets == 1 {
            range.end
        } else {
            range.end / 64 * 64
        };
        let mut lanes = [[0f32; 16]; 4];
        for i in range.start..whole {
            let l = &mut lanes[i / 16 % sets][i % 16];
            *l = x(i).mul_add(y(i), *l);
        }
        let a: [f32; 16] = std::array::from_fn(|t| {
            if sets == 1 {
                lanes[0][t]
            } else {
                (lanes[0][t] + lanes[2][t]) + (lanes[1][t] + lanes[3][t])
            }
        });
        let mut s = f64::from(reduce_add(a));
        for i in whole.max(range.start)..range.end {
            s += f64::from(x(i) * y(i));
        }
        s as f32
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    #[cfg_attr(not(hearth_avx512), ignore = "needs AVX-512")]
    fn avx512_products_sum_in_ggml_orders() {
        assert_eq!(kernels::cpu_level(), kernels::Cpu::Avx512);
        let mut rng = 5u32;
        let mut next = || {
            rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (rng >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
        };
        // 80 and 96 values: `ggml_vec_dot_f16` leftovers; key ranges starting
        // and ending inside blocks of 16 and chunks; 7 heads (passes of 4, 2
        // and 1).
        for (hd, first, end) in [
            (64, 0, 64),
            (64, 0, 300),
            (80, 5, 77),
            (96, 37, 530),
            (128, 100, 233),
        ] {
            let (kv_dim, n) = (2 * hd, 7);
            let rows = end + 3;
            let k: Vec<u16> = (0..rows * kv_dim).map(|_| f32_to_f16(next())).collect();
            let v: Vec<u16> = (0..rows * kv_dim).map(|_| f32_to_f16(next())).collect();
            let q: Vec<f32> = (0..n * hd)
                .map(|_| f16_to_f32(f32_to_f16(next())))
                .collect();
            let stride = rows + 5;
            let p: Vec<f32> = (0..n * stride)
                .map(|_| f16_to_f32(f32_to_f16(next().abs())))
                .collect();
            let n_keys = end - first;
            let kv_off = hd;
            let mut block = vec![0f32; KEY_BLOCK * hd];
            let mut partials = vec![0f32; n * PARTIALS * hd];
            for single in [false, true] {
                let sets = if single { 4 } else { 1 };
                let mut scores = vec![0f32; n * stride];
                let mut acc = vec![0f32; n * hd];
                // SAFETY: AVX-512 checked above; the buffers have the sizes
                // the functions ask for.
                unsafe {
                    avx512::scores(
                        &k,
                        kv_dim,
                        None,
                        kv_off,
                        first,
                        n_keys,
                        &q,
                        hd,
                        &mut scores,
                        stride,
                        &mut block,
                        single,
                    );
                    if single {
                        avx512::accumulate::<4>(
                            &v,
                            kv_dim,
                            None,
                            kv_off,
                            first,
                            n_keys,
                            &p,
                            stride,
                            hd,
                            &mut acc,
                            &mut partials,
                        );
                    } else {
                        avx512::accumulate::<1>(
                            &v,
                            kv_dim,
                            None,
                            kv_off,
                            first,
                            n_keys,
                            &p,
                            stride,
                            hd,
                            &mut acc,
                            &mut partials,
                        );
                    }
                }
                for h in 0..n {
                    for i in 0..n_keys {
                        let key = |d: usize| f16_to_f32(k[(first + i) * kv_dim + kv_off + d]);
                        let want = ggml_dot(sets, 0..hd, key, |d| q[h * hd + d]);
                        let got = scores[h * stride + i];
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "hd {hd} single {single} head {h} key {i}: {got} vs {want}"
                        );
                    }
                    for d in 0..hd {
                        let val = |c: usize| f16_to_f32(v[c.min(end) * kv_dim + kv_off + d]);
                        let want = ggml_dot(sets, first..end.next_multiple_of(256), val, |c| {
                            // llama.cpp pads the cells to a multiple of 256, with p = 0.
                            if c < end {
                                p[h * stride + c - first]
                            } else {
                                0.0
                            }
                        });
                        let got = acc[h * hd + d];
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "hd {hd} single {single} head {h} value {d}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    #[cfg_attr(not(hearth_avx512), ignore = "needs AVX-512")]
    fn avx512_reduce16_and_expf_match_the_per_vector_forms() {
        use std::arch::x86_64::*;
        assert_eq!(kernels::cpu_level(), kernels::Cpu::Avx512);
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
