//! AVX-512 dot products of Q4_0 and Q8_0 against Q8_0: two blocks per 512-bit
//! step (ggml-cpu/arch/x86/quants.c handles one block per 256-bit step; the
//! arithmetic per block is the same: an exact integer dot, then one fused
//! multiply-add by the block's combined scale).

use std::arch::x86_64::*;

use super::{BytePairs, f16_at, halves, load_2x256, vnni_builds};
use crate::simd::dot_entry;

dot_entry!(
    /// Q4_0 · Q8_0 (AVX-512 BW).
    vec_dot_q4_0_q8_0 => q4_0_q8_0, 32, 18, 34
);
dot_entry!(
    /// Q4_0 · Q8_0 (AVX-512 VNNI).
    vec_dot_q4_0_q8_0_vnni => q4_0_q8_0_vnni, 32, 18, 34
);
dot_entry!(
    /// Q8_0 · Q8_0 (AVX-512 BW).
    vec_dot_q8_0_q8_0 => q8_0_q8_0, 32, 34, 34
);
dot_entry!(
    /// Q8_0 · Q8_0 (AVX-512 VNNI).
    vec_dot_q8_0_q8_0_vnni => q8_0_q8_0_vnni, 32, 34, 34
);
vnni_builds!(q4_0_body => q4_0_q8_0, q4_0_q8_0_vnni);
vnni_builds!(q8_0_body => q8_0_q8_0, q8_0_q8_0_vnni);

/// Block `i` and its successor, or block `i` twice (with a zero scale for the
/// copy) when `i` is the last one.
#[inline(always)]
fn pair(nb: usize, i: usize) -> (usize, bool) {
    if i + 1 < nb {
        (i + 1, true)
    } else {
        (i, false)
    }
}

/// # Safety
/// AVX-512 F/BW/VL, F16C and `D`'s features must be available; `nb` blocks
/// readable at `x` (18 bytes each) and `y` (34 bytes each).
#[inline(always)]
unsafe fn q4_0_body<D: BytePairs>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: blocks `i` and `j` are < `nb` (caller); offsets follow the layouts
    // (Q4_0: d, qs[16]; Q8_0: d, qs[32]); features from the caller.
    unsafe {
        let m4 = _mm512_set1_epi8(0x0f);
        let eight = _mm512_set1_epi8(8);
        // i16 shift counts: 0 for the low-nibble lanes, 4 for the high ones.
        let shifts = _mm512_set_epi64(
            0x0004_0004_0004_0004,
            0x0004_0004_0004_0004,
            0,
            0,
            0x0004_0004_0004_0004,
            0x0004_0004_0004_0004,
            0,
            0,
        );
        let dup = _mm512_set_epi64(3, 2, 3, 2, 1, 0, 1, 0);
        let mut acc = _mm512_setzero_ps();
        let mut i = 0;
        while i < nb {
            let (j, two) = pair(nb, i);
            let (bx0, bx1) = (x.add(18 * i), x.add(18 * j));
            let (by0, by1) = (y.add(34 * i), y.add(34 * j));
            let d0 = f16_at(bx0) * f16_at(by0);
            let d1 = if two { f16_at(bx1) * f16_at(by1) } else { 0.0 };
            let raw = _mm256_set_m128i(
                _mm_loadu_si128(bx1.add(2).cast()),
                _mm_loadu_si128(bx0.add(2).cast()),
            );
            // [b0 qs, b0 qs, b1 qs, b1 qs], the copies shifted to their high nibbles.
            let q = _mm512_permutexvar_epi64(dup, _mm512_castsi256_si512(raw));
            let q = _mm512_and_si512(_mm512_srlv_epi16(q, shifts), m4);
            let qy = load_2x256(by0.add(2), by1.add(2));
            // (q − 8)·y = q·y − 8·y, both unsigned × signed.
            let s = D::dot_u8_i8(_mm512_setzero_si512(), q, qy);
            let s = _mm512_sub_epi32(s, D::dot_u8_i8(_mm512_setzero_si512(), eight, qy));
            acc = _mm512_fmadd_ps(halves(d0, d1), _mm512_cvtepi32_ps(s), acc);
            i += 2;
        }
        _mm512_reduce_add_ps(acc)
    }
}

/// # Safety
/// AVX-512 F/BW/VL, F16C and `D`'s features must be available; `nb` blocks of 34
/// bytes readable at `x` and `y`.
#[inline(always)]
unsafe fn q8_0_body<D: BytePairs>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: blocks `i` and `j` are < `nb` (caller); Q8_0 is d, qs[32];
    // features from the caller.
    unsafe {
        let mut acc = _mm512_setzero_ps();
        let mut i = 0;
        while i < nb {
            let (j, two) = pair(nb, i);
            let (bx0, bx1) = (x.add(34 * i), x.add(34 * j));
            let (by0, by1) = (y.add(34 * i), y.add(34 * j));
            let d0 = f16_at(bx0) * f16_at(by0);
            let d1 = if two { f16_at(bx1) * f16_at(by1) } else { 0.0 };
            let qx = load_2x256(bx0.add(2), bx1.add(2));
            let qy = load_2x256(by0.add(2), by1.add(2));
            let s = D::dot_i8(_mm512_setzero_si512(), qx, qy);
            acc = _mm512_fmadd_ps(halves(d0, d1), _mm512_cvtepi32_ps(s), acc);
            i += 2;
        }
        _mm512_reduce_add_ps(acc)
    }
}
