//! Q6_K (6.5625 bits per weight) and Q8_K, the activation format every K-quant
//! dot product takes as its second operand.
//!
//! Q6_K is symmetric: 16 sub-blocks of 16 values as `d·sc·(q − 32)` with signed
//! 8-bit `sc` and 6-bit `q` split into a low nibble (`ql`) and two high bits
//! (`qh`). Q8_K keeps an f32 scale, 256 signed bytes and the sums of each 16
//! consecutive quants (`bsums`), which the K-quant dot products use to apply their
//! mins without touching every value. Sources: ggml-common.h `block_q6_K` /
//! `block_q8_K`, ggml-quants.c `quantize_row_q6_K_ref`, `make_qx_quants`,
//! `quantize_row_q8_K_ref`, `dequantize_row_q{6,8}_K`, ggml-cpu/quants.c
//! `ggml_vec_dot_q6_K_q8_K_generic`.

use super::{GROUP_MAX_EPS, KBlock, QK_K, Reader, Writer, blocks, nearest_int, quantize_blocks};
use crate::formats::float::{f16_to_f32, f32_to_f16};
use crate::formats::weighted::make_qx_quants_weighted;

/// One Q6_K super-block: value `i` is `d·scales[i/16]·(q − 32)`, `q` in 0..=63.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ6K {
    /// Low 4 quant bits: in each 128-value half, byte `l` (0..64) holds value
    /// `l` (low nibble) and `l + 64` (high nibble) of the half.
    pub ql: [u8; QK_K / 2],
    /// High 2 quant bits: in each half, byte `l` (0..32) holds values `l`,
    /// `l+32`, `l+64`, `l+96` of the half, low bits first.
    pub qh: [u8; QK_K / 4],
    /// Signed 8-bit sub-block scales.
    pub scales: [i8; QK_K / 16],
    /// Super-block scale (fp16 bits).
    pub d: u16,
}
const _: () = assert!(size_of::<BlockQ6K>() == 210);

impl KBlock for BlockQ6K {
    const SIZE: usize = 210;

    fn read(r: &mut Reader<'_>) -> Self {
        BlockQ6K {
            ql: r.bytes(),
            qh: r.bytes(),
            scales: r.bytes::<{ QK_K / 16 }>().map(|b| b as i8),
            d: r.u16(),
        }
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.bytes(&self.ql);
        w.bytes(&self.qh);
        w.bytes(&self.scales.map(|s| s as u8));
        w.u16(self.d);
    }
}

/// One Q8_K super-block: value `i` is `d·qs[i]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ8K {
    /// Scale.
    pub d: f32,
    /// Quants.
    pub qs: [i8; QK_K],
    /// Sum of each 16 consecutive quants.
    pub bsums: [i16; QK_K / 16],
}
const _: () = assert!(size_of::<BlockQ8K>() == 292);

impl KBlock for BlockQ8K {
    const SIZE: usize = 292;

    fn read(r: &mut Reader<'_>) -> Self {
        BlockQ8K {
            d: f32::from_le_bytes(r.bytes()),
            qs: r.bytes::<QK_K>().map(|b| b as i8),
            bsums: std::array::from_fn(|_| r.u16() as i16),
        }
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.bytes(&self.d.to_le_bytes());
        w.bytes(&self.qs.map(|q| q as u8));
        for s in self.bsums {
            w.u16(s as u16);
        }
    }
}

