//! The 256-value super-block formats (Q2_K … Q6_K, IQ4_XS) against Q8_K: per
//! group of 16 or 32 values an integer dot step, scaled by the group's integer
//! scale into one i32 accumulator per super-block (exact), then one float scale
//! (ggml-cpu/arch/arm/quants.c, `ggml_vec_dot_q4_K_q8_K` …). The mins of the
//! affine formats come from Q8_K's `bsums`, as in ggml.
//!
//! Q8_K is d (f32), qs[256], bsums[16] (i16, sums of 16 quants): 292 bytes.

use std::arch::aarch64::*;

use super::{I8Dot, IQ4_LEVELS, f16_at, f32_at, i8x16_at, int_dot, nibbles};

int_dot!(
    /// Q2_K · Q8_K.
    q2_k_q8_k => q2_k, 256, 84, 292
);
int_dot!(
    /// Q3_K · Q8_K.
    q3_k_q8_k => q3_k, 256, 110, 292
);
int_dot!(
    /// Q4_K · Q8_K.
    q4_k_q8_k => q4_k, 256, 144, 292
);
int_dot!(
    /// Q5_K · Q8_K.
    q5_k_q8_k => q5_k, 256, 176, 292
);
int_dot!(
    /// Q6_K · Q8_K.
    q6_k_q8_k => q6_k, 256, 210, 292
);
int_dot!(
    /// IQ4_XS · Q8_K.
    iq4_xs_q8_k => iq4_xs, 256, 136, 292
);

/// The 16 values `v >> shift` for `shift` = 0, 2, 4 or 6, masked to two bits.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn crumbs(v: uint8x16_t, shift: i8) -> uint8x16_t {
    vandq_u8(vshlq_u8(v, vdupq_n_s8(-shift)), vdupq_n_u8(3))
}

/// `Σ mins[g] · (bsums[2g] + bsums[2g + 1])` over the eight 32-value groups of a
/// Q8_K block at `by` (Q4_K, Q5_K).
///
/// # Safety
/// A Q8_K block readable at `by`.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) unsafe fn mins_dot_32(mins: &[i32; 8], by: *const u8) -> i32 {
    // SAFETY: bsums[16] at byte 260 of the Q8_K block (caller).
    let (sums, sums2) = unsafe { (vld1q_s16(by.add(260).cast()), vld1q_s16(by.add(276).cast())) };
    // Pairwise: the eight sums of 32 quants.
    let pairs = vpaddq_s16(sums, sums2);
    // SAFETY: eight i32 readable in `mins`.
    let (m0, m1) = unsafe { (vld1q_s32(mins.as_ptr()), vld1q_s32(mins.as_ptr().add(4))) };
    let p = vmulq_s32(vmovl_s16(vget_low_s16(pairs)), m0);
    vaddvq_s32(vmlaq_s32(p, vmovl_high_s16(pairs), m1))
}

/// The eight 6-bit scales and eight mins of a Q4_K / Q5_K block (ggml-quants.c
/// `get_scale_min_k4`).
pub(crate) fn scales_mins_k4(q: &[u8; 12]) -> ([i32; 8], [i32; 8]) {
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

/// The sixteen signed 6-bit scales of a Q3_K block: scale `j` keeps its low
/// nibble in byte `j % 8` (low half for j < 8), its top 2 bits in byte
/// `8 + j % 4` at bit `2·(j / 4)`; biased by 32.
fn scales_q3_k(s: &[u8; 12]) -> [i32; 16] {
    std::array::from_fn(|j| {
        let low = if j < 8 { s[j] & 0xF } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        (low | (high << 4)) as i32 - 32
    })
}

/// # Safety
/// `nb` blocks readable at `x` (84 bytes each) and `y` (292 bytes each); as
/// [`I8Dot::dot`].
#[inline(always)]
unsafe fn q2_k<D: I8Dot>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut sum = 0f32;
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller); Q2_K is
        // scales[16], qs[64], d, dmin; Q8_K as above.
        unsafe {
            let (bx, by) = (x.add(84 * i), y.add(292 * i));
            let dy = f32_at(by);
            let scales = vld1q_u8(bx);
            // Mins (high nibbles) against the sixteen bsums.
            let mins = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(vshrq_n_u8::<4>(scales))));
            let mins_hi = vreinterpretq_s16_u16(vmovl_high_u8(vshrq_n_u8::<4>(scales)));
            let sums = vld1q_s16(by.add(260).cast());
            let sums_hi = vld1q_s16(by.add(276).cast());
            let m = vmull_s16(vget_low_s16(mins), vget_low_s16(sums));
            let m = vmlal_high_s16(m, mins, sums);
            let m = vmlal_s16(m, vget_low_s16(mins_hi), vget_low_s16(sums_hi));
            let summs = vaddvq_s32(vmlal_high_s16(m, mins_hi, sums_hi));
            let sc = &*bx.cast::<[u8; 16]>();
            let mut acc = vdupq_n_s32(0);
            for h in 0..2 {
                let q2 = [vld1q_u8(bx.add(16 + 32 * h)), vld1q_u8(bx.add(32 + 32 * h))];
                for k in 0..4 {
                    // Values 128h + 32k + 0..32: sub-blocks 8h + 2k and 8h + 2k + 1.
                    let q8 = by.add(4 + 128 * h + 32 * k);
                    for (half, &bits) in q2.iter().enumerate() {
                        let q = vreinterpretq_s8_u8(crumbs(bits, 2 * k as i8));
                        let p = D::dot(vdupq_n_s32(0), q, i8x16_at(q8.add(16 * half)));
                        let scale = (sc[8 * h + 2 * k + half] & 0xF) as i32;
                        acc = vmlaq_n_s32(acc, p, scale);
                    }
                }
            }
            let d = dy * f16_at(bx.add(80));
            let dmin = dy * f16_at(bx.add(82));
            sum += d * vaddvq_s32(acc) as f32 - dmin * summs as f32;
        }
    }
    sum
}

