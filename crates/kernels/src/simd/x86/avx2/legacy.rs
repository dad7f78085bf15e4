//! AVX2 dot products of the legacy 32-element formats against Q8_0 / Q8_1
//! (ggml-cpu/arch/x86/quants.c `ggml_vec_dot_q{4,5,8}_{0,1}_q8_{0,1}`, AVX2 paths):
//! one block per step, its 32 quants widened to bytes, an integer dot product in
//! eight i32 lanes, then one fused multiply-add by the block's combined scale.

use std::arch::x86_64::*;

use super::{bits_to_bytes_32, dot_i8, dot_u8_i8, f16_at, hsum_ps, load, nibbles_32};
use crate::simd::dot_entry;

dot_entry!(
    /// Q4_0 · Q8_0.
    vec_dot_q4_0_q8_0 => q4_0_q8_0, 32, 18, 34
);
dot_entry!(
    /// Q4_1 · Q8_1.
    vec_dot_q4_1_q8_1 => q4_1_q8_1, 32, 20, 36
);
dot_entry!(
    /// Q5_0 · Q8_0.
    vec_dot_q5_0_q8_0 => q5_0_q8_0, 32, 22, 34
);
dot_entry!(
    /// Q5_1 · Q8_1.
    vec_dot_q5_1_q8_1 => q5_1_q8_1, 32, 24, 36
);
dot_entry!(
    /// Q8_0 · Q8_0.
    vec_dot_q8_0_q8_0 => q8_0_q8_0, 32, 34, 34
);

/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks must be readable at `x`
/// (18 bytes each) and `y` (34 bytes each).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_0_q8_0(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller).
        let (bx, by) = unsafe { (x.add(18 * i), y.add(34 * i)) };
        // SAFETY: as above; d at 0, qs at 2 (16 bytes) in Q4_0; d at 0, qs at 2 (32
        // bytes) in Q8_0.
        let (d, qx, qy) = unsafe {
            (
                f16_at(bx) * f16_at(by),
                nibbles_32(bx.add(2)),
                load(by.add(2)),
            )
        };
        let qx = _mm256_sub_epi8(qx, _mm256_set1_epi8(8));
        let sum = _mm256_cvtepi32_ps(dot_i8(qx, qy));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), sum, acc);
    }
    hsum_ps(acc)
}

/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks must be readable at `x`
/// (20 bytes each) and `y` (36 bytes each).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1_q8_1(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut mins = 0f32;
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller).
        let (bx, by) = unsafe { (x.add(20 * i), y.add(36 * i)) };
        // SAFETY: as above; Q4_1 is d, m, qs[16]; Q8_1 is d, s, qs[32].
        let (d, m_s, qx, qy) = unsafe {
            (
                f16_at(bx) * f16_at(by),
                f16_at(bx.add(2)) * f16_at(by.add(2)),
                nibbles_32(bx.add(4)),
                load(by.add(4)),
            )
        };
        mins += m_s;
        let sum = _mm256_cvtepi32_ps(dot_u8_i8(qx, qy));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), sum, acc);
    }
    hsum_ps(acc) + mins
}

/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks must be readable at `x`
/// (22 bytes each) and `y` (34 bytes each).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_0_q8_0(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller).
        let (bx, by) = unsafe { (x.add(22 * i), y.add(34 * i)) };
        // SAFETY: as above; Q5_0 is d, qh[4], qs[16].
        let (d, lo, hi, qy) = unsafe {
            (
                f16_at(bx) * f16_at(by),
                nibbles_32(bx.add(6)),
                bits_to_bytes_32(bx.add(2)),
                load(by.add(2)),
            )
        };
        // q − 16 as a signed byte: the nibble with 0xF0 on top where the fifth bit
        // is clear (nibble − 16), the bare nibble where it is set.
        let qx = _mm256_or_si256(lo, _mm256_andnot_si256(hi, _mm256_set1_epi8(0xf0u8 as i8)));
        let sum = _mm256_cvtepi32_ps(dot_i8(qx, qy));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), sum, acc);
    }
    hsum_ps(acc)
}

/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks must be readable at `x`
/// (24 bytes each) and `y` (36 bytes each).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_1_q8_1(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut mins = 0f32;
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller).
        let (bx, by) = unsafe { (x.add(24 * i), y.add(36 * i)) };
        // SAFETY: as above; Q5_1 is d, m, qh[4], qs[16].
        let (d, m_s, lo, hi, qy) = unsafe {
            (
                f16_at(bx) * f16_at(by),
                f16_at(bx.add(2)) * f16_at(by.add(2)),
                nibbles_32(bx.add(8)),
                bits_to_bytes_32(bx.add(4)),
                load(by.add(4)),
            )
        };
        mins += m_s;
        let qx = _mm256_or_si256(lo, _mm256_and_si256(hi, _mm256_set1_epi8(0x10)));
        let sum = _mm256_cvtepi32_ps(dot_u8_i8(qx, qy));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), sum, acc);
    }
    hsum_ps(acc) + mins
}

/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks of 34 bytes must be readable
/// at `x` and `y`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_q8_0(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller).
        let (bx, by) = unsafe { (x.add(34 * i), y.add(34 * i)) };
        // SAFETY: as above; d at 0, qs at 2.
        let (d, qx, qy) = unsafe { (f16_at(bx) * f16_at(by), load(bx.add(2)), load(by.add(2))) };
        let sum = _mm256_cvtepi32_ps(dot_i8(qx, qy));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), sum, acc);
    }
    hsum_ps(acc)
}
