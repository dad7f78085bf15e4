//! The per-format table of kernels (ggml's `type_traits`), and checked entry points.

use std::sync::OnceLock;

use gguf::TensorType;

use crate::formats;
use crate::simd::{self, Cpu, cpu_level};

/// Dequantize `src` (whole blocks) into `dst` (`block_size` f32 per block).
pub type ToF32Fn = fn(src: &[u8], dst: &mut [f32]);
/// Quantize `src` (a multiple of `block_size` values) into `dst` (whole blocks).
pub type FromF32Fn = fn(src: &[f32], dst: &mut [u8]);
/// Dot product of `n` elements: `x` in the weight format, `y` in `vec_dot_type`.
pub type VecDotFn = fn(n: usize, x: &[u8], y: &[u8]) -> f32;

/// What hearth knows how to do with one tensor format.
#[derive(Clone, Copy, Debug)]
pub struct TypeTraits {
    /// The format these kernels are for.
    pub ty: TensorType,
    /// Dequantizer; every format has one.
    pub to_f32: ToF32Fn,
    /// Reference quantizer, bit-exact with what llama-quantize writes for this format
    /// without an importance matrix (ggml's `ggml_quantize_chunk`); `None` where ggml
    /// needs an importance matrix or has no quantizer.
    pub from_f32: Option<FromF32Fn>,
    /// ggml-cpu's run-time activation converter (`type_traits_cpu[t].from_float`)
    /// where it rounds differently from the weight quantizer `from_f32`; `None`
    /// where the two agree. On x86 ggml converts activations to Q8_0 / Q8_1 with
    /// its AVX `quantize_row_q8_{0,1}` (scale `127/amax`, round half to even)
    /// while llama-quantize writes weights with `quantize_row_q8_{0,1}_ref`
    /// (scale `1/(amax/127)`, round half away from zero); matching the former is
    /// what keeps logits bit-for-bit on llama.cpp's path. Use
    /// [`TypeTraits::activation_quantizer`].
    pub from_f32_act: Option<FromF32Fn>,
    /// Dot product against activations quantized to `vec_dot_type`.
    pub vec_dot: Option<VecDotFn>,
    /// The activation format `vec_dot` expects for its second operand.
    pub vec_dot_type: TensorType,
}

impl TypeTraits {
    /// The converter for activations of this format (the second operand of a
    /// matmul): `from_f32_act` where ggml-cpu has its own, else `from_f32`.
    pub fn activation_quantizer(&self) -> Option<FromF32Fn> {
        self.from_f32_act.or(self.from_f32)
    }
}

/// Misuse of the checked entry points: lengths that are not whole blocks, or a
/// format with no such kernel.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KernelError {
    /// The format has no kernels at all (integer tensors, formats not implemented).
    #[error("tensor type {0} is not supported")]
    Unsupported(TensorType),
    /// The format has no reference quantizer (ggml requires an importance matrix).
    #[error("tensor type {0} cannot be quantized without an importance matrix")]
    NoQuantizer(TensorType),
    /// An element count that is not a multiple of the block size.
    #[error("{ty}: {n} elements is not a multiple of the block size {block}")]
    PartialBlock {
        /// The format.
        ty: TensorType,
        /// Elements requested.
        n: usize,
        /// Its block size.
        block: usize,
    },
    /// A buffer whose length does not match the element count.
    #[error("{ty}: buffer holds {found} bytes, {expected} expected")]
    Length {
        /// The format.
        ty: TensorType,
        /// Bytes expected for the element count.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
}

/// One table per [`Cpu`] level, built on first use: the scalar entries with the
/// level's SIMD kernels swapped in.
static TABLES: [OnceLock<Vec<TypeTraits>>; Cpu::ALL.len()] =
    [const { OnceLock::new() }; Cpu::ALL.len()];

fn table_for(level: Cpu) -> &'static [TypeTraits] {
    TABLES[level as usize].get_or_init(|| {
        let mut t = Vec::new();
        t.extend_from_slice(formats::float::TRAITS);
        t.extend_from_slice(formats::legacy::TRAITS);
        t.extend_from_slice(formats::kquants::TRAITS);
        t.extend_from_slice(formats::iquants::TRAITS);
        t.extend_from_slice(formats::mxfp4::TRAITS);
        simd::install(level, &mut t);
        t
    })
}

/// The kernels for `ty` at the process's SIMD level ([`cpu_level`]), or `None` if
/// hearth cannot read that format.
pub fn traits(ty: TensorType) -> Option<&'static TypeTraits> {
    traits_for(cpu_level(), ty)
}

