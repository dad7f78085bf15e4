//! AVX2 dot products of the legacy 32-element formats against Q8_0 / Q8_1
//! (ggml-cpu/arch/x86/quants.c `ggml_vec_dot_q{4,5,8}_{0,1}_q8_{0,1}`, AVX2 paths):
//! one block per step, its 32 quants widened to bytes, an integer dot product in
//! eight i32 lanes, then one fused multiply-add by the block's combined scale.
//! Scales are converted eight blocks at a time, and two accumulators alternate so
//! that consecutive blocks do not wait on each other's multiply-add. Each body is
//! built twice: with `vpmaddubsw` + `vpmaddwd` (AVX2) and with 256-bit `vpdpbusd`
//! (AVX-512 VL + VNNI, what ggml's AVX2 path uses on such CPUs), see [`Dot256`].

use std::arch::x86_64::*;

use super::{Dot256, bits_to_bytes_32, builds, f16x8, hsum_ps, lane, load, nibbles_32};
use crate::simd::dot_entry;

dot_entry!(
    /// Q4_0 · Q8_0.
    vec_dot_q4_0_q8_0 => q4_0_q8_0, 32, 18, 34
);
dot_entry!(
    /// Q4_1 · Q8_1.
    vec_dot_q4_1_q8_1 => q4_1_q8_1, 32, 20, 36
);
dot_entry!(
    /// Q5_0 · Q8_0.
    vec_dot_q5_0_q8_0 => q5_0_q8_0, 32, 22, 34
);
dot_entry!(
    /// Q5_1 · Q8_1.
    vec_dot_q5_1_q8_1 => q5_1_q8_1, 32, 24, 36
);
dot_entry!(
    /// Q8_0 · Q8_0.
    vec_dot_q8_0_q8_0 => q8_0_q8_0, 32, 34, 34
);
dot_entry!(
    /// Q4_0 · Q8_0 (AVX-512 VNNI, 256-bit).
    vec_dot_q4_0_q8_0_vnni => q4_0_q8_0_vnni, 32, 18, 34
);
dot_entry!(
    /// Q4_1 · Q8_1 (AVX-512 VNNI, 256-bit).
    vec_dot_q4_1_q8_1_vnni => q4_1_q8_1_vnni, 32, 20, 36
);
dot_entry!(
    /// Q5_0 · Q8_0 (AVX-512 VNNI, 256-bit).
    vec_dot_q5_0_q8_0_vnni => q5_0_q8_0_vnni, 32, 22, 34
);
dot_entry!(
    /// Q5_1 · Q8_1 (AVX-512 VNNI, 256-bit).
    vec_dot_q5_1_q8_1_vnni => q5_1_q8_1_vnni, 32, 24, 36
);
dot_entry!(
    /// Q8_0 · Q8_0 (AVX-512 VNNI, 256-bit).
    vec_dot_q8_0_q8_0_vnni => q8_0_q8_0_vnni, 32, 34, 34
);
builds!(q4_0_body => q4_0_q8_0, q4_0_q8_0_vnni);
builds!(q4_1_body => q4_1_q8_1, q4_1_q8_1_vnni);
builds!(q5_0_body => q5_0_q8_0, q5_0_q8_0_vnni);
builds!(q5_1_body => q5_1_q8_1, q5_1_q8_1_vnni);
builds!(q8_0_body => q8_0_q8_0, q8_0_q8_0_vnni);

/// The loop shared by the legacy kernels: `Σ dx·dy·block(bx, by)` over `nb`
/// blocks (`xs`, `ys` bytes each, f16 scale first), where `block` returns the
/// block's integer dot product as eight f32 lanes; plus `Σ mx·sy` from the f16
/// pair at byte 2 of each block when `with_min` (Q4_1, Q5_1 against Q8_1).
///
/// In ggml's order (`ggml_vec_dot_q4_0_q8_0` and friends, AVX2 paths): one
/// accumulator of eight lanes, `acc = fma(dx·dy, lanes, acc)` block by block,
/// `hsum_float_8` at the end; the minimums' products summed in one float,
/// `summs = fma(mx, sy, summs)` (GCC contracts `summs += mx*sy`), added last.
///
/// # Safety
/// AVX2, FMA and F16C must be available; `nb` blocks readable at `x` and `y`;
/// `block` may read its two blocks' bytes.
#[inline(always)]
unsafe fn blocks(
    nb: usize,
    (x, xs): (*const u8, usize),
    (y, ys): (*const u8, usize),
    with_min: bool,
    block: impl Fn(*const u8, *const u8) -> __m256,
) -> f32 {
    // SAFETY: every block touched is < `nb` (caller); features from the caller.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        let mut summs = 0f32;
        let mut i = 0;
        while i < nb {
            let count = (nb - i).min(8);
            let (bx, by) = (x.add(xs * i), y.add(ys * i));
            let d = _mm256_mul_ps(f16x8(bx, xs, count), f16x8(by, ys, count));
            if with_min {
                let m: [f32; 8] = std::mem::transmute(f16x8(bx.add(2), xs, count));
                let s: [f32; 8] = std::mem::transmute(f16x8(by.add(2), ys, count));
                for k in 0..count {
                    summs = m[k].mul_add(s[k], summs);
                }
            }
            let mut step = |k: usize| {
                let sum = block(bx.add(xs * k), by.add(ys * k));
                acc = _mm256_fmadd_ps(lane(d, k), sum, acc);
            };
            // Full groups get a loop of constant length, unrolled without branches.
            if count == 8 {
                (0..8).for_each(&mut step);
            } else {
                (0..count).for_each(&mut step);
            }
            i += count;
        }
        hsum_ps(acc) + summs
    }
}

