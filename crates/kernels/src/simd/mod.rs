//! SIMD kernels and the run-time choice between them.
//!
//! The CPU is probed once (`is_x86_feature_detected!` on x86-64; on aarch64 NEON is
//! part of the baseline and `is_aarch64_feature_detected!` finds `dotprod`) and the
//! best [`Cpu`] level it supports becomes the one the dispatch table is built for.
//! `HEARTH_CPU=scalar|neon|neon-dotprod|avx2|avx512` forces a lower level
//! (benchmarks, bug hunts); asking for a level the machine lacks falls back to the
//! best available one with a warning on stderr.
//!
//! Each level only *replaces* entries of the scalar table: a format without a SIMD
//! kernel keeps its scalar reference. The contract every replacement keeps:
//!
//! * dot products equal the scalar reference up to float reassociation (integer
//!   partial sums are exact; only the order of the f32 additions differs);
//! * activation quantizers (`from_f32` of Q8_0, Q8_1, Q8_K and F16) write the
//!   *same bytes* as the scalar reference. In particular Q8_0 / Q8_1 round half
//!   away from zero like ggml's `quantize_row_q8_0_ref` (`roundf`), not half to
//!   even like ggml's own AVX `quantize_row_q8_0`: the reference is also what
//!   llama-quantize writes for Q8_0 weights, and one rounding rule everywhere keeps
//!   every path reproducible. Where an input would make SIMD and scalar semantics
//!   diverge (NaN inside a block), the block is handed to the scalar code;
//! * activation converters (`from_f32_act` of Q8_0 and Q8_1: ggml's AVX rounding,
//!   half to even with scale `127/amax`) write the same bytes as their scalar
//!   references in `formats::legacy`, NaN blocks again going to the scalar code.
//!
//! Activations quantized by hearth never hold the byte −128 (the quantizers clamp
//! to ±127); like ggml, the x86 signed-byte products rely on that (they negate
//! activation bytes).

use std::sync::OnceLock;

use gguf::TensorType;

use crate::dispatch::{FromF32Fn, ToF32Fn, TypeTraits, VecDotFn};

#[cfg(target_arch = "aarch64")]
pub(crate) mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86;

/// A SIMD level: which family of kernels the dispatch table uses.
///
/// Levels of one architecture are ordered: each needs everything the previous one
/// needs. [`Cpu::Scalar`] runs everywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cpu {
    /// The portable reference kernels only.
    Scalar,
    /// aarch64 Advanced SIMD (always present on aarch64).
    Neon,
    /// aarch64 Advanced SIMD with the `dotprod` extension (`sdot`; Armv8.2-A
    /// optional, Armv8.4-A mandatory: Apple M1 and later, Graviton 2 and later).
    NeonDotprod,
    /// x86-64 with AVX2, FMA and F16C.
    Avx2,
    /// x86-64 with AVX-512 F, BW and VL (plus VNNI where present).
    Avx512,
}

impl Cpu {
    /// Every level, lowest first.
    pub const ALL: [Cpu; 5] = [
        Cpu::Scalar,
        Cpu::Neon,
        Cpu::NeonDotprod,
        Cpu::Avx2,
        Cpu::Avx512,
    ];

