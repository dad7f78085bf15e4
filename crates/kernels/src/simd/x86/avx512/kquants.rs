//! AVX-512 dot products of Q4_K and Q6_K against Q8_K: the AVX2 scheme
//! (`maddubs` of unsigned quants with activation bytes, `madd` with the sub-block
//! scales, one f32 scale per block) on 128 values per step. Sub-block scales are
//! spread over their lanes with `vpermw`. Layouts as in `avx2::kquants`.

use std::arch::x86_64::*;

use super::f16_at;
use crate::simd::dot_entry;
use crate::simd::x86::avx2::kquants::scales_mins_k4;

dot_entry!(
    /// Q4_K · Q8_K (AVX-512 BW).
    vec_dot_q4_k_q8_k => q4_k_q8_k, 256, 144, 292
);
dot_entry!(
    /// Q6_K · Q8_K (AVX-512 BW).
    vec_dot_q6_k_q8_k => q6_k_q8_k, 256, 210, 292
);

/// i16 lane indices: lanes 0..16 take `a`, lanes 16..32 take `b`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
#[inline]
fn two_indices(a: i16, b: i16) -> __m512i {
    _mm512_inserti64x4::<1>(
        _mm512_castsi256_si512(_mm256_set1_epi16(a)),
        _mm256_set1_epi16(b),
    )
}

/// # Safety
/// AVX-512 F/BW/VL, AVX2, FMA and F16C must be available; `nb` blocks readable at
/// `x` (144 bytes each) and `y` (292 bytes each).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn q4_k_q8_k(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let m4 = _mm512_set1_epi8(0x0f);
    // Scale lanes for the two steps: low nibbles cover sub-blocks (4p, 4p + 2),
    // high nibbles (4p + 1, 4p + 3).
    let idx = [
        [two_indices(0, 2), two_indices(1, 3)],
        [two_indices(4, 6), two_indices(5, 7)],
    ];
    let mut acc = _mm512_setzero_ps();
    let mut acc_m = _mm_setzero_ps();
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller); offsets
        // follow the layouts (Q4_K: d, dmin, scales[12], qs[128]; Q8_K: d (f32),
        // qs[256], bsums[16]).
        unsafe {
            let (bx, by) = (x.add(144 * i), y.add(292 * i));
            let dy = by.cast::<f32>().read_unaligned();
            let d = dy * f16_at(bx);
            let dmin = -dy * f16_at(bx.add(2));
            let sm = scales_mins_k4(bx.add(4));
            let bsums = _mm256_loadu_si256(by.add(260).cast());
            let q8sums = _mm_hadd_epi16(
                _mm256_castsi256_si128(bsums),
                _mm256_extracti128_si256::<1>(bsums),
            );
            let prod = _mm_madd_epi16(_mm256_extracti128_si256::<1>(sm), q8sums);
            acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m);

            let scales = _mm512_castsi256_si512(sm);
            let mut sumi = _mm512_setzero_si512();
            for (p, [idx_lo, idx_hi]) in idx.iter().enumerate() {
                // Chunks 2p and 2p + 1 (64 values each): low nibbles hold values
                // 128p + 0..32 and 128p + 64..96, high nibbles + 32..64, + 96..128.
                let bits = _mm512_loadu_si512(bx.add(16 + 64 * p).cast());
                let lo = _mm512_and_si512(bits, m4);
                let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(bits), m4);
                let a = _mm512_loadu_si512(by.add(4 + 128 * p).cast());
                let b = _mm512_loadu_si512(by.add(4 + 128 * p + 64).cast());
                let q8lo = _mm512_shuffle_i64x2::<0b01_00_01_00>(a, b);
                let q8hi = _mm512_shuffle_i64x2::<0b11_10_11_10>(a, b);
                let pl = _mm512_madd_epi16(
                    _mm512_permutexvar_epi16(*idx_lo, scales),
                    _mm512_maddubs_epi16(lo, q8lo),
                );
                let ph = _mm512_madd_epi16(
                    _mm512_permutexvar_epi16(*idx_hi, scales),
                    _mm512_maddubs_epi16(hi, q8hi),
                );
                sumi = _mm512_add_epi32(sumi, _mm512_add_epi32(pl, ph));
            }
            acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
        }
    }
    let m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
    let m = _mm_add_ss(m, _mm_movehdup_ps(m));
    _mm512_reduce_add_ps(acc) + _mm_cvtss_f32(m)
}

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
    let m32 = _mm512_set1_epi8(32);
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
            let d = by.cast::<f32>().read_unaligned() * f16_at(bx.add(208));
            let scales =
                _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128(bx.add(192).cast())));
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
                // (q − 32)·y = q·y − 32·y, both unsigned × signed.
                let p01 = _mm512_sub_epi16(
                    _mm512_maddubs_epi16(q01, y01),
                    _mm512_maddubs_epi16(m32, y01),
                );
                let p23 = _mm512_sub_epi16(
                    _mm512_maddubs_epi16(q23, y23),
                    _mm512_maddubs_epi16(m32, y23),
                );
                let p01 = _mm512_madd_epi16(_mm512_permutexvar_epi16(*idx01, scales), p01);
                let p23 = _mm512_madd_epi16(_mm512_permutexvar_epi16(*idx23, scales), p23);
                sumi = _mm512_add_epi32(sumi, _mm512_add_epi32(p01, p23));
            }
            acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
        }
    }
    _mm512_reduce_add_ps(acc)
}
