//! Unquantized formats: F32, F16 (IEEE half) and BF16 (bfloat16).
//!
//! Conversions follow ggml (ggml-impl.h): f32→f16 rounds to nearest even, as F16C
//! does; f32→bf16 rounds to nearest even and keeps NaNs quiet. Reference dot
//! products accumulate in f64 like ggml's `ggml_vec_dot_f16` (`ggml_float`).

use gguf::TensorType;
use half::f16;

use crate::TypeTraits;

/// Table entries for this family.
pub(crate) const TRAITS: &[TypeTraits] = &[
    TypeTraits {
        ty: TensorType::F32,
        to_f32: f32_to_f32,
        from_f32: Some(f32_from_f32),
        from_f32_act: None,
        vec_dot: Some(vec_dot_f32),
        vec_dot_type: TensorType::F32,
    },
    TypeTraits {
        ty: TensorType::F16,
        to_f32: dequantize_row_f16,
        from_f32: Some(quantize_row_f16),
        from_f32_act: None,
        vec_dot: Some(vec_dot_f16),
        vec_dot_type: TensorType::F16,
    },
    TypeTraits {
        ty: TensorType::BF16,
        to_f32: dequantize_row_bf16,
        from_f32: Some(quantize_row_bf16),
        from_f32_act: None,
        vec_dot: Some(vec_dot_bf16),
        vec_dot_type: TensorType::BF16,
    },
];

/// f32 → bf16 bits, rounding to nearest even; NaN stays a quiet NaN (ggml's
/// `ggml_compute_fp32_to_bf16`).
#[inline]
pub fn f32_to_bf16(x: f32) -> u16 {
    let u = x.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    ((u + (0x7fff + ((u >> 16) & 1))) >> 16) as u16
}

/// bf16 bits → f32 (exact).
#[inline]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// f16 bits → f32 (exact).
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    f16::from_bits(h).to_f32()
}

/// f32 → f16 bits, rounding to nearest even.
#[inline]
pub fn f32_to_f16(x: f32) -> u16 {
    f16::from_f32(x).to_bits()
}

#[inline]
fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[2 * i], b[2 * i + 1]])
}

fn f32_to_f32(src: &[u8], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
        *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    }
}

fn f32_from_f32(src: &[f32], dst: &mut [u8]) {
    for (d, s) in dst.chunks_exact_mut(4).zip(src) {
        d.copy_from_slice(&s.to_le_bytes());
    }
}

/// F16 row → f32.
pub fn dequantize_row_f16(src: &[u8], dst: &mut [f32]) {
    for (i, d) in dst.iter_mut().enumerate() {
        *d = f16_to_f32(u16_at(src, i));
    }
}

/// f32 → F16 row.
pub fn quantize_row_f16(src: &[f32], dst: &mut [u8]) {
    for (d, s) in dst.chunks_exact_mut(2).zip(src) {
        d.copy_from_slice(&f32_to_f16(*s).to_le_bytes());
    }
}

/// BF16 row → f32.
pub fn dequantize_row_bf16(src: &[u8], dst: &mut [f32]) {
    for (i, d) in dst.iter_mut().enumerate() {
        *d = bf16_to_f32(u16_at(src, i));
    }
}

/// f32 → BF16 row.
pub fn quantize_row_bf16(src: &[f32], dst: &mut [u8]) {
    for (d, s) in dst.chunks_exact_mut(2).zip(src) {
        d.copy_from_slice(&f32_to_bf16(*s).to_le_bytes());
    }
}

/// Reference f32·f32 dot product, accumulated in f64.
pub fn vec_dot_f32(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let mut sum = 0f64;
    for (a, b) in x.chunks_exact(4).zip(y.chunks_exact(4)).take(n) {
        let a = f32::from_le_bytes([a[0], a[1], a[2], a[3]]);
        let b = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        sum += (a * b) as f64;
    }
    sum as f32
}

/// Reference f16·f16 dot product, accumulated in f64.
pub fn vec_dot_f16(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let mut sum = 0f64;
    for i in 0..n {
        sum += (f16_to_f32(u16_at(x, i)) * f16_to_f32(u16_at(y, i))) as f64;
    }
    sum as f32
}

/// Reference bf16·bf16 dot product, accumulated in f64.
pub fn vec_dot_bf16(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let mut sum = 0f64;
    for i in 0..n {
        sum += (bf16_to_f32(u16_at(x, i)) * bf16_to_f32(u16_at(y, i))) as f64;
    }
    sum as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_even_and_keeps_nan() {
        assert_eq!(f32_to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 is exactly half-way between two bf16 values: ties to even (down).
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert!(bf16_to_f32(f32_to_bf16(f32::NAN)).is_nan());
        assert_eq!(bf16_to_f32(f32_to_bf16(-2.5)), -2.5);
    }

    #[test]
    fn f16_round_trip_is_exact_for_representable_values() {
        for v in [0.0f32, -0.0, 1.0, -65504.0, 6.1035156e-5, 0.33325195] {
            assert_eq!(f16_to_f32(f32_to_f16(v)).to_bits(), v.to_bits());
        }
    }
}
