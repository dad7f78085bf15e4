//! AVX2 activation quantizers: Q8_0, Q8_1 and Q8_K, byte-identical to the scalar
//! references in `formats::legacy` (ggml-quants.c `quantize_row_q8_{0,1}_ref`:
//! `roundf`, half away from zero) and `formats::kquants` (`quantize_row_q8_K_ref`:
//! `nearest_int`, half to even); and the Q8_0 / Q8_1 activation converters,
//! byte-identical to `formats::legacy::quantize_row_q8_{0,1}_act` (ggml-cpu/arch/
//! x86/quants.c `quantize_row_q8_{0,1}`: scale `127/amax`, half to even). Blocks
//! holding a NaN go to the scalar quantizer, whose order-dependent NaN handling is
//! the reference.

use std::arch::x86_64::*;

use crate::formats::float::f32_to_f16;
use crate::formats::legacy::{self, quantize_row_q8_0_ref, quantize_row_q8_1_ref};
use crate::simd::quantize_entry;

quantize_entry!(
    /// f32 → Q8_0.
    quantize_row_q8_0 => q8_0, 32, 34
);
quantize_entry!(
    /// f32 → Q8_1.
    quantize_row_q8_1 => q8_1, 32, 36
);
quantize_entry!(
    /// f32 → Q8_0, ggml-cpu's activation rounding.
    quantize_row_q8_0_act => q8_0_act, 32, 34
);
quantize_entry!(
    /// f32 → Q8_1, ggml-cpu's activation rounding.
    quantize_row_q8_1_act => q8_1_act, 32, 36
);
quantize_entry!(
    /// f32 → Q8_K.
    quantize_row_q8_k => q8_k, 256, 292
);

/// `|v|`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn abs(v: __m256) -> __m256 {
    _mm256_andnot_ps(_mm256_set1_ps(-0.0), v)
}

/// Largest lane.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn hmax(v: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let m = _mm_max_ss(m, _mm_movehdup_ps(m));
    _mm_cvtss_f32(m)
}

/// C's `roundf` (half away from zero) of every lane, then truncation to i32 as
/// `cvttss2si` does (NaN and out-of-range give `i32::MIN`).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn round_away(v: __m256) -> __m256i {
    let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
    // v − trunc(v) is exact; a fraction of magnitude ≥ ½ rounds away from zero.
    let up = _mm256_cmp_ps::<_CMP_GE_OQ>(abs(_mm256_sub_ps(v, t)), _mm256_set1_ps(0.5));
    let one = _mm256_or_ps(_mm256_set1_ps(1.0), _mm256_and_ps(v, _mm256_set1_ps(-0.0)));
    _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_and_ps(up, one)))
}

/// The low bytes of four vectors of eight i32 (C's narrowing to `int8_t`), in
/// order.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn low_bytes(v: [__m256i; 4]) -> __m256i {
    let ff = _mm256_set1_epi32(0xff);
    let [a, b, c, d] = v.map(|x| _mm256_and_si256(x, ff));
    let ab = _mm256_packus_epi32(a, b);
    let cd = _mm256_packus_epi32(c, d);
    let abcd = _mm256_packus_epi16(ab, cd);
    _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// Four vectors of eight i32 narrowed to bytes with signed saturation, in order
/// (ggml's `_mm256_packs_epi32`, `_mm256_packs_epi16`, then the lane fix-up).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn saturated_bytes([a, b, c, d]: [__m256i; 4]) -> __m256i {
    let ab = _mm256_packs_epi32(a, b);
    let cd = _mm256_packs_epi32(c, d);
    let abcd = _mm256_packs_epi16(ab, cd);
    _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// Quantize one 32-value block to Q8_0 quants, writing `d` (f16) at `out` and the
