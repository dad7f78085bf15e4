//! F32, F16 and BF16 dot products: sixteen products per step into four f32x4
//! accumulators (f16 widened with `fcvtl`, bf16 by a 16-bit shift), the tail in
//! f64 like the scalar reference. The same kernels serve both NEON levels.

use std::arch::aarch64::*;

use crate::formats::float::{bf16_to_f32, f16_to_f32};
use crate::simd::dot_entry;

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

/// Σ x·y over `n` values of `size` bytes at `x` and `y`: `load4` widens four
/// values at a pointer to f32, `one` converts a single value for the tail.
///
/// # Safety
/// `n` values readable at `x` and `y`; `load4` reads 4 values at its pointer.
#[inline(always)]
unsafe fn dot_by_four(
    n: usize,
    size: usize,
    x: *const u8,
    y: *const u8,
    load4: impl Fn(*const u8) -> float32x4_t,
    one: impl Fn(*const u8) -> f32,
) -> f32 {
    // SAFETY: every access is below `n` values (caller).
    unsafe {
        let mut acc = [vdupq_n_f32(0.0); 4];
        let mut i = 0;
        while i + 16 <= n {
            for (k, a) in acc.iter_mut().enumerate() {
                let at = size * (i + 4 * k);
                *a = vfmaq_f32(*a, load4(x.add(at)), load4(y.add(at)));
            }
            i += 16;
        }
        let sum = vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]));
        // The tail in f64, like the scalar reference.
        let mut tail = 0f64;
        for j in i..n {
            tail += (one(x.add(size * j)) * one(y.add(size * j))) as f64;
        }
        (vaddvq_f32(sum) as f64 + tail) as f32
    }
}

/// The little-endian u16 at `p`.
///
/// # Safety
/// 2 bytes readable at `p`.
#[inline(always)]
unsafe fn u16_at(p: *const u8) -> u16 {
    // SAFETY: 2 readable bytes (caller); the read is unaligned.
    u16::from_le(unsafe { p.cast::<u16>().read_unaligned() })
}

/// # Safety
/// `n` f32 readable at `x` and `y`.
#[target_feature(enable = "neon")]
unsafe fn f32_f32(n: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: `dot_by_four` reads below `n` values (caller); each closure reads
    // the 16 or 4 bytes it is given a pointer to.
    unsafe {
        dot_by_four(
            n,
            4,
            x,
            y,
            |p| vld1q_f32(p.cast()),
            |p| f32::from_bits(u32::from_le(p.cast::<u32>().read_unaligned())),
        )
    }
}

/// # Safety
/// `n` f16 readable at `x` and `y`.
#[target_feature(enable = "neon")]
unsafe fn f16_f16(n: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: as in `f32_f32`, 8 or 2 bytes per closure call.
    unsafe {
        dot_by_four(
            n,
            2,
            x,
            y,
            |p| vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p.cast()))),
            |p| f16_to_f32(u16_at(p)),
        )
    }
}

/// # Safety
/// `n` bf16 readable at `x` and `y`.
#[target_feature(enable = "neon")]
unsafe fn bf16_bf16(n: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: as in `f32_f32`, 8 or 2 bytes per closure call.
    unsafe {
        dot_by_four(
            n,
            2,
            x,
            y,
            |p| vreinterpretq_f32_u32(vshll_n_u16::<16>(vld1_u16(p.cast()))),
            |p| bf16_to_f32(u16_at(p)),
        )
    }
}
