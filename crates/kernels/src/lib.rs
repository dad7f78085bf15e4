//! Tensor block formats and the kernels that read them.
//!
//! Every format ggml stores in GGUF files has a `#[repr(C)]` block struct here, a
//! dequantizer to f32, a reference quantizer where llama-quantize can produce the
//! format without an importance matrix, and a scalar reference dot product against
//! the activation format ggml pairs it with (`vec_dot_type`). [`traits`] returns
//! the per-format table entry; SIMD variants replace entries at start-up.
#![deny(missing_docs)]

mod dispatch;
pub mod formats;
mod gemm;
pub mod matmul;
pub mod pool;
pub mod simd;
#[cfg(test)]
mod test_data;

pub use dispatch::{
    KernelError, TypeTraits, WeightedFn, can_quantize, dequantize, dot, quantize,
    quantize_weighted, traits, traits_for,
};
pub use gguf::TensorType;
pub use simd::{Cpu, cpu_level};