    /// The name `HEARTH_CPU` accepts for this level.
    pub fn name(self) -> &'static str {
        match self {
            Cpu::Scalar => "scalar",
            Cpu::Neon => "neon",
            Cpu::NeonDotprod => "neon-dotprod",
            Cpu::Avx2 => "avx2",
            Cpu::Avx512 => "avx512",
        }
    }

    /// Parse a `HEARTH_CPU` value (case-insensitive).
    pub fn parse(s: &str) -> Option<Cpu> {
        Cpu::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether this machine can run this level's kernels.
    pub fn is_available(self) -> bool {
        match self {
            Cpu::Scalar => true,
            Cpu::Neon => cfg!(target_arch = "aarch64"),
            #[cfg(target_arch = "aarch64")]
            Cpu::NeonDotprod => aarch64::has_dotprod(),
            #[cfg(not(target_arch = "aarch64"))]
            Cpu::NeonDotprod => false,
            #[cfg(target_arch = "x86_64")]
            Cpu::Avx2 => x86::features().avx2,
            #[cfg(target_arch = "x86_64")]
            Cpu::Avx512 => x86::features().avx512,
            #[cfg(not(target_arch = "x86_64"))]
            Cpu::Avx2 | Cpu::Avx512 => false,
        }
    }

    /// The best level this machine supports.
    pub fn best() -> Cpu {
        Cpu::available().last().unwrap_or(Cpu::Scalar)
    }

    /// The levels this machine supports, lowest first.
    pub fn available() -> impl DoubleEndedIterator<Item = Cpu> {
        Cpu::ALL.into_iter().filter(|c| c.is_available())
    }
}

impl std::fmt::Display for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What `HEARTH_CPU` asked for, resolved against what the machine has: the level
/// to use and, when the request could not be honoured, the warning to print.
fn resolve(
    request: Option<&str>,
    best: Cpu,
    available: impl Fn(Cpu) -> bool,
) -> (Cpu, Option<String>) {
    let Some(request) = request else {
        return (best, None);
    };
    match Cpu::parse(request) {
        Some(level) if available(level) => (level, None),
        Some(level) => (
            best,
            Some(format!(
                "hearth: HEARTH_CPU={level} is not supported by this CPU; using {best}"
            )),
        ),
        None => (
            best,
            Some(format!(
                "hearth: unknown HEARTH_CPU value {request:?} (expected scalar, neon, neon-dotprod, avx2 or avx512); using {best}"
            )),
        ),
    }
}

/// The level the dispatch table uses: the best this machine supports, or the one
/// `HEARTH_CPU` forces. Decided once per process.
pub fn cpu_level() -> Cpu {
    static LEVEL: OnceLock<Cpu> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let request = std::env::var("HEARTH_CPU").ok();
        let (level, warning) = resolve(request.as_deref(), Cpu::best(), Cpu::is_available);
        if let Some(w) = warning {
            eprintln!("{w}");
        }
        level
    })
}

/// Replacement kernels for one format at one level; `None` keeps the scalar one.
#[derive(Clone, Copy)]
struct Override {
    ty: TensorType,
    to_f32: Option<ToF32Fn>,
    from_f32: Option<FromF32Fn>,
    from_f32_act: Option<FromF32Fn>,
    vec_dot: Option<VecDotFn>,
}

impl Override {
    /// A replacement of the dot product only.
    const fn dot(ty: TensorType, f: VecDotFn) -> Self {
        Override {
            ty,
            to_f32: None,
            from_f32: None,
            from_f32_act: None,
            vec_dot: Some(f),
        }
    }

    /// A replacement of the dequantizer only.
    #[cfg(target_arch = "x86_64")]
    const fn dequantize(ty: TensorType, f: ToF32Fn) -> Self {
        Override {
            ty,
            to_f32: Some(f),
            from_f32: None,
            from_f32_act: None,
            vec_dot: None,
        }
    }

    /// A replacement of the quantizer only.
    #[cfg(target_arch = "x86_64")]
    const fn quantize(ty: TensorType, f: FromF32Fn) -> Self {
        Override {
            ty,
            to_f32: None,
            from_f32: Some(f),
            from_f32_act: None,
            vec_dot: None,
        }
    }

    /// A replacement of the activation converter only.
    #[cfg(target_arch = "x86_64")]
    const fn quantize_act(ty: TensorType, f: FromF32Fn) -> Self {
        Override {
            ty,
            to_f32: None,
            from_f32: None,
            from_f32_act: Some(f),
            vec_dot: None,
        }
    }
}

