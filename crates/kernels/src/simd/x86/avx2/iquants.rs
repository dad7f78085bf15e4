//! AVX2 dot products of i-quants (ggml-cpu/arch/x86/quants.c, AVX2 paths):
//!
//! * IQ4_NL (against Q8_0) and IQ4_XS (against Q8_K): the 4-bit indices select
//!   their non-linear levels with one `pshufb` per 16 bytes, then the signed bytes
//!   are multiplied as in Q8_0 · Q8_0.
//! * IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS and IQ3_S (against Q8_K): grid points
//!   (unsigned magnitudes) are gathered from the lattice tables, their signs moved
//!   onto the activations with `psignb`, then `maddubs` and the 4-bit group scales
//!   `2s + 1` with `madd`.
//! * IQ1_S and IQ1_M (against Q8_K): ternary grid points move their signs (and
//!   zeros) onto the activations with `psignb`; the shift by ±`IQ1_DELTA` uses
//!   Q8_K's block sums (IQ1_S) or signed sums of the activations (IQ1_M).
//!
//! Layouts (bytes): IQ4_NL d 0, qs 2..18 (18); IQ4_XS d 0, scales_h 2..4,
//! scales_l 4..8, qs 8..136 (136); IQ2_XXS d 0, qs 2..66 (32 u16) (66); IQ2_XS
//! d 0, qs 2..66 (32 u16), scales 66..74 (74); IQ2_S d 0, grid indices 2..34,
//! signs 34..66, qh 66..74, scales 74..82 (82); IQ3_XXS d 0, grid indices 2..66,
//! scales and signs 66..98 (98); IQ3_S d 0, grid indices 2..66, qh 66..74, signs
//! 74..106, scales 106..110 (110); IQ1_S d 0, qs 2..34, qh 34..50 (8 u16) (50);
//! IQ1_M qs 0..32, qh 32..48, scales (4 u16, f16 d in their top nibbles) 48..56
//! (56);
//! Q8_0 d 0, qs 2..34 (34); Q8_K d (f32) 0, qs 4..260, bsums 260..292 (292).

use std::arch::x86_64::*;

use super::{
    Dot256, bits_to_bytes_32, builds, f16_pair_at, f16x8, f32_at, hsum_epi32, hsum_ps, lane, load,
    load128,
};
use crate::formats::iquants::{
    IQ1_DELTA, IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KSIGNS_IQ2XS,
};
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
dot_entry!(
    /// IQ4_XS · Q8_K in the order of ggml-cpu's tiled matmul (batches).
    vec_dot_iq4_xs_q8_k_tiled => iq4_xs_q8_k_tiled, 256, 136, 292
);

dot_entry!(
    /// IQ2_XXS · Q8_K.
    vec_dot_iq2_xxs_q8_k => iq2_xxs_q8_k, 256, 66, 292
);
dot_entry!(
    /// IQ2_XS · Q8_K.
    vec_dot_iq2_xs_q8_k => iq2_xs_q8_k, 256, 74, 292
);
dot_entry!(
    /// IQ2_S · Q8_K.
    vec_dot_iq2_s_q8_k => iq2_s_q8_k, 256, 82, 292
);
dot_entry!(
    /// IQ3_S · Q8_K.
    vec_dot_iq3_s_q8_k => iq3_s_q8_k, 256, 110, 292
);
dot_entry!(
    /// IQ1_S · Q8_K.
    vec_dot_iq1_s_q8_k => iq1_s_q8_k, 256, 50, 292
);
dot_entry!(
    /// IQ1_M · Q8_K.
    vec_dot_iq1_m_q8_k => iq1_m_q8_k, 256, 56, 292
);
dot_entry!(
    /// IQ3_XXS · Q8_K.
    vec_dot_iq3_xxs_q8_k => iq3_xxs_q8_k, 256, 98, 292
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
            let sumi = iq4_xs_block_sums(table, bx, by.add(4));
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        }
    }
    hsum_ps(acc)
}

