//! NEON dot products for the priority formats (Q4_0, Q8_0, Q4_K, Q6_K against
//! their activation formats, F16 · F16), the [`Cpu::Neon`](crate::simd::Cpu)
//! level. They use only baseline Advanced SIMD: signed byte products are widened
//! with `smull` and pair-added (ggml-cpu/arch/arm/quants.c's fallback for CPUs
//! without the `dotprod` extension, whose intrinsics are not stable in Rust yet);
//! f16 is widened with `fcvtl`. Other formats, and the quantizers, keep the scalar
//! reference on aarch64.

use std::arch::aarch64::*;

use gguf::TensorType;

use crate::formats::float::f16_to_f32;
use crate::simd::{Override, dot_entry};

/// This level's replacements of the scalar table.
pub(in crate::simd) fn overrides() -> Vec<Override> {
    vec![
        Override::dot(TensorType::Q4_0, vec_dot_q4_0_q8_0),
        Override::dot(TensorType::Q8_0, vec_dot_q8_0_q8_0),
        Override::dot(TensorType::Q4_K, vec_dot_q4_k_q8_k),
        Override::dot(TensorType::Q6_K, vec_dot_q6_k_q8_k),
        Override::dot(TensorType::F16, vec_dot_f16),
    ]
}

dot_entry!(
    /// Q4_0 · Q8_0.
    vec_dot_q4_0_q8_0 => q4_0_q8_0, 32, 18, 34
);
dot_entry!(
    /// Q8_0 · Q8_0.
    vec_dot_q8_0_q8_0 => q8_0_q8_0, 32, 34, 34
);
dot_entry!(
    /// Q4_K · Q8_K.
    vec_dot_q4_k_q8_k => q4_k_q8_k, 256, 144, 292
);
dot_entry!(
    /// Q6_K · Q8_K.
    vec_dot_q6_k_q8_k => q6_k_q8_k, 256, 210, 292
);

dot_entry!(
    /// F16 · F16.
    vec_dot_f16 => f16_f16, 1, 2, 2
);

/// `acc` plus the products of 16 signed bytes, summed in groups of four.
#[target_feature(enable = "neon")]
#[inline]
fn dot_i8(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    let hi = vmull_s8(vget_high_s8(a), vget_high_s8(b));
    vaddq_s32(acc, vaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)))
}

/// The f16 stored little-endian at `p`, as f32.
///
/// # Safety
/// 2 bytes readable at `p`.
#[inline(always)]
unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: 2 readable bytes (caller); the read is unaligned.
    f16_to_f32(u16::from_le(unsafe { p.cast::<u16>().read_unaligned() }))
}

/// The f32 stored little-endian at `p`.
///
/// # Safety
/// 4 bytes readable at `p`.
#[inline(always)]
unsafe fn f32_at(p: *const u8) -> f32 {
    // SAFETY: 4 readable bytes (caller); the read is unaligned.
    f32::from_bits(u32::from_le(unsafe { p.cast::<u32>().read_unaligned() }))
}

/// # Safety
/// `nb` blocks readable at `x` (18 bytes each) and `y` (34 bytes each).
#[target_feature(enable = "neon")]
unsafe fn q4_0_q8_0(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut acc = vdupq_n_f32(0.0);
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller); Q4_0 is
        // d, qs[16]; Q8_0 is d, qs[32].
        unsafe {
            let (bx, by) = (x.add(18 * i), y.add(34 * i));
            let d = f16_at(bx) * f16_at(by);
            let q = vld1q_u8(bx.add(2));
            let eight = vdupq_n_s8(8);
            let lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0f))), eight);
            let hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8::<4>(q)), eight);
            let s = dot_i8(vdupq_n_s32(0), lo, vld1q_s8(by.add(2).cast()));
            let s = dot_i8(s, hi, vld1q_s8(by.add(18).cast()));
            acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), d);
        }
    }
    vaddvq_f32(acc)
}

/// # Safety
/// `nb` blocks of 34 bytes readable at `x` and `y`.
#[target_feature(enable = "neon")]
unsafe fn q8_0_q8_0(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut acc = vdupq_n_f32(0.0);
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller); Q8_0 is
        // d, qs[32].
        unsafe {
            let (bx, by) = (x.add(34 * i), y.add(34 * i));
            let d = f16_at(bx) * f16_at(by);
            let s = dot_i8(
                vdupq_n_s32(0),
                vld1q_s8(bx.add(2).cast()),
                vld1q_s8(by.add(2).cast()),
            );
            let s = dot_i8(s, vld1q_s8(bx.add(18).cast()), vld1q_s8(by.add(18).cast()));
            acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), d);
        }
    }
    vaddvq_f32(acc)
}

/// The eight 6-bit scales and eight mins of a Q4_K block (ggml-quants.c
/// `get_scale_min_k4`).
fn scales_mins_k4(q: &[u8; 12]) -> ([i32; 8], [i32; 8]) {
    let mut sc = [0i32; 8];
    let mut m = [0i32; 8];
    for j in 0..8 {
        if j < 4 {
            sc[j] = (q[j] & 63) as i32;
            m[j] = (q[j + 4] & 63) as i32;
        } else {
            sc[j] = ((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4)) as i32;
            m[j] = ((q[j + 4] >> 4) | ((q[j] >> 6) << 4)) as i32;
        }
    }
    (sc, m)
}

