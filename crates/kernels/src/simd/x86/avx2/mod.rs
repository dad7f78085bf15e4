//! AVX2 + FMA + F16C kernels (256-bit), the [`Cpu::Avx2`](crate::simd::Cpu) level.
//!
//! Every kernel is an `unsafe fn` compiled with `#[target_feature(enable =
//! "avx2,fma,f16c")]` and reached only through the safe entries made by
//! `dot_entry!` / `quantize_entry!`, which `simd::install` puts into the table
//! only after the features were detected.

use std::arch::x86_64::*;

use gguf::TensorType;

use crate::simd::Override;

mod dequant;
mod float;
pub(in crate::simd) mod iquants;
pub(in crate::simd) mod kquants;
pub(super) mod legacy;
pub(in crate::simd) mod mxfp4;
mod quantize;

/// This level's replacements of the scalar table.
pub(in crate::simd) fn overrides() -> Vec<Override> {
    vec![
        Override::dot(TensorType::Q4_0, legacy::vec_dot_q4_0_q8_0),
        Override::dot(TensorType::Q4_1, legacy::vec_dot_q4_1_q8_1),
        Override::dot(TensorType::Q5_0, legacy::vec_dot_q5_0_q8_0),
        Override::dot(TensorType::Q5_1, legacy::vec_dot_q5_1_q8_1),
        Override::dot(TensorType::Q8_0, legacy::vec_dot_q8_0_q8_0),
        Override::dot(TensorType::Q2_K, kquants::vec_dot_q2_k_q8_k),
        Override::dot(TensorType::Q3_K, kquants::vec_dot_q3_k_q8_k),
        Override::dot(TensorType::Q4_K, kquants::vec_dot_q4_k_q8_k),
        Override::dot(TensorType::Q5_K, kquants::vec_dot_q5_k_q8_k),
        Override::dot(TensorType::Q6_K, kquants::vec_dot_q6_k_q8_k),
        Override::dot(TensorType::IQ4_NL, iquants::vec_dot_iq4_nl_q8_0),
        Override::dot(TensorType::IQ4_XS, iquants::vec_dot_iq4_xs_q8_k),
        Override::dot(TensorType::IQ2_XXS, iquants::vec_dot_iq2_xxs_q8_k),
        Override::dot(TensorType::IQ3_XXS, iquants::vec_dot_iq3_xxs_q8_k),
        Override::dot(TensorType::IQ2_XS, iquants::vec_dot_iq2_xs_q8_k),
        Override::dot(TensorType::IQ2_S, iquants::vec_dot_iq2_s_q8_k),
        Override::dot(TensorType::IQ3_S, iquants::vec_dot_iq3_s_q8_k),
        Override::dot(TensorType::IQ1_S, iquants::vec_dot_iq1_s_q8_k),
        Override::dot(TensorType::IQ1_M, iquants::vec_dot_iq1_m_q8_k),
        Override::dot(TensorType::MXFP4, mxfp4::vec_dot_mxfp4_q8_0),
        Override::dot(TensorType::F32, float::vec_dot_f32),
        Override::dot(TensorType::F16, float::vec_dot_f16),
        Override::dot(TensorType::BF16, float::vec_dot_bf16),
        Override::quantize(TensorType::Q8_0, quantize::quantize_row_q8_0),
        Override::quantize(TensorType::Q8_1, quantize::quantize_row_q8_1),
        Override::quantize_act(TensorType::Q8_0, quantize::quantize_row_q8_0_act),
        Override::quantize_act(TensorType::Q8_1, quantize::quantize_row_q8_1_act),
        Override::quantize(TensorType::Q8_K, quantize::quantize_row_q8_k),
        Override::quantize(TensorType::F16, float::quantize_row_f16),
        Override::dequantize(TensorType::F16, dequant::dequantize_row_f16),
        Override::dequantize(TensorType::BF16, dequant::dequantize_row_bf16),
        Override::dequantize(TensorType::Q8_0, dequant::dequantize_row_q8_0),
        Override::dequantize(TensorType::Q4_0, dequant::dequantize_row_q4_0),
    ]
}

