//! aarch64 kernels. NEON (Advanced SIMD) is part of the aarch64 baseline, so the
//! [`Cpu::Neon`](crate::simd::Cpu) level needs no run-time detection; the
//! [`Cpu::NeonDotprod`](crate::simd::Cpu) level runs the same kernels with `sdot`
//! where the CPU has the `dotprod` extension.

pub(crate) mod neon;

/// Whether this CPU has the `dotprod` extension (`sdot` / `udot`).
pub(super) fn has_dotprod() -> bool {
    std::arch::is_aarch64_feature_detected!("dotprod")
}
