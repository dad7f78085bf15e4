//! AVX-512 kernels (512-bit, F + BW + VL), the [`Cpu::Avx512`](crate::simd::Cpu)
//! level. Formats without an AVX-512 kernel keep the AVX2 one (every AVX-512 CPU
//! hearth accepts also has AVX2, FMA and F16C).
//!
//! What this level changes, each measured against the AVX2 kernel on the same
//! machine (benches/vec_dot.rs): the legacy formats, IQ4_NL and MXFP4 use the 256-bit
//! `vpdpbusd` build of the AVX2 kernels where the CPU has VNNI (one instruction
//! for `vpmaddubsw` + `vpmaddwd`; a 512-bit two-blocks-per-step version measured
//! slower, its shuffles cost more than the halved multiply-adds save); Q6_K runs
//! 128 values per step. F32 and F16 follow ggml's AVX-512 `vec_dot` order
//! (four accumulators of 16 lanes), which llama.cpp uses for one activation
//! row. Everything else keeps its AVX2 kernel, including Q4_K and BF16, whose
//! 512-bit versions (BF16 with `vdpbf16ps`) measured slower.

use gguf::TensorType;

use crate::simd::Override;
use crate::simd::x86::features;

mod float;
mod kquants;

/// This level's replacements of the scalar table.
pub(in crate::simd) fn overrides() -> Vec<Override> {
    let f = features();
    let mut list = super::avx2::overrides();
    if f.avx512vnni {
        use super::avx2::{iquants, legacy, mxfp4};
        list.extend([
            Override::dot(TensorType::Q4_0, legacy::vec_dot_q4_0_q8_0_vnni),
            Override::dot(TensorType::Q4_1, legacy::vec_dot_q4_1_q8_1_vnni),
            Override::dot(TensorType::Q5_0, legacy::vec_dot_q5_0_q8_0_vnni),
            Override::dot(TensorType::Q5_1, legacy::vec_dot_q5_1_q8_1_vnni),
            Override::dot(TensorType::Q8_0, legacy::vec_dot_q8_0_q8_0_vnni),
            Override::dot(TensorType::IQ4_NL, iquants::vec_dot_iq4_nl_q8_0_vnni),
            Override::dot(TensorType::MXFP4, mxfp4::vec_dot_mxfp4_q8_0_vnni),
        ]);
    }
    list.extend([
        Override::dot(TensorType::Q6_K, kquants::vec_dot_q6_k_q8_k),
        Override::dot(TensorType::F32, float::vec_dot_f32),
        Override::dot(TensorType::F16, float::vec_dot_f16),
    ]);
    list
}
