//! NEON tile kernels (Q8_0, Q4_0, Q4_K, Q6_K): [`NR`] weight rows × 1 to [`NC`]
//! activation rows per call, each weight block decoded once for all the
//! activation rows and each activation block loaded once for all the weight
//! rows. Built twice like the NEON dot products: plain NEON (`smull`) and with
//! `sdot` for the [`Cpu::NeonDotprod`](crate::Cpu) level.
//!
//! Every (weight row, activation row) pair runs exactly the operations of the
//! level's `vec_dot` (simd/aarch64/neon), in the same order, so a tile gives the
//! `vec_dot` results bit for bit: batching never changes a logit on aarch64.

use std::arch::aarch64::*;

use super::{NC, NR, Tile};
use crate::simd::aarch64::neon::kquants::{crumbs, mins_dot_32, scales_mins_k4};
use crate::simd::aarch64::neon::{I8Dot, f16_at, f32_at, i8x16_at, nibbles};

/// A 32-value weight format against Q8_0: its block size and its 32 quants as
/// two vectors of signed bytes (values 0..16 and 16..32); the f16 scale is the
/// block's first two bytes.
trait Q0 {
    const BYTES: usize;

    /// # Safety
    /// A whole block readable at `p`.
    unsafe fn quants(p: *const u8) -> (int8x16_t, int8x16_t);
}

struct Q8_0;

impl Q0 for Q8_0 {
    const BYTES: usize = 34;

    #[inline(always)]
    unsafe fn quants(p: *const u8) -> (int8x16_t, int8x16_t) {
        // SAFETY: a whole block (d, qs[32]) readable at `p` (caller).
        unsafe { (i8x16_at(p.add(2)), i8x16_at(p.add(18))) }
    }
}

struct Q4_0;

impl Q0 for Q4_0 {
    const BYTES: usize = 18;

    #[inline(always)]
    unsafe fn quants(p: *const u8) -> (int8x16_t, int8x16_t) {
        // SAFETY: a whole block (d, qs[16]) readable at `p` (caller).
        unsafe {
            let (lo, hi) = nibbles(p.add(2));
            let eight = vdupq_n_s8(8);
            (
                vsubq_s8(vreinterpretq_s8_u8(lo), eight),
                vsubq_s8(vreinterpretq_s8_u8(hi), eight),
            )
        }
    }
}

/// Q8_0 / Q4_0 tile.
///
/// # Safety
/// `nb` blocks of format `F` readable at each of `w`, `nb` Q8_0 blocks at each
/// of `a`; as [`I8Dot::dot`].
#[inline(always)]
unsafe fn q0_tile<D: I8Dot, F: Q0, const C: usize>(
    nb: usize,
    w: [*const u8; NR],
    a: [*const u8; C],
    out: &mut Tile,
) {
    // SAFETY: every block read is below `nb` (caller); the CPU has `D`'s
    // features (caller).
    unsafe {
        let mut acc = [[vdupq_n_f32(0.0); NR]; C];
        for i in 0..nb {
            let bx = w.map(|r| r.add(F::BYTES * i));
            let q = bx.map(|b| F::quants(b));
            let dx = bx.map(|b| f16_at(b));
            for (acc, &y) in acc.iter_mut().zip(&a) {
                let by = y.add(34 * i);
                let (y0, y1) = (i8x16_at(by.add(2)), i8x16_at(by.add(18)));
                let dy = f16_at(by);
                for r in 0..NR {
                    let s = D::dot(vdupq_n_s32(0), q[r].0, y0);
                    let s = D::dot(s, q[r].1, y1);
                    acc[r] = vfmaq_n_f32(acc[r], vcvtq_f32_s32(s), dx[r] * dy);
                }
            }
        }
        for (out, acc) in out.iter_mut().zip(&acc) {
            for (o, &v) in out.iter_mut().zip(acc) {
                *o = vaddvq_f32(v);
            }
        }
    }
}

