//! MXFP4 (OCP microscaling FP4, gpt-oss's expert weights): blocks of 32 E2M1
//! values sharing one E8M0 exponent.
//!
//! Laid out as IQ4_NL, with another 16-entry table and another scale: byte `j` of
//! `qs` holds value `j` (low nibble) and value `j + 16` (high nibble), each a 4-bit
//! code into [`KVALUES_MXFP4`] (the E2M1 values doubled, so they are integers), and
//! the scale is the power of two `2^(e − 128)` — half of E8M0's `2^(e − 127)`,
//! undoing the doubling. Quantizer, dequantizer and dot product follow ggml
//! (ggml-quants.c `quantize_row_mxfp4_ref` / `dequantize_row_mxfp4`,
//! ggml-cpu/quants.c `ggml_vec_dot_mxfp4_q8_0_generic`) operation by operation.

use std::mem::size_of;

use gguf::TensorType;

use crate::TypeTraits;
use crate::formats::float::f16_to_f32;

/// Values per MXFP4 block (ggml's `QK_MXFP4`).
pub const QK_MXFP4: usize = 32;

/// Bytes of one `block_q8_0`, MXFP4's activation block.
const Q8_0_BYTES: usize = 34;

/// The E2M1 values, doubled, by 4-bit code: sign bit 3, then exponent and
/// mantissa (ggml-common.h `kvalues_mxfp4`).
pub(crate) const KVALUES_MXFP4: [i8; 16] =
    [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// MXFP4: 32 values, one shared E8M0 exponent, 16 bytes of packed E2M1 codes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockMxfp4 {
    /// Shared exponent (E8M0: the scale is `2^(e − 127)`).
    pub e: u8,
    /// Byte `j` holds value `j` (low nibble) and value `j + 16` (high nibble).
    pub qs: [u8; 16],
}
const _: () = assert!(size_of::<BlockMxfp4>() == 17);

impl BlockMxfp4 {
    /// Bytes one block occupies in a tensor.
    pub const BYTES: usize = size_of::<Self>();

    /// Parse a block from `b`, which holds exactly [`Self::BYTES`] bytes.
    fn read(b: &[u8]) -> Self {
        let mut qs = [0u8; 16];
        qs.copy_from_slice(&b[1..Self::BYTES]);
        Self { e: b[0], qs }
    }

    /// Serialise into exactly [`Self::BYTES`] bytes.
    fn write(&self, out: &mut [u8]) {
        out[0] = self.e;
        out[1..].copy_from_slice(&self.qs);
    }
}

/// Table entries for this family.
pub(crate) const TRAITS: &[TypeTraits] = &[TypeTraits {
    ty: TensorType::MXFP4,
    to_f32: dequantize_row_mxfp4,
    from_f32: Some(quantize_row_mxfp4_ref),
    from_f32_act: None,
    vec_dot: Some(vec_dot_mxfp4_q8_0),
    vec_dot_type: TensorType::Q8_0,
}];

/// Half the E8M0 scale, `2^(e − 128)`, exactly (ggml-impl.h
/// `ggml_e8m0_to_fp32_half`: subnormal for `e` < 2). `e` = 255, a NaN in E8M0,
/// gives `2^127`, as in ggml.
#[inline]
pub(crate) fn e8m0_to_f32_half(e: u8) -> f32 {
    if e < 2 {
        f32::from_bits(0x0020_0000 << e)
    } else {
        f32::from_bits(u32::from(e - 1) << 23)
    }
}

/// The doubled E2M1 value of 4-bit code `q`.
#[inline]
fn level(q: u8) -> i8 {
    KVALUES_MXFP4[usize::from(q & 0xf)]
}

/// The code whose value times `d` is nearest `x`; the first of equals wins and a
/// NaN gives 0 (ggml-quants.c `best_index_mxfp4`).
fn best_index(x: f32, d: f32) -> u8 {
    let mut best = 0u8;
    let mut best_err = (f32::from(KVALUES_MXFP4[0]) * d - x).abs();
    for (i, &v) in KVALUES_MXFP4.iter().enumerate().skip(1) {
        let err = (f32::from(v) * d - x).abs();
        if err < best_err {
            best = i as u8;
            best_err = err;
        }
    }
    best
}