/// Replace the entries of the scalar table `table` with `level`'s kernels. Does
/// nothing for a level this machine cannot run (the SIMD kernels must never be
/// reachable without their CPU features).
pub(crate) fn install(level: Cpu, table: &mut [TypeTraits]) {
    if !level.is_available() {
        return;
    }
    let overrides: Vec<Override> = match level {
        Cpu::Scalar => Vec::new(),
        #[cfg(target_arch = "x86_64")]
        Cpu::Avx2 => x86::avx2::overrides(),
        #[cfg(target_arch = "x86_64")]
        Cpu::Avx512 => x86::avx512::overrides(),
        #[cfg(target_arch = "aarch64")]
        Cpu::Neon => aarch64::neon::overrides(),
        #[cfg(target_arch = "aarch64")]
        Cpu::NeonDotprod => aarch64::neon::overrides_dotprod(),
        #[allow(unreachable_patterns)]
        _ => Vec::new(),
    };
    for o in overrides {
        if let Some(t) = table.iter_mut().find(|t| t.ty == o.ty) {
            t.to_f32 = o.to_f32.unwrap_or(t.to_f32);
            t.from_f32 = o.from_f32.or(t.from_f32);
            t.from_f32_act = o.from_f32_act.or(t.from_f32_act);
            t.vec_dot = o.vec_dot.or(t.vec_dot);
        }
    }
}

/// The dot product llama.cpp's CPU backend uses, for weights of format `ty`,
/// in a matmul over at least [`TILED_MIN_BATCH`] activation rows, where its
/// float order differs from the dispatch table's `vec_dot` (which is ggml's
/// order for fewer rows): ggml-cpu's tiled matmul (ggml-cpu/tiled), built on
/// x86 (hearth's scalar level included: the tiled order vectorises only
/// integer sums, so every level gives the same bits). `None`: ggml uses
/// `vec_dot`'s order for every batch size (other formats; aarch64, where ggml
/// builds no tiled kernels), or hearth does not follow its tiled order for this
/// format yet.
///
/// Here: Q4_K, Q5_K, Q6_K and IQ4_XS; ggml tiles Q2_K, Q3_K and the IQ2/IQ3/IQ1
/// formats the same way, with formats' own epilogues.
pub fn tiled_dot(ty: TensorType) -> Option<VecDotFn> {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::formats::{iquants, kquants};
        use x86::avx2;
        let simd = cpu_level() >= Cpu::Avx2;
        let pick = |fast: VecDotFn, reference: VecDotFn| Some(if simd { fast } else { reference });
        match ty {
            TensorType::Q4_K => {
                return pick(
                    avx2::kquants::vec_dot_q4_k_q8_k_tiled,
                    kquants::vec_dot_q4_k_q8_k_tiled,
                );
            }
            TensorType::Q5_K => {
                return pick(
                    avx2::kquants::vec_dot_q5_k_q8_k_tiled,
                    kquants::vec_dot_q5_k_q8_k_tiled,
                );
            }
            TensorType::Q6_K => {
                return pick(
                    avx2::kquants::vec_dot_q6_k_q8_k_tiled,
                    kquants::vec_dot_q6_k_q8_k_tiled,
                );
            }
            TensorType::IQ4_XS => {
                return pick(
                    avx2::iquants::vec_dot_iq4_xs_q8_k_tiled,
                    iquants::vec_dot_iq4_xs_q8_k_tiled,
                );
            }
            _ => {}
        }
    }
    let _ = ty;
    None
}

pub use crate::formats::iquants::TILED_MIN_BATCH;

