//! NEON dot products for every format real models use (F32, F16, BF16, Q4_0,
//! Q4_1, Q5_0, Q5_1, Q8_0, Q2_K … Q6_K, IQ4_NL, IQ4_XS, MXFP4 against their activation
//! formats): the [`Cpu::Neon`](crate::simd::Cpu) and
//! [`Cpu::NeonDotprod`](crate::simd::Cpu) levels. The other IQ formats, the
//! quantizers and the dequantizers keep the scalar reference on aarch64.
//!
//! Each integer kernel is written once, generic over [`I8Dot`], the step that
//! multiplies 16 signed bytes by 16 signed bytes and adds the products into four
//! i32 lanes, and compiled twice (`int_dot!`): with baseline Advanced SIMD
//! (`smull` + `sadalp`, ggml-cpu/arch/arm/quants.c's path for CPUs without
//! `dotprod`) and with `sdot`. Rust's `vdotq_s32` is not stable yet, so `sdot` is
//! one instruction of inline assembly, compiled only inside functions built with
//! the `dotprod` feature. Both give the same integer sums; only the grouping of the
//! products into lanes differs, and every kernel reduces all four lanes before a
//! scale applies per group.
//!
//! Techniques follow ggml-cpu/arch/arm/quants.c; the code is our own. Blocks are
//! read from little-endian bytes with unaligned loads (aarch64-unknown-linux-gnu
//! is little-endian, so `vld1q_s16` reads Q8_K's `bsums` as stored).

use std::arch::aarch64::*;

use gguf::TensorType;

use crate::formats::float::f16_to_f32;
use crate::simd::Override;

mod float;
pub(crate) mod kquants;
mod legacy;

/// The plain NEON level's replacements of the scalar table.
pub(in crate::simd) fn overrides() -> Vec<Override> {
    let mut out = float_overrides();
    out.extend(int_overrides(false));
    out
}

/// The `dotprod` level's replacements of the scalar table: the float kernels of
/// plain NEON, the integer ones with `sdot`.
pub(in crate::simd) fn overrides_dotprod() -> Vec<Override> {
    let mut out = float_overrides();
    out.extend(int_overrides(true));
    out
}

fn float_overrides() -> Vec<Override> {
    vec![
        Override::dot(TensorType::F32, float::vec_dot_f32),
        Override::dot(TensorType::F16, float::vec_dot_f16),
        Override::dot(TensorType::BF16, float::vec_dot_bf16),
    ]
}

fn int_overrides(dotprod: bool) -> Vec<Override> {
    macro_rules! pick {
        ($($ty:ident => $module:ident::$kernel:ident),* $(,)?) => {
            vec![$(Override::dot(
                TensorType::$ty,
                if dotprod { $module::$kernel::dotprod } else { $module::$kernel::neon },
            )),*]
        };
    }
    pick![
        Q4_0 => legacy::q4_0_q8_0,
        Q4_1 => legacy::q4_1_q8_1,
        Q5_0 => legacy::q5_0_q8_0,
        Q5_1 => legacy::q5_1_q8_1,
        Q8_0 => legacy::q8_0_q8_0,
        IQ4_NL => legacy::iq4_nl_q8_0,
        MXFP4 => legacy::mxfp4_q8_0,
        Q2_K => kquants::q2_k_q8_k,
        Q3_K => kquants::q3_k_q8_k,
        Q4_K => kquants::q4_k_q8_k,
        Q5_K => kquants::q5_k_q8_k,
        Q6_K => kquants::q6_k_q8_k,
        IQ4_XS => kquants::iq4_xs_q8_k,
    ]
}

/// One step of a signed byte dot product.
pub(crate) trait I8Dot {
    /// `acc` plus the 16 products `a[i]·b[i]`, spread over the four lanes in an
    /// order of the implementation's choosing: only the sum of the lanes means
    /// anything.
    ///
    /// # Safety
    /// The CPU has the implementation's features and the calling function is
    /// compiled with them (see `int_dot!`).
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t;
}

/// Baseline Advanced SIMD: widening multiplies (`smull`), pairwise widening adds.
pub(crate) struct Smull;

