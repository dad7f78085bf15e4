//! AVX2 dot products of the K-quants against Q8_K (ggml-cpu/arch/x86/quants.c
//! `ggml_vec_dot_q{2,3,4,5,6}_K_q8_K`, AVX2 paths): per super-block, quants are
//! widened to bytes 32 at a time, multiplied with Q8_K bytes by `maddubs` (unsigned
//! quants × signed activations → i16 pairs), weighted by their sub-block scales with
//! `madd` (→ i32), and the block's i32 lanes are scaled by `d` in f32. Mins (Q2_K,
//! Q4_K, Q5_K) are applied once per block through Q8_K's 16-value sums.
//!
//! Block layouts (bytes): Q2_K scales 0..16, qs 16..80, d 80, dmin 82 (84);
//! Q3_K hmask 0..32, qs 32..96, scales 96..108, d 108 (110); Q4_K d 0, dmin 2,
//! scales 4..16, qs 16..144 (144); Q5_K as Q4_K with qh 16..48, qs 48..176 (176);
//! Q6_K ql 0..128, qh 128..192, scales 192..208, d 208 (210); Q8_K d (f32) 0,
//! qs 4..260, bsums 260..292 (292).

use std::arch::x86_64::*;

use super::{f16_pair_at, f32_at, hsum_epi32, hsum_ps, load, load128};
use crate::simd::dot_entry;

dot_entry!(
    /// Q2_K · Q8_K.
    vec_dot_q2_k_q8_k => q2_k_q8_k, 256, 84, 292
);
dot_entry!(
    /// Q3_K · Q8_K.
    vec_dot_q3_k_q8_k => q3_k_q8_k, 256, 110, 292
);
dot_entry!(
    /// Q4_K · Q8_K.
    vec_dot_q4_k_q8_k => q4_k_q8_k, 256, 144, 292
);
dot_entry!(
    /// Q5_K · Q8_K.
    vec_dot_q5_k_q8_k => q5_k_q8_k, 256, 176, 292
);
dot_entry!(
    /// Q6_K · Q8_K.
    vec_dot_q6_k_q8_k => q6_k_q8_k, 256, 210, 292
);
dot_entry!(
    /// Q4_K · Q8_K in the order of ggml-cpu's tiled matmul (batches).
    vec_dot_q4_k_q8_k_tiled => q4_k_q8_k_tiled, 256, 144, 292
);
dot_entry!(
    /// Q5_K · Q8_K in the order of ggml-cpu's tiled matmul (batches).
    vec_dot_q5_k_q8_k_tiled => q5_k_q8_k_tiled, 256, 176, 292
);
dot_entry!(
    /// Q6_K · Q8_K in the order of ggml-cpu's tiled matmul (batches).
    vec_dot_q6_k_q8_k_tiled => q6_k_q8_k_tiled, 256, 210, 292
);

/// Shuffle control picking, from eight i16 scales repeated in both 128-bit lanes,
/// scale `2k` for the low lane and `2k + 1` for the high lane: the scales of the
/// two 16-value sub-blocks of the `k`-th 32-value group (Q2_K, Q3_K, Q6_K).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn pair_shuffle(k: usize) -> __m256i {
    let lo = (((4 * k + 1) << 8) | (4 * k)) as i16;
    let hi = (((4 * k + 3) << 8) | (4 * k + 2)) as i16;
    _mm256_set_m128i(_mm_set1_epi16(hi), _mm_set1_epi16(lo))
}

/// Shuffle control broadcasting i16 scale `k` of eight (Q4_K, Q5_K: one scale per
/// 32 values).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn broadcast_shuffle(k: usize) -> __m256i {
    _mm256_set1_epi16((((2 * k + 1) << 8) | (2 * k)) as i16)
}

/// Sixteen i8 scales as two vectors of eight i16, each repeated in both lanes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn split_scales(scales8: __m128i) -> [__m256i; 2] {
    let all = _mm256_cvtepi8_epi16(scales8);
    let lo = _mm256_castsi256_si128(all);
    let hi = _mm256_extracti128_si256::<1>(all);
    [_mm256_set_m128i(lo, lo), _mm256_set_m128i(hi, hi)]
}

