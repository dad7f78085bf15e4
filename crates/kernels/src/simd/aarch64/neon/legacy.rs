//! The 32-value formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, MXFP4) against Q8_0 / Q8_1:
//! per block, two 16-byte integer dot steps, then one scale (ggml-cpu/arch/arm/
//! quants.c, `ggml_vec_dot_q4_0_q8_0` …).

use std::arch::aarch64::*;

use super::{I8Dot, IQ4_LEVELS, f16_at, i8x16_at, int_dot, nibbles};
use crate::formats::mxfp4::{KVALUES_MXFP4, e8m0_to_f32_half};

int_dot!(
    /// Q4_0 · Q8_0.
    q4_0_q8_0 => q4_0, 32, 18, 34
);
int_dot!(
    /// Q4_1 · Q8_1.
    q4_1_q8_1 => q4_1, 32, 20, 36
);
int_dot!(
    /// Q5_0 · Q8_0.
    q5_0_q8_0 => q5_0, 32, 22, 34
);
int_dot!(
    /// Q5_1 · Q8_1.
    q5_1_q8_1 => q5_1, 32, 24, 36
);
int_dot!(
    /// Q8_0 · Q8_0.
    q8_0_q8_0 => q8_0, 32, 34, 34
);
int_dot!(
    /// IQ4_NL · Q8_0.
    iq4_nl_q8_0 => iq4_nl, 32, 18, 34
);
int_dot!(
    /// MXFP4 · Q8_0.
    mxfp4_q8_0 => mxfp4, 32, 17, 34
);

/// `acc + d · Σ lanes of (a·y[0..16] + b·y[16..32])` for one block whose
/// activation quants start at `qy`.
///
/// # Safety
/// 32 bytes readable at `qy`; as [`I8Dot::dot`].
#[inline(always)]
unsafe fn block_step<D: I8Dot>(
    acc: float32x4_t,
    a: int8x16_t,
    b: int8x16_t,
    qy: *const u8,
    d: f32,
) -> float32x4_t {
    // SAFETY: 32 readable bytes at `qy` (caller), `D`'s features (caller).
    unsafe {
        let s = D::dot(vdupq_n_s32(0), a, i8x16_at(qy));
        let s = D::dot(s, b, i8x16_at(qy.add(16)));
        vfmaq_n_f32(acc, vcvtq_f32_s32(s), d)
    }
}

/// The fifth bits of a Q5 block's 32 values, as `0x10` (set) or 0 bytes: values
/// 0..16 (bits 0–15 of `qh`) and 16..32 (bits 16–31).
#[target_feature(enable = "neon")]
#[inline]
fn q5_high_bits(qh: u32) -> (uint8x16_t, uint8x16_t) {
    const BYTE_LO: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1];
    const BYTE_HI: [u8; 16] = [2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3];
    const BIT: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    // SAFETY: the three constants are 16 bytes each.
    let (byte_lo, byte_hi, bit) = unsafe {
        (
            vld1q_u8(BYTE_LO.as_ptr()),
            vld1q_u8(BYTE_HI.as_ptr()),
            vld1q_u8(BIT.as_ptr()),
        )
    };
    let bytes = vreinterpretq_u8_u32(vdupq_n_u32(qh));
    let sixteen = vdupq_n_u8(0x10);
    let lo = vandq_u8(vtstq_u8(vqtbl1q_u8(bytes, byte_lo), bit), sixteen);
    let hi = vandq_u8(vtstq_u8(vqtbl1q_u8(bytes, byte_hi), bit), sixteen);
    (lo, hi)
}

/// The little-endian u32 at `p`.
///
/// # Safety
/// 4 bytes readable at `p`.
#[inline(always)]
unsafe fn u32_at(p: *const u8) -> u32 {
    // SAFETY: 4 readable bytes (caller); the read is unaligned.
    u32::from_le(unsafe { p.cast::<u32>().read_unaligned() })
}

/// # Safety
/// `nb` blocks readable at `x` (18 bytes each) and `y` (34 bytes each); as
/// [`I8Dot::dot`].
#[inline(always)]
unsafe fn q4_0<D: I8Dot>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: every block read is below `nb` (caller); Q4_0 is
    // d, qs[16]; Q8_0 is d, qs[32]; the CPU has
    // `D`'s features (caller).
    unsafe {
        let mut acc = vdupq_n_f32(0.0);
        let eight = vdupq_n_s8(8);
        for i in 0..nb {
            let (bx, by) = (x.add(18 * i), y.add(34 * i));
            let (lo, hi) = nibbles(bx.add(2));
            let lo = vsubq_s8(vreinterpretq_s8_u8(lo), eight);
            let hi = vsubq_s8(vreinterpretq_s8_u8(hi), eight);
            acc = block_step::<D>(acc, lo, hi, by.add(2), f16_at(bx) * f16_at(by));
        }
        vaddvq_f32(acc)
    }
}

/// # Safety
/// `nb` blocks readable at `x` (20 bytes each) and `y` (36 bytes each); as
/// [`I8Dot::dot`].
#[inline(always)]
unsafe fn q4_1<D: I8Dot>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: every block read is below `nb` (caller); Q4_1 is
    // d, m, qs[16]; Q8_1 is d, s, qs[32]; the CPU has
    // `D`'s features (caller).
    unsafe {
        let mut acc = vdupq_n_f32(0.0);
        let mut mins = 0f32;
        for i in 0..nb {
            let (bx, by) = (x.add(20 * i), y.add(36 * i));
            let (lo, hi) = nibbles(bx.add(4));
            let (lo, hi) = (vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi));
            acc = block_step::<D>(acc, lo, hi, by.add(4), f16_at(bx) * f16_at(by));
            mins += f16_at(bx.add(2)) * f16_at(by.add(2));
        }
        vaddvq_f32(acc) + mins
    }
}

