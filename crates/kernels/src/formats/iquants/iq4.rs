//! IQ4_NL and IQ4_XS: dequantizers, the reference quantizers, and dot products.
//!
//! The quantizer is ggml-quants.c `quantize_row_iq4_nl_impl` without an importance
//! matrix (weights are `x²`), transliterated so that the bytes match ggml's: the
//! same f32 operations in the same order, the same nearest-level search
//! (`best_index_int8`) and rounding (`nearest_int`), f16 scales rounded to nearest
//! even.

use super::QK_K;
use super::blocks::{BlockIq4Nl, BlockIq4Xs, ReadBlock, blocks};
use super::dot::{Q8_0_BYTES, Q8_K_BYTES, Q8View};
use super::grids::KVALUES_IQ4NL;
use crate::formats::float::{f16_to_f32, f32_to_f16};

/// Weights per IQ4_NL block, and per scale group in IQ4_XS (ggml's `QK4_NL`).
const QK4_NL: usize = 32;

/// Groups with a largest magnitude below this are stored as zero (ggml-quants.c,
/// `GROUP_MAX_EPS`).
const GROUP_MAX_EPS: f32 = 1e-15;

/// The IQ4 level of 4-bit index `q`, as f32.
fn level(q: u8) -> f32 {
    f32::from(KVALUES_IQ4NL[usize::from(q & 0xf)])
}

/// The IQ4 level of 4-bit index `q`, as an integer.
fn level_i32(q: u8) -> i32 {
    i32::from(KVALUES_IQ4NL[usize::from(q & 0xf)])
}

/// IQ4_NL row → f32 (ggml-quants.c, dequantize_row_iq4_nl).
pub fn dequantize_row_iq4_nl(src: &[u8], dst: &mut [f32]) {
    for (blk, y) in blocks::<BlockIq4Nl>(src).zip(dst.chunks_exact_mut(QK4_NL)) {
        let d = f16_to_f32(blk.d);
        for (j, &q) in blk.qs.iter().enumerate() {
            y[j] = d * level(q);
            y[j + 16] = d * level(q >> 4);
        }
    }
}

/// IQ4_XS row → f32 (ggml-quants.c, dequantize_row_iq4_xs).
pub fn dequantize_row_iq4_xs(src: &[u8], dst: &mut [f32]) {
    for (blk, y) in blocks::<BlockIq4Xs>(src).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(blk.d);
        for (ib, (y, qs)) in y
            .chunks_exact_mut(32)
            .zip(blk.qs.chunks_exact(16))
            .enumerate()
        {
            let dl = d * (blk.group_scale(ib) - 32) as f32;
            for (j, &q) in qs.iter().enumerate() {
                y[j] = dl * level(q);
                y[j + 16] = dl * level(q >> 4);
            }
        }
    }
}