/// Q4_K tile.
///
/// # Safety
/// `nb` Q4_K blocks readable at each of `w`, `nb` Q8_K blocks at each of `a`; as
/// [`I8Dot::dot`].
#[inline(always)]
unsafe fn q4_k_tile<D: I8Dot, const C: usize>(
    nb: usize,
    w: [*const u8; NR],
    a: [*const u8; C],
    out: &mut Tile,
) {
    // SAFETY: every block read is below `nb` (caller); Q4_K is d, dmin,
    // scales[12], qs[128]; Q8_K is d, qs[256], bsums[16]; the CPU has `D`'s
    // features (caller).
    unsafe {
        let mut sum = [[0f32; NR]; C];
        for i in 0..nb {
            let bx = w.map(|r| r.add(144 * i));
            let by = a.map(|y| y.add(292 * i));
            let scales = bx.map(|b| scales_mins_k4(&*b.add(4).cast::<[u8; 12]>()));
            let mut acc = [[vdupq_n_s32(0); NR]; C];
            for j in 0..4 {
                // Byte l of chunk j: value 64j + l (low nibble), 64j + 32 + l (high).
                let q = bx.map(|b| {
                    let p = b.add(16 + 32 * j);
                    let (l0, u0) = nibbles(p);
                    let (l1, u1) = nibbles(p.add(16));
                    [l0, l1, u0, u1].map(|v| vreinterpretq_s8_u8(v))
                });
                for (acc, &y) in acc.iter_mut().zip(&by) {
                    let q8 = y.add(4 + 64 * j);
                    let y8 = [0, 16, 32, 48].map(|o| i8x16_at(q8.add(o)));
                    for r in 0..NR {
                        let lo = D::dot(vdupq_n_s32(0), q[r][0], y8[0]);
                        let lo = D::dot(lo, q[r][1], y8[1]);
                        let hi = D::dot(vdupq_n_s32(0), q[r][2], y8[2]);
                        let hi = D::dot(hi, q[r][3], y8[3]);
                        acc[r] = vmlaq_n_s32(acc[r], lo, scales[r].0[2 * j]);
                        acc[r] = vmlaq_n_s32(acc[r], hi, scales[r].0[2 * j + 1]);
                    }
                }
            }
            for ((sum, acc), &y) in sum.iter_mut().zip(&acc).zip(&by) {
                let dy = f32_at(y);
                for r in 0..NR {
                    let summs = mins_dot_32(&scales[r].1, y);
                    let d = dy * f16_at(bx[r]);
                    let dmin = dy * f16_at(bx[r].add(2));
                    sum[r] += d * vaddvq_s32(acc[r]) as f32 - dmin * summs as f32;
                }
            }
        }
        for (out, sum) in out.iter_mut().zip(&sum) {
            out.copy_from_slice(sum);
        }
    }
}