/// The four 2-bit fields of 32 bytes, lowest bits first (values `l`, `l + 32`,
/// `l + 64`, `l + 96` of a 128-value half in Q2_K / Q3_K).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn crumbs(bits: __m256i) -> [__m256i; 4] {
    let m3 = _mm256_set1_epi8(3);
    [
        _mm256_and_si256(bits, m3),
        _mm256_and_si256(_mm256_srli_epi16::<2>(bits), m3),
        _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m3),
        _mm256_and_si256(_mm256_srli_epi16::<6>(bits), m3),
    ]
}

/// Bytes set to `value` where bit `b` of the matching byte of `bits` is set.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn bit_to(bits: __m256i, b: u32, value: i8) -> __m256i {
    let mask = _mm256_set1_epi8((1u8 << b) as i8);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(bits, mask), mask);
    _mm256_and_si256(set, _mm256_set1_epi8(value))
}

/// The 6-bit scales and mins of a Q4_K / Q5_K block (12 bytes at `p`) as 16 i16:
/// scales 0..8 then mins 0..8 (ggml-quants.c `get_scale_min_k4`, unpacked four at
/// a time as ggml's AVX2 code does).
///
/// # Safety
/// `p` must be valid for reading 12 bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn scales_mins_k4(p: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 12 readable bytes; reads are unaligned.
    let a = unsafe { [0, 4, 8].map(|o| p.add(o).cast::<u32>().read_unaligned()) };
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const TOP2: u32 = 0x0303_0303;
    let scales_lo = a[0] & LOW6;
    let mins_lo = a[1] & LOW6;
    let scales_hi = (a[2] & LOW4) | (((a[0] >> 6) & TOP2) << 4);
    let mins_hi = ((a[2] >> 4) & LOW4) | (((a[1] >> 6) & TOP2) << 4);
    _mm256_cvtepu8_epi16(_mm_set_epi32(
        mins_hi as i32,
        mins_lo as i32,
        scales_hi as i32,
        scales_lo as i32,
    ))
}

/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks must be readable at `x`
/// (84 bytes each) and `y` (292 bytes each).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q2_k_q8_k(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller); offsets
        // are within the layouts in the module doc.
        unsafe {
            let (bx, by) = (x.add(84 * i), y.add(292 * i));
            let ddmin = _mm_mul_ps(f16_pair_at(bx.add(80)), _mm_set1_ps(f32_at(by)));
            let d = _mm256_broadcastss_ps(ddmin);
            let dmin = _mm256_broadcastss_ps(_mm_movehdup_ps(ddmin));
            let packed = load128(bx);
            let m4 = _mm_set1_epi8(0x0f);
            let mins = _mm256_cvtepi8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(packed), m4));
            let prod = _mm256_madd_epi16(mins, load(by.add(260)));
            acc = _mm256_fnmadd_ps(dmin, _mm256_cvtepi32_ps(prod), acc);
            let scales = split_scales(_mm_and_si128(packed, m4));
            let mut sumi = _mm256_setzero_si256();
            for (h, sc) in scales.iter().enumerate() {
                let q2 = crumbs(load(bx.add(16 + 32 * h)));
                for (k, q) in q2.iter().enumerate() {
                    let q8 = load(by.add(4 + 128 * h + 32 * k));
                    let p = _mm256_maddubs_epi16(*q, q8);
                    let p = _mm256_madd_epi16(_mm256_shuffle_epi8(*sc, pair_shuffle(k)), p);
                    sumi = _mm256_add_epi32(sumi, p);
                }
            }
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        }
    }
    hsum_ps(acc)
}