/// `Σ (scale - 32) · Σ level·y` of IQ4_XS super-block `bx` with the Q8_K quants
/// at `qy`, as eight i32 lanes (exact).
///
/// # Safety
/// AVX2 must be available; 136 bytes readable at `bx`, 256 at `qy`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn iq4_xs_block_sums(table: __m128i, bx: *const u8, qy: *const u8) -> __m256i {
    // SAFETY: offsets follow the layouts in the module doc, within the 136 and
    // 256 bytes the caller guarantees.
    unsafe {
        let scales_h = bx.add(2).cast::<u16>().read_unaligned() as i32;
        let mut sumi = _mm256_setzero_si256();
        for ib in 0..8 {
            let low = (*bx.add(4 + ib / 2) >> (4 * (ib % 2))) & 0x0f;
            let scale = (low as i32 | (((scales_h >> (2 * ib)) & 3) << 4)) - 32;
            let q = levels_32(table, bx.add(8 + 16 * ib));
            let p = pairs_i8(q, load(qy.add(32 * ib)));
            let p = _mm256_madd_epi16(p, _mm256_set1_epi16(scale as i16));
            sumi = _mm256_add_epi32(sumi, p);
        }
        sumi
    }
}

/// IQ4_XS · Q8_K with ggml-cpu's tiled-matmul float order (see
/// `formats::iquants::vec_dot_iq4_xs_q8_k_tiled`): exact integer sum per
/// super-block, then `acc = fma(f32(isum) · d_w, d_y, acc)`.
///
/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks readable at `x` (136 bytes
/// each) and `y` (292 bytes each).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq4_xs_q8_k_tiled(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: the table is 16 readable bytes.
    let table = unsafe { _mm_loadu_si128(LEVELS.as_ptr().cast()) };
    let mut acc = 0f32;
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller).
        unsafe {
            let (bx, by) = (x.add(136 * i), y.add(292 * i));
            let isum = hsum_epi32(iq4_xs_block_sums(table, bx, by.add(4)));
            let d_w = _mm_cvtss_f32(f16_pair_at(bx));
            acc = (isum as f32 * d_w).mul_add(f32_at(by), acc);
        }
    }
    acc
}

/// `KSIGNS_IQ2XS` spread to bytes: byte `j` of entry `k` is −1 where bit `j` of
/// the sign pattern is set, +1 elsewhere (ggml's `keven_signs_q2xs`), for `psignb`.
const SIGN_BYTES: [u64; 128] = {
    let mut t = [0u64; 128];
    let mut k = 0;
    while k < 128 {
        let mut j = 0;
        while j < 8 {
            let byte: u64 = if KSIGNS_IQ2XS[k] & (1 << j) != 0 {
                0xff
            } else {
                0x01
            };
            t[k] |= byte << (8 * j);
            j += 1;
        }
        k += 1;
    }
    t
};

/// Four sign patterns from the 7-bit fields 0, 7, 14, 21 of `bits`, as 32 sign bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn signs_32(bits: u32) -> __m256i {
    let at = |k: u32| SIGN_BYTES[((bits >> (7 * k)) & 127) as usize] as i64;
    _mm256_set_epi64x(at(3), at(2), at(1), at(0))
}

/// `Σ grid·(signs·y)` weighted by the group scale `2·(bits >> 28) + 1`, as eight
/// i32 lanes, for one group of 32 values.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn signed_group(grid: __m256i, bits: u32, y: __m256i) -> __m256i {
    let p = _mm256_maddubs_epi16(grid, _mm256_sign_epi8(y, signs_32(bits)));
    _mm256_madd_epi16(p, _mm256_set1_epi16(2 * (bits >> 28) as i16 + 1))
}