/// # Safety
/// `nb` blocks readable at `x` (110 bytes each) and `y` (292 bytes each); as
/// [`I8Dot::dot`].
#[inline(always)]
unsafe fn q3_k<D: I8Dot>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut sum = 0f32;
    // SAFETY: NEON is baseline on aarch64.
    let (four_u, four) = unsafe { (vdupq_n_u8(4), vdupq_n_s8(4)) };
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller); Q3_K is
        // hmask[32], qs[64], scales[12], d; Q8_K as above.
        unsafe {
            let (bx, by) = (x.add(110 * i), y.add(292 * i));
            let scales = scales_q3_k(&*bx.add(96).cast::<[u8; 12]>());
            let hmask = [vld1q_u8(bx), vld1q_u8(bx.add(16))];
            let mut acc = vdupq_n_s32(0);
            for h in 0..2 {
                let q3 = [vld1q_u8(bx.add(32 + 32 * h)), vld1q_u8(bx.add(48 + 32 * h))];
                for k in 0..4 {
                    // Values 32g + 0..32 of group g = 4h + k: low bits at shift 2k of
                    // qs[32h..], the high bit in bit g of hmask; q = low + 4·high − 4.
                    let g = 4 * h + k;
                    let bit = vdupq_n_u8(1 << g);
                    let q8 = by.add(4 + 32 * g);
                    for half in 0..2 {
                        let high = vandq_u8(vtstq_u8(hmask[half], bit), four_u);
                        let q = vorrq_u8(crumbs(q3[half], 2 * k as i8), high);
                        let q = vsubq_s8(vreinterpretq_s8_u8(q), four);
                        let p = D::dot(vdupq_n_s32(0), q, i8x16_at(q8.add(16 * half)));
                        acc = vmlaq_n_s32(acc, p, scales[2 * g + half]);
                    }
                }
            }
            let d = f32_at(by) * f16_at(bx.add(108));
            sum += d * vaddvq_s32(acc) as f32;
        }
    }
    sum
}

/// # Safety
/// `nb` blocks readable at `x` (144 bytes each) and `y` (292 bytes each); as
/// [`I8Dot::dot`].
#[inline(always)]
unsafe fn q4_k<D: I8Dot>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut sum = 0f32;
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller); Q4_K is
        // d, dmin, scales[12], qs[128]; Q8_K as above.
        unsafe {
            let (bx, by) = (x.add(144 * i), y.add(292 * i));
            let dy = f32_at(by);
            let (sc, m) = scales_mins_k4(&*bx.add(4).cast::<[u8; 12]>());
            let summs = mins_dot_32(&m, by);
            let mut acc = vdupq_n_s32(0);
            for j in 0..4 {
                // Byte l of chunk j: value 64j + l (low nibble), 64j + 32 + l (high).
                let (q, q8) = (bx.add(16 + 32 * j), by.add(4 + 64 * j));
                let mut lo = vdupq_n_s32(0);
                let mut hi = vdupq_n_s32(0);
                for h in 0..2 {
                    let (l, u) = nibbles(q.add(16 * h));
                    lo = D::dot(lo, vreinterpretq_s8_u8(l), i8x16_at(q8.add(16 * h)));
                    hi = D::dot(hi, vreinterpretq_s8_u8(u), i8x16_at(q8.add(32 + 16 * h)));
                }
                acc = vmlaq_n_s32(acc, lo, sc[2 * j]);
                acc = vmlaq_n_s32(acc, hi, sc[2 * j + 1]);
            }
            let d = dy * f16_at(bx);
            let dmin = dy * f16_at(bx.add(2));
            sum += d * vaddvq_s32(acc) as f32 - dmin * summs as f32;
        }
    }
    sum
}

