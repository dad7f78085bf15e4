//! x86-64 kernels: AVX2 (+FMA, F16C) and AVX-512 (F, BW, VL; VNNI where the CPU
//! has it). Techniques follow ggml-cpu/arch/x86/quants.c; the code is
//! our own.

use std::sync::OnceLock;

pub(super) mod avx2;
pub(super) mod avx512;

/// CPU features the x86 kernels use, probed once.
#[derive(Clone, Copy, Debug)]
pub(super) struct Features {
    /// AVX2 + FMA + F16C: the [`super::Cpu::Avx2`] level.
    pub avx2: bool,
    /// AVX-512 F + BW + VL on top of `avx2`: the [`super::Cpu::Avx512`] level.
    pub avx512: bool,
    /// AVX-512 VNNI (`vpdpbusd`), used by the AVX-512 integer dot products.
    pub avx512vnni: bool,
}

/// The features of this CPU.
pub(super) fn features() -> Features {
    static FEATURES: OnceLock<Features> = OnceLock::new();
    *FEATURES.get_or_init(|| {
        let avx2 = is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        let avx512 = avx2
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl");
        Features {
            avx2,
            avx512,
            avx512vnni: avx512 && is_x86_feature_detected!("avx512vnni"),
        }
    })
}
