//! AVX-512 Q6_K · Q8_K: the AVX2 scheme (`maddubs` of unsigned quants with
//! activation bytes, `madd` with the sub-block scales, one f32 scale per block) on
//! 128 values per step, sub-block scales spread over their lanes with `vpermw`.
//! Layouts as in `avx2::kquants`. (The same treatment of Q4_K measured slower than
//! its AVX2 kernel, so this level keeps that one.)

use std::arch::x86_64::*;

use crate::simd::dot_entry;
use crate::simd::x86::avx2::f16_pair_at;

dot_entry!(
    /// Q6_K · Q8_K (AVX-512 BW).
    vec_dot_q6_k_q8_k => q6_k_q8_k, 256, 210, 292
);

/// i16 lane indices `base + lane / 8`: four 16-value sub-blocks per vector.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
#[inline]
fn quad_indices(base: i64) -> __m512i {
    let lane = |k: i64| (base + k) * 0x0001_0001_0001_0001;
    _mm512_set_epi64(
        lane(3),
        lane(3),
        lane(2),
        lane(2),
        lane(1),
        lane(1),
        lane(0),
        lane(0),
    )
}

/// # Safety
/// AVX-512 F/BW/VL, AVX2, FMA and F16C must be available; `nb` blocks readable at
/// `x` (210 bytes each) and `y` (292 bytes each).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn q6_k_q8_k(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let m4 = _mm512_set1_epi8(0x0f);
    let m3 = _mm512_set1_epi8(3);
    // i16 shift counts of the high bits: (0, 2) for values 0..64 of a half,
    // (4, 6) for values 64..128.
    let shift = |a: i16, b: i16| {
        _mm512_inserti64x4::<1>(
            _mm512_castsi256_si512(_mm256_set1_epi16(a)),
            _mm256_set1_epi16(b),
        )
    };
    let (shift01, shift23) = (shift(0, 2), shift(4, 6));
    let idx = [
        [quad_indices(0), quad_indices(4)],
        [quad_indices(8), quad_indices(12)],
    ];
    let mut acc = _mm512_setzero_ps();
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller); offsets
        // follow the layouts (Q6_K: ql[128], qh[64], scales[16], d; Q8_K: d (f32),
        // qs[256], bsums[16]).
        unsafe {
            let (bx, by) = (x.add(210 * i), y.add(292 * i));
            // d is the upper f16 of the pair at 206 (the last scale bytes, then d).
            let dy = _mm_set1_ps(by.cast::<f32>().read_unaligned());
            let d = _mm_movehdup_ps(_mm_mul_ps(f16_pair_at(bx.add(206)), dy));
            let d = _mm512_broadcastss_ps(d);
            let scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(bx.add(192).cast()));
            // The −32 of every quant, applied once per block (see the AVX2 kernel).
            let bsums = _mm256_loadu_si256(by.add(260).cast());
            let offset = _mm256_slli_epi32::<5>(_mm256_madd_epi16(bsums, scales16));
            let scales = _mm512_castsi256_si512(scales16);
            let mut sumi = _mm512_setzero_si512();
            for (h, [idx01, idx23]) in idx.iter().enumerate() {
                // ql[64h..64h+64]: low nibbles are values 0..64 of the half, high
                // nibbles 64..128; qh[32h..32h+32] holds 2 bits of each, repeated
                // in both 256-bit halves and shifted per half.
                let ql = _mm512_loadu_si512(bx.add(64 * h).cast());
                let qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(bx.add(128 + 32 * h).cast()));
                let high = |s: __m512i| {
                    _mm512_slli_epi16::<4>(_mm512_and_si512(_mm512_srlv_epi16(qh, s), m3))
                };
                let q01 = _mm512_or_si512(_mm512_and_si512(ql, m4), high(shift01));
                let q23 = _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi16::<4>(ql), m4),
                    high(shift23),
                );
                let y01 = _mm512_loadu_si512(by.add(4 + 128 * h).cast());
                let y23 = _mm512_loadu_si512(by.add(4 + 128 * h + 64).cast());
                let p01 = _mm512_maddubs_epi16(q01, y01);
                let p23 = _mm512_maddubs_epi16(q23, y23);
                let p01 = _mm512_madd_epi16(_mm512_permutexvar_epi16(*idx01, scales), p01);
                let p23 = _mm512_madd_epi16(_mm512_permutexvar_epi16(*idx23, scales), p23);
                sumi = _mm512_add_epi32(sumi, _mm512_add_epi32(p01, p23));
            }
            let sumi = _mm512_sub_epi32(sumi, _mm512_zextsi256_si512(offset));
            acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi), acc);
        }
    }
    _mm512_reduce_add_ps(acc)
}