/// Scale search for one Q6_K sub-block (ggml-quants.c `make_qx_quants` with
/// `rmse_type = 1` and no importance weights): start from `−nmax/max`, then try 18
/// nearby scales `−(nmax ± 0.1·k)/max` and keep the one that maximises the fit
/// `(Σwxl)²/Σwl²` with `w = x²`. Writes quants biased by `nmax` to `l` and returns
/// the scale.
fn make_qx_quants(nmax: i32, x: &[f32], l: &mut [i8]) -> f32 {
    let mut max = 0f32;
    let mut amax = 0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    // The weighted sums Σ x²·x·l and Σ x²·l² for quants at inverse scale `iscale`.
    let fit = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0f32, 0f32);
        for &v in x {
            let q = nearest_int(iscale * v).clamp(-nmax, nmax - 1) as f32;
            let w = v * v;
            sumlx += w * v * q;
            suml2 += w * q * q;
        }
        (sumlx, suml2)
    };
    let assign = |iscale: f32, l: &mut [i8]| {
        for (q, &v) in l.iter_mut().zip(x) {
            *q = (nmax + nearest_int(iscale * v).clamp(-nmax, nmax - 1)) as i8;
        }
    };
    let iscale = -(nmax as f32) / max;
    assign(iscale, l);
    let (sumlx, suml2) = fit(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in (-9..=9).filter(|&is| is != 0) {
        let iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = fit(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            assign(iscale, l);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Quantize `x` (a multiple of 256 values) to Q6_K, bit-exact with ggml's
/// `quantize_row_q6_K_ref`.
pub fn quantize_row_q6_k_ref(x: &[f32], dst: &mut [u8]) {
    quantize_blocks(x, dst, quantize_block_q6_k);
}

fn quantize_block_q6_k(x: &[f32; QK_K]) -> BlockQ6K {
    q6_k_block(x, None)
}

/// Quantize one row to Q6_K with an importance matrix `qw` (one weight per
/// column), bit-exact with ggml's `quantize_q6_K` (`quantize_row_q6_K_impl`,
/// which weighs each sub-block's scale search by `qw` alone).
pub fn quantize_q6_k_weighted(x: &[f32], dst: &mut [u8], qw: &[f32]) {
    for (i, (xb, out)) in x
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(<BlockQ6K as KBlock>::SIZE))
        .enumerate()
    {
        let xb: &[f32; QK_K] = xb.try_into().expect("a super-block");
        q6_k_block(xb, Some(&qw[QK_K * i..QK_K * (i + 1)])).write(&mut Writer { b: out, at: 0 });
    }
}

fn q6_k_block(x: &[f32; QK_K], qw: Option<&[f32]>) -> BlockQ6K {
    let mut l = [0i8; QK_K];
    let mut scales = [0f32; QK_K / 16];
    let mut max_scale = 0f32;
    let mut max_abs_scale = 0f32;
    for (ib, s) in scales.iter_mut().enumerate() {
        let (xs, ls) = (&x[16 * ib..16 * ib + 16], &mut l[16 * ib..16 * ib + 16]);
        *s = match qw {
            Some(qw) => make_qx_quants_weighted(32, xs, ls, &qw[16 * ib..16 * ib + 16]),
            None => make_qx_quants(32, xs, ls),
        };
        if s.abs() > max_abs_scale {
            max_abs_scale = s.abs();
            max_scale = *s;
        }
    }

    let mut b = BlockQ6K {
        ql: [0; QK_K / 2],
        qh: [0; QK_K / 4],
        scales: [0; QK_K / 16],
        d: 0,
    };
    if max_abs_scale < GROUP_MAX_EPS {
        b.d = f32_to_f16(0.0);
        return b;
    }

    let iscale = -128.0 / max_scale;
    b.d = f32_to_f16(1.0 / iscale);
    for (q, s) in b.scales.iter_mut().zip(&scales) {
        // ggml stores the clamped int in an int8_t.
        *q = nearest_int(iscale * s).min(127) as i8;
    }

    // Re-quantize every value against the stored scales.
    let d_all = f16_to_f32(b.d);
    for (j, &sc) in b.scales.iter().enumerate() {
        let d = d_all * sc as f32;
        if d == 0.0 {
            continue;
        }
        for i in 16 * j..16 * j + 16 {
            l[i] = (nearest_int(x[i] / d).clamp(-32, 31) + 32) as i8;
        }
    }

    for h in 0..2 {
        let (lh, ql, qh) = (&l[128 * h..], &mut b.ql[64 * h..], &mut b.qh[32 * h..]);
        for i in 0..32 {
            let q = [lh[i], lh[i + 32], lh[i + 64], lh[i + 96]].map(|v| v as u8);
            ql[i] = (q[0] & 0xF) | ((q[2] & 0xF) << 4);
            ql[i + 32] = (q[1] & 0xF) | ((q[3] & 0xF) << 4);
            qh[i] = (q[0] >> 4) | ((q[1] >> 4) << 2) | ((q[2] >> 4) << 4) | ((q[3] >> 4) << 6);
        }
    }
    b
}

/// The 256 quants (−32..=31) of a Q6_K block: in each 128-value half `h`, value
/// `32k + l` takes nibble `k / 2` of `ql[64h + 32·(k % 2) + l]` and bits `2k` of
/// `qh[32h + l]` (ggml's `dequantize_row_q6_K` loop).
fn q6_quants(b: &BlockQ6K) -> [i8; QK_K] {
    let mut q = [0i8; QK_K];
    for (h, half) in q.chunks_exact_mut(128).enumerate() {
        let (ql, qh) = (&b.ql[64 * h..64 * h + 64], &b.qh[32 * h..32 * h + 32]);
        for l in 0..32 {
            let hi = |k: usize| ((qh[l] >> (2 * k)) & 3) << 4;
            half[l] = ((ql[l] & 0xF) | hi(0)) as i8 - 32;
            half[l + 32] = ((ql[l + 32] & 0xF) | hi(1)) as i8 - 32;
            half[l + 64] = ((ql[l] >> 4) | hi(2)) as i8 - 32;
            half[l + 96] = ((ql[l + 32] >> 4) | hi(3)) as i8 - 32;
        }
    }
    q
}

/// Dequantize Q6_K blocks into `y` (ggml's `dequantize_row_q6_K`).
pub fn dequantize_row_q6_k(src: &[u8], y: &mut [f32]) {
    for (b, out) in blocks::<BlockQ6K>(src).zip(y.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(b.d);
        let q = q6_quants(&b);
        for ((sub, qs), &sc) in out
            .chunks_exact_mut(16)
            .zip(q.chunks_exact(16))
            .zip(&b.scales)
        {
            let dl = d * sc as f32;
            for (v, &q) in sub.iter_mut().zip(qs) {
                *v = dl * q as f32;
            }
        }
    }
}

/// Q6_K · Q8_K dot product of `n` values (ggml's `ggml_vec_dot_q6_K_q8_K_generic`):
/// integer sums in eight lanes (value index mod 8), scaled per block into eight
/// float lanes that are added up at the end.
pub fn vec_dot_q6_k_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let mut sums = [0f32; 8];
    for (bx, by) in blocks::<BlockQ6K>(x)
        .zip(blocks::<BlockQ8K>(y))
        .take(n / QK_K)
    {
        let a = q6_quants(&bx);
        let mut aux32 = [0i32; 8];
        for i in 0..QK_K {
            aux32[i % 8] += bx.scales[i / 16] as i32 * (by.qs[i] as i32 * a[i] as i32);
        }
        let d = f16_to_f32(bx.d) * by.d;
        for (s, &a) in sums.iter_mut().zip(&aux32) {
            *s += d * a as f32;
        }
    }
    sums.iter().fold(0f32, |acc, &s| acc + s)
}

/// Q6_K · Q8_K dot product of `n` values in the order of ggml-cpu's tiled
/// matmul (batches of
/// [`TILED_MIN_BATCH`](crate::formats::iquants::TILED_MIN_BATCH) activation
/// rows or more; [`vec_dot_q6_k_q8_k`] is its order for fewer): the
/// super-block's `Σ_s scale_s · Σ (q − 32)·y` exactly in integers, then
/// `acc = fma(f32(sum) · d, d_y, acc)`, super-blocks in order from zero
/// (ggml-cpu/tiled/tiled-kernel.cpp).
pub fn vec_dot_q6_k_q8_k_tiled(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let mut acc = 0f32;
    for (bx, by) in blocks::<BlockQ6K>(x)
        .zip(blocks::<BlockQ8K>(y))
        .take(n / QK_K)
    {
        let q = q6_quants(&bx);
        let mut s1 = 0i32;
        for (s, &sc) in bx.scales.iter().enumerate() {
            let raw: i32 = (16 * s..16 * s + 16)
                .map(|i| q[i] as i32 * by.qs[i] as i32)
                .sum();
            s1 += sc as i32 * raw;
        }
        acc = (s1 as f32 * f16_to_f32(bx.d)).mul_add(by.d, acc);
    }
    acc
}

/// Quantize `x` (a multiple of 256 values) to Q8_K, bit-exact with ggml's
/// `quantize_row_q8_K_ref` (which leaves `bsums` unwritten for an all-zero block;
/// here they are zero).
pub fn quantize_row_q8_k_ref(x: &[f32], dst: &mut [u8]) {
    quantize_blocks(x, dst, quantize_block_q8_k);
}

fn quantize_block_q8_k(x: &[f32; QK_K]) -> BlockQ8K {
    let mut max = 0f32;
    let mut amax = 0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    let mut b = BlockQ8K {
        d: 0.0,
        qs: [0; QK_K],
        bsums: [0; QK_K / 16],
    };
    if amax == 0.0 {
        return b;
    }
    // −127 rather than −128 so that no quant is −128 (ggml: needed by IQ2_XXS's AVX
    // dot product).
    let iscale = -127.0 / max;
    for (q, &v) in b.qs.iter_mut().zip(x) {
        *q = nearest_int(iscale * v).min(127) as i8;
    }
    for (s, q) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
        *s = q.iter().map(|&v| v as i16).sum();
    }
    b.d = 1.0 / iscale;
    b
}