/// Q6_K tile.
///
/// # Safety
/// `nb` Q6_K blocks readable at each of `w`, `nb` Q8_K blocks at each of `a`; as
/// [`I8Dot::dot`].
#[inline(always)]
unsafe fn q6_k_tile<D: I8Dot, const C: usize>(
    nb: usize,
    w: [*const u8; NR],
    a: [*const u8; C],
    out: &mut Tile,
) {
    // SAFETY: every block read is below `nb` (caller); Q6_K is ql[128],
    // qh[64], scales[16] (i8), d; Q8_K is d, qs[256], bsums[16]; the CPU has
    // `D`'s features (caller).
    unsafe {
        let (m4, m32) = (vdupq_n_u8(0x0f), vdupq_n_s8(32));
        let mut sum = [[0f32; NR]; C];
        for i in 0..nb {
            let bx = w.map(|r| r.add(210 * i));
            let by = a.map(|y| y.add(292 * i));
            let scales = bx.map(|b| &*b.add(192).cast::<[i8; 16]>());
            let mut acc = [[vdupq_n_s32(0); NR]; C];
            for h in 0..2 {
                for part in 0..2 {
                    // Values 128h + 32k + 16·part + 0..16 of the four groups k.
                    let q_rows = bx.map(|b| {
                        let (ql, qh) = (b.add(64 * h + 16 * part), b.add(128 + 32 * h + 16 * part));
                        let (l0, l1, hb) = (vld1q_u8(ql), vld1q_u8(ql.add(32)), vld1q_u8(qh));
                        let low = [
                            vandq_u8(l0, m4),
                            vandq_u8(l1, m4),
                            vshrq_n_u8::<4>(l0),
                            vshrq_n_u8::<4>(l1),
                        ];
                        std::array::from_fn::<_, 4, _>(|k| {
                            let q = vorrq_u8(low[k], vshlq_n_u8::<4>(crumbs(hb, 2 * k as i8)));
                            vsubq_s8(vreinterpretq_s8_u8(q), m32)
                        })
                    });
                    let q: [[int8x16_t; NR]; 4] =
                        std::array::from_fn(|k| std::array::from_fn(|r| q_rows[r][k]));
                    for (k, q) in q.iter().enumerate() {
                        let at = 128 * h + 32 * k + 16 * part;
                        for (acc, &y) in acc.iter_mut().zip(&by) {
                            let y8 = i8x16_at(y.add(4 + at));
                            for r in 0..NR {
                                let p = D::dot(vdupq_n_s32(0), q[r], y8);
                                acc[r] = vmlaq_n_s32(acc[r], p, scales[r][at / 16] as i32);
                            }
                        }
                    }
                }
            }
            for ((sum, acc), &y) in sum.iter_mut().zip(&acc).zip(&by) {
                for r in 0..NR {
                    let d = f32_at(y) * f16_at(bx[r].add(208));
                    sum[r] += d * vaddvq_s32(acc[r]) as f32;
                }
            }
        }
        for (out, sum) in out.iter_mut().zip(&sum) {
            out.copy_from_slice(sum);
        }
    }
}

/// The two builds of a tile body: `$name::smull` (plain NEON) and
/// `$name::sdot` (`dotprod`).
macro_rules! tile_builds {
    ($name:ident => $body:ident) => {
        mod $name {
            use super::{NR, Tile};
            use crate::simd::aarch64::neon::{Sdot, Smull};

            /// # Safety
            /// As the tile body's.
            #[target_feature(enable = "neon")]
            pub(super) unsafe fn smull<const C: usize>(
                nb: usize,
                w: [*const u8; NR],
                a: [*const u8; C],
                out: &mut Tile,
            ) {
                // SAFETY: the caller's contract is the body's; NEON is baseline.
                unsafe { super::$body::<Smull, C>(nb, w, a, out) }
            }

            /// # Safety
            /// As the tile body's, and the CPU has `dotprod`.
            #[target_feature(enable = "neon,dotprod")]
            pub(super) unsafe fn sdot<const C: usize>(
                nb: usize,
                w: [*const u8; NR],
                a: [*const u8; C],
                out: &mut Tile,
            ) {
                // SAFETY: the caller's contract is the body's; compiled with
                // `dotprod`, which `Sdot` needs.
                unsafe { super::$body::<Sdot, C>(nb, w, a, out) }
            }
        }
    };
}

/// `q0_tile` for one format, as a path `tile_builds!` can call with `<D, C>`.
macro_rules! q0_body {
    ($alias:ident, $format:ty) => {
        /// # Safety
        /// As [`q0_tile`]'s.
        #[inline(always)]
        unsafe fn $alias<D: I8Dot, const C: usize>(
            nb: usize,
            w: [*const u8; NR],
            a: [*const u8; C],
            out: &mut Tile,
        ) {
            // SAFETY: the caller's contract is `q0_tile`'s.
            unsafe { q0_tile::<D, $format, C>(nb, w, a, out) }
        }
    };
}
q0_body!(q8_0_tile, Q8_0);
q0_body!(q4_0_tile, Q4_0);

tile_builds!(q8_0 => q8_0_tile);
tile_builds!(q4_0 => q4_0_tile);
tile_builds!(q4_k => q4_k_tile);
tile_builds!(q6_k => q6_k_tile);

/// The weight formats with a NEON tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    Q8_0,
    Q4_0,
    Q4K,
    Q6K,
}