/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks readable at `x` (66 bytes
/// each) and `y` (292 bytes each).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq2_xxs_q8_k(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller); offsets
        // follow the layouts in the module doc.
        unsafe {
            let (bx, by) = (x.add(66 * i), y.add(292 * i));
            let d = _mm_mul_ps(f16_pair_at(bx), _mm_set1_ps(f32_at(by)));
            let d = _mm256_broadcastss_ps(d);
            let mut sumi = _mm256_setzero_si256();
            for ib in 0..8 {
                // Group ib: u16 words 4ib..4ib+4; the first two hold four grid
                // indices (one byte each), the last two the signs and scale.
                let idx = bx
                    .add(2 + 8 * ib)
                    .cast::<u32>()
                    .read_unaligned()
                    .to_le_bytes();
                let bits = bx.add(6 + 8 * ib).cast::<u32>().read_unaligned();
                let g = |k: usize| IQ2XXS_GRID[idx[k] as usize] as i64;
                let grid = _mm256_set_epi64x(g(3), g(2), g(1), g(0));
                sumi = _mm256_add_epi32(sumi, signed_group(grid, bits, load(by.add(4 + 32 * ib))));
            }
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        }
    }
    0.125 * hsum_ps(acc)
}

/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks readable at `x` (98 bytes
/// each) and `y` (292 bytes each).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq3_xxs_q8_k(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller); offsets
        // follow the layouts in the module doc.
        unsafe {
            let (bx, by) = (x.add(98 * i), y.add(292 * i));
            let d = _mm_mul_ps(f16_pair_at(bx), _mm_set1_ps(f32_at(by)));
            let d = _mm256_broadcastss_ps(d);
            let mut sumi = _mm256_setzero_si256();
            for ib in 0..8 {
                let q = bx.add(2 + 8 * ib);
                let g = |k: usize| IQ3XXS_GRID[*q.add(k) as usize] as i32;
                let grid = _mm256_set_epi32(g(7), g(6), g(5), g(4), g(3), g(2), g(1), g(0));
                let bits = bx.add(66 + 4 * ib).cast::<u32>().read_unaligned();
                sumi = _mm256_add_epi32(sumi, signed_group(grid, bits, load(by.add(4 + 32 * ib))));
            }
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        }
    }
    0.25 * hsum_ps(acc)
}

/// The two 4-bit scales of a group byte as `2s + 1`: the low nibble for values
/// 0..16 (i16 lanes 0..8 of a `maddubs` result), the high one for 16..32.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn half_scales(sc: u8) -> __m256i {
    let lo = 2 * i16::from(sc & 0xf) + 1;
    let hi = 2 * i16::from(sc >> 4) + 1;
    _mm256_set_m128i(_mm_set1_epi16(hi), _mm_set1_epi16(lo))
}

/// Sign bytes (−1 where the bit is set, +1 elsewhere) of 32 raw sign bits stored
/// little-endian at `p` (IQ2_S, IQ3_S).
///
/// # Safety
/// 4 bytes readable at `p`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn sign_bits_32(p: *const u8) -> __m256i {
    // SAFETY: forwarded from the caller.
    let set = unsafe { bits_to_bytes_32(p) };
    _mm256_or_si256(set, _mm256_set1_epi8(1))
}

/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks readable at `x` (74 bytes
/// each) and `y` (292 bytes each).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq2_xs_q8_k(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller); offsets
        // follow the layouts in the module doc.
        unsafe {
            let (bx, by) = (x.add(74 * i), y.add(292 * i));
            let d = _mm_mul_ps(f16_pair_at(bx), _mm_set1_ps(f32_at(by)));
            let d = _mm256_broadcastss_ps(d);
            let mut sumi = _mm256_setzero_si256();
            for ib in 0..8 {
                // Four u16: a 9-bit grid index and a 7-bit sign pattern each.
                let w = bx.add(2 + 8 * ib).cast::<u64>().read_unaligned();
                let word = |k: u32| (w >> (16 * k)) as u16;
                let g = |k: u32| IQ2XS_GRID[usize::from(word(k) & 511)] as i64;
                let s = |k: u32| SIGN_BYTES[usize::from(word(k) >> 9)] as i64;
                let grid = _mm256_set_epi64x(g(3), g(2), g(1), g(0));
                let signs = _mm256_set_epi64x(s(3), s(2), s(1), s(0));
                let q8 = _mm256_sign_epi8(load(by.add(4 + 32 * ib)), signs);
                let p = _mm256_maddubs_epi16(grid, q8);
                let p = _mm256_madd_epi16(p, half_scales(*bx.add(66 + ib)));
                sumi = _mm256_add_epi32(sumi, p);
            }
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        }
    }
    0.125 * hsum_ps(acc)
}

