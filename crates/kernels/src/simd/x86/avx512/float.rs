//! AVX-512 F32 and F16 dot products in the order of ggml's
//! `ggml_vec_dot_f32` / `ggml_vec_dot_f16` built for AVX-512, which llama.cpp
//! uses for a matmul of one activation row (ggml-cpu/vec.cpp with
//! simd-mappings.h): four accumulators of 16 lanes over 64 values per step,
//! reduced as `GGML_F32x16_REDUCE` (`(a0 + a2) + (a1 + a3)`, then
//! `_mm512_reduce_add_ps`), the values past the last multiple of 64 added one by one.
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

/// Four accumulators reduced as `GGML_F32x16_REDUCE`: pairwise, then
/// `_mm512_reduce_add_ps`, whose lane order in Rust is GCC's (checked by
/// `gemm::f16_tinyblas`'s test against the scalar tree).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
#[inline]
fn reduce4(acc: [__m512; 4]) -> f32 {
    _mm512_reduce_add_ps(_mm512_add_ps(
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