/// Index of the level in the ascending table `values` nearest to `x`; ties and
/// NaN resolve as in ggml-quants.c `best_index_int8`.
fn best_index(values: &[i8; 16], x: f32) -> u8 {
    let at = |i: usize| f32::from(values[i]);
    if x <= at(0) {
        return 0;
    }
    if x >= at(15) {
        return 15;
    }
    let (mut lo, mut hi) = (0, 15);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if x < at(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    if x - at(hi - 1) < at(hi) - x {
        (hi - 1) as u8
    } else {
        hi as u8
    }
}

/// Round to the nearest integer, ties to even, by ggml's magic-number trick
/// (ggml-quants.c `nearest_int`; exact for |x| < 2²²).
fn nearest_int(x: f32) -> i32 {
    let bits = (x + 12_582_912.0).to_bits() as i32;
    (bits & 0x007f_ffff) - 0x0040_0000
}

/// Sums over one group of `Σ w·q·x` and `Σ w·q²` for the levels chosen at inverse
/// scale `id`, accumulated as ggml does; also the chosen indices, if `out` is given.
fn fit(xb: &[f32], id: f32, mut out: Option<&mut [u8]>) -> (f32, f32) {
    let (mut sumqx, mut sumq2) = (0f32, 0f32);
    for (j, &x) in xb.iter().enumerate() {
        let l = best_index(&KVALUES_IQ4NL, id * x);
        if let Some(out) = out.as_deref_mut() {
            out[j] = l;
        }
        let q = f32::from(KVALUES_IQ4NL[usize::from(l)]);
        let w = x * x;
        sumqx += w * q * x;
        sumq2 += w * q * q;
    }
    (sumqx, sumq2)
}

/// Best scale for one group of 32 (the per-group part of ggml's
/// `quantize_row_iq4_nl_impl` with `quant_weights == NULL`), writing the level
/// indices of the initial guess into `lb`. `None` if the group is all but zero, in
/// which case `lb` is left untouched, as in ggml.
fn group_scale(xb: &[f32], lb: &mut [u8], ntry: i32) -> Option<f32> {
    let (mut amax, mut max) = (0f32, 0f32);
    for &x in xb {
        if x.abs() > amax {
            amax = x.abs();
            max = x;
        }
    }
    if amax < GROUP_MAX_EPS {
        return None;
    }
    let v0 = f32::from(KVALUES_IQ4NL[0]);
    let d = if ntry > 0 { -max / v0 } else { max / v0 };
    let (sumqx, sumq2) = fit(xb, 1.0 / d, Some(lb));
    let mut d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
    let mut best = d * sumqx;
    for itry in -ntry..=ntry {
        let id = (itry + i32::from(KVALUES_IQ4NL[0])) as f32 / max;
        let (sumqx, sumq2) = fit(xb, id, None);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    Some(d)
}

/// Pack 32 level indices into 16 bytes: byte `j` = `l[j] | l[j + 16] << 4`.
fn pack(l: &[u8], qs: &mut [u8]) {
    for (j, q) in qs.iter_mut().enumerate() {
        *q = l[j] | (l[j + 16] << 4);
    }
}

/// Quantize IQ4_NL blocks with ggml's `quantize_row_iq4_nl_impl` in its
/// one-group-per-block mode. `l` carries level indices from block to block: for an
/// all-zero block ggml writes whatever its index buffer held (the previous block's
/// levels) when `ntry <= 0`; the scale is 0 then, so only the bytes, not the values,
/// depend on it.
fn quantize_iq4_nl_blocks(src: &[f32], dst: &mut [u8], ntry: i32) {
    let mut l = [0u8; QK4_NL];
    for (x, out) in src
        .chunks_exact(QK4_NL)
        .zip(dst.chunks_exact_mut(BlockIq4Nl::BYTES))
    {
        let scale = group_scale(x, &mut l, ntry).unwrap_or(0.0);
        if ntry > 0 {
            let id = if scale != 0.0 { 1.0 / scale } else { 0.0 };
            for (lj, &xj) in l.iter_mut().zip(x) {
                *lj = best_index(&KVALUES_IQ4NL, id * xj);
            }
        }
        let mut blk = BlockIq4Nl {
            d: f32_to_f16(scale),
            qs: [0; 16],
        };
        pack(&l, &mut blk.qs);
        blk.write(out);
    }
}

/// f32 → IQ4_NL, bit-exact with ggml's `quantize_row_iq4_nl_ref` (a single scale
/// fit per block, no search: `ntry = -1`).
pub fn quantize_row_iq4_nl_ref(src: &[f32], dst: &mut [u8]) {
    quantize_iq4_nl_blocks(src, dst, -1);
}

/// f32 → IQ4_NL as llama-quantize does without an importance matrix, bit-exact with
/// ggml's `quantize_iq4_nl(.., quant_weights = NULL)`: 15 candidate scales are
/// tried per block (`ntry = 7`), so the error is lower than the `_ref` variant's.
pub fn quantize_iq4_nl(src: &[f32], dst: &mut [u8]) {
    quantize_iq4_nl_blocks(src, dst, 7);
}

/// f32 → IQ4_XS, bit-exact with ggml's `quantize_row_iq4_xs_ref`
/// (`quantize_iq4_xs` with no importance matrix, which is also what
/// llama-quantize does without one).
pub fn quantize_row_iq4_xs_ref(src: &[f32], dst: &mut [u8]) {
    for (x, out) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(BlockIq4Xs::BYTES))
    {
        quantize_block_iq4_xs(x, out);
    }
}

/// One IQ4_XS super-block: fit a scale per group, quantize those to 6 bits against
/// an f16 super-block scale, then choose levels for the quantized group scales
/// (ggml-quants.c `quantize_row_iq4_nl_impl`, `super_block_size / block_size > 1`).
fn quantize_block_iq4_xs(x: &[f32], out: &mut [u8]) {
    let mut l = [0u8; QK_K];
    let mut scales = [0f32; QK_K / QK4_NL];
    let (mut max_scale, mut amax_scale) = (0f32, 0f32);
    for ((xb, lb), s) in x
        .chunks_exact(QK4_NL)
        .zip(l.chunks_exact_mut(QK4_NL))
        .zip(&mut scales)
    {
        *s = group_scale(xb, lb, 7).unwrap_or(0.0);
        if s.abs() > amax_scale {
            amax_scale = s.abs();
            max_scale = *s;
        }
    }

    let d = -max_scale / 32.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut blk = BlockIq4Xs {
        d: f32_to_f16(d),
        scales_h: 0,
        scales_l: [0; 4],
        qs: [0; 128],
    };
    for (ib, (xb, lb)) in x
        .chunks_exact(QK4_NL)
        .zip(l.chunks_exact_mut(QK4_NL))
        .enumerate()
    {
        let ls = nearest_int(id * scales[ib]).clamp(-32, 31);
        let dl = d * ls as f32;
        let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
        for (lj, &xj) in lb.iter_mut().zip(xb) {
            *lj = best_index(&KVALUES_IQ4NL, idl * xj);
        }
        let ls = (ls + 32) as u8;
        blk.scales_l[ib / 2] |= (ls & 0xf) << (4 * (ib % 2));
        blk.scales_h |= u16::from(ls >> 4) << (2 * ib);
        pack(lb, &mut blk.qs[16 * ib..16 * ib + 16]);
    }
    blk.write(out);
}

/// IQ4_NL · Q8_0 dot product of `n` weights (ggml-cpu/quants.c,
/// ggml_vec_dot_iq4_nl_q8_0_generic).
pub fn vec_dot_iq4_nl_q8_0(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let mut sumf = 0f32;
    let ys = y.chunks_exact(Q8_0_BYTES).map(Q8View::q8_0);
    for (xb, yb) in blocks::<BlockIq4Nl>(x).zip(ys).take(n / QK4_NL) {
        let d = yb.d * f16_to_f32(xb.d);
        let (mut sumi1, mut sumi2) = (0i32, 0i32);
        for (j, &q) in xb.qs.iter().enumerate() {
            sumi1 += yb.q(j) * level_i32(q);
            sumi2 += yb.q(j + 16) * level_i32(q >> 4);
        }
        sumf += d * (sumi1 + sumi2) as f32;
    }
    sumf
}

/// IQ4_XS · Q8_K dot product of `n` weights (ggml-cpu/quants.c,
/// ggml_vec_dot_iq4_xs_q8_K_generic).
pub fn vec_dot_iq4_xs_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let mut sumf = 0f32;
    let ys = y.chunks_exact(Q8_K_BYTES).map(Q8View::q8_k);
    for (xb, yb) in blocks::<BlockIq4Xs>(x).zip(ys).take(n / QK_K) {
        let d4d8 = f16_to_f32(xb.d) * yb.d;
        for ib in 0..QK_K / 32 {
            let dl = d4d8 * (xb.group_scale(ib) - 32) as f32;
            let qs = &xb.qs[16 * ib..16 * ib + 16];
            let (mut sumi1, mut sumi2) = (0i32, 0i32);
            for (j, &q) in qs.iter().enumerate() {
                sumi1 += yb.q(32 * ib + j) * level_i32(q);
                sumi2 += yb.q(32 * ib + j + 16) * level_i32(q >> 4);
            }
            sumf += dl * (sumi1 + sumi2) as f32;
        }
    }
    sumf
}