impl I8Dot for Smull {
    #[inline(always)]
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // SAFETY: baseline Advanced SIMD only.
        unsafe {
            let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
            let hi = vmull_high_s8(a, b);
            vpadalq_s16(vpadalq_s16(acc, lo), hi)
        }
    }
}

/// The `dotprod` extension: one `sdot`, four products per lane.
pub(crate) struct Sdot;

impl I8Dot for Sdot {
    #[inline(always)]
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        let mut acc = acc;
        // SAFETY: `sdot` reads and writes only these registers; the CPU has
        // `dotprod` and the function this is inlined into is compiled with it
        // (the caller's contract), without which the assembler rejects it.
        unsafe {
            std::arch::asm!(
                "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
                acc = inout(vreg) acc,
                a = in(vreg) a,
                b = in(vreg) b,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        acc
    }
}

/// Two table entries for one integer dot kernel
/// `unsafe fn $body<D: I8Dot>(nb, x: *const u8, y: *const u8) -> f32` (`#[inline(always)]`,
/// `nb` whole blocks of `$block` elements, `$x_size` / `$y_size` bytes per weight /
/// activation block): module `$name` with `neon` (widening multiplies) and
/// `dotprod` (`sdot`), each a safe function for the dispatch table.
macro_rules! int_dot {
    ($(#[$doc:meta])* $name:ident => $body:ident, $block:expr, $x_size:expr, $y_size:expr) => {
        $(#[$doc])*
        pub(super) mod $name {
            use crate::simd::aarch64::neon::{Sdot, Smull};

            /// # Safety
            /// As the kernel's.
            #[target_feature(enable = "neon")]
            unsafe fn smull(nb: usize, x: *const u8, y: *const u8) -> f32 {
                // SAFETY: the caller's contract is the kernel's; NEON is baseline.
                unsafe { super::$body::<Smull>(nb, x, y) }
            }

            /// # Safety
            /// As the kernel's, and the CPU has `dotprod`.
            #[target_feature(enable = "neon,dotprod")]
            unsafe fn sdot(nb: usize, x: *const u8, y: *const u8) -> f32 {
                // SAFETY: the caller's contract is the kernel's; this function is
                // compiled with `dotprod`, which `Sdot` needs.
                unsafe { super::$body::<Sdot>(nb, x, y) }
            }

            crate::simd::dot_entry!(
                /// Baseline Advanced SIMD.
                neon => smull, $block, $x_size, $y_size
            );
            crate::simd::dot_entry!(
                /// With `sdot` (installed only where the CPU has `dotprod`).
                dotprod => sdot, $block, $x_size, $y_size
            );
        }
    };
}
use int_dot;

/// The f16 stored little-endian at `p`, as f32.
///
/// # Safety
/// 2 bytes readable at `p`.
#[inline(always)]
pub(crate) unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: 2 readable bytes (caller); the read is unaligned.
    f16_to_f32(u16::from_le(unsafe { p.cast::<u16>().read_unaligned() }))
}

/// The f32 stored little-endian at `p`.
///
/// # Safety
/// 4 bytes readable at `p`.
#[inline(always)]
pub(crate) unsafe fn f32_at(p: *const u8) -> f32 {
    // SAFETY: 4 readable bytes (caller); the read is unaligned.
    f32::from_bits(u32::from_le(unsafe { p.cast::<u32>().read_unaligned() }))
}

/// The low and high nibbles of the 16 bytes at `p`.
///
/// # Safety
/// 16 bytes readable at `p`.
#[inline(always)]
pub(crate) unsafe fn nibbles(p: *const u8) -> (uint8x16_t, uint8x16_t) {
    // SAFETY: 16 readable bytes (caller); baseline Advanced SIMD only.
    unsafe {
        let bits = vld1q_u8(p);
        (vandq_u8(bits, vdupq_n_u8(0x0f)), vshrq_n_u8::<4>(bits))
    }
}

/// 16 signed bytes at `p`.
///
/// # Safety
/// 16 bytes readable at `p`.
#[inline(always)]
pub(crate) unsafe fn i8x16_at(p: *const u8) -> int8x16_t {
    // SAFETY: 16 readable bytes (caller).
    unsafe { vld1q_s8(p.cast()) }
}

/// The 16 levels of the IQ4 formats (ggml-common.h `kvalues_iq4nl`).
const IQ4_LEVELS: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];
