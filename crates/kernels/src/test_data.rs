//! Inputs shared by the unit tests of the matrix kernels.

use gguf::TensorType;

/// A deterministic pseudo-random sequence in [-1, 1).
pub(crate) fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// `x` quantized to `ty` (whole rows of `x.len()` values).
pub(crate) fn quantized(ty: TensorType, x: &[f32]) -> Vec<u8> {
    let mut q = vec![0u8; ty.row_size(x.len() as u64).unwrap() as usize];
    crate::quantize(ty, x, &mut q).unwrap();
    q
}
