//! aarch64 kernels. NEON (Advanced SIMD) is part of the aarch64 baseline, so these
//! need no run-time detection.

pub(super) mod neon;