/// The sixteen Q3_K scales (12 bytes at `p`), unbiased, as i8 (see
/// `BlockQ3K::scales`).
///
/// # Safety
/// `p` must be valid for reading 12 bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn q3_k_scales(p: *const u8) -> __m128i {
    // SAFETY: the caller guarantees 12 readable bytes; reads are unaligned.
    let a = unsafe { [0, 4, 8].map(|o| p.add(o).cast::<u32>().read_unaligned()) };
    const LOW4: u32 = 0x0f0f_0f0f;
    const TOP2: u32 = 0x0303_0303;
    let s = _mm_set_epi32(
        (((a[1] >> 4) & LOW4) | (((a[2] >> 6) & TOP2) << 4)) as i32,
        (((a[0] >> 4) & LOW4) | (((a[2] >> 4) & TOP2) << 4)) as i32,
        ((a[1] & LOW4) | (((a[2] >> 2) & TOP2) << 4)) as i32,
        ((a[0] & LOW4) | ((a[2] & TOP2) << 4)) as i32,
    );
    _mm_sub_epi8(s, _mm_set1_epi8(32))
}

/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks must be readable at `x`
/// (110 bytes each) and `y` (292 bytes each).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q3_k_q8_k(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller); offsets
        // are within the layouts in the module doc.
        unsafe {
            let (bx, by) = (x.add(110 * i), y.add(292 * i));
            // d is the upper f16 of the pair at 106 (the last scale bytes, then d).
            let d = _mm_mul_ps(f16_pair_at(bx.add(106)), _mm_set1_ps(f32_at(by)));
            let d = _mm256_broadcastss_ps(_mm_movehdup_ps(d));
            let scales = split_scales(q3_k_scales(bx.add(96)));
            let hbits = load(bx);
            let mut sumi = _mm256_setzero_si256();
            for (h, sc) in scales.iter().enumerate() {
                let q3 = crumbs(load(bx.add(32 + 32 * h)));
                for (k, q) in q3.iter().enumerate() {
                    let q8 = load(by.add(4 + 128 * h + 32 * k));
                    // q − 4 where the high bit is clear: subtract 4·q8 there.
                    let minus4 = bit_to(
                        _mm256_andnot_si256(hbits, _mm256_set1_epi8(-1)),
                        (4 * h + k) as u32,
                        4,
                    );
                    let p = _mm256_sub_epi16(
                        _mm256_maddubs_epi16(*q, q8),
                        _mm256_maddubs_epi16(minus4, q8),
                    );
                    let p = _mm256_madd_epi16(_mm256_shuffle_epi8(*sc, pair_shuffle(k)), p);
                    sumi = _mm256_add_epi32(sumi, p);
                }
            }
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        }
    }
    hsum_ps(acc)
}

/// The integer sums of one Q4_K / Q5_K block at `bx` (`qs` at byte 16 +
/// `qs_at`, the fifth bits, if `with_qh`, at byte 16) against the Q8_K block at
/// `by`: ggml's eight lanes of `Σ_j scale_j · q·y` (`sumi`) and four lanes of
/// `Σ_j min_j · (sum of sub-block j's activations)` (`prod`).
///
/// # Safety
/// AVX2, FMA and F16C must be available; one block must be readable at `bx`
/// and 292 bytes at `by`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn q45_k_block_sums(bx: *const u8, by: *const u8, with_qh: bool) -> (__m256i, __m128i) {
    let qs_at = if with_qh { 48 } else { 16 };
    // SAFETY: the offsets are within the layouts in the module doc (caller).
    unsafe {
        let sm = scales_mins_k4(bx.add(4));
        let bsums = load(by.add(260));
        let q8sums = _mm_hadd_epi16(
            _mm256_castsi256_si128(bsums),
            _mm256_extracti128_si256::<1>(bsums),
        );
        let prod = _mm_madd_epi16(_mm256_extracti128_si256::<1>(sm), q8sums);

        let sc = _mm256_castsi256_si128(sm);
        let scales = _mm256_set_m128i(sc, sc);
        let hbits = if with_qh {
            load(bx.add(16))
        } else {
            _mm256_setzero_si256()
        };
        let m4 = _mm256_set1_epi8(0x0f);
        let mut sumi = _mm256_setzero_si256();
        for j in 0..4 {
            let bits = load(bx.add(qs_at + 32 * j));
            let mut lo = _mm256_and_si256(bits, m4);
            let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4);
            if with_qh {
                lo = _mm256_or_si256(lo, bit_to(hbits, 2 * j as u32, 0x10));
                hi = _mm256_or_si256(hi, bit_to(hbits, 2 * j as u32 + 1, 0x10));
            }
            let q8l = load(by.add(4 + 64 * j));
            let q8h = load(by.add(36 + 64 * j));
            let pl = _mm256_madd_epi16(
                _mm256_shuffle_epi8(scales, broadcast_shuffle(2 * j)),
                _mm256_maddubs_epi16(lo, q8l),
            );
            let ph = _mm256_madd_epi16(
                _mm256_shuffle_epi8(scales, broadcast_shuffle(2 * j + 1)),
                _mm256_maddubs_epi16(hi, q8h),
            );
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
        }
        (sumi, prod)
    }
}