/// Runs the tile of `format` (the `sdot` build where `dotprod`).
///
/// # Safety
/// Each of `w` holds `nb` blocks of `format`, each of `acts` `nb` blocks of its
/// activation format; `dotprod` only where the CPU has it.
pub(super) unsafe fn tile(
    format: Format,
    dotprod: bool,
    nb: usize,
    w: [*const u8; NR],
    acts: &[&[u8]],
    out: &mut Tile,
) {
    macro_rules! call {
        ($m:ident) => {{
            macro_rules! run {
                ($a:expr) => {
                    if dotprod {
                        $m::sdot(nb, w, $a, out)
                    } else {
                        $m::smull(nb, w, $a, out)
                    }
                };
            }
            match *acts {
                [a0] => run!([a0.as_ptr()]),
                [a0, a1] => run!([a0.as_ptr(), a1.as_ptr()]),
                [a0, a1, a2] => run!([a0.as_ptr(), a1.as_ptr(), a2.as_ptr()]),
                [a0, a1, a2, a3] => run!([a0.as_ptr(), a1.as_ptr(), a2.as_ptr(), a3.as_ptr()]),
                _ => panic!("1 to {NC} activation rows per tile, got {}", acts.len()),
            }
        }};
    }
    // SAFETY: the caller's contract is each build's.
    unsafe {
        match format {
            Format::Q8_0 => call!(q8_0),
            Format::Q4_0 => call!(q4_0),
            Format::Q4K => call!(q4_k),
            Format::Q6K => call!(q6_k),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data::{quantized, values};
    use crate::{Cpu, TensorType, traits_for};

    /// `level`'s tiles give its `vec_dot` results bit for bit, for every count
    /// of activation rows.
    fn tiles_equal_vec_dot_bit_for_bit(level: Cpu) {
        let n_in = 768;
        for (ty, format) in [
            (TensorType::Q8_0, Format::Q8_0),
            (TensorType::Q4_0, Format::Q4_0),
            (TensorType::Q4_K, Format::Q4K),
            (TensorType::Q6_K, Format::Q6K),
        ] {
            let dot = traits_for(level, ty).unwrap().vec_dot.unwrap();
            let vt = traits_for(Cpu::Scalar, ty).unwrap().vec_dot_type;
            let rows: Vec<Vec<u8>> = (0..NR)
                .map(|r| quantized(ty, &values(n_in, 20 + r as u64)))
                .collect();
            let acts: Vec<Vec<u8>> = (0..NC)
                .map(|c| quantized(vt, &values(n_in, 200 + c as u64)))
                .collect();
            let nb = n_in / ty.block_size();
            let w: [*const u8; NR] = std::array::from_fn(|r| rows[r].as_ptr());
            for n_act in 1..=NC {
                let act_refs: Vec<&[u8]> = acts[..n_act].iter().map(Vec::as_slice).collect();
                let mut out = [[f32::NAN; NR]; NC];
                // SAFETY: every row holds `nb` blocks; `traits_for` above found
                // the level available, so the CPU has `dotprod` where asked.
                unsafe {
                    tile(
                        format,
                        level == Cpu::NeonDotprod,
                        nb,
                        w,
                        &act_refs,
                        &mut out,
                    )
                };
                for (c, act) in act_refs.iter().enumerate() {
                    for (r, row) in rows.iter().enumerate() {
                        let want = dot(n_in, row, act);
                        assert_eq!(
                            out[c][r].to_bits(),
                            want.to_bits(),
                            "{level} {ty} row {r} act {c} of {n_act}: {} vs {want}",
                            out[c][r]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn neon_tiles_equal_vec_dot_bit_for_bit() {
        tiles_equal_vec_dot_bit_for_bit(Cpu::Neon);
    }

    #[test]
    #[cfg_attr(
        not(hearth_neon_dotprod),
        ignore = "needs NEON dotprod (aarch64; under qemu, HEARTH_CPU=neon-dotprod)"
    )]
    fn dotprod_tiles_equal_vec_dot_bit_for_bit() {
        tiles_equal_vec_dot_bit_for_bit(Cpu::NeonDotprod);
    }
}
