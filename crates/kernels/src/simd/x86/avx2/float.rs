//! AVX2 kernels for the float formats: F32, F16 (F16C conversions) and BF16 dot
//! products with 32 f32 lanes of fused multiply-adds (ggml's `ggml_vec_dot_f16`
//! with `GGML_F16_STEP` = 32 does the same), and the F16 activation converter.

use std::arch::x86_64::*;

use super::hsum_ps;
use crate::formats::float::quantize_row_f16 as quantize_row_f16_scalar;
use crate::simd::{dot_entry, quantize_entry};

dot_entry!(
    /// F32 · F32.
    vec_dot_f32 => f32_f32, 1, 4, 4
);
dot_entry!(
    /// F16 · F16.
    vec_dot_f16 => f16_f16, 1, 2, 2
);
dot_entry!(
    /// BF16 · BF16.
    vec_dot_bf16 => bf16_bf16, 1, 2, 2
);
quantize_entry!(
    /// f32 → F16 (round to nearest even, byte-identical to the scalar converter).
    quantize_row_f16 => f32_to_f16_row, 1, 2
);

/// Eight f32 from element `i` of a row of `T` (`f32`, `f16` or `bf16` bits).
trait Lanes {
    /// Bytes per element.
    const SIZE: usize;
    /// Eight elements from `p` widened to f32.
    ///
    /// # Safety
    /// AVX2, FMA and F16C must be available; `8 * SIZE` bytes readable at `p`.
    unsafe fn load8(p: *const u8) -> __m256;
    /// Element at `p` as f32.
    ///
    /// # Safety
    /// `SIZE` bytes readable at `p`.
    unsafe fn load1(p: *const u8) -> f32;
}

struct F32;
struct F16;
struct Bf16;

impl Lanes for F32 {
    const SIZE: usize = 4;
    #[inline(always)]
    unsafe fn load8(p: *const u8) -> __m256 {
        // SAFETY: 32 readable bytes (caller); loadu has no alignment need.
        unsafe { _mm256_loadu_ps(p.cast()) }
    }
    #[inline(always)]
    unsafe fn load1(p: *const u8) -> f32 {
        // SAFETY: 4 readable bytes (caller).
        unsafe { p.cast::<f32>().read_unaligned() }
    }
}

impl Lanes for F16 {
    const SIZE: usize = 2;
    #[inline(always)]
    unsafe fn load8(p: *const u8) -> __m256 {
        // SAFETY: 16 readable bytes and F16C (caller).
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }
    #[inline(always)]
    unsafe fn load1(p: *const u8) -> f32 {
        // SAFETY: 2 readable bytes (caller).
        crate::formats::float::f16_to_f32(unsafe { p.cast::<u16>().read_unaligned() })
    }
}

impl Lanes for Bf16 {
    const SIZE: usize = 2;
    #[inline(always)]
    unsafe fn load8(p: *const u8) -> __m256 {
        // SAFETY: 16 readable bytes and AVX2 (caller). bf16 is the top half of f32.
        unsafe {
            let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()));
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(h))
        }
    }
    #[inline(always)]
    unsafe fn load1(p: *const u8) -> f32 {
        // SAFETY: 2 readable bytes (caller).
        crate::formats::float::bf16_to_f32(unsafe { p.cast::<u16>().read_unaligned() })
    }
}

/// Dot product of `n` elements in four independent 8-lane accumulators; the tail
/// (n mod 32) is added in f64 like the scalar reference.
///
/// # Safety
/// AVX2, FMA and F16C must be available; `n` elements readable at `x` and `y`.
#[inline(always)]
unsafe fn dot<T: Lanes>(n: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: every offset below is < n elements (caller); the features are
    // available (caller).
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (k, a) in acc.iter_mut().enumerate() {
                let at = (i + 8 * k) * T::SIZE;
                *a = _mm256_fmadd_ps(T::load8(x.add(at)), T::load8(y.add(at)), *a);
            }
            i += 32;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut tail = 0f64;
        while i < n {
            tail += (T::load1(x.add(i * T::SIZE)) * T::load1(y.add(i * T::SIZE))) as f64;
            i += 1;
        }
        (hsum_ps(sum) as f64 + tail) as f32
    }
}

/// # Safety
/// AVX2, FMA and F16C must be available; `n` f32 readable at `x` and `y`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32_f32(n: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: forwarded from the caller.
    unsafe { dot::<F32>(n, x, y) }
}

/// # Safety
/// AVX2, FMA and F16C must be available; `n` f16 readable at `x` and `y`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_f16(n: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: forwarded from the caller.
    unsafe { dot::<F16>(n, x, y) }
}

/// # Safety
/// AVX2, FMA and F16C must be available; `n` bf16 readable at `x` and `y`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bf16_bf16(n: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: forwarded from the caller.
    unsafe { dot::<Bf16>(n, x, y) }
}

/// f32 → f16 with F16C, rounding to nearest even like the scalar converter; runs of
/// eight holding a NaN go to the scalar converter, whose NaN encoding is the
/// reference.
///
/// # Safety
/// AVX2, FMA and F16C must be available; `n` f32 readable at `x`, `2n` bytes
/// writable at `y`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32_to_f16_row(n: usize, x: *const f32, y: *mut u8) {
    let mut i = 0;
    // SAFETY: every access is below `n` elements (caller).
    unsafe {
        while i + 8 <= n {
            let v = _mm256_loadu_ps(x.add(i));
            if _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v)) == 0 {
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
                _mm_storeu_si128(y.add(2 * i).cast(), h);
            } else {
                let src = std::slice::from_raw_parts(x.add(i), 8);
                let dst = std::slice::from_raw_parts_mut(y.add(2 * i), 16);
                quantize_row_f16_scalar(src, dst);
            }
            i += 8;
        }
        let src = std::slice::from_raw_parts(x.add(i), n - i);
        let dst = std::slice::from_raw_parts_mut(y.add(2 * i), 2 * (n - i));
        quantize_row_f16_scalar(src, dst);
    }
}