/// The shared exponent of a block whose largest magnitude is `amax`:
/// `floor(log2(amax)) − 2 + 127`, so that `amax` lands in the top binade of E2M1
/// (doubled values 8..16), or 0 for an all-zero block.
///
/// ggml converts that float to `uint8_t` directly, which C leaves undefined when
/// it is out of range: for `amax` below 2⁻¹²⁵ (f32 subnormals) or infinite. Its x86
/// builds (`cvttss2si`) keep the low byte of the 32-bit truncation, and so does
/// this, so that the bytes match llama-quantize's there too: a block of subnormals
/// gets e = 249 and a scale so large that every code is 0, which decodes to zeros;
/// an infinite `amax` truncates to `i32::MIN`, low byte 0.
fn shared_exponent(amax: f32) -> u8 {
    if amax > 0.0 {
        let e = amax.log2().floor() - 2.0 + 127.0;
        if e.is_finite() { e as i32 as u8 } else { 0 }
    } else {
        0
    }
}

/// f32 → MXFP4, bit-exact with ggml's `quantize_row_mxfp4_ref` (which is also
/// what `ggml_quantize_chunk` and llama-quantize use).
pub fn quantize_row_mxfp4_ref(src: &[f32], dst: &mut [u8]) {
    for (x, out) in src
        .chunks_exact(QK_MXFP4)
        .zip(dst.chunks_exact_mut(BlockMxfp4::BYTES))
    {
        let mut amax = 0f32;
        for &v in x {
            if amax < v.abs() {
                amax = v.abs();
            }
        }
        let e = shared_exponent(amax);
        let d = e8m0_to_f32_half(e);
        let mut qs = [0u8; 16];
        for (j, q) in qs.iter_mut().enumerate() {
            *q = best_index(x[j], d) | best_index(x[j + 16], d) << 4;
        }
        BlockMxfp4 { e, qs }.write(out);
    }
}

/// MXFP4 row → f32 (ggml-quants.c, dequantize_row_mxfp4).
pub fn dequantize_row_mxfp4(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src
        .chunks_exact(BlockMxfp4::BYTES)
        .zip(dst.chunks_exact_mut(QK_MXFP4))
    {
        let blk = BlockMxfp4::read(b);
        let d = e8m0_to_f32_half(blk.e);
        for (j, &q) in blk.qs.iter().enumerate() {
            y[j] = f32::from(level(q)) * d;
            y[j + 16] = f32::from(level(q >> 4)) * d;
        }
    }
}