/// Sum of the eight lanes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn hsum_ps(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Sum of the eight i32 lanes (wrapping).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn hsum_epi32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01>(s));
    _mm_cvtsi128_si32(s)
}

/// The two f16 stored little-endian at `p` as f32 lanes 0 and 1 (exact), the
/// other lanes unspecified.
///
/// One 32-bit load fills the whole register. Converting a single f16 compiles to a
/// 16-bit lane insert, which keeps the rest of whatever register LLVM picks, and it
/// may pick the accumulator's: each block's scale then waits for the previous
/// block's multiply-add (measured: Q4_K 16.8 → 19.2 GiB/s with this).
///
/// # Safety
/// `p` must be valid for reading 4 bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(in crate::simd::x86) unsafe fn f16_pair_at(p: *const u8) -> __m128 {
    // SAFETY: the caller guarantees 4 readable bytes; the read is unaligned.
    let v = unsafe { p.cast::<i32>().read_unaligned() };
    _mm_cvtph_ps(_mm_cvtsi32_si128(v))
}

/// The f16 stored little-endian at `p`, as f32 (exact). For kernels whose loops
/// carry no accumulator through it (see [`f16_pair_at`]).
///
/// # Safety
/// `p` must be valid for reading 2 bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: the caller guarantees 2 readable bytes; the read is unaligned.
    let h = unsafe { p.cast::<u16>().read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_set1_epi16(h as i16)))
}

/// The f32 stored little-endian at `p`.
///
/// # Safety
/// `p` must be valid for reading 4 bytes.
#[inline]
unsafe fn f32_at(p: *const u8) -> f32 {
    // SAFETY: the caller guarantees 4 readable bytes; the read is unaligned.
    unsafe { p.cast::<f32>().read_unaligned() }
}

/// The f16 scales at `p + stride·k` for `k < count` (≤ 8), zeros after, as eight
/// f32. Converting eight at once keeps scalar f16 conversions (whose `vpinsrw`
/// LLVM may merge into a register carrying the accumulator) out of the loop-carried
/// dependency chain.
///
/// # Safety
/// 2 bytes readable at each `p + stride·k`, `k < count`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(in crate::simd::x86) unsafe fn f16x8(p: *const u8, stride: usize, count: usize) -> __m256 {
    let mut h = [0u16; 8];
    for (k, v) in h.iter_mut().enumerate().take(count) {
        // SAFETY: k < count (caller); the read is unaligned.
        *v = unsafe { p.add(stride * k).cast::<u16>().read_unaligned() };
    }
    // SAFETY: `h` is 16 readable bytes.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(h.as_ptr().cast()) })
}

/// Lane `k` of `v` in every lane.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn lane(v: __m256, k: usize) -> __m256 {
    _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(k as i32))
}

/// 32 bytes from `p`.
///
/// # Safety
/// `p` must be valid for reading 32 bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load(p: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 32 readable bytes; loadu has no alignment need.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// 16 bytes from `p`.
///
/// # Safety
/// `p` must be valid for reading 16 bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load128(p: *const u8) -> __m128i {
    // SAFETY: the caller guarantees 16 readable bytes; loadu has no alignment need.
    unsafe { _mm_loadu_si128(p.cast()) }
}

/// The 32 nibbles of 16 packed bytes in the legacy order: low nibbles (elements
/// 0..16) in the low half, high nibbles (elements 16..32) in the high half.
///
/// # Safety
/// `p` must be valid for reading 16 bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn nibbles_32(p: *const u8) -> __m256i {
    // SAFETY: forwarded from the caller.
    let b = unsafe { load128(p) };
    let lo_hi = _mm256_set_m128i(_mm_srli_epi16::<4>(b), b);
    _mm256_and_si256(lo_hi, _mm256_set1_epi8(0x0f))
}

