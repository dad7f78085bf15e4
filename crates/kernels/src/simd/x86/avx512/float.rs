//! AVX-512 F32 and F16 dot products in the order of ggml's
//! `ggml_vec_dot_f32` / `ggml_vec_dot_f16` built for AVX-512, which llama.cpp
//! uses for a matmul of one activation row (ggml-cpu/vec.cpp with
//! simd-mappings.h): four accumulators of 16 lanes over 64 values per step,
//! reduced as `GGML_F32x16_REDUCE` (`(a0 + a2) + (a1 + a3)`, then
//! [`reduce_add`]), the values past the last multiple of 64 added one by one.
//! (BF16 with `vdpbf16ps` was measured slower than the AVX2 kernel on an
//! AVX-512 BF16 machine, so this level keeps that one.)

use std::arch::x86_64::*;

use crate::simd::dot_entry;

dot_entry!(
    /// F32 · F32 (AVX-512).
    vec_dot_f32 => f32_f32, 1, 4, 4
);
dot_entry!(
    /// F16 · F16 (AVX-512).
    vec_dot_f16 => f16_f16, 1, 2, 2
);

/// The sum of the sixteen lanes of `v` in the order of GCC's
/// `_mm512_reduce_add_ps`, which ggml's AVX-512 reductions and tinyBLAS'
/// `hsum` compile to: `h[i] = v[i] + v[i + 8]`, `q[i] = h[i] + h[i + 4]`,
/// then `(q0 + q2) + (q1 + q3)`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
#[inline]
pub(crate) fn reduce_add(v: __m512) -> f32 {
    let lo = _mm512_castps512_ps256(v);
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
    let h = _mm256_add_ps(lo, hi);
    let q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
    let r = _mm_add_ps(q, _mm_shuffle_ps::<0b01_00_11_10>(q, q));
    _mm_cvtss_f32(r) + _mm_cvtss_f32(_mm_movehdup_ps(r))
}

/// Four accumulators reduced as `GGML_F32x16_REDUCE`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
#[inline]
fn reduce4(acc: [__m512; 4]) -> f32 {
    reduce_add(_mm512_add_ps(
        _mm512_add_ps(acc[0], acc[2]),
        _mm512_add_ps(acc[1], acc[3]),
    ))
}
/// # Safety
/// AVX-512 F must be available; `n` f32 readable at `x` and `y`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn f32_f32(n: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: every load is below `n` elements (caller).
    unsafe {
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i + 64 <= n {
            for (k, a) in acc.iter_mut().enumerate() {
                let at = 4 * (i + 16 * k);
                let xv = _mm512_loadu_ps(x.add(at).cast());
                let yv = _mm512_loadu_ps(y.add(at).cast());
                *a = _mm512_fmadd_ps(xv, yv, *a);
            }
            i += 64;
        }
        // ggml adds the leftovers to a float sum (`sumf += x[i]*y[i]`, which
        // GCC contracts to a fused multiply-add).
        let mut sum = reduce4(acc);
        for j in i..n {
            let get = |p: *const u8| p.add(4 * j).cast::<f32>().read_unaligned();
            sum = get(x).mul_add(get(y), sum);
        }
        sum
    }
}

/// # Safety
/// AVX-512 F must be available; `n` f16 readable at `x` and `y`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn f16_f16(n: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: every load is below `n` elements (caller).
    unsafe {
        let load = |p: *const u8| _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i + 64 <= n {
            for (k, a) in acc.iter_mut().enumerate() {
                let at = 2 * (i + 16 * k);
                *a = _mm512_fmadd_ps(load(x.add(at)), load(y.add(at)), *a);
            }
            i += 64;
        }
        // ggml adds the leftovers in double (`ggml_float`), each product
        // rounded to f32 first (exact for two f16).
        let get = |p: *const u8, j: usize| {
            crate::formats::float::f16_to_f32(p.add(2 * j).cast::<u16>().read_unaligned())
        };
        let sum = (i..n).fold(reduce4(acc) as f64, |s, j| {
            s + (get(x, j) * get(y, j)) as f64
        });
        sum as f32
    }
}