/// MXFP4 · Q8_0 dot product of `n` values (ggml-cpu/quants.c,
/// ggml_vec_dot_mxfp4_q8_0_generic): integer sums per block, then one scale
/// `d_y · 2^(e − 128)` per block.
pub fn vec_dot_mxfp4_q8_0(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let mut sumf = 0f32;
    let xs = x.chunks_exact(BlockMxfp4::BYTES).map(BlockMxfp4::read);
    for (xb, yb) in xs.zip(y.chunks_exact(Q8_0_BYTES)).take(n / QK_MXFP4) {
        let d = f16_to_f32(u16::from_le_bytes([yb[0], yb[1]])) * e8m0_to_f32_half(xb.e);
        let qy = |j: usize| i32::from(yb[2 + j] as i8);
        let (mut sumi1, mut sumi2) = (0i32, 0i32);
        for (j, &q) in xb.qs.iter().enumerate() {
            sumi1 += qy(j) * i32::from(level(q));
            sumi2 += qy(j + 16) * i32::from(level(q >> 4));
        }
        sumf += d * (sumi1 + sumi2) as f32;
    }
    sumf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::legacy::{dequantize_row_q8_0, quantize_row_q8_0_ref};

    /// A deterministic pseudo-random value in [-1, 1) (xorshift).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    #[test]
    fn block_size_matches_the_tensor_type() {
        assert_eq!(TensorType::MXFP4.type_size(), BlockMxfp4::BYTES);
        assert_eq!(TensorType::MXFP4.block_size(), QK_MXFP4);
    }

    #[test]
    fn e8m0_half_is_two_to_the_e_minus_128() {
        for e in 0..=255u8 {
            let want = 2f64.powi(i32::from(e) - 128);
            assert_eq!(f64::from(e8m0_to_f32_half(e)), want, "e = {e}");
        }
    }

    #[test]
    fn the_table_is_e2m1_doubled() {
        // E2M1: sign, 2 exponent bits (bias 1), 1 mantissa bit; subnormal at 0.
        for (code, &v) in KVALUES_MXFP4.iter().enumerate() {
            let (sign, exp, man) = (code >> 3, (code >> 1) & 3, code & 1);
            let mag = if exp == 0 {
                man as f64 * 0.5
            } else {
                (1.0 + man as f64 * 0.5) * 2f64.powi(exp as i32 - 1)
            };
            let want = if sign == 1 { -mag } else { mag };
            assert_eq!(f64::from(v), 2.0 * want, "code {code}");
        }
    }

    #[test]
    fn values_on_the_grid_round_trip_exactly() {
        // Every code at scale 2^-3 (e = 125), with the largest magnitude present
        // so that the block's exponent is the one chosen.
        let d = e8m0_to_f32_half(125);
        let mut x: Vec<f32> = (0..32)
            .map(|i| f32::from(KVALUES_MXFP4[i % 16]) * d)
            .collect();
        x[0] = 12.0 * d;
        let mut q = vec![0u8; BlockMxfp4::BYTES];
        quantize_row_mxfp4_ref(&x, &mut q);
        assert_eq!(q[0], 125);
        let mut y = vec![0f32; 32];
        dequantize_row_mxfp4(&q, &mut y);
        assert_eq!(x, y);
    }

    #[test]
    fn quantize_then_dequantize_is_within_half_a_step() {
        let x = values(32 * 64, 7);
        let mut q = vec![0u8; 64 * BlockMxfp4::BYTES];
        quantize_row_mxfp4_ref(&x, &mut q);
        let mut y = vec![0f32; x.len()];
        dequantize_row_mxfp4(&q, &mut y);
        for (b, (xb, yb)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            // amax is in [2^k, 2^(k+1)) and d = 2^(k-3): the top level 12·d may
            // lie below amax, which then saturates; below it, the widest gap
            // between levels is 4·d.
            let d = e8m0_to_f32_half(q[b * BlockMxfp4::BYTES]);
            assert!(8.0 * d <= amax && amax < 16.0 * d, "block {b}");
            for (a, c) in xb.iter().zip(yb) {
                let bound = (2.0 * d).max(a.abs() - 12.0 * d);
                assert!((a - c).abs() <= bound, "block {b}: {a} → {c}");
            }
        }
    }

    #[test]
    fn zero_and_nan_blocks() {
        let mut x = vec![0f32; 64];
        x[33] = f32::NAN;
        x[34] = 1.0;
        let mut q = vec![0u8; 2 * BlockMxfp4::BYTES];
        quantize_row_mxfp4_ref(&x, &mut q);
        assert_eq!(&q[..17], &[0u8; 17]);
        // NaN is skipped by the max and takes code 0.
        assert_eq!(q[17], 125);
        assert_eq!(q[18 + 1], 0);
    }

    #[test]
    fn subnormal_blocks_take_ggmls_x86_exponent_and_decode_to_zero() {
        let x: Vec<f32> = values(32, 3).iter().map(|v| v * 1e-39).collect();
        let mut q = vec![0u8; BlockMxfp4::BYTES];
        quantize_row_mxfp4_ref(&x, &mut q);
        // amax in [2^-130, 2^-129): floor(log2) − 2 + 127 = −5 (or −4), low byte.
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let want = (amax.log2().floor() as i32 + 125) as u8;
        assert!(want >= 248, "{amax}");
        assert_eq!(q[0], want);
        assert!(q[1..].iter().all(|&b| b == 0));
        let mut y = vec![1f32; 32];
        dequantize_row_mxfp4(&q, &mut y);
        assert!(y.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn dot_equals_the_dot_of_the_dequantized_weights() {
        let n = 32 * 16;
        let x = values(n, 11);
        let a = values(n, 12);
        let mut qx = vec![0u8; n / 32 * BlockMxfp4::BYTES];
        quantize_row_mxfp4_ref(&x, &mut qx);
        let mut qa = vec![0u8; n / 32 * Q8_0_BYTES];
        quantize_row_q8_0_ref(&a, &mut qa);
        // The integer sums are exact, so the kernel equals f32 math on both
        // dequantized operands up to the rounding of the per-block scaling.
        let mut wx = vec![0f32; n];
        dequantize_row_mxfp4(&qx, &mut wx);
        let mut wa = vec![0f32; n];
        dequantize_row_q8_0(&qa, &mut wa);
        let exact: f64 = wx
            .iter()
            .zip(&wa)
            .map(|(&p, &q)| f64::from(p) * f64::from(q))
            .sum();
        let scale: f64 = wx
            .iter()
            .zip(&wa)
            .map(|(&p, &q)| (f64::from(p) * f64::from(q)).abs())
            .sum();
        let got = vec_dot_mxfp4_q8_0(n, &qx, &qa);
        assert!(
            (f64::from(got) - exact).abs() <= 1e-5 * scale,
            "{got} vs {exact}"
        );
    }
}
