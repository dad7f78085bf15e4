//! AVX-512 F32 dot product: 64 f32 lanes of fused multiply-adds. (F16 with
//! 512-bit `vcvtph2ps` and BF16 with `vdpbf16ps` were measured slower than the
//! AVX2 kernels on an AVX-512 BF16 machine, so this level keeps those.)

use std::arch::x86_64::*;

use crate::simd::dot_entry;

dot_entry!(
    /// F32 · F32 (AVX-512).
    vec_dot_f32 => f32_f32, 1, 4, 4
);
/// The tail of a float dot product, element by element, accumulated in f64 like
/// the scalar reference.
///
/// # Safety
/// Elements `from..n` readable at `x` and `y`, `size` bytes each, decoded by `get`.
#[inline(always)]
unsafe fn tail(
    from: usize,
    n: usize,
    x: *const u8,
    y: *const u8,
    size: usize,
    get: impl Fn(*const u8) -> f32,
) -> f64 {
    (from..n)
        // SAFETY: i < n (caller).
        .map(|i| unsafe { (get(x.add(size * i)) * get(y.add(size * i))) as f64 })
        .sum()
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
        let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        let get = |p: *const u8| p.cast::<f32>().read_unaligned();
        (_mm512_reduce_add_ps(sum) as f64 + tail(i, n, x, y, 4, get)) as f32
    }
}