/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks readable at `x` (82 bytes
/// each) and `y` (292 bytes each).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq2_s_q8_k(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller); offsets
        // follow the layouts in the module doc.
        unsafe {
            let (bx, by) = (x.add(82 * i), y.add(292 * i));
            let d = _mm_mul_ps(f16_pair_at(bx), _mm_set1_ps(f32_at(by)));
            let d = _mm256_broadcastss_ps(d);
            let mut sumi = _mm256_setzero_si256();
            for ib in 0..8 {
                // 10-bit indices: a low byte each, two high bits each from qh.
                let qh = usize::from(*bx.add(66 + ib));
                let g = |l: usize| {
                    let low = usize::from(*bx.add(2 + 4 * ib + l));
                    IQ2S_GRID[low | ((qh << (8 - 2 * l)) & 0x300)] as i64
                };
                let grid = _mm256_set_epi64x(g(3), g(2), g(1), g(0));
                let q8 =
                    _mm256_sign_epi8(load(by.add(4 + 32 * ib)), sign_bits_32(bx.add(34 + 4 * ib)));
                let p = _mm256_maddubs_epi16(grid, q8);
                let p = _mm256_madd_epi16(p, half_scales(*bx.add(74 + ib)));
                sumi = _mm256_add_epi32(sumi, p);
            }
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        }
    }
    0.125 * hsum_ps(acc)
}

/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks readable at `x` (110 bytes
/// each) and `y` (292 bytes each).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq3_s_q8_k(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller); offsets
        // follow the layouts in the module doc.
        unsafe {
            let (bx, by) = (x.add(110 * i), y.add(292 * i));
            let d = _mm_mul_ps(f16_pair_at(bx), _mm_set1_ps(f32_at(by)));
            let d = _mm256_broadcastss_ps(d);
            let mut sumi = _mm256_setzero_si256();
            for ib in 0..8 {
                // 9-bit indices: a low byte each, the ninth bit from qh (bit k for
                // index k of the group's eight).
                let qh = usize::from(*bx.add(66 + ib));
                let g = |k: usize| {
                    let low = usize::from(*bx.add(2 + 8 * ib + k));
                    IQ3S_GRID[low | ((qh << (8 - k)) & 256)] as i32
                };
                let grid = _mm256_set_epi32(g(7), g(6), g(5), g(4), g(3), g(2), g(1), g(0));
                let q8 =
                    _mm256_sign_epi8(load(by.add(4 + 32 * ib)), sign_bits_32(bx.add(74 + 4 * ib)));
                let sc = (*bx.add(106 + ib / 2) >> (4 * (ib % 2))) & 0xf;
                let p = _mm256_maddubs_epi16(grid, q8);
                let p = _mm256_madd_epi16(p, _mm256_set1_epi16(2 * i16::from(sc) + 1));
                sumi = _mm256_add_epi32(sumi, p);
            }
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        }
    }
    hsum_ps(acc)
}