/// # Safety
/// `nb` blocks readable at `x` (22 bytes each) and `y` (34 bytes each); as
/// [`I8Dot::dot`].
#[inline(always)]
unsafe fn q5_0<D: I8Dot>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: every block read is below `nb` (caller); Q5_0 is
    // d, qh[4], qs[16]; Q8_0 is d, qs[32]; the CPU has
    // `D`'s features (caller).
    unsafe {
        let mut acc = vdupq_n_f32(0.0);
        let sixteen = vdupq_n_s8(16);
        for i in 0..nb {
            let (bx, by) = (x.add(22 * i), y.add(34 * i));
            let (h_lo, h_hi) = q5_high_bits(u32_at(bx.add(2)));
            let (lo, hi) = nibbles(bx.add(6));
            let lo = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo, h_lo)), sixteen);
            let hi = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(hi, h_hi)), sixteen);
            acc = block_step::<D>(acc, lo, hi, by.add(2), f16_at(bx) * f16_at(by));
        }
        vaddvq_f32(acc)
    }
}

/// # Safety
/// `nb` blocks readable at `x` (24 bytes each) and `y` (36 bytes each); as
/// [`I8Dot::dot`].
#[inline(always)]
unsafe fn q5_1<D: I8Dot>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: every block read is below `nb` (caller); Q5_1 is
    // d, m, qh[4], qs[16]; Q8_1 is d, s, qs[32]; the CPU has
    // `D`'s features (caller).
    unsafe {
        let mut acc = vdupq_n_f32(0.0);
        let mut mins = 0f32;
        for i in 0..nb {
            let (bx, by) = (x.add(24 * i), y.add(36 * i));
            let (h_lo, h_hi) = q5_high_bits(u32_at(bx.add(4)));
            let (lo, hi) = nibbles(bx.add(8));
            let lo = vreinterpretq_s8_u8(vorrq_u8(lo, h_lo));
            let hi = vreinterpretq_s8_u8(vorrq_u8(hi, h_hi));
            acc = block_step::<D>(acc, lo, hi, by.add(4), f16_at(bx) * f16_at(by));
            mins += f16_at(bx.add(2)) * f16_at(by.add(2));
        }
        vaddvq_f32(acc) + mins
    }
}

/// # Safety
/// `nb` blocks of 34 bytes readable at `x` and `y`; as [`I8Dot::dot`].
#[inline(always)]
unsafe fn q8_0<D: I8Dot>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: every block read is below `nb` (caller); Q8_0 is
    // d, qs[32]; the CPU has
    // `D`'s features (caller).
    unsafe {
        let mut acc = vdupq_n_f32(0.0);
        for i in 0..nb {
            let (bx, by) = (x.add(34 * i), y.add(34 * i));
            let (lo, hi) = (i8x16_at(bx.add(2)), i8x16_at(bx.add(18)));
            acc = block_step::<D>(acc, lo, hi, by.add(2), f16_at(bx) * f16_at(by));
        }
        vaddvq_f32(acc)
    }
}

/// # Safety
/// `nb` blocks readable at `x` (18 bytes each) and `y` (34 bytes each); as
/// [`I8Dot::dot`].
#[inline(always)]
unsafe fn iq4_nl<D: I8Dot>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: every block read is below `nb` (caller); IQ4_NL is
    // d, qs[16]; Q8_0 is d, qs[32]; the level table is 16 bytes; the CPU has
    // `D`'s features (caller).
    unsafe {
        let mut acc = vdupq_n_f32(0.0);
        let levels = vld1q_s8(IQ4_LEVELS.as_ptr());
        for i in 0..nb {
            let (bx, by) = (x.add(18 * i), y.add(34 * i));
            let (lo, hi) = nibbles(bx.add(2));
            let (lo, hi) = (vqtbl1q_s8(levels, lo), vqtbl1q_s8(levels, hi));
            acc = block_step::<D>(acc, lo, hi, by.add(2), f16_at(bx) * f16_at(by));
        }
        vaddvq_f32(acc)
    }
}

/// IQ4_NL's kernel with the E2M1 table and the E8M0 scale `2^(e − 128)`.
///
/// # Safety
/// `nb` blocks readable at `x` (17 bytes each) and `y` (34 bytes each); as
/// [`I8Dot::dot`].
#[inline(always)]
unsafe fn mxfp4<D: I8Dot>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // SAFETY: every block read is below `nb` (caller); MXFP4 is e, qs[16]; Q8_0
    // is d, qs[32]; the value table is 16 bytes; the CPU has `D`'s features
    // (caller).
    unsafe {
        let mut acc = vdupq_n_f32(0.0);
        let values = vld1q_s8(KVALUES_MXFP4.as_ptr());
        for i in 0..nb {
            let (bx, by) = (x.add(17 * i), y.add(34 * i));
            let (lo, hi) = nibbles(bx.add(1));
            let (lo, hi) = (vqtbl1q_s8(values, lo), vqtbl1q_s8(values, hi));
            let d = f16_at(by) * e8m0_to_f32_half(*bx);
            acc = block_step::<D>(acc, lo, hi, by.add(2), d);
        }
        vaddvq_f32(acc)
    }
}
