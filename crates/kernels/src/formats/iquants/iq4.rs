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
fn fit(xb: &[f32], wb: &[f32], id: f32, mut out: Option<&mut [u8]>) -> (f32, f32) {
    let (mut sumqx, mut sumq2) = (0f32, 0f32);
    for (j, (&x, &w)) in xb.iter().zip(wb).enumerate() {
        let l = best_index(&KVALUES_IQ4NL, id * x);
        if let Some(out) = out.as_deref_mut() {
            out[j] = l;
        }
        let q = f32::from(KVALUES_IQ4NL[usize::from(l)]);
        sumqx += w * q * x;
        sumq2 += w * q * q;
    }
    (sumqx, sumq2)
}

/// Best scale for one group of 32 under weights `wb` (the per-group part of
/// ggml's `quantize_row_iq4_nl_impl`), writing the level indices of the initial
/// guess into `lb`. `None` if the group is all but zero, in which case `lb` is
/// left untouched, as in ggml.
fn group_scale(xb: &[f32], wb: &[f32], lb: &mut [u8], ntry: i32) -> Option<f32> {
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
    let (sumqx, sumq2) = fit(xb, wb, 1.0 / d, Some(lb));
    let mut d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
    let mut best = d * sumqx;
    for itry in -ntry..=ntry {
        let id = (itry + i32::from(KVALUES_IQ4NL[0])) as f32 / max;
        let (sumqx, sumq2) = fit(xb, wb, id, None);
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
fn quantize_iq4_nl_blocks(src: &[f32], dst: &mut [u8], ntry: i32, qw: Option<&[f32]>) {
    let mut l = [0u8; QK4_NL];
    let mut w = [0f32; QK4_NL];
    for (ib, (x, out)) in src
        .chunks_exact(QK4_NL)
        .zip(dst.chunks_exact_mut(BlockIq4Nl::BYTES))
        .enumerate()
    {
        weights(x, qw.map(|q| &q[ib * QK4_NL..(ib + 1) * QK4_NL]), &mut w);
        let scale = group_scale(x, &w, &mut l, ntry).unwrap_or(0.0);
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
    quantize_iq4_nl_blocks(src, dst, -1, None);
}

/// The weights of one super-block `x` (ggml's `quantize_row_iq4_nl_impl`): with
/// an importance matrix `qw`, `qw[j]·sqrt(sigma2 + x[j]²)` where `sigma2` is
/// twice the mean square of `x`; without, `x[j]²`.
fn weights(x: &[f32], qw: Option<&[f32]>, out: &mut [f32]) {
    let Some(qw) = qw else {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = v * v;
        }
        return;
    };
    let mut sigma2 = 0f32;
    for &v in x {
        sigma2 += v * v;
    }
    sigma2 *= 2.0 / x.len() as f32;
    for ((o, &v), &q) in out.iter_mut().zip(x).zip(qw) {
        *o = q * (sigma2 + v * v).sqrt();
    }
}

/// f32 → IQ4_NL with an importance matrix (one weight per column of the row),
/// bit-exact with ggml's `quantize_iq4_nl`.
pub fn quantize_iq4_nl_weighted(src: &[f32], dst: &mut [u8], qw: &[f32]) {
    quantize_iq4_nl_blocks(src, dst, 7, Some(qw));
}

/// f32 → IQ4_XS with an importance matrix, bit-exact with ggml's `quantize_iq4_xs`.
pub fn quantize_iq4_xs_weighted(src: &[f32], dst: &mut [u8], qw: &[f32]) {
    for (ib, (x, out)) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(BlockIq4Xs::BYTES))
        .enumerate()
    {
        quantize_block_iq4_xs(x, out, Some(&qw[ib * QK_K..(ib + 1) * QK_K]));
    }
}

/// f32 → IQ4_NL as llama-quantize does without an importance matrix, bit-exact with
/// ggml's `quantize_iq4_nl(.., quant_weights = NULL)`: 15 candidate scales are
/// tried per block (`ntry = 7`), so the error is lower than the `_ref` variant's.
pub fn quantize_iq4_nl(src: &[f32], dst: &mut [u8]) {
    quantize_iq4_nl_blocks(src, dst, 7, None);
}

/// f32 → IQ4_XS, bit-exact with ggml's `quantize_row_iq4_xs_ref`
/// (`quantize_iq4_xs` with no importance matrix, which is also what
/// llama-quantize does without one).
pub fn quantize_row_iq4_xs_ref(src: &[f32], dst: &mut [u8]) {
    for (x, out) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(BlockIq4Xs::BYTES))
    {
        quantize_block_iq4_xs(x, out, None);
    }
}