/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks readable at `x` (50 bytes
/// each) and `y` (292 bytes each).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq1_s_q8_k(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let ones = _mm256_set1_epi8(1);
    let mut sumf = 0f32;
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller); offsets
        // follow the layouts in the module doc.
        unsafe {
            let (bx, by) = (x.add(50 * i), y.add(292 * i));
            let mut sumi = _mm256_setzero_si256();
            let mut sumi1 = 0i32;
            for ib in 0..8 {
                let qh = bx.add(34 + 2 * ib).cast::<u16>().read_unaligned();
                let g = |l: usize| {
                    let low = usize::from(*bx.add(2 + 4 * ib + l));
                    IQ1S_GRID[low | (usize::from((qh >> (3 * l)) & 7) << 8)] as i64
                };
                // Ternary points: psignb applies their −1 / 0 / +1 to the activations.
                let grid = _mm256_set_epi64x(g(3), g(2), g(1), g(0));
                let q8 = _mm256_sign_epi8(load(by.add(4 + 32 * ib)), grid);
                let ls = 2 * i32::from((qh >> 12) & 7) + 1;
                let p = _mm256_maddubs_epi16(ones, q8);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, _mm256_set1_epi16(ls as i16)));
                let bsums = by.add(260 + 4 * ib).cast::<[i16; 2]>().read_unaligned();
                let delta = if qh & 0x8000 != 0 { -1 } else { 1 };
                sumi1 += ls * delta * (i32::from(bsums[0]) + i32::from(bsums[1]));
            }
            let d = crate::formats::float::f16_to_f32(bx.cast::<u16>().read_unaligned());
            sumf += d * f32_at(by) * (hsum_epi32(sumi) as f32 + IQ1_DELTA * sumi1 as f32);
        }
    }
    sumf
}

/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks readable at `x` (56 bytes
/// each) and `y` (292 bytes each).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq1_m_q8_k(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let ones = _mm256_set1_epi8(1);
    let mut sumf = 0f32;
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller); offsets
        // follow the layouts in the module doc.
        unsafe {
            let (bx, by) = (x.add(56 * i), y.add(292 * i));
            let sc: [u16; 4] = std::array::from_fn(|k| {
                u16::from_le(bx.add(48 + 2 * k).cast::<u16>().read_unaligned())
            });
            let d_bits = (sc[0] >> 12)
                | ((sc[1] >> 8) & 0x00f0)
                | ((sc[2] >> 4) & 0x0f00)
                | (sc[3] & 0xf000);
            let mut sumi1 = _mm256_setzero_si256();
            let mut sumi2 = _mm256_setzero_si256();
            for ib in 0..8 {
                // Per 8 values l: 3 high index bits and a delta sign in a nibble of qh.
                let nibble = |l: usize| *bx.add(32 + 2 * ib + l / 2) >> (4 * (l % 2));
                let g = |l: usize| {
                    let index =
                        usize::from(*bx.add(4 * ib + l)) | ((usize::from(nibble(l)) << 8) & 0x700);
                    IQ1S_GRID[index] as i64
                };
                let s = |l: usize| {
                    if nibble(l) & 0x08 != 0 {
                        -1i64
                    } else {
                        0x0101_0101_0101_0101
                    }
                };
                let q8 = load(by.add(4 + 32 * ib));
                let grid = _mm256_set_epi64x(g(3), g(2), g(1), g(0));
                let signs = _mm256_set_epi64x(s(3), s(2), s(1), s(0));
                let p1 = _mm256_maddubs_epi16(ones, _mm256_sign_epi8(q8, grid));
                let p2 = _mm256_maddubs_epi16(ones, _mm256_sign_epi8(q8, signs));
                // 3-bit scales 2s + 1 for values 0..16 and 16..32 of the group.
                let ls = |half: u32| {
                    let v = (sc[ib / 2] >> (6 * (ib as u32 % 2) + 3 * half)) & 7;
                    2 * v as i16 + 1
                };
                let scales = _mm256_set_m128i(_mm_set1_epi16(ls(1)), _mm_set1_epi16(ls(0)));
                sumi1 = _mm256_add_epi32(sumi1, _mm256_madd_epi16(p1, scales));
                sumi2 = _mm256_add_epi32(sumi2, _mm256_madd_epi16(p2, scales));
            }
            let d = crate::formats::float::f16_to_f32(d_bits);
            let ints = hsum_epi32(sumi1) as f32 + IQ1_DELTA * hsum_epi32(sumi2) as f32;
            sumf += d * f32_at(by) * ints;
        }
    }
    sumf
}