/// The kernels for `ty` at a given SIMD level (tests and benchmarks compare
/// levels), or `None` if hearth cannot read that format or this CPU cannot run
/// that level.
pub fn traits_for(level: Cpu, ty: TensorType) -> Option<&'static TypeTraits> {
    if !level.is_available() {
        return None;
    }
    table_for(level).iter().find(|t| t.ty == ty)
}

fn check(ty: TensorType, n: usize, bytes: usize) -> Result<(), KernelError> {
    let block = ty.block_size();
    if !n.is_multiple_of(block) {
        return Err(KernelError::PartialBlock { ty, n, block });
    }
    let expected = n / block * ty.type_size();
    if bytes != expected {
        return Err(KernelError::Length {
            ty,
            expected,
            found: bytes,
        });
    }
    Ok(())
}

/// Dequantize `src` (format `ty`) into `dst`, checking that the lengths agree.
pub fn dequantize(ty: TensorType, src: &[u8], dst: &mut [f32]) -> Result<(), KernelError> {
    let tr = traits(ty).ok_or(KernelError::Unsupported(ty))?;
    check(ty, dst.len(), src.len())?;
    (tr.to_f32)(src, dst);
    Ok(())
}

/// Quantize `src` into `dst` (format `ty`) with ggml's reference quantizer.
pub fn quantize(ty: TensorType, src: &[f32], dst: &mut [u8]) -> Result<(), KernelError> {
    let tr = traits(ty).ok_or(KernelError::Unsupported(ty))?;
    let q = tr.from_f32.ok_or(KernelError::NoQuantizer(ty))?;
    check(ty, src.len(), dst.len())?;
    q(src, dst);
    Ok(())
}

/// Dot product of `n` elements of `x` (format `ty`) with `y` (format
/// `traits(ty).vec_dot_type`), checking that the lengths agree.
pub fn dot(ty: TensorType, n: usize, x: &[u8], y: &[u8]) -> Result<f32, KernelError> {
    let tr = traits(ty).ok_or(KernelError::Unsupported(ty))?;
    let f = tr.vec_dot.ok_or(KernelError::Unsupported(ty))?;
    check(ty, n, x.len())?;
    check(tr.vec_dot_type, n, y.len())?;
    Ok(f(n, x, y))
}

/// An importance-weighted quantizer (ggml's `quantize_<type>` with
/// `quant_weights`): `weights` holds one importance per column of the row.
pub type WeightedFn = fn(src: &[f32], dst: &mut [u8], weights: &[f32]);

/// ggml's importance-weighted quantizer for `ty`; `None` for formats whose
/// quantizer ignores the weights (F32, F16, BF16, Q8_0, TQ1_0, TQ2_0) and for
/// those hearth has none for.
fn weighted_quantizer(ty: TensorType) -> Option<WeightedFn> {
    formats::weighted::quantizer(ty)
}

/// Whether ggml's quantizer for `ty` ignores an importance matrix.
fn ignores_weights(ty: TensorType) -> bool {
    use TensorType::*;
    matches!(ty, F32 | F16 | BF16 | Q8_0 | TQ1_0 | TQ2_0)
}

/// Whether hearth can write `ty` (with an importance matrix if `weighted`) the
/// way llama-quantize does.
pub fn can_quantize(ty: TensorType, weighted: bool) -> bool {
    if weighted && !ignores_weights(ty) {
        weighted_quantizer(ty).is_some()
    } else {
        traits(ty).is_some_and(|t| t.from_f32.is_some())
    }
}

/// Quantize one or more rows of `src` into `dst` as llama-quantize does: with
/// `weights` (one importance per column, rows of `weights.len()` values), the
/// importance-weighted quantizer; without, the reference one.
pub fn quantize_weighted(
    ty: TensorType,
    src: &[f32],
    dst: &mut [u8],
    weights: Option<&[f32]>,
) -> Result<(), KernelError> {
    let Some(w) = weights.filter(|_| !ignores_weights(ty)) else {
        return quantize(ty, src, dst);
    };
    let q = weighted_quantizer(ty).ok_or(KernelError::NoQuantizer(ty))?;
    check(ty, src.len(), dst.len())?;
    if w.is_empty()
        || !src.len().is_multiple_of(w.len())
        || !w.len().is_multiple_of(ty.block_size())
    {
        return Err(KernelError::PartialBlock {
            ty,
            n: w.len(),
            block: ty.block_size(),
        });
    }
    let row_bytes = w.len() / ty.block_size() * ty.type_size();
    for (x, out) in src
        .chunks_exact(w.len())
        .zip(dst.chunks_exact_mut(row_bytes))
    {
        q(x, out, w);
    }
    Ok(())
}