/// 32 bytes, byte `i` all ones where bit `i` of the little-endian u32 at `p` is
/// set (the fifth bits of Q5_0 / Q5_1).
///
/// # Safety
/// `p` must be valid for reading 4 bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn bits_to_bytes_32(p: *const u8) -> __m256i {
    // SAFETY: forwarded from the caller; the read is unaligned.
    let bits = unsafe { p.cast::<u32>().read_unaligned() };
    // Byte i takes byte i / 8 of the word, then is compared against bit i % 8.
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(bits as i32),
        _mm256_set_epi64x(
            0x0303_0303_0303_0303,
            0x0202_0202_0202_0202,
            0x0101_0101_0101_0101,
            0,
        ),
    );
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit)
}

/// Products of bytes summed in groups of four into eight i32 lanes: the one
/// operation the legacy kernels build on, in two builds.
pub(in crate::simd::x86) trait Dot256 {
    /// Unsigned `u` times signed `s`; every pair `u·s + u'·s'` must fit i16 (the
    /// AVX2 build goes through `vpmaddubsw`).
    ///
    /// # Safety
    /// The CPU must have the features of the implementing build.
    unsafe fn dot_u8_i8(u: __m256i, s: __m256i) -> __m256i;

    /// Signed `x` times signed `y`; `y` must not hold −128 (activations never
    /// do), `x` may.
    ///
    /// # Safety
    /// The CPU must have the features of the implementing build.
    #[inline(always)]
    unsafe fn dot_i8(x: __m256i, y: __m256i) -> __m256i {
        // SAFETY: AVX2 (caller). |x| as unsigned times y with x's sign.
        unsafe {
            let ax = _mm256_sign_epi8(x, x);
            let sy = _mm256_sign_epi8(y, x);
            Self::dot_u8_i8(ax, sy)
        }
    }

    /// `(q − 8)·y` for nibbles `q` (0..=15) and signed `y` (≠ −128).
    ///
    /// # Safety
    /// The CPU must have the features of the implementing build.
    #[inline(always)]
    unsafe fn dot_q4_i8(q: __m256i, y: __m256i) -> __m256i {
        // SAFETY: forwarded from the caller.
        unsafe { Self::dot_i8(_mm256_sub_epi8(q, _mm256_set1_epi8(8)), y) }
    }
}

/// `vpmaddubsw` + `vpmaddwd` (AVX2).
pub(in crate::simd::x86) struct Madd;
/// 256-bit `vpdpbusd` (AVX-512 VL + VNNI).
pub(in crate::simd::x86) struct Vnni256;

impl Dot256 for Madd {
    #[inline(always)]
    unsafe fn dot_u8_i8(u: __m256i, s: __m256i) -> __m256i {
        // SAFETY: AVX2 (caller).
        unsafe { _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)) }
    }
}

impl Dot256 for Vnni256 {
    #[inline(always)]
    unsafe fn dot_u8_i8(u: __m256i, s: __m256i) -> __m256i {
        // SAFETY: AVX-512 VL and VNNI (caller).
        unsafe { _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s) }
    }

    #[inline(always)]
    unsafe fn dot_q4_i8(q: __m256i, y: __m256i) -> __m256i {
        // SAFETY: AVX-512 VL and VNNI (caller). q·y − 8·y: two `vpdpbusd` and no
        // sign fix-ups.
        unsafe {
            let qy = _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, y);
            let y8 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(8), y);
            _mm256_sub_epi32(qy, y8)
        }
    }
}

/// The two builds of a kernel body generic over [`Dot256`]: `$avx2` for the AVX2
/// level, `$vnni` for AVX-512 CPUs with VNNI.
macro_rules! builds {
    ($body:ident => $avx2:ident, $vnni:ident) => {
        /// # Safety
        /// AVX2, FMA and F16C must be available; the body's buffer requirements
        /// hold.
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $avx2(nb: usize, x: *const u8, y: *const u8) -> f32 {
            // SAFETY: forwarded from the caller.
            unsafe { $body::<super::Madd>(nb, x, y) }
        }

        /// # Safety
        /// As the AVX2 build, plus AVX-512 F, BW, VL and VNNI.
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        unsafe fn $vnni(nb: usize, x: *const u8, y: *const u8) -> f32 {
            // SAFETY: forwarded from the caller.
            unsafe { $body::<super::Vnni256>(nb, x, y) }
        }
    };
}
use builds;