/// # Safety
/// `nb` blocks readable at `x` (144 bytes each) and `y` (292 bytes each).
#[target_feature(enable = "neon")]
unsafe fn q4_k_q8_k(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut sum = 0f32;
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller); Q4_K is
        // d, dmin, scales[12], qs[128]; Q8_K is d (f32), qs[256], bsums[16].
        unsafe {
            let (bx, by) = (x.add(144 * i), y.add(292 * i));
            let dy = f32_at(by);
            let d = dy * f16_at(bx);
            let dmin = dy * f16_at(bx.add(2));
            let (sc, m) = scales_mins_k4(&*bx.add(4).cast::<[u8; 12]>());
            let bsums = by.add(260);
            let mut summs = 0i32;
            for (j, &mj) in m.iter().enumerate() {
                let s0 = i16::from_le(bsums.add(4 * j).cast::<i16>().read_unaligned());
                let s1 = i16::from_le(bsums.add(4 * j + 2).cast::<i16>().read_unaligned());
                summs += mj * (s0 as i32 + s1 as i32);
            }
            let mut sumi = 0i32;
            for j in 0..4 {
                let (q, q8) = (bx.add(16 + 32 * j), by.add(4 + 64 * j));
                let mut lo = vdupq_n_s32(0);
                let mut hi = vdupq_n_s32(0);
                for h in 0..2 {
                    let bits = vld1q_u8(q.add(16 * h));
                    let l = vreinterpretq_s8_u8(vandq_u8(bits, vdupq_n_u8(0x0f)));
                    let u = vreinterpretq_s8_u8(vshrq_n_u8::<4>(bits));
                    lo = dot_i8(lo, l, vld1q_s8(q8.add(16 * h).cast()));
                    hi = dot_i8(hi, u, vld1q_s8(q8.add(32 + 16 * h).cast()));
                }
                sumi += vaddvq_s32(lo) * sc[2 * j] + vaddvq_s32(hi) * sc[2 * j + 1];
            }
            sum += d * sumi as f32 - dmin * summs as f32;
        }
    }
    sum
}

/// # Safety
/// `nb` blocks readable at `x` (210 bytes each) and `y` (292 bytes each).
#[target_feature(enable = "neon")]
unsafe fn q6_k_q8_k(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut sum = 0f32;
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller); Q6_K is
        // ql[128], qh[64], scales[16], d; Q8_K is d (f32), qs[256], bsums[16].
        unsafe {
            let (bx, by) = (x.add(210 * i), y.add(292 * i));
            let d = f32_at(by) * f16_at(bx.add(208));
            let m4 = vdupq_n_u8(0x0f);
            let m3 = vdupq_n_u8(3);
            let m32 = vdupq_n_s8(32);
            let mut sumi = 0i32;
            for h in 0..2 {
                let (ql, qh) = (bx.add(64 * h), bx.add(128 + 32 * h));
                for part in 0..2 {
                    // 16 bytes of each operand per step: values l = 16·part + 0..16
                    // of the four 32-value groups k of this half.
                    let l0 = vld1q_u8(ql.add(16 * part));
                    let l1 = vld1q_u8(ql.add(32 + 16 * part));
                    let hb = vld1q_u8(qh.add(16 * part));
                    let low = [
                        vandq_u8(l0, m4),
                        vandq_u8(l1, m4),
                        vshrq_n_u8::<4>(l0),
                        vshrq_n_u8::<4>(l1),
                    ];
                    let high = [
                        vandq_u8(hb, m3),
                        vandq_u8(vshrq_n_u8::<2>(hb), m3),
                        vandq_u8(vshrq_n_u8::<4>(hb), m3),
                        vshrq_n_u8::<6>(hb),
                    ];
                    for k in 0..4 {
                        let q = vorrq_u8(low[k], vshlq_n_u8::<4>(high[k]));
                        let q = vsubq_s8(vreinterpretq_s8_u8(q), m32);
                        let at = 128 * h + 32 * k + 16 * part;
                        let p = dot_i8(vdupq_n_s32(0), q, vld1q_s8(by.add(4 + at).cast()));
                        let scale = *bx.add(192 + at / 16) as i8 as i32;
                        sumi += vaddvq_s32(p) * scale;
                    }
                }
            }
            sum += d * sumi as f32;
        }
    }
    sum
}

/// # Safety
/// `n` f16 readable at `x` and `y`.
#[target_feature(enable = "neon")]
unsafe fn f16_f16(n: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: every load is below `n` elements (caller).
    unsafe {
        let load4 = |p: *const u8| vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p.cast())));
        let mut acc = [vdupq_n_f32(0.0); 4];
        let mut i = 0;
        while i + 16 <= n {
            for (k, a) in acc.iter_mut().enumerate() {
                let at = 2 * (i + 4 * k);
                *a = vfmaq_f32(*a, load4(x.add(at)), load4(y.add(at)));
            }
            i += 16;
        }
        let sum = vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]));
        // The tail in f64, like the scalar reference.
        let mut tail = 0f64;
        for j in i..n {
            let a = f16_to_f32(u16::from_le(x.add(2 * j).cast::<u16>().read_unaligned()));
            let b = f16_to_f32(u16::from_le(y.add(2 * j).cast::<u16>().read_unaligned()));
            tail += (a * b) as f64;
        }
        (vaddvq_f32(sum) as f64 + tail) as f32
    }
}
