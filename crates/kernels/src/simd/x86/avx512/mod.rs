//! AVX-512 kernels (512-bit, F + BW + VL), the [`Cpu::Avx512`](crate::simd::Cpu)
//! level. Formats without an AVX-512 kernel keep the AVX2 one (every AVX-512 CPU
//! hearth accepts also has AVX2, FMA and F16C).
//!
//! Integer dot products come in two builds of one body: with VNNI
//! (`vpdpbusd`: four u8·i8 products summed straight into i32) and without
//! (`vpmaddubsw` + `vpmaddwd`); the table gets the VNNI build where the CPU has
//! it. The bodies are `#[inline(always)]` generic functions over [`BytePairs`],
//! instantiated inside `#[target_feature]` wrappers so that the intrinsics inline.

use std::arch::x86_64::*;

use gguf::TensorType;

use crate::simd::Override;
use crate::simd::x86::features;

mod float;
mod kquants;
mod legacy;

/// This level's replacements of the scalar table.
pub(in crate::simd) fn overrides() -> Vec<Override> {
    let f = features();
    let vnni = f.avx512vnni;
    let pick = |with: crate::dispatch::VecDotFn, without: crate::dispatch::VecDotFn| {
        if vnni { with } else { without }
    };
    let mut list = super::avx2::overrides();
    list.extend([
        Override::dot(
            TensorType::Q4_0,
            pick(legacy::vec_dot_q4_0_q8_0_vnni, legacy::vec_dot_q4_0_q8_0),
        ),
        Override::dot(
            TensorType::Q8_0,
            pick(legacy::vec_dot_q8_0_q8_0_vnni, legacy::vec_dot_q8_0_q8_0),
        ),
        Override::dot(TensorType::Q4_K, kquants::vec_dot_q4_k_q8_k),
        Override::dot(TensorType::Q6_K, kquants::vec_dot_q6_k_q8_k),
        Override::dot(TensorType::F32, float::vec_dot_f32),
        Override::dot(TensorType::F16, float::vec_dot_f16),
    ]);
    if f.avx512bf16 {
        list.push(Override::dot(TensorType::BF16, float::vec_dot_bf16));
    }
    list
}

/// Sums of four adjacent byte products into i32 lanes.
trait BytePairs {
    /// `acc + Σ₄ u·s` for unsigned `u` and signed `s`; every pair `u·s + u'·s'`
    /// must fit i16 (the non-VNNI build goes through `vpmaddubsw`).
    ///
    /// # Safety
    /// The CPU must have the features of the implementing build.
    unsafe fn dot_u8_i8(acc: __m512i, u: __m512i, s: __m512i) -> __m512i;

    /// `acc + Σ₄ x·y` for signed `x` and `y`; `y` must not hold −128.
    ///
    /// # Safety
    /// The CPU must have the features of the implementing build.
    unsafe fn dot_i8(acc: __m512i, x: __m512i, y: __m512i) -> __m512i;
}

/// `vpdpbusd` (AVX-512 VNNI).
struct Vnni;
/// `vpmaddubsw` + `vpmaddwd` (AVX-512 BW).
struct NoVnni;

impl BytePairs for Vnni {
    #[inline(always)]
    unsafe fn dot_u8_i8(acc: __m512i, u: __m512i, s: __m512i) -> __m512i {
        // SAFETY: AVX-512 VNNI is available (caller).
        unsafe { _mm512_dpbusd_epi32(acc, u, s) }
    }

    #[inline(always)]
    unsafe fn dot_i8(acc: __m512i, x: __m512i, y: __m512i) -> __m512i {
        // SAFETY: AVX-512 F, BW and VNNI are available (caller).
        unsafe {
            // x·y = (x + 128)·y − 128·y with x + 128 unsigned: no i16 limit here.
            let bias = _mm512_set1_epi8(-128);
            let ux = _mm512_xor_si512(x, bias);
            let acc = _mm512_dpbusd_epi32(acc, ux, y);
            let correction = _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, y);
            _mm512_sub_epi32(acc, correction)
        }
    }
}

impl BytePairs for NoVnni {
    #[inline(always)]
    unsafe fn dot_u8_i8(acc: __m512i, u: __m512i, s: __m512i) -> __m512i {
        // SAFETY: AVX-512 F and BW are available (caller).
        unsafe {
            let pairs = _mm512_maddubs_epi16(u, s);
            _mm512_add_epi32(acc, _mm512_madd_epi16(pairs, _mm512_set1_epi16(1)))
        }
    }

    #[inline(always)]
    unsafe fn dot_i8(acc: __m512i, x: __m512i, y: __m512i) -> __m512i {
        // SAFETY: AVX-512 F and BW are available (caller).
        unsafe {
            // |x| times y with x's sign (y ≠ −128, so negating it is exact).
            let negative = _mm512_movepi8_mask(x);
            let sy = _mm512_mask_sub_epi8(y, negative, _mm512_setzero_si512(), y);
            Self::dot_u8_i8(acc, _mm512_abs_epi8(x), sy)
        }
    }
}

/// The f16 stored little-endian at `p`, as f32 (exact).
///
/// # Safety
/// F16C must be available; `p` valid for reading 2 bytes.
#[inline(always)]
unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: 2 readable bytes and F16C (caller); the read is unaligned.
    unsafe {
        let h = p.cast::<u16>().read_unaligned();
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
    }
}

/// Two 32-byte runs (`a`, then `b`) as one vector.
///
/// # Safety
/// AVX-512 F must be available; 32 bytes readable at `a` and at `b`.
#[inline(always)]
unsafe fn load_2x256(a: *const u8, b: *const u8) -> __m512i {
    // SAFETY: 32 readable bytes at each pointer (caller); unaligned loads.
    unsafe {
        let lo = _mm256_loadu_si256(a.cast());
        let hi = _mm256_loadu_si256(b.cast());
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
    }
}

/// The two builds of an integer kernel body: `$plain` without VNNI, `$vnni` with.
macro_rules! vnni_builds {
    ($body:ident => $plain:ident, $vnni:ident) => {
        /// # Safety
        /// AVX-512 F/BW/VL, AVX2, FMA and F16C must be available; the body's
        /// buffer requirements hold.
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
        unsafe fn $plain(nb: usize, x: *const u8, y: *const u8) -> f32 {
            // SAFETY: forwarded from the caller.
            unsafe { $body::<super::NoVnni>(nb, x, y) }
        }

        /// # Safety
        /// As the build without VNNI, plus AVX-512 VNNI.
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        unsafe fn $vnni(nb: usize, x: *const u8, y: *const u8) -> f32 {
            // SAFETY: forwarded from the caller.
            unsafe { $body::<super::Vnni>(nb, x, y) }
        }
    };
}
use vnni_builds;
