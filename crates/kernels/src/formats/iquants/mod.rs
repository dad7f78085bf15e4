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
    TILED_MIN_BATCH, dequantize_row_iq4_nl, dequantize_row_iq4_xs, quantize_iq4_nl,
    quantize_iq4_nl_weighted, quantize_iq4_xs_weighted, quantize_row_iq4_nl_ref,
    quantize_row_iq4_xs_ref, vec_dot_iq4_nl_q8_0, vec_dot_iq4_xs_q8_k, vec_dot_iq4_xs_q8_k_tiled,
};
// Grid tables the x86 SIMD kernels (crate::simd) index too.
#[cfg(target_arch = "x86_64")]
pub(crate) use grid_iq1s::IQ1S_GRID;
#[cfg(target_arch = "x86_64")]
pub(crate) use grids::{
    IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KSIGNS_IQ2XS, KVALUES_IQ4NL,
};

/// Weights per super-block of the 256-wide formats (ggml's `QK_K`).
const QK_K: usize = 256;

/// The offset IQ1_S and IQ1_M add to their ternary grid values, signed per group
/// (ggml-common.h, `IQ1S_DELTA` = `IQ1M_DELTA`).
pub(crate) const IQ1_DELTA: f32 = 0.125;

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
        from_f32_act: None,
        vec_dot: Some(vec_dot_iq2_xxs_q8_k),
        vec_dot_type: TensorType::Q8_K,
    },
    TypeTraits {
        ty: TensorType::IQ2_XS,
        to_f32: dequantize_row_iq2_xs,
        from_f32: None,
        from_f32_act: None,
        vec_dot: Some(vec_dot_iq2_xs_q8_k),
        vec_dot_type: TensorType::Q8_K,
    },
    TypeTraits {
        ty: TensorType::IQ2_S,
        to_f32: dequantize_row_iq2_s,
        from_f32: None,
        from_f32_act: None,
        vec_dot: Some(vec_dot_iq2_s_q8_k),
        vec_dot_type: TensorType::Q8_K,
    },
    TypeTraits {
        ty: TensorType::IQ3_XXS,
        to_f32: dequantize_row_iq3_xxs,
        from_f32: None,
        from_f32_act: None,
        vec_dot: Some(vec_dot_iq3_xxs_q8_k),
        vec_dot_type: TensorType::Q8_K,
    },
    TypeTraits {
        ty: TensorType::IQ3_S,
        to_f32: dequantize_row_iq3_s,
        from_f32: None,
        from_f32_act: None,
        vec_dot: Some(vec_dot_iq3_s_q8_k),
        vec_dot_type: TensorType::Q8_K,
    },
    TypeTraits {
        ty: TensorType::IQ1_S,
        to_f32: dequantize_row_iq1_s,
        from_f32: None,
        from_f32_act: None,
        vec_dot: Some(vec_dot_iq1_s_q8_k),
        vec_dot_type: TensorType::Q8_K,
    },
    TypeTraits {
        ty: TensorType::IQ1_M,
        to_f32: dequantize_row_iq1_m,
        from_f32: None,
        from_f32_act: None,
        vec_dot: Some(vec_dot_iq1_m_q8_k),
        vec_dot_type: TensorType::Q8_K,
    },
    TypeTraits {
        ty: TensorType::IQ4_NL,
        to_f32: dequantize_row_iq4_nl,
        from_f32: Some(quantize_iq4_nl),
        from_f32_act: None,
        vec_dot: Some(vec_dot_iq4_nl_q8_0),
        vec_dot_type: TensorType::Q8_0,
    },
    TypeTraits {
        ty: TensorType::IQ4_XS,
        to_f32: dequantize_row_iq4_xs,
        from_f32: Some(quantize_row_iq4_xs_ref),
        from_f32_act: None,
        vec_dot: Some(vec_dot_iq4_xs_q8_k),
        vec_dot_type: TensorType::Q8_K,
    },
];