/// Shared body of Q4_K and Q5_K (`size`-byte blocks, see [`q45_k_block_sums`]).
///
/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks must be readable at `x`
/// (`size` bytes each) and `y` (292 bytes each).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn q45_k_q8_k(nb: usize, x: *const u8, y: *const u8, size: usize, with_qh: bool) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut acc_m = _mm_setzero_ps();
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller); offsets
        // are within the layouts in the module doc.
        unsafe {
            let (bx, by) = (x.add(size * i), y.add(292 * i));
            let ddmin = _mm_mul_ps(f16_pair_at(bx), _mm_set1_ps(f32_at(by)));
            let d = _mm256_broadcastss_ps(ddmin);
            let dmin = _mm_shuffle_ps::<0b0101_0101>(ddmin, ddmin);
            let (sumi, prod) = q45_k_block_sums(bx, by, with_qh);
            acc_m = _mm_fnmadd_ps(dmin, _mm_cvtepi32_ps(prod), acc_m);
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        }
    }
    let m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
    let m = _mm_add_ss(m, _mm_movehdup_ps(m));
    hsum_ps(acc) + _mm_cvtss_f32(m)
}

/// Q4_K / Q5_K in the tiled order (`formats::kquants::vec_dot_q4_k_q8_k_tiled`):
/// the same integer sums as [`q45_k_q8_k`], added up exactly, then one
/// `fma(−dmin, s2, s1 · d)` and one `fma(r, d_y, acc)` per block.
///
/// # Safety
/// As [`q45_k_q8_k`].
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn q45_k_q8_k_tiled(
    nb: usize,
    x: *const u8,
    y: *const u8,
    size: usize,
    with_qh: bool,
) -> f32 {
    let mut acc = 0f32;
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller).
        unsafe {
            let (bx, by) = (x.add(size * i), y.add(292 * i));
            let (sumi, prod) = q45_k_block_sums(bx, by, with_qh);
            let s1 = hsum_epi32(sumi);
            let s2 = _mm_add_epi32(prod, _mm_unpackhi_epi64(prod, prod));
            let s2 = _mm_cvtsi128_si32(_mm_add_epi32(s2, _mm_shuffle_epi32::<0b01>(s2))) as f32;
            let ddmin = f16_pair_at(bx);
            let (d, dmin) = (_mm_cvtss_f32(ddmin), _mm_cvtss_f32(_mm_movehdup_ps(ddmin)));
            let r = (-dmin).mul_add(s2, s1 as f32 * d);
            acc = r.mul_add(f32_at(by), acc);
        }
    }
    acc
}

/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks must be readable at `x`
/// (144 bytes each) and `y` (292 bytes each).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_k_q8_k_tiled(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: forwarded from the caller.
    unsafe { q45_k_q8_k_tiled(nb, x, y, 144, false) }
}

/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks must be readable at `x`
/// (176 bytes each) and `y` (292 bytes each).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_k_q8_k_tiled(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: forwarded from the caller.
    unsafe { q45_k_q8_k_tiled(nb, x, y, 176, true) }
}

/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks must be readable at `x`
/// (144 bytes each) and `y` (292 bytes each).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_k_q8_k(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: forwarded from the caller.
    unsafe { q45_k_q8_k(nb, x, y, 144, false) }
}

