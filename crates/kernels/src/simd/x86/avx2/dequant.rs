//! AVX2 dequantizers (`to_f32`) for the formats a model reads row by row at run
//! time: F16 and BF16 (embeddings, an f16 KV cache), Q8_0 and Q4_0. Each output
//! value is the same single conversion or multiplication the scalar dequantizer
//! does (`d · q` in f32), so the results are bit-identical to it.

use std::arch::x86_64::*;

use super::{f16_at, load, nibbles_32};
use crate::formats::float::{bf16_to_f32, f16_to_f32};
use crate::simd::dequantize_entry;

dequantize_entry!(
    /// F16 → f32.
    dequantize_row_f16 => f16_row, 1, 2
);
dequantize_entry!(
    /// BF16 → f32.
    dequantize_row_bf16 => bf16_row, 1, 2
);
dequantize_entry!(
    /// Q8_0 → f32.
    dequantize_row_q8_0 => q8_0_row, 32, 34
);
dequantize_entry!(
    /// Q4_0 → f32.
    dequantize_row_q4_0 => q4_0_row, 32, 18
);

/// # Safety
/// AVX2, FMA and F16C must be available; `n` f16 readable at `x`, `n` f32
/// writable at `y`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_row(n: usize, x: *const u8, y: *mut f32) {
    // SAFETY: every access is below `n` elements (caller).
    unsafe {
        let mut i = 0;
        while i + 8 <= n {
            let h = _mm_loadu_si128(x.add(2 * i).cast());
            _mm256_storeu_ps(y.add(i), _mm256_cvtph_ps(h));
            i += 8;
        }
        for j in i..n {
            *y.add(j) = f16_to_f32(x.add(2 * j).cast::<u16>().read_unaligned());
        }
    }
}

/// # Safety
/// AVX2, FMA and F16C must be available; `n` bf16 readable at `x`, `n` f32
/// writable at `y`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bf16_row(n: usize, x: *const u8, y: *mut f32) {
    // SAFETY: every access is below `n` elements (caller).
    unsafe {
        let mut i = 0;
        while i + 8 <= n {
            let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(x.add(2 * i).cast()));
            _mm256_storeu_si256(y.add(i).cast(), _mm256_slli_epi32::<16>(h));
            i += 8;
        }
        for j in i..n {
            *y.add(j) = bf16_to_f32(x.add(2 * j).cast::<u16>().read_unaligned());
        }
    }
}

/// `d · q` for 32 signed bytes `q`, stored at `y`.
///
/// # Safety
/// AVX2 must be available; 32 f32 writable at `y`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn scale_store_32(q: __m256i, d: __m256, y: *mut f32) {
    let lo = _mm256_castsi256_si128(q);
    let hi = _mm256_extracti128_si256::<1>(q);
    let parts = [
        lo,
        _mm_unpackhi_epi64(lo, lo),
        hi,
        _mm_unpackhi_epi64(hi, hi),
    ];
    for (k, p) in parts.into_iter().enumerate() {
        let v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(p));
        // SAFETY: 32 writable values (caller).
        unsafe { _mm256_storeu_ps(y.add(8 * k), _mm256_mul_ps(v, d)) };
    }
}

/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks readable at `x` (34 bytes
/// each), `32 nb` f32 writable at `y`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_row(nb: usize, x: *const u8, y: *mut f32) {
    for i in 0..nb {
        // SAFETY: block `i` < `nb` lies within both buffers (caller); Q8_0 is d,
        // qs[32].
        unsafe {
            let b = x.add(34 * i);
            let d = _mm256_set1_ps(f16_at(b));
            scale_store_32(load(b.add(2)), d, y.add(32 * i));
        }
    }
}

/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks readable at `x` (18 bytes
/// each), `32 nb` f32 writable at `y`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_0_row(nb: usize, x: *const u8, y: *mut f32) {
    for i in 0..nb {
        // SAFETY: block `i` < `nb` lies within both buffers (caller); Q4_0 is d,
        // qs[16].
        unsafe {
            let b = x.add(18 * i);
            let d = _mm256_set1_ps(f16_at(b));
            let q = _mm256_sub_epi8(nibbles_32(b.add(2)), _mm256_set1_epi8(8));
            scale_store_32(q, d, y.add(32 * i));
        }
    }
}