#[cfg(test)]
pub(super) mod testutil {
    //! Deterministic random blocks and activations for the unit tests.

    use crate::formats::float::f32_to_f16;

    /// Dot products against exact f32 math may differ by a few roundings per
    /// block: the per-block scale products and the running f32 sum.
    pub const DOT_TOL: f64 = 1e-5;

    /// splitmix64: small, deterministic, good enough for test data.
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Self {
            Self(seed)
        }

        pub fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform in [lo, hi).
        pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
            lo + (hi - lo) * ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
        }

        /// Approximately standard normal (sum of 12 uniforms).
        pub fn normal(&mut self) -> f32 {
            (0..12).map(|_| self.uniform(0.0, 1.0)).sum::<f32>() - 6.0
        }

        /// A Q8 quant, uniform in -127..=127.
        pub fn quant(&mut self) -> i8 {
            ((self.next_u64() % 255) as i32 - 127) as i8
        }

        pub fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next_u64() as u8).collect()
        }
    }

    /// `n_blocks` blocks of random bytes whose f16 scale at byte 0 (if `d_at_0`)
    /// is a random value of magnitude in [0.01, 2).
    pub fn random_blocks(rng: &mut Rng, n_blocks: usize, bytes: usize, d_at_0: bool) -> Vec<u8> {
        let mut v = rng.bytes(n_blocks * bytes);
        if d_at_0 {
            for b in v.chunks_exact_mut(bytes) {
                let d = rng.uniform(0.01, 2.0) * if rng.next_u64() & 1 == 0 { 1.0 } else { -1.0 };
                b[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
            }
        }
        v
    }

    /// Random Q8_K activations for `n` values: the block bytes and their exact
    /// f32 values.
    pub fn q8_k(rng: &mut Rng, n: usize) -> (Vec<u8>, Vec<f32>) {
        let (mut bytes, mut values) = (Vec::new(), Vec::new());
        for _ in 0..n / 256 {
            let d = rng.uniform(0.001, 0.1);
            let qs: Vec<i8> = (0..256).map(|_| rng.quant()).collect();
            bytes.extend_from_slice(&d.to_le_bytes());
            bytes.extend(qs.iter().map(|&q| q as u8));
            for g in qs.chunks_exact(16) {
                let s: i16 = g.iter().map(|&q| i16::from(q)).sum();
                bytes.extend_from_slice(&s.to_le_bytes());
            }
            values.extend(qs.iter().map(|&q| d * f32::from(q)));
        }
        (bytes, values)
    }

    /// Random Q8_0 activations for `n` values: the block bytes and their exact
    /// f32 values.
    pub fn q8_0(rng: &mut Rng, n: usize) -> (Vec<u8>, Vec<f32>) {
        let (mut bytes, mut values) = (Vec::new(), Vec::new());
        for _ in 0..n / 32 {
            let h = f32_to_f16(rng.uniform(0.001, 0.1));
            let d = crate::formats::float::f16_to_f32(h);
            bytes.extend_from_slice(&h.to_le_bytes());
            for _ in 0..32 {
                let q = rng.quant();
                bytes.push(q as u8);
                values.push(d * f32::from(q));
            }
        }
        (bytes, values)
    }

    /// Assert that `got` is the dot product of `x` and `a` within [`DOT_TOL`] of
    /// the sum of the magnitudes of the terms.
    pub fn assert_dot_close(what: &str, got: f32, x: &[f32], a: &[f32]) {
        let exact: f64 = x
            .iter()
            .zip(a)
            .map(|(&x, &a)| f64::from(x) * f64::from(a))
            .sum();
        let scale: f64 = x
            .iter()
            .zip(a)
            .map(|(&x, &a)| (f64::from(x) * f64::from(a)).abs())
            .sum();
        let err = (f64::from(got) - exact).abs();
        assert!(
            err <= DOT_TOL * scale,
            "{what}: dot {got}, f32 math {exact} (scale {scale})"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::blocks::ReadBlock;
    use super::grid_iq1s::IQ1S_GRID;
    use super::grids::*;
    use super::*;

    fn bytes_of(grid: &[u64]) -> impl Iterator<Item = u8> + '_ {
        grid.iter().flat_map(|p| p.to_le_bytes())
    }

    #[test]
    fn block_sizes_match_the_tensor_types() {
        let sizes = [
            (TensorType::IQ2_XXS, BlockIq2Xxs::BYTES),
            (TensorType::IQ2_XS, BlockIq2Xs::BYTES),
            (TensorType::IQ2_S, BlockIq2S::BYTES),
            (TensorType::IQ3_XXS, BlockIq3Xxs::BYTES),
            (TensorType::IQ3_S, BlockIq3S::BYTES),
            (TensorType::IQ1_S, BlockIq1S::BYTES),
            (TensorType::IQ1_M, BlockIq1M::BYTES),
            (TensorType::IQ4_NL, BlockIq4Nl::BYTES),
            (TensorType::IQ4_XS, BlockIq4Xs::BYTES),
        ];
        assert_eq!(TRAITS.len(), sizes.len());
        for (ty, bytes) in sizes {
            assert_eq!(ty.type_size(), bytes, "{ty}");
            assert!(TRAITS.iter().any(|t| t.ty == ty), "{ty} has no table entry");
        }
    }

    // The generated tables hold the levels the formats are defined with
    // (ggml-quants.c, iq2xs_init_impl / iq3xs_init_impl: grid coordinates 2k+1
    // scaled), so a mis-parsed table fails here.
    #[test]
    fn iq2_grids_use_the_three_iq2_magnitudes() {
        for grid in [&IQ2XXS_GRID[..], &IQ2XS_GRID[..], &IQ2S_GRID[..]] {
            assert!(bytes_of(grid).all(|b| [0x08, 0x19, 0x2b].contains(&b)));
        }
        assert_eq!(IQ2XXS_GRID[0], 0x0808_0808_0808_0808);
    }

    #[test]
    fn iq3_grids_use_odd_magnitudes() {
        let xxs: Vec<u8> = IQ3XXS_GRID.iter().flat_map(|p| p.to_le_bytes()).collect();
        assert!(
            xxs.iter()
                .all(|&b| [4, 12, 20, 28, 36, 44, 52, 62].contains(&b))
        );
        let s: Vec<u8> = IQ3S_GRID.iter().flat_map(|p| p.to_le_bytes()).collect();
        assert!(s.iter().all(|&b| b % 2 == 1 && b <= 15));
    }

    #[test]
    fn iq1_grid_is_ternary_and_distinct() {
        assert!(bytes_of(&IQ1S_GRID).all(|b| matches!(b as i8, -1..=1)));
        let mut sorted = IQ1S_GRID.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), IQ1S_GRID.len());
    }

    #[test]
    fn ksigns_keep_the_stored_bits_and_even_parity() {
        for (i, &s) in KSIGNS_IQ2XS.iter().enumerate() {
            assert_eq!(usize::from(s & 0x7f), i);
            assert_eq!(s.count_ones() % 2, 0);
        }
    }

    #[test]
    fn iq4_levels_ascend() {
        assert!(KVALUES_IQ4NL.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn checked_entry_points_reach_these_kernels() {
        let src = [0.5f32; 256];
        let mut q = vec![0u8; TensorType::IQ4_XS.type_size()];
        crate::quantize(TensorType::IQ4_XS, &src, &mut q).unwrap();
        let mut back = [0f32; 256];
        crate::dequantize(TensorType::IQ4_XS, &q, &mut back).unwrap();
        assert!(back.iter().all(|&v| (v - 0.5).abs() < 0.05));
        assert_eq!(
            crate::quantize(TensorType::IQ2_XXS, &src, &mut [0u8; 66]),
            Err(crate::KernelError::NoQuantizer(TensorType::IQ2_XXS))
        );
    }
}