/// A safe table entry for a `#[target_feature]` dot kernel
/// `unsafe fn(nb, x: *const u8, y: *const u8) -> f32` over `nb` whole blocks of
/// `$block` elements (`$x_size` bytes per weight block, `$y_size` per activation
/// block).
macro_rules! dot_entry {
    ($(#[$doc:meta])* $name:ident => $kernel:path, $block:expr, $x_size:expr, $y_size:expr) => {
        $(#[$doc])*
        pub(in crate::simd) fn $name(n: usize, x: &[u8], y: &[u8]) -> f32 {
            let nb = crate::simd::whole_blocks(n, $block, x, $x_size, y, $y_size);
            // SAFETY: `simd::install` puts this function into a dispatch table only
            // when the CPU has every feature the kernel is compiled for, and `nb`
            // whole blocks lie within both `x` and `y`.
            unsafe { $kernel(nb, x.as_ptr(), y.as_ptr()) }
        }
    };
}
pub(crate) use dot_entry;

#[cfg(target_arch = "x86_64")]
/// A safe table entry for a `#[target_feature]` quantizer
/// `unsafe fn(nb, x: *const f32, y: *mut u8)` over `nb` whole blocks of `$block`
/// values, `$size` bytes each.
macro_rules! quantize_entry {
    ($(#[$doc:meta])* $name:ident => $kernel:path, $block:expr, $size:expr) => {
        $(#[$doc])*
        pub(in crate::simd) fn $name(src: &[f32], dst: &mut [u8]) {
            let nb = (src.len() / $block).min(dst.len() / $size);
            // SAFETY: `simd::install` puts this function into a dispatch table only
            // when the CPU has every feature the kernel is compiled for; `nb` whole
            // blocks lie within both `src` and `dst`.
            unsafe { $kernel(nb, src.as_ptr(), dst.as_mut_ptr()) }
        }
    };
}
#[cfg(target_arch = "x86_64")]
pub(crate) use quantize_entry;

/// A safe table entry for a `#[target_feature]` dequantizer
/// `unsafe fn(nb, x: *const u8, y: *mut f32)` over `nb` whole blocks of `$block`
/// values, `$size` bytes each.
#[cfg(target_arch = "x86_64")]
macro_rules! dequantize_entry {
    ($(#[$doc:meta])* $name:ident => $kernel:path, $block:expr, $size:expr) => {
        $(#[$doc])*
        pub(in crate::simd) fn $name(src: &[u8], dst: &mut [f32]) {
            let nb = (src.len() / $size).min(dst.len() / $block);
            // SAFETY: `simd::install` puts this function into a dispatch table only
            // when the CPU has every feature the kernel is compiled for; `nb` whole
            // blocks lie within both `src` and `dst`.
            unsafe { $kernel(nb, src.as_ptr(), dst.as_mut_ptr()) }
        }
    };
}
#[cfg(target_arch = "x86_64")]
pub(crate) use dequantize_entry;

/// The number of whole blocks a kernel may touch: `n / block` elements, but never
/// more than either buffer holds (the scalar kernels stop at the shorter input the
/// same way, via `zip`).
#[inline]
fn whole_blocks(n: usize, block: usize, x: &[u8], x_size: usize, y: &[u8], y_size: usize) -> usize {
    (n / block).min(x.len() / x_size).min(y.len() / y_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_level_names() {
        assert_eq!(Cpu::parse("avx2"), Some(Cpu::Avx2));
        assert_eq!(Cpu::parse("Neon-Dotprod"), Some(Cpu::NeonDotprod));
        assert_eq!(Cpu::parse(" AVX512 "), Some(Cpu::Avx512));
        assert_eq!(Cpu::parse("scalar"), Some(Cpu::Scalar));
        assert_eq!(Cpu::parse("sse9"), None);
        for c in Cpu::ALL {
            assert_eq!(Cpu::parse(c.name()), Some(c));
        }
    }

    #[test]
    fn override_falls_back_to_best_with_a_warning() {
        let only_avx2 = |c: Cpu| matches!(c, Cpu::Scalar | Cpu::Avx2);
        assert_eq!(resolve(None, Cpu::Avx2, only_avx2), (Cpu::Avx2, None));
        assert_eq!(
            resolve(Some("scalar"), Cpu::Avx2, only_avx2),
            (Cpu::Scalar, None)
        );
        let (level, warning) = resolve(Some("avx512"), Cpu::Avx2, only_avx2);
        assert_eq!(level, Cpu::Avx2);
        assert!(warning.unwrap().contains("not supported"));
        let (level, warning) = resolve(Some("fast"), Cpu::Avx2, only_avx2);
        assert_eq!(level, Cpu::Avx2);
        assert!(
            warning
                .unwrap()
                .contains("unknown HEARTH_CPU value \"fast\"")
        );
    }

    #[test]
    fn scalar_is_always_available_and_best_is_available() {
        assert!(Cpu::Scalar.is_available());
        assert!(Cpu::best().is_available());
        assert!(cpu_level().is_available());
    }

    /// The tiled order's SIMD kernels give the scalar references' bits, and
    /// the references follow the epilogue's formula (checked against an
    /// independent f64 sum up to rounding).
    #[cfg(target_arch = "x86_64")]
    #[test]
    #[cfg_attr(not(hearth_avx2), ignore = "needs AVX2")]
    fn tiled_dots_are_bit_exact_across_levels() {
        use crate::formats::{iquants, kquants};
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        };
        type Quantize = fn(&[f32], &mut [u8]);
        let cases: [(TensorType, Quantize, VecDotFn, VecDotFn); 4] = [
            (
                TensorType::IQ4_XS,
                iquants::quantize_row_iq4_xs_ref,
                iquants::vec_dot_iq4_xs_q8_k_tiled,
                x86::avx2::iquants::vec_dot_iq4_xs_q8_k_tiled,
            ),
            (
                TensorType::Q4_K,
                kquants::quantize_row_q4_k_ref,
                kquants::vec_dot_q4_k_q8_k_tiled,
                x86::avx2::kquants::vec_dot_q4_k_q8_k_tiled,
            ),
            (
                TensorType::Q5_K,
                kquants::quantize_row_q5_k_ref,
                kquants::vec_dot_q5_k_q8_k_tiled,
                x86::avx2::kquants::vec_dot_q5_k_q8_k_tiled,
            ),
            (
                TensorType::Q6_K,
                kquants::quantize_row_q6_k_ref,
                kquants::vec_dot_q6_k_q8_k_tiled,
                x86::avx2::kquants::vec_dot_q6_k_q8_k_tiled,
            ),
        ];
        for (ty, quantize, reference, simd) in cases {
            let traits = crate::traits_for(Cpu::Scalar, ty).unwrap();
            for nb in 1..=4 {
                let n = 256 * nb;
                let w: Vec<f32> = (0..n).map(|_| next()).collect();
                let a: Vec<f32> = (0..n).map(|_| next() * 3.0).collect();
                let mut wq = vec![0u8; ty.row_size(n as u64).unwrap() as usize];
                let mut aq = vec![0u8; 292 * nb];
                quantize(&w, &mut wq);
                kquants::quantize_row_q8_k_ref(&a, &mut aq);
                let want = reference(n, &wq, &aq);
                let got = simd(n, &wq, &aq);
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "{ty}, {nb} blocks: {got} vs {want}"
                );
                let mut wf = vec![0f32; n];
                let mut af = vec![0f32; n];
                (traits.to_f32)(&wq, &mut wf);
                kquants::dequantize_row_q8_k(&aq, &mut af);
                let exact: f64 = wf.iter().zip(&af).map(|(&x, &y)| x as f64 * y as f64).sum();
                let scale: f64 = wf
                    .iter()
                    .zip(&af)
                    .map(|(&x, &y)| (x as f64 * y as f64).abs())
                    .sum();
                assert!(
                    (want as f64 - exact).abs() <= 1e-5 * scale,
                    "{ty}, {nb} blocks: {want} vs {exact}"
                );
            }
            assert!(tiled_dot(ty).is_some());
        }
        assert!(tiled_dot(TensorType::Q8_0).is_none());
    }

    #[test]
    fn whole_blocks_never_exceeds_either_buffer() {
        assert_eq!(whole_blocks(64, 32, &[0; 36], 18, &[0; 68], 34), 2);
        assert_eq!(whole_blocks(96, 32, &[0; 36], 18, &[0; 200], 34), 2);
        assert_eq!(whole_blocks(96, 32, &[0; 100], 18, &[0; 40], 34), 1);
    }
}