/// # Safety
/// AVX2, FMA, F16C and `D`'s features must be available; `nb` blocks must be readable at `x`
/// (18 bytes each) and `y` (34 bytes each).
#[inline(always)]
unsafe fn q4_0_body<D: Dot256>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: forwarded from the caller; Q4_0 is d, qs[16]; Q8_0 is d, qs[32].
    unsafe {
        blocks(nb, (x, 18), (y, 34), false, |bx, by| {
            _mm256_cvtepi32_ps(D::dot_q4_i8(nibbles_32(bx.add(2)), load(by.add(2))))
        })
    }
}

/// # Safety
/// AVX2, FMA, F16C and `D`'s features must be available; `nb` blocks must be readable at `x`
/// (20 bytes each) and `y` (36 bytes each).
#[inline(always)]
unsafe fn q4_1_body<D: Dot256>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: forwarded from the caller; Q4_1 is d, m, qs[16]; Q8_1 is d, s, qs[32].
    unsafe {
        blocks(nb, (x, 20), (y, 36), true, |bx, by| {
            _mm256_cvtepi32_ps(D::dot_u8_i8(nibbles_32(bx.add(4)), load(by.add(4))))
        })
    }
}

/// # Safety
/// AVX2, FMA, F16C and `D`'s features must be available; `nb` blocks must be readable at `x`
/// (22 bytes each) and `y` (34 bytes each).
#[inline(always)]
unsafe fn q5_0_body<D: Dot256>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: forwarded from the caller; Q5_0 is d, qh[4], qs[16].
    unsafe {
        blocks(nb, (x, 22), (y, 34), false, |bx, by| {
            let lo = nibbles_32(bx.add(6));
            let hi = bits_to_bytes_32(bx.add(2));
            // q − 16 as a signed byte: the nibble with 0xF0 on top where the fifth
            // bit is clear (nibble − 16), the bare nibble where it is set.
            let qx = _mm256_or_si256(lo, _mm256_andnot_si256(hi, _mm256_set1_epi8(0xf0u8 as i8)));
            _mm256_cvtepi32_ps(D::dot_i8(qx, load(by.add(2))))
        })
    }
}

/// # Safety
/// AVX2, FMA, F16C and `D`'s features must be available; `nb` blocks must be readable at `x`
/// (24 bytes each) and `y` (36 bytes each).
#[inline(always)]
unsafe fn q5_1_body<D: Dot256>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: forwarded from the caller; Q5_1 is d, m, qh[4], qs[16].
    unsafe {
        blocks(nb, (x, 24), (y, 36), true, |bx, by| {
            let lo = nibbles_32(bx.add(8));
            let hi = bits_to_bytes_32(bx.add(4));
            let qx = _mm256_or_si256(lo, _mm256_and_si256(hi, _mm256_set1_epi8(0x10)));
            _mm256_cvtepi32_ps(D::dot_u8_i8(qx, load(by.add(4))))
        })
    }
}

/// # Safety
/// AVX2, FMA, F16C and `D`'s features must be available; `nb` blocks of 34 bytes must be readable
/// at `x` and `y`.
#[inline(always)]
unsafe fn q8_0_body<D: Dot256>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: forwarded from the caller; Q8_0 is d, qs[32].
    unsafe {
        blocks(nb, (x, 34), (y, 34), false, |bx, by| {
            _mm256_cvtepi32_ps(D::dot_i8(load(bx.add(2)), load(by.add(2))))
        })
    }
}
