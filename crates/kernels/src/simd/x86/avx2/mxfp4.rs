//! AVX2 dot product of MXFP4 against Q8_0 (ggml-cpu/arch/x86/quants.c,
//! `ggml_vec_dot_mxfp4_q8_0`): IQ4_NL's kernel with the E2M1 table and the E8M0
//! scale. The 4-bit codes select their (doubled) E2M1 values with one `pshufb`
//! per 16 bytes, the signed bytes are multiplied as in Q8_0 · Q8_0, and each
//! block's integer sum is scaled by `d_y · 2^(e − 128)`.
//!
//! Layouts (bytes): MXFP4 e 0, qs 1..17 (17); Q8_0 d 0, qs 2..34 (34).

use std::arch::x86_64::*;

use super::{Dot256, builds, f16x8, hsum_ps, lane, load, load128};
use crate::formats::mxfp4::KVALUES_MXFP4;
use crate::simd::dot_entry;

dot_entry!(
    /// MXFP4 · Q8_0.
    vec_dot_mxfp4_q8_0 => mxfp4_q8_0, 32, 17, 34
);
dot_entry!(
    /// MXFP4 · Q8_0 (AVX-512 VNNI, 256-bit).
    vec_dot_mxfp4_q8_0_vnni => mxfp4_q8_0_vnni, 32, 17, 34
);
builds!(mxfp4_body => mxfp4_q8_0, mxfp4_q8_0_vnni);

/// # Safety
/// AVX2, FMA, F16C and `D`'s features must be available; `nb` blocks readable at
/// `x` (17 bytes each) and `y` (34 bytes each).
#[inline(always)]
unsafe fn mxfp4_body<D: Dot256>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: blocks i..i + count < nb are readable (caller), the table is 16
    // readable bytes; features from the caller.
    unsafe {
        let table = _mm_loadu_si128(KVALUES_MXFP4.as_ptr().cast());
        let m4 = _mm_set1_epi8(0x0f);
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut i = 0;
        while i < nb {
            let count = (nb - i).min(8);
            let (bx, by) = (x.add(17 * i), y.add(34 * i));
            let d = _mm256_mul_ps(f16x8(by, 34, count), e8m0_half_x8(bx, count));
            for k in 0..count {
                let b = load128(bx.add(17 * k + 1));
                let lo = _mm_shuffle_epi8(table, _mm_and_si128(b, m4));
                let hi = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16::<4>(b), m4));
                let s = D::dot_i8(_mm256_set_m128i(hi, lo), load(by.add(34 * k + 2)));
                acc[k & 1] = _mm256_fmadd_ps(lane(d, k), _mm256_cvtepi32_ps(s), acc[k & 1]);
            }
            i += count;
        }
        hsum_ps(_mm256_add_ps(acc[0], acc[1]))
    }
}

/// The half E8M0 scales `2^(e − 128)` of the blocks at `p + 17·k` for
/// `k < count` (≤ 8), zeros after, as eight f32 (`formats::mxfp4::e8m0_to_f32_half`
/// in lanes: `(e − 1) << 23` for e ≥ 2, the subnormals `0x0020_0000 << e` below).
///
/// # Safety
/// 1 byte readable at each `p + 17·k`, `k < count`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn e8m0_half_x8(p: *const u8, count: usize) -> __m256 {
    let mut e = [0i32; 8];
    for (k, v) in e.iter_mut().enumerate().take(count) {
        // SAFETY: k < count (caller).
        *v = i32::from(unsafe { *p.add(17 * k) });
    }
    // SAFETY: `e` is 32 readable bytes.
    let e = unsafe { _mm256_loadu_si256(e.as_ptr().cast()) };
    let normal = _mm256_slli_epi32::<23>(_mm256_sub_epi32(e, _mm256_set1_epi32(1)));
    let subnormal = _mm256_sllv_epi32(_mm256_set1_epi32(0x0020_0000), e);
    let is_normal = _mm256_cmpgt_epi32(e, _mm256_set1_epi32(1));
    // Lanes past `count` hold e = 0: the subnormal 2^-128, times a zero f16 scale.
    _mm256_castsi256_ps(_mm256_blendv_epi8(subnormal, normal, is_normal))
}
