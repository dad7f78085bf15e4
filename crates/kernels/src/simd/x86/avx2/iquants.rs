//! AVX2 dot products of IQ4_NL (against Q8_0) and IQ4_XS (against Q8_K)
//! (ggml-cpu/arch/x86/quants.c `ggml_vec_dot_iq4_{nl_q8_0,xs_q8_K}`, AVX2 paths):
//! the 4-bit indices select their non-linear levels with one `pshufb` per 16
//! bytes, then the signed bytes are multiplied as in Q8_0 · Q8_0.
//!
//! Layouts (bytes): IQ4_NL d 0, qs 2..18 (18); IQ4_XS d 0, scales_h 2..4,
//! scales_l 4..8, qs 8..136 (136); Q8_0 d 0, qs 2..34 (34); Q8_K d (f32) 0,
//! qs 4..260, bsums 260..292 (292).

use std::arch::x86_64::*;

use super::{Dot256, builds, f16_pair_at, f16x8, f32_at, hsum_ps, lane, load, load128};
use crate::simd::dot_entry;

dot_entry!(
    /// IQ4_NL · Q8_0.
    vec_dot_iq4_nl_q8_0 => iq4_nl_q8_0, 32, 18, 34
);
dot_entry!(
    /// IQ4_NL · Q8_0 (AVX-512 VNNI, 256-bit).
    vec_dot_iq4_nl_q8_0_vnni => iq4_nl_q8_0_vnni, 32, 18, 34
);
builds!(iq4_nl_body => iq4_nl_q8_0, iq4_nl_q8_0_vnni);
dot_entry!(
    /// IQ4_XS · Q8_K.
    vec_dot_iq4_xs_q8_k => iq4_xs_q8_k, 256, 136, 292
);

/// The 16 levels of the IQ4 formats (ggml-common.h `kvalues_iq4nl`).
const LEVELS: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// The levels of 32 indices packed in 16 bytes at `p` (low nibbles are elements
/// 0..16, high nibbles 16..32).
///
/// # Safety
/// 16 bytes readable at `p`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn levels_32(table: __m128i, p: *const u8) -> __m256i {
    // SAFETY: forwarded from the caller.
    let b = unsafe { load128(p) };
    let m4 = _mm_set1_epi8(0x0f);
    let lo = _mm_shuffle_epi8(table, _mm_and_si128(b, m4));
    let hi = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16::<4>(b), m4));
    _mm256_set_m128i(hi, lo)
}

/// Signed bytes `x · y` summed in pairs into sixteen i16 lanes (`y` ≠ −128, |x| ≤
/// 127, so no pair saturates).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn pairs_i8(x: __m256i, y: __m256i) -> __m256i {
    _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
}

/// # Safety
/// AVX2, FMA, F16C and `D`'s features must be available; `nb` blocks readable at
/// `x` (18 bytes each) and `y` (34 bytes each).
#[inline(always)]
unsafe fn iq4_nl_body<D: Dot256>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: blocks i..i + count < nb are readable (caller), the table is 16
    // readable bytes; features from the caller.
    unsafe {
        let table = _mm_loadu_si128(LEVELS.as_ptr().cast());
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut i = 0;
        while i < nb {
            let count = (nb - i).min(8);
            let (bx, by) = (x.add(18 * i), y.add(34 * i));
            let d = _mm256_mul_ps(f16x8(bx, 18, count), f16x8(by, 34, count));
            for k in 0..count {
                let q = levels_32(table, bx.add(18 * k + 2));
                let s = D::dot_i8(q, load(by.add(34 * k + 2)));
                acc[k & 1] = _mm256_fmadd_ps(lane(d, k), _mm256_cvtepi32_ps(s), acc[k & 1]);
            }
            i += count;
        }
        hsum_ps(_mm256_add_ps(acc[0], acc[1]))
    }
}

/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks readable at `x` (136 bytes
/// each) and `y` (292 bytes each).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq4_xs_q8_k(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: the table is 16 readable bytes.
    let table = unsafe { _mm_loadu_si128(LEVELS.as_ptr().cast()) };
    let mut acc = _mm256_setzero_ps();
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller); offsets
        // follow the layouts in the module doc.
        unsafe {
            let (bx, by) = (x.add(136 * i), y.add(292 * i));
            // d and scales_h as a pair; only d is used.
            let d = _mm_mul_ps(f16_pair_at(bx), _mm_set1_ps(f32_at(by)));
            let d = _mm256_broadcastss_ps(d);
            let scales_h = bx.add(2).cast::<u16>().read_unaligned() as i32;
            let mut sumi = _mm256_setzero_si256();
            for ib in 0..8 {
                let low = (*bx.add(4 + ib / 2) >> (4 * (ib % 2))) & 0x0f;
                let scale = (low as i32 | (((scales_h >> (2 * ib)) & 3) << 4)) - 32;
                let q = levels_32(table, bx.add(8 + 16 * ib));
                let p = pairs_i8(q, load(by.add(4 + 32 * ib)));
                let p = _mm256_madd_epi16(p, _mm256_set1_epi16(scale as i16));
                sumi = _mm256_add_epi32(sumi, p);
            }
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        }
    }
    hsum_ps(acc)
}