/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks must be readable at `x`
/// (176 bytes each) and `y` (292 bytes each).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_k_q8_k(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: forwarded from the caller.
    unsafe { q45_k_q8_k(nb, x, y, 176, true) }
}

/// ggml's eight lanes of `Σ_s scale_s · Σ (q − 32)·y` for the Q6_K block at
/// `bx` against the Q8_K block at `by`.
///
/// # Safety
/// AVX2, FMA and F16C must be available; 210 bytes must be readable at `bx`
/// and 292 at `by`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn q6_k_block_sums(bx: *const u8, by: *const u8) -> __m256i {
    let m4 = _mm256_set1_epi8(0x0f);
    // SAFETY: the offsets are within the layouts in the module doc (caller).
    unsafe {
        let scales8 = load128(bx.add(192));
        // The −32 of every quant, applied once per block as ggml does:
        // Σ_j 32·scale[j]·(sum of sub-block j's activations).
        let offset = _mm256_slli_epi32::<5>(_mm256_madd_epi16(
            load(by.add(260)),
            _mm256_cvtepi8_epi16(scales8),
        ));
        let scales = split_scales(scales8);
        let mut sumi = _mm256_setzero_si256();
        for (h, sc) in scales.iter().enumerate() {
            let ql0 = load(bx.add(64 * h));
            let ql1 = load(bx.add(64 * h + 32));
            let qh = load(bx.add(128 + 32 * h));
            // Bits 2k..2k+2 of qh are bits 4..6 of quant group k.
            let high = [
                _mm256_slli_epi16::<4>(_mm256_and_si256(qh, _mm256_set1_epi8(0x03))),
                _mm256_slli_epi16::<2>(_mm256_and_si256(qh, _mm256_set1_epi8(0x0c))),
                _mm256_and_si256(qh, _mm256_set1_epi8(0x30)),
                _mm256_srli_epi16::<2>(_mm256_and_si256(qh, _mm256_set1_epi8(0xc0u8 as i8))),
            ];
            let low = [
                _mm256_and_si256(ql0, m4),
                _mm256_and_si256(ql1, m4),
                _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), m4),
                _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), m4),
            ];
            for k in 0..4 {
                let q = _mm256_or_si256(low[k], high[k]);
                let q8 = load(by.add(4 + 128 * h + 32 * k));
                let p = _mm256_maddubs_epi16(q, q8);
                let p = _mm256_madd_epi16(_mm256_shuffle_epi8(*sc, pair_shuffle(k)), p);
                sumi = _mm256_add_epi32(sumi, p);
            }
        }
        _mm256_sub_epi32(sumi, offset)
    }
}

/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks must be readable at `x`
/// (210 bytes each) and `y` (292 bytes each).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6_k_q8_k(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller).
        unsafe {
            let (bx, by) = (x.add(210 * i), y.add(292 * i));
            // d is the upper f16 of the pair at 206 (the last scale bytes, then d).
            let d = _mm_mul_ps(f16_pair_at(bx.add(206)), _mm_set1_ps(f32_at(by)));
            let d = _mm256_broadcastss_ps(_mm_movehdup_ps(d));
            let sumi = q6_k_block_sums(bx, by);
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        }
    }
    hsum_ps(acc)
}

/// Q6_K in the tiled order (`formats::kquants::vec_dot_q6_k_q8_k_tiled`): the
/// block's integer sum exactly, then `acc = fma(s · d, d_y, acc)`.
///
/// # Safety
/// As [`q6_k_q8_k`].
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6_k_q8_k_tiled(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut acc = 0f32;
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller).
        unsafe {
            let (bx, by) = (x.add(210 * i), y.add(292 * i));
            let s = hsum_epi32(q6_k_block_sums(bx, by)) as f32;
            let d = _mm_cvtss_f32(_mm_movehdup_ps(f16_pair_at(bx.add(206))));
            acc = (s * d).mul_add(f32_at(by), acc);
        }
    }
    acc
}