/// quants at `out + qs_at`; returns `(d, Σq)` with the sum over the stored bytes,
/// or `None` (nothing written) when the block holds a NaN. `ACT` picks ggml-cpu's
/// activation rounding (`id = 127/amax`, half to even) over the reference's
/// (`id = 1/d`, half away from zero).
///
/// # Safety
/// 32 f32 readable at `x`; `qs_at + 32` bytes writable at `out`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn q8_block<const ACT: bool>(
    x: *const f32,
    out: *mut u8,
    qs_at: usize,
) -> Option<(f32, i32)> {
    // SAFETY: 32 readable values (caller).
    let v: [__m256; 4] = unsafe { [0, 8, 16, 24].map(|o| _mm256_loadu_ps(x.add(o))) };
    let nan = v.iter().fold(0, |m, &v| {
        m | _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v))
    });
    if nan != 0 {
        return None;
    }
    let amax = hmax(
        v.iter()
            .fold(_mm256_setzero_ps(), |m, &v| _mm256_max_ps(m, abs(v))),
    );
    let d = amax / 127.0;
    let q = if ACT {
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        v.map(|v| {
            let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm256_mul_ps(v, _mm256_set1_ps(id)),
            );
            _mm256_cvtps_epi32(r)
        })
    } else {
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        v.map(|v| round_away(_mm256_mul_ps(v, _mm256_set1_ps(id))))
    };
    // Σ of the stored bytes (the reference), or of the 32-bit integers before
    // ggml's saturating packs (the activation converter's `hsum_i32_8`).
    let sum = q.iter().fold(_mm256_setzero_si256(), |s, &q| {
        let q = if ACT {
            q
        } else {
            _mm256_srai_epi32::<24>(_mm256_slli_epi32::<24>(q))
        };
        _mm256_add_epi32(s, q)
    });
    let bytes = if ACT {
        saturated_bytes(q)
    } else {
        low_bytes(q)
    };
    // SAFETY: `qs_at + 32` writable bytes (caller).
    unsafe {
        // `d` is finite or +inf here (no NaN in the block): F16C's round-to-nearest-
        // even conversion gives the scalar converter's bits.
        let h = _mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set1_ps(d));
        out.cast::<u16>()
            .write_unaligned((_mm_extract_epi16::<0>(h) as u16).to_le());
        _mm256_storeu_si256(out.add(qs_at).cast(), bytes);
    }
    Some((d, super::hsum_epi32(sum)))
}

/// # Safety
/// AVX2, FMA and F16C must be available; `32 nb` f32 readable at `x`, `34 nb`
/// bytes writable at `y`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0(nb: usize, x: *const f32, y: *mut u8) {
    for i in 0..nb {
        // SAFETY: block `i` < `nb` lies within both buffers (caller).
        unsafe {
            let (src, dst) = (x.add(32 * i), y.add(34 * i));
            if q8_block::<false>(src, dst, 2).is_none() {
                quantize_row_q8_0_ref(
                    std::slice::from_raw_parts(src, 32),
                    std::slice::from_raw_parts_mut(dst, 34),
                );
            }
        }
    }
}

/// # Safety
/// AVX2, FMA and F16C must be available; `32 nb` f32 readable at `x`, `36 nb`
/// bytes writable at `y`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_1(nb: usize, x: *const f32, y: *mut u8) {
    for i in 0..nb {
        // SAFETY: block `i` < `nb` lies within both buffers (caller).
        unsafe {
            let (src, dst) = (x.add(32 * i), y.add(36 * i));
            match q8_block::<false>(src, dst, 4) {
                Some((d, sum)) => {
                    let s = f32_to_f16(sum as f32 * d);
                    dst.add(2).cast::<u16>().write_unaligned(s.to_le());
                }
                None => quantize_row_q8_1_ref(
                    std::slice::from_raw_parts(src, 32),
                    std::slice::from_raw_parts_mut(dst, 36),
                ),
            }
        }
    }
}

/// # Safety
/// AVX2, FMA and F16C must be available; `32 nb` f32 readable at `x`, `34 nb`
/// bytes writable at `y`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_act(nb: usize, x: *const f32, y: *mut u8) {
    for i in 0..nb {
        // SAFETY: block `i` < `nb` lies within both buffers (caller).
        unsafe {
            let (src, dst) = (x.add(32 * i), y.add(34 * i));
            if q8_block::<true>(src, dst, 2).is_none() {
                legacy::quantize_row_q8_0_act(
                    std::slice::from_raw_parts(src, 32),
                    std::slice::from_raw_parts_mut(dst, 34),
                );
            }
        }
    }
}