/// # Safety
/// `nb` blocks readable at `x` (176 bytes each) and `y` (292 bytes each); as
/// [`I8Dot::dot`].
#[inline(always)]
unsafe fn q5_k<D: I8Dot>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut sum = 0f32;
    // SAFETY: NEON is baseline on aarch64.
    let sixteen = unsafe { vdupq_n_u8(16) };
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller); Q5_K is
        // d, dmin, scales[12], qh[32], qs[128]; Q8_K as above.
        unsafe {
            let (bx, by) = (x.add(176 * i), y.add(292 * i));
            let dy = f32_at(by);
            let (sc, m) = scales_mins_k4(&*bx.add(4).cast::<[u8; 12]>());
            let summs = mins_dot_32(&m, by);
            let qh = [vld1q_u8(bx.add(16)), vld1q_u8(bx.add(32))];
            let mut acc = vdupq_n_s32(0);
            for j in 0..4 {
                // As Q4_K; the fifth bit of value 32b + l is bit b of qh[l].
                let (q, q8) = (bx.add(48 + 32 * j), by.add(4 + 64 * j));
                let (bit_lo, bit_hi) = (vdupq_n_u8(1 << (2 * j)), vdupq_n_u8(2 << (2 * j)));
                let mut lo = vdupq_n_s32(0);
                let mut hi = vdupq_n_s32(0);
                for (h, &qh) in qh.iter().enumerate() {
                    let (l, u) = nibbles(q.add(16 * h));
                    let l = vorrq_u8(l, vandq_u8(vtstq_u8(qh, bit_lo), sixteen));
                    let u = vorrq_u8(u, vandq_u8(vtstq_u8(qh, bit_hi), sixteen));
                    lo = D::dot(lo, vreinterpretq_s8_u8(l), i8x16_at(q8.add(16 * h)));
                    hi = D::dot(hi, vreinterpretq_s8_u8(u), i8x16_at(q8.add(32 + 16 * h)));
                }
                acc = vmlaq_n_s32(acc, lo, sc[2 * j]);
                acc = vmlaq_n_s32(acc, hi, sc[2 * j + 1]);
            }
            let d = dy * f16_at(bx);
            let dmin = dy * f16_at(bx.add(2));
            sum += d * vaddvq_s32(acc) as f32 - dmin * summs as f32;
        }
    }
    sum
}

/// # Safety
/// `nb` blocks readable at `x` (210 bytes each) and `y` (292 bytes each); as
/// [`I8Dot::dot`].
#[inline(always)]
unsafe fn q6_k<D: I8Dot>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut sum = 0f32;
    // SAFETY: NEON is baseline on aarch64.
    let (m4, m32) = unsafe { (vdupq_n_u8(0x0f), vdupq_n_s8(32)) };
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller); Q6_K is
        // ql[128], qh[64], scales[16] (i8), d; Q8_K as above.
        unsafe {
            let (bx, by) = (x.add(210 * i), y.add(292 * i));
            let scales = &*bx.add(192).cast::<[i8; 16]>();
            let mut acc = vdupq_n_s32(0);
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
                    for (k, &low) in low.iter().enumerate() {
                        let high = crumbs(hb, 2 * k as i8);
                        let q = vorrq_u8(low, vshlq_n_u8::<4>(high));
                        let q = vsubq_s8(vreinterpretq_s8_u8(q), m32);
                        let at = 128 * h + 32 * k + 16 * part;
                        let p = D::dot(vdupq_n_s32(0), q, i8x16_at(by.add(4 + at)));
                        acc = vmlaq_n_s32(acc, p, scales[at / 16] as i32);
                    }
                }
            }
            let d = f32_at(by) * f16_at(bx.add(208));
            sum += d * vaddvq_s32(acc) as f32;
        }
    }
    sum
}

/// # Safety
/// `nb` blocks readable at `x` (136 bytes each) and `y` (292 bytes each); as
/// [`I8Dot::dot`].
#[inline(always)]
unsafe fn iq4_xs<D: I8Dot>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    let mut sum = 0f32;
    // SAFETY: the table is 16 bytes.
    let levels = unsafe { vld1q_s8(IQ4_LEVELS.as_ptr()) };
    for i in 0..nb {
        // SAFETY: block `i` < `nb` of each operand is readable (caller); IQ4_XS is
        // d, scales_h (u16), scales_l[4], qs[128]; Q8_K as above.
        unsafe {
            let (bx, by) = (x.add(136 * i), y.add(292 * i));
            let scales_h = u16::from_le(bx.add(2).cast::<u16>().read_unaligned());
            let scales_l = &*bx.add(4).cast::<[u8; 4]>();
            let mut acc = vdupq_n_s32(0);
            for g in 0..8 {
                // Group g: byte j of qs[16g..] holds values 32g + j (low nibble)
                // and 32g + 16 + j (high nibble).
                let (lo, hi) = nibbles(bx.add(8 + 16 * g));
                let (lo, hi) = (vqtbl1q_s8(levels, lo), vqtbl1q_s8(levels, hi));
                let q8 = by.add(4 + 32 * g);
                let p = D::dot(vdupq_n_s32(0), lo, i8x16_at(q8));
                let p = D::dot(p, hi, i8x16_at(q8.add(16)));
                let low = (scales_l[g / 2] >> (4 * (g % 2))) & 0xf;
                let high = (scales_h >> (2 * g)) & 3;
                let scale = (low as i32 | ((high as i32) << 4)) - 32;
                acc = vmlaq_n_s32(acc, p, scale);
            }
            let d = f32_at(by) * f16_at(bx);
            sum += d * vaddvq_s32(acc) as f32;
        }
    }
    sum
}
