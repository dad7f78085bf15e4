//! AVX-512 dot products of Q4_0 and Q8_0 against Q8_0: two blocks per 512-bit
//! step (ggml-cpu/arch/x86/quants.c handles one block per 256-bit step; the
//! arithmetic per block is the same: an exact integer dot, then one fused
//! multiply-add by the block's combined scale). Scales are converted eight blocks
//! at a time and spread over the two halves of a vector with `vpermps`.

use std::arch::x86_64::*;

use super::{BytePairs, load_2x256, vnni_builds};
use crate::simd::dot_entry;
use crate::simd::x86::avx2::f16x8;

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

/// The loop shared by the kernels: `Σ dx·dy·pair(b0, b1)` over `nb` blocks (`xs`,
/// `ys` bytes each, f16 scale first), two at a time, where `pair` returns the
/// integer dot products of blocks `b0` (lanes 0..8) and `b1` (lanes 8..16) as i32.
/// An odd last block is paired with itself and a zero scale.
///
/// # Safety
/// AVX-512 F, AVX2, FMA and F16C must be available; `nb` blocks readable at `x`
/// and `y`; `pair` may read its blocks' bytes.
#[inline(always)]
unsafe fn pairs(
    nb: usize,
    (x, xs): (*const u8, usize),
    (y, ys): (*const u8, usize),
    pair: impl Fn((*const u8, *const u8), (*const u8, *const u8)) -> __m512i,
) -> f32 {
    // SAFETY: every block touched is < `nb` (caller); features from the caller.
    unsafe {
        let mut acc = [_mm512_setzero_ps(); 2];
        let mut i = 0;
        while i < nb {
            let count = (nb - i).min(8);
            let (bx, by) = (x.add(xs * i), y.add(ys * i));
            // Lanes past `count` are zero: the scale of a padding copy.
            let d = _mm256_mul_ps(f16x8(bx, xs, count), f16x8(by, ys, count));
            let d = _mm512_castps256_ps512(d);
            for k in 0..count.div_ceil(2) {
                let (k0, k1) = (2 * k, (2 * k + 1).min(count - 1));
                let idx = _mm512_inserti64x4::<1>(
                    _mm512_castsi256_si512(_mm256_set1_epi32(k0 as i32)),
                    _mm256_set1_epi32(2 * k as i32 + 1),
                );
                let dk = _mm512_permutexvar_ps(idx, d);
                let s = pair(
                    (bx.add(xs * k0), by.add(ys * k0)),
                    (bx.add(xs * k1), by.add(ys * k1)),
                );
                acc[k & 1] = _mm512_fmadd_ps(dk, _mm512_cvtepi32_ps(s), acc[k & 1]);
            }
            i += count;
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]))
    }
}

/// # Safety
/// AVX-512 F/BW/VL, AVX2, F16C and `D`'s features must be available; `nb` blocks
/// readable at `x` (18 bytes each) and `y` (34 bytes each).
#[inline(always)]
unsafe fn q4_0_body<D: BytePairs>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: forwarded from the caller; Q4_0 is d, qs[16]; Q8_0 is d, qs[32].
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
        pairs(nb, (x, 18), (y, 34), |(bx0, by0), (bx1, by1)| {
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
            _mm512_sub_epi32(s, D::dot_u8_i8(_mm512_setzero_si512(), eight, qy))
        })
    }
}

/// # Safety
/// AVX-512 F/BW/VL, AVX2, F16C and `D`'s features must be available; `nb` blocks
/// of 34 bytes readable at `x` and `y`.
#[inline(always)]
unsafe fn q8_0_body<D: BytePairs>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: forwarded from the caller; Q8_0 is d, qs[32].
    unsafe {
        pairs(nb, (x, 34), (y, 34), |(bx0, by0), (bx1, by1)| {
            let qx = load_2x256(bx0.add(2), bx1.add(2));
            let qy = load_2x256(by0.add(2), by1.add(2));
            D::dot_i8(_mm512_setzero_si512(), qx, qy)
        })
    }
}