/// One IQ4_XS super-block: fit a scale per group, quantize those to 6 bits against
/// an f16 super-block scale, then choose levels for the quantized group scales
/// (ggml-quants.c `quantize_row_iq4_nl_impl`, `super_block_size / block_size > 1`).
fn quantize_block_iq4_xs(x: &[f32], out: &mut [u8], qw: Option<&[f32]>) {
    let mut w = [0f32; QK_K];
    weights(x, qw, &mut w);
    let mut l = [0u8; QK_K];
    let mut scales = [0f32; QK_K / QK4_NL];
    let (mut max_scale, mut amax_scale) = (0f32, 0f32);
    for (((xb, wb), lb), s) in x
        .chunks_exact(QK4_NL)
        .zip(w.chunks_exact(QK4_NL))
        .zip(l.chunks_exact_mut(QK4_NL))
        .zip(&mut scales)
    {
        *s = group_scale(xb, wb, lb, 7).unwrap_or(0.0);
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

/// Smallest number of activation rows for which ggml-cpu multiplies IQ4_XS (and
/// the K-quant and other IQ formats) with its tiled kernels instead of one
/// `vec_dot` per output (ggml-cpu/tiled/tiled.cpp, `ggml_tiled_min_batch`; on
/// by default on x86 with AVX or better, `GGML_CPU_TILED_MM=0` turns it off).
/// For a mixture-of-experts matmul the count is the rows routed to one expert.
pub const TILED_MIN_BATCH: usize = 8;

/// IQ4_XS · Q8_K dot product of `n` weights in the order of ggml-cpu's tiled
/// matmul, which llama.cpp uses for batches of [`TILED_MIN_BATCH`] activation
/// rows or more (prompt processing); `vec_dot_iq4_xs_q8_k` is its order for
/// fewer (decoding).
///
/// Per super-block the tile kernels sum `Σ (scale - 32) · Σ level·y` exactly in
/// integers, convert it to f32, multiply by the weight scale, then fold in the
/// activation scale with one fused multiply-add into the running sum, which
/// starts at zero: `acc = fma(f32(isum) · d_w, d_y, acc)`, super-blocks in
/// order (ggml-cpu/tiled/tiled-kernel.cpp, `tiled_run_micro_vnni_8x16` and
/// `tiled_run_microtile_avx2`; GCC fuses the AVX-512 epilogue's multiply and
/// add, seen in libggml-cpu.so). Bit for bit the same on every SIMD level, as
/// only the integer part is vectorised.
pub fn vec_dot_iq4_xs_q8_k_tiled(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let mut acc = 0f32;
    let ys = y.chunks_exact(Q8_K_BYTES).map(Q8View::q8_k);
    for (xb, yb) in blocks::<BlockIq4Xs>(x).zip(ys).take(n / QK_K) {
        let mut isum = 0i32;
        for ib in 0..QK_K / 32 {
            let qs = &xb.qs[16 * ib..16 * ib + 16];
            let mut raw = 0i32;
            for (j, &q) in qs.iter().enumerate() {
                raw += yb.q(32 * ib + j) * level_i32(q);
                raw += yb.q(32 * ib + j + 16) * level_i32(q >> 4);
            }
            isum += (xb.group_scale(ib) - 32) * raw;
        }
        acc = (isum as f32 * f16_to_f32(xb.d)).mul_add(yb.d, acc);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{Rng, assert_dot_close, q8_0, q8_k};
    use super::*;

    fn normal_row(rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.normal()).collect()
    }

    /// Root-mean-square error of a round trip, relative to the RMS of the input.
    fn relative_rms_error(
        x: &[f32],
        bytes: usize,
        quantize: fn(&[f32], &mut [u8]),
        dequantize: fn(&[u8], &mut [f32]),
    ) -> f32 {
        let mut q = vec![0u8; bytes];
        quantize(x, &mut q);
        let mut y = vec![0f32; x.len()];
        dequantize(&q, &mut y);
        let err: f32 = x.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum();
        let norm: f32 = x.iter().map(|a| a * a).sum();
        (err / norm).sqrt()
    }

    // 4-bit non-linear levels on Gaussian data keep the relative RMS error below
    // 0.08 (measured on these inputs: 0.072 IQ4_NL searched, 0.075 IQ4_NL `_ref`,
    // 0.076 IQ4_XS); the bounds leave margin and fail on any gross error (wrong
    // nibble order, scale or sign).
    #[test]
    fn iq4_nl_round_trip_error_is_small() {
        let mut rng = Rng::new(1);
        let x = normal_row(&mut rng, 64 * QK4_NL);
        let bytes = 64 * BlockIq4Nl::BYTES;
        let searched = relative_rms_error(&x, bytes, quantize_iq4_nl, dequantize_row_iq4_nl);
        let single = relative_rms_error(&x, bytes, quantize_row_iq4_nl_ref, dequantize_row_iq4_nl);
        assert!(searched < 0.09, "{searched}");
        assert!(single < 0.09, "{single}");
    }

    #[test]
    fn iq4_xs_round_trip_error_is_small() {
        let mut rng = Rng::new(2);
        let x = normal_row(&mut rng, 8 * QK_K);
        let e = relative_rms_error(
            &x,
            8 * BlockIq4Xs::BYTES,
            quantize_row_iq4_xs_ref,
            dequantize_row_iq4_xs,
        );
        assert!(e < 0.09, "{e}");
    }

    #[test]
    fn levels_are_reproduced_exactly() {
        // A block made of the table's own levels (times a power of two) is
        // represented exactly: scale 1/4 is exact in f16.
        let x: Vec<f32> = (0..32)
            .map(|j| f32::from(KVALUES_IQ4NL[j % 16]) * 0.25)
            .collect();
        let mut q = [0u8; 18];
        quantize_iq4_nl(&x, &mut q);
        let mut y = [0f32; 32];
        dequantize_row_iq4_nl(&q, &mut y);
        assert_eq!(y.to_vec(), x);
    }

    #[test]
    fn zero_input_gives_zero_scales_and_the_level_nearest_zero() {
        // The level nearest 0 is 1 (index 8), nearer than -10 (index 7).
        let mut q = [0xffu8; 18];
        quantize_iq4_nl(&[0.0; 32], &mut q);
        assert_eq!(q[..2], [0, 0]);
        assert!(q[2..].iter().all(|&b| b == 0x88));

        // IQ4_XS: d = -0/32 is f16 -0 (0x8000); group scales 0 are stored as 32.
        let mut q = [0u8; 136];
        quantize_row_iq4_xs_ref(&[0.0; QK_K], &mut q);
        let blk = BlockIq4Xs::read(&q);
        assert_eq!(blk.d, 0x8000);
        assert_eq!(
            (0..8).map(|ib| blk.group_scale(ib)).collect::<Vec<_>>(),
            [32; 8]
        );
        assert!(blk.qs.iter().all(|&b| b == 0x88));
        let mut y = [1f32; QK_K];
        dequantize_row_iq4_xs(&q, &mut y);
        assert!(y.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn dequantize_hand_built_blocks() {
        let mut b = [0x88u8; 18];
        b[..2].copy_from_slice(&0x3800u16.to_le_bytes()); // f16 0.5
        b[2] = 0xf0; // weight 0 → level 0 (-127), weight 16 → level 15 (113)
        let mut y = [0f32; 32];
        dequantize_row_iq4_nl(&b, &mut y);
        assert_eq!((y[0], y[16], y[1], y[31]), (-63.5, 56.5, 0.5, 0.5));

        // IQ4_XS, d = 1: group 0 scale 33 (→ 1), group 1 scale 0 (→ -32), the rest
        // 32 (→ 0); every byte 0x98: levels 8 (1) low and 9 (13) high.
        let blk = BlockIq4Xs {
            d: 0x3c00,
            scales_h: 0xaaa2,
            scales_l: [0x01, 0, 0, 0],
            qs: [0x98; 128],
        };
        let mut q = [0u8; 136];
        blk.write(&mut q);
        let mut y = [0f32; QK_K];
        dequantize_row_iq4_xs(&q, &mut y);
        assert!(y[..16].iter().all(|&v| v == 1.0) && y[16..32].iter().all(|&v| v == 13.0));
        assert!(y[32..48].iter().all(|&v| v == -32.0) && y[48..64].iter().all(|&v| v == -416.0));
        assert!(y[64..].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn best_index_picks_the_nearest_level() {
        let v = &KVALUES_IQ4NL;
        assert_eq!(best_index(v, -1000.0), 0);
        assert_eq!(best_index(v, 1000.0), 15);
        assert_eq!(best_index(v, 0.0), 8);
        assert_eq!(best_index(v, -4.5), 8); // halfway between -10 and 1: the upper
        assert_eq!(best_index(v, -4.6), 7);
        assert_eq!(best_index(v, 88.0), 14);
    }

    #[test]
    fn nearest_int_rounds_half_to_even() {
        assert_eq!(
            [0.5, 1.5, 2.5, -0.5, -1.5, 2.49, -31.7].map(nearest_int),
            [0, 2, 2, 0, -2, 2, -32]
        );
    }

    #[test]
    fn dots_match_f32_math_on_dequantized_weights() {
        let mut rng = Rng::new(9);
        let n = 4 * QK_K;
        let x = normal_row(&mut rng, n);

        let mut q = vec![0u8; n / QK4_NL * BlockIq4Nl::BYTES];
        quantize_iq4_nl(&x, &mut q);
        let mut w = vec![0f32; n];
        dequantize_row_iq4_nl(&q, &mut w);
        let (y, a) = q8_0(&mut rng, n);
        assert_dot_close("iq4_nl", vec_dot_iq4_nl_q8_0(n, &q, &y), &w, &a);

        let mut q = vec![0u8; n / QK_K * BlockIq4Xs::BYTES];
        quantize_row_iq4_xs_ref(&x, &mut q);
        dequantize_row_iq4_xs(&q, &mut w);
        let (y, a) = q8_k(&mut rng, n);
        assert_dot_close("iq4_xs", vec_dot_iq4_xs_q8_k(n, &q, &y), &w, &a);
        assert_dot_close("iq4_xs tiled", vec_dot_iq4_xs_q8_k_tiled(n, &q, &y), &w, &a);
    }
}
