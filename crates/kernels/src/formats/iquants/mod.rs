//! The i-quant formats: IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S,
//! IQ4_NL and IQ4_XS.
//!
//! The IQ1/IQ2/IQ3 formats store, per group of 4 or 8 weights, an index into a
//! fixed lattice of points (the grids, constants of the format in ggml-common.h)
//! plus sign bits and small block scales. IQ4_NL and IQ4_XS store 4-bit indices
//! into a 16-level non-linear table. Everything here follows ggml bit for bit:
//! dequantizers and the IQ4 quantizers from ggml/src/ggml-quants.c, the scalar dot
//! products from ggml/src/ggml-cpu/quants.c (`ggml_vec_dot_iq*_generic`).
//!
//! ggml only quantizes IQ1–IQ3 with an importance matrix, so those formats have no
//! `from_f32` here; IQ4_NL and IQ4_XS do (no importance matrix needed).

mod blocks;
mod dequant;
mod dot;
mod grid_iq1s;
mod grids;
mod iq4;

use gguf::TensorType;

use crate::TypeTraits;

pub use blocks::{
    BlockIq1M, BlockIq1S, BlockIq2S, BlockIq2Xs, BlockIq2Xxs, BlockIq3S, BlockIq3Xxs, BlockIq4Nl,
    BlockIq4Xs,
};
pub use dequant::{
    dequantize_row_iq1_m, dequantize_row_iq1_s, dequantize_row_iq2_s, dequantize_row_iq2_xs,
    dequantize_row_iq2_xxs, dequantize_row_iq3_s, dequantize_row_iq3_xxs,
};
pub use dot::{
    vec_dot_iq1_m_q8_k, vec_dot_iq1_s_q8_k, vec_dot_iq2_s_q8_k, vec_dot_iq2_xs_q8_k,
    vec_dot_iq2_xxs_q8_k, vec_dot_iq3_s_q8_k, vec_dot_iq3_xxs_q8_k,
};
pub use iq4::{
    dequantize_row_iq4_nl, dequantize_row_iq4_xs, quantize_iq4_nl, quantize_row_iq4_nl_ref,
    quantize_row_iq4_xs_ref, vec_dot_iq4_nl_q8_0, vec_dot_iq4_xs_q8_k,
};

/// Weights per super-block of the 256-wide formats (ggml's `QK_K`).
const QK_K: usize = 256;

/// The offset IQ1_S and IQ1_M add to their ternary grid values, signed per group
/// (ggml-common.h, `IQ1S_DELTA` = `IQ1M_DELTA`).
const IQ1_DELTA: f32 = 0.125;

/// `-1.0` if bit `j` of `signs` is set, else `1.0` (ggml's `kmask_iq2xs` test).
#[inline]
fn sign(signs: u8, j: usize) -> f32 {
    if signs & (1 << j) != 0 { -1.0 } else { 1.0 }
}

/// Table entries for this family.
pub(crate) const TRAITS: &[TypeTraits] = &[
    TypeTraits {
        ty: TensorType::IQ2_XXS,
        to_f32: dequantize_row_iq2_xxs,
        from_f32: None,
        vec_dot: Some(vec_dot_iq2_xxs_q8_k),
        vec_dot_type: TensorType::Q8_K,
    },
    TypeTraits {
        ty: TensorType::IQ2_XS,
        to_f32: dequantize_row_iq2_xs,
        from_f32: None,
        vec_dot: Some(vec_dot_iq2_xs_q8_k),
        vec_dot_type: TensorType::Q8_K,
    },
    TypeTraits {
        ty: TensorType::IQ2_S,
        to_f32: dequantize_row_iq2_s,
        from_f32: None,
        vec_dot: Some(vec_dot_iq2_s_q8_k),
        vec_dot_type: TensorType::Q8_K,
    },
    TypeTraits {
        ty: TensorType::IQ3_XXS,
        to_f32: dequantize_row_iq3_xxs,
        from_f32: None,
        vec_dot: Some(vec_dot_iq3_xxs_q8_k),
        vec_dot_type: TensorType::Q8_K,
    },
    TypeTraits {
        ty: TensorType::IQ3_S,
        to_f32: dequantize_row_iq3_s,
        from_f32: None,
        vec_dot: Some(vec_dot_iq3_s_q8_k),
        vec_dot_type: TensorType::Q8_K,
    },
    TypeTraits {
        ty: TensorType::IQ1_S,
        to_f32: dequantize_row_iq1_s,
        from_f32: None,
        vec_dot: Some(vec_dot_iq1_s_q8_k),
        vec_dot_type: TensorType::Q8_K,
    },
    TypeTraits {
        ty: TensorType::IQ1_M,
        to_f32: dequantize_row_iq1_m,
        from_f32: None,
        vec_dot: Some(vec_dot_iq1_m_q8_k),
        vec_dot_type: TensorType::Q8_K,
    },
    TypeTraits {
        ty: TensorType::IQ4_NL,
        to_f32: dequantize_row_iq4_nl,
        from_f32: Some(quantize_iq4_nl),
        vec_dot: Some(vec_dot_iq4_nl_q8_0),
        vec_dot_type: TensorType::Q8_0,
    },
    TypeTraits {
        ty: TensorType::IQ4_XS,
        to_f32: dequantize_row_iq4_xs,
        from_f32: Some(quantize_row_iq4_xs_ref),
        vec_dot: Some(vec_dot_iq4_xs_q8_k),
        vec_dot_type: TensorType::Q8_K,
    },
];