/// # Safety
/// AVX2, FMA and F16C must be available; `32 nb` f32 readable at `x`, `36 nb`
/// bytes writable at `y`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_1_act(nb: usize, x: *const f32, y: *mut u8) {
    for i in 0..nb {
        // SAFETY: block `i` < `nb` lies within both buffers (caller).
        unsafe {
            let (src, dst) = (x.add(32 * i), y.add(36 * i));
            match q8_block::<true>(src, dst, 4) {
                Some((d, sum)) => {
                    let s = f32_to_f16(d * sum as f32);
                    dst.add(2).cast::<u16>().write_unaligned(s.to_le());
                }
                None => legacy::quantize_row_q8_1_act(
                    std::slice::from_raw_parts(src, 32),
                    std::slice::from_raw_parts_mut(dst, 36),
                ),
            }
        }
    }
}

/// ggml-quants.c `nearest_int` on every lane: add 1.5·2²³ and read the integer
/// from the low mantissa bits (ties to even for |v| ≤ 2²²).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn nearest_int(v: __m256) -> __m256i {
    let biased = _mm256_castps_si256(_mm256_add_ps(v, _mm256_set1_ps(12_582_912.0)));
    _mm256_sub_epi32(
        _mm256_and_si256(biased, _mm256_set1_epi32(0x007f_ffff)),
        _mm256_set1_epi32(0x0040_0000),
    )
}

/// # Safety
/// AVX2, FMA and F16C must be available; `256 nb` f32 readable at `x`, `292 nb`
/// bytes writable at `y`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_k(nb: usize, x: *const f32, y: *mut u8) {
    for i in 0..nb {
        // SAFETY: block `i` < `nb` lies within both buffers (caller); every offset
        // below is inside the block's 256 values / 292 bytes.
        unsafe {
            let (src, dst) = (x.add(256 * i), y.add(292 * i));
            // The value of largest magnitude, the first one on ties; NaNs never win
            // (maxps returns its second operand when the first is NaN).
            let mut m = _mm256_setzero_ps();
            for k in 0..32 {
                m = _mm256_max_ps(abs(_mm256_loadu_ps(src.add(8 * k))), m);
            }
            let amax = hmax(m);
            if amax == 0.0 {
                std::ptr::write_bytes(dst, 0, 292);
                continue;
            }
            let target = _mm256_set1_ps(amax);
            let mut max = 0f32;
            for k in 0..32 {
                let v = _mm256_loadu_ps(src.add(8 * k));
                let hit = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(abs(v), target));
                if hit != 0 {
                    max = *src.add(8 * k + hit.trailing_zeros() as usize);
                    break;
                }
            }
            let iscale = -127.0 / max;
            let vscale = _mm256_set1_ps(iscale);
            let ones8 = _mm256_set1_epi8(1);
            let ones16 = _mm256_set1_epi16(1);
            for c in 0..8 {
                let q = [0, 1, 2, 3].map(|k| {
                    let v = _mm256_loadu_ps(src.add(32 * c + 8 * k));
                    _mm256_min_epi32(
                        nearest_int(_mm256_mul_ps(vscale, v)),
                        _mm256_set1_epi32(127),
                    )
                });
                let bytes = low_bytes(q);
                _mm256_storeu_si256(dst.add(4 + 32 * c).cast(), bytes);
                // Sums of each 16 quants: pairs, then quads, then within each lane.
                let s = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, bytes), ones16);
                let s = _mm256_hadd_epi32(s, s);
                let s = _mm256_hadd_epi32(s, s);
                let bsum = dst.add(260 + 4 * c).cast::<i16>();
                bsum.write_unaligned((_mm256_extract_epi32::<0>(s) as i16).to_le());
                bsum.add(1)
                    .write_unaligned((_mm256_extract_epi32::<4>(s) as i16).to_le());
            }
            dst.cast::<f32>().write_unaligned(1.0 / iscale);
        }
    }
}