/// Dequantize Q8_K blocks into `y` (ggml's `dequantize_row_q8_K`).
pub fn dequantize_row_q8_k(src: &[u8], y: &mut [f32]) {
    for (b, out) in blocks::<BlockQ8K>(src).zip(y.chunks_exact_mut(QK_K)) {
        for (v, &q) in out.iter_mut().zip(&b.qs) {
            *v = b.d * q as f32;
        }
    }
}

/// Q8_K · Q8_K dot product of `n` values. ggml has no such kernel (Q8_K is only an
/// activation format there); this one follows its Q8_0 · Q8_0 reference: an
/// integer sum per block times the product of the two scales.
pub fn vec_dot_q8_k_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let mut sumf = 0f32;
    for (bx, by) in blocks::<BlockQ8K>(x)
        .zip(blocks::<BlockQ8K>(y))
        .take(n / QK_K)
    {
        let sumi: i32 = bx
            .qs
            .iter()
            .zip(&by.qs)
            .map(|(&a, &b)| a as i32 * b as i32)
            .sum();
        sumf += sumi as f32 * (bx.d * by.d);
    }
    sumf
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{Rng, dot_error, relative_rmse, round_trip};
    use super::*;
    use gguf::TensorType;

    #[test]
    fn q6_k_round_trip_error_is_bounded() {
        let x = Rng::new(5).normals(16 * QK_K, 1.0);
        let e = relative_rmse(&x, &round_trip(TensorType::Q6_K, &x));
        assert!((0.015..0.021).contains(&e), "Q6_K relative RMSE {e}");
    }

    #[test]
    fn q8_k_round_trip_error_is_bounded() {
        let x = Rng::new(6).normals(16 * QK_K, 1.0);
        let e = relative_rmse(&x, &round_trip(TensorType::Q8_K, &x));
        assert!((0.005..0.0085).contains(&e), "Q8_K relative RMSE {e}");
    }

    #[test]
    fn zero_blocks_dequantize_to_zero() {
        for ty in [TensorType::Q6_K, TensorType::Q8_K] {
            let y = round_trip(ty, &[0f32; QK_K]);
            assert!(y.iter().all(|v| *v == 0.0), "{ty}: {y:?}");
        }
    }

    #[test]
    fn q8_k_keeps_the_largest_magnitude_and_block_sums() {
        let x: Vec<f32> = (0..QK_K).map(|i| i as f32 - 200.0).collect();
        let mut bytes = [0u8; BlockQ8K::SIZE];
        quantize_row_q8_k_ref(&x, &mut bytes);
        let b = BlockQ8K::read(&mut Reader { b: &bytes, at: 0 });
        // The value of largest magnitude always maps to −127 (the scale takes its
        // sign), so quants never reach −128.
        assert_eq!(b.qs[0], -127);
        assert!(b.qs.iter().all(|&q| q > -128));
        assert_eq!(b.d, 1.0 / (-127.0 / -200.0));
        for (j, s) in b.bsums.iter().enumerate() {
            let want: i16 = b.qs[16 * j..16 * j + 16].iter().map(|&q| q as i16).sum();
            assert_eq!(*s, want);
        }
    }

    #[test]
    fn q6_k_hand_built_block() {
        // d = 0.25, sub-block scale j − 8; every quant 40 (ql nibble 8, qh bits 2):
        // value i = 0.25·(j − 8)·8 with j = i / 16.
        let b = BlockQ6K {
            ql: [0x88; QK_K / 2],
            qh: [0b1010_1010; QK_K / 4],
            scales: std::array::from_fn(|j| j as i8 - 8),
            d: f32_to_f16(0.25),
        };
        let mut bytes = [0u8; BlockQ6K::SIZE];
        b.write(&mut Writer {
            b: &mut bytes,
            at: 0,
        });
        let mut y = [0f32; QK_K];
        dequantize_row_q6_k(&bytes, &mut y);
        for (i, v) in y.iter().enumerate() {
            assert_eq!(*v, 2.0 * ((i / 16) as f32 - 8.0), "value {i}");
        }
    }

    #[test]
    fn dots_match_dequantized_f32_dot() {
        for ty in [TensorType::Q6_K, TensorType::Q8_K] {
            let (got, want, scale) = dot_error(ty, 9);
            assert!(
                (got - want).abs() <= 1e-6 * scale,
                "{ty}: dot {got} vs {want}"
            );
        }
    }
}
