//! Scalar reference dot products of the grid i-quants against Q8_K activations,
//! transliterated from ggml-cpu/quants.c `ggml_vec_dot_iq*_q8_K_generic`: the same
//! integer sums and the same float operations in the same order.
//!
//! The activation blocks are read by byte offset rather than through the Q8_0 / Q8_K
//! block structs (which live with the legacy and k-quant formats), so this family
//! depends only on the layouts ggml-common.h fixes: `block_q8_0` is an f16 `d` then
//! 32 `i8`; `block_q8_K` is an f32 `d`, 256 `i8` and 16 `i16` group sums.

use super::blocks::{
    BlockIq1M, BlockIq1S, BlockIq2S, BlockIq2Xs, BlockIq2Xxs, BlockIq3S, BlockIq3Xxs, blocks,
};
use super::dequant::{iq1_grid, iq1m_group, iq1m_scale, iq2s_index, iq3s_indices, iq3xxs_aux};
use super::grids::{IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KSIGNS_IQ2XS};
use super::{IQ1_DELTA, QK_K};
use crate::formats::float::f16_to_f32;

/// Bytes of one `block_q8_0` (32 activations).
pub(super) const Q8_0_BYTES: usize = 2 + 32;
/// Bytes of one `block_q8_K` (256 activations).
pub(super) const Q8_K_BYTES: usize = 4 + QK_K + 2 * (QK_K / 16);

/// One activation block, Q8_0 or Q8_K, seen through its byte layout.
pub(super) struct Q8View<'a> {
    /// The block scale.
    pub(super) d: f32,
    /// The quants (`i8` stored as bytes).
    qs: &'a [u8],
    /// Q8_K only: sums of each 16 quants (little-endian `i16`).
    bsums: &'a [u8],
}

impl<'a> Q8View<'a> {
    /// A `block_q8_0`: f16 `d`, 32 `i8`.
    pub(super) fn q8_0(b: &'a [u8]) -> Self {
        Self {
            d: f16_to_f32(u16::from_le_bytes([b[0], b[1]])),
            qs: &b[2..Q8_0_BYTES],
            bsums: &[],
        }
    }

    /// A `block_q8_K`: f32 `d`, 256 `i8`, 16 `i16` sums.
    pub(super) fn q8_k(b: &'a [u8]) -> Self {
        Self {
            d: f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            qs: &b[4..4 + QK_K],
            bsums: &b[4 + QK_K..Q8_K_BYTES],
        }
    }

    /// Quant `i`.
    #[inline]
    pub(super) fn q(&self, i: usize) -> i32 {
        i32::from(self.qs[i] as i8)
    }

    /// Stored sum of quants `16 i .. 16 i + 16`.
    fn bsum(&self, i: usize) -> i32 {
        i32::from(i16::from_le_bytes([
            self.bsums[2 * i],
            self.bsums[2 * i + 1],
        ]))
    }
}

fn q8k_blocks(y: &[u8]) -> impl Iterator<Item = Q8View<'_>> {
    y.chunks_exact(Q8_K_BYTES).map(Q8View::q8_k)
}

/// `Σ grid[j] · q8[at + j] · ±1` over 8 weights with sign byte `signs`.
#[inline]
fn signed_sum8(grid: [u8; 8], signs: u8, y: &Q8View<'_>, at: usize) -> i32 {
    (0..8)
        .map(|j| {
            let s = if signs & (1 << j) != 0 { -1 } else { 1 };
            i32::from(grid[j]) * y.q(at + j) * s
        })
        .sum()
}

/// Two IQ3 half-points (4 weights each) as one group of 8 grid bytes.
#[inline]
fn join4(a: u32, b: u32) -> [u8; 8] {
    (u64::from(a) | (u64::from(b) << 32)).to_le_bytes()
}

/// IQ2_XXS · Q8_K (ggml_vec_dot_iq2_xxs_q8_K_generic).
pub fn vec_dot_iq2_xxs_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let mut sumf = 0f32;
    for (xb, yb) in blocks::<BlockIq2Xxs>(x).zip(q8k_blocks(y)).take(n / QK_K) {
        let d = f16_to_f32(xb.d) * yb.d;
        let mut bsum = 0i32;
        for ib32 in 0..QK_K / 32 {
            let q = &xb.qs[4 * ib32..4 * ib32 + 4];
            let idx = (u32::from(q[0]) | u32::from(q[1]) << 16).to_le_bytes();
            let aux1 = u32::from(q[2]) | u32::from(q[3]) << 16;
            let ls = 2 * (aux1 >> 28) as i32 + 1;
            let mut sumi = 0i32;
            for l in 0..4 {
                let grid = IQ2XXS_GRID[usize::from(idx[l])].to_le_bytes();
                let signs = KSIGNS_IQ2XS[((aux1 >> (7 * l)) & 127) as usize];
                sumi += signed_sum8(grid, signs, &yb, 32 * ib32 + 8 * l);
            }
            bsum += sumi * ls;
        }
        sumf += d * bsum as f32;
    }
    0.125 * sumf
}

/// IQ2_XS · Q8_K (ggml_vec_dot_iq2_xs_q8_K_generic).
pub fn vec_dot_iq2_xs_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let mut sumf = 0f32;
    for (xb, yb) in blocks::<BlockIq2Xs>(x).zip(q8k_blocks(y)).take(n / QK_K) {
        let d = f16_to_f32(xb.d) * yb.d;
        let mut bsum = 0i32;
        for ib32 in 0..QK_K / 32 {
            let sc = xb.scales[ib32];
            let ls = [2 * i32::from(sc & 0xf) + 1, 2 * i32::from(sc >> 4) + 1];
            for (half, ls) in ls.into_iter().enumerate() {
                let mut sumi = 0i32;
                for l in 2 * half..2 * half + 2 {
                    let q = xb.qs[4 * ib32 + l];
                    let grid = IQ2XS_GRID[usize::from(q & 511)].to_le_bytes();
                    let signs = KSIGNS_IQ2XS[usize::from(q >> 9)];
                    sumi += signed_sum8(grid, signs, &yb, 32 * ib32 + 8 * l);
                }
                bsum += sumi * ls;
            }
        }
        sumf += d * bsum as f32;
    }
    0.125 * sumf
}

/// IQ2_S · Q8_K (ggml_vec_dot_iq2_s_q8_K_generic).
pub fn vec_dot_iq2_s_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let mut sumf = 0f32;
    for (xb, yb) in blocks::<BlockIq2S>(x).zip(q8k_blocks(y)).take(n / QK_K) {
        let d = f16_to_f32(xb.d) * yb.d;
        let (qs, signs) = xb.qs.split_at(QK_K / 8);
        let mut bsum = 0i32;
        for ib32 in 0..QK_K / 32 {
            let sc = xb.scales[ib32];
            let ls1 = 1 + 2 * i32::from(sc & 0xf);
            let ls2 = 1 + 2 * i32::from(sc >> 4);
            let mut sumi = [0i32; 2];
            for l in 0..4 {
                let index = iq2s_index(qs[4 * ib32 + l], xb.qh[ib32], l);
                let grid = IQ2S_GRID[index].to_le_bytes();
                sumi[l / 2] += signed_sum8(grid, signs[4 * ib32 + l], &yb, 32 * ib32 + 8 * l);
            }
            bsum += ls1 * sumi[0] + ls2 * sumi[1];
        }
        sumf += d * bsum as f32;
    }
    0.125 * sumf
}

/// IQ3_XXS · Q8_K (ggml_vec_dot_iq3_xxs_q8_K_generic).
pub fn vec_dot_iq3_xxs_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let mut sumf = 0f32;
    for (xb, yb) in blocks::<BlockIq3Xxs>(x).zip(q8k_blocks(y)).take(n / QK_K) {
        let d = f16_to_f32(xb.d) * yb.d;
        let (q3, gas) = xb.qs.split_at(QK_K / 4);
        let mut bsum = 0i32;
        for ib32 in 0..QK_K / 32 {
            let aux = iq3xxs_aux(gas, ib32);
            let ls = 2 * (aux >> 28) as i32 + 1;
            let q = &q3[8 * ib32..8 * ib32 + 8];
            let mut sumi = 0i32;
            for l in 0..4 {
                let grid = join4(
                    IQ3XXS_GRID[usize::from(q[2 * l])],
                    IQ3XXS_GRID[usize::from(q[2 * l + 1])],
                );
                let signs = KSIGNS_IQ2XS[((aux >> (7 * l)) & 127) as usize];
                sumi += signed_sum8(grid, signs, &yb, 32 * ib32 + 8 * l);
            }
            bsum += sumi * ls;
        }
        sumf += d * bsum as f32;
    }
    0.25 * sumf
}

/// IQ3_S · Q8_K (ggml_vec_dot_iq3_s_q8_K_generic).
pub fn vec_dot_iq3_s_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let mut sumf = 0f32;
    for (xb, yb) in blocks::<BlockIq3S>(x).zip(q8k_blocks(y)).take(n / QK_K) {
        let d = f16_to_f32(xb.d) * yb.d;
        let mut bsum = 0i32;
        for ib32 in 0..QK_K / 32 {
            let sc = xb.scales[ib32 / 2] >> (4 * (ib32 % 2));
            let ls = 2 * i32::from(sc & 0xf) + 1;
            let qs = &xb.qs[8 * ib32..8 * ib32 + 8];
            let mut sumi = 0i32;
            for l in 0..4 {
                let (i1, i2) = iq3s_indices(qs, xb.qh[ib32], l);
                let grid = join4(IQ3S_GRID[i1], IQ3S_GRID[i2]);
                sumi += signed_sum8(grid, xb.signs[4 * ib32 + l], &yb, 32 * ib32 + 8 * l);
            }
            bsum += sumi * ls;
        }
        sumf += d * bsum as f32;
    }
    sumf
}

/// `Σ grid[j] · q8[at + j]` over 8 ternary weights.
#[inline]
fn ternary_sum8(grid: [i8; 8], y: &Q8View<'_>, at: usize) -> i32 {
    (0..8).map(|j| y.q(at + j) * i32::from(grid[j])).sum()
}

/// IQ1_S · Q8_K (ggml_vec_dot_iq1_s_q8_K_generic); the delta term uses the Q8_K
/// group sums.
pub fn vec_dot_iq1_s_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let mut sumf = 0f32;
    for (xb, yb) in blocks::<BlockIq1S>(x).zip(q8k_blocks(y)).take(n / QK_K) {
        let (mut sumi, mut sumi1) = (0i32, 0i32);
        for ib in 0..QK_K / 32 {
            let qh = xb.qh[ib];
            let ls = 2 * i32::from((qh >> 12) & 7) + 1;
            let delta = if qh & 0x8000 != 0 { -1 } else { 1 };
            let mut lsum = 0i32;
            for l in 0..4 {
                let index =
                    usize::from(xb.qs[4 * ib + l]) | (usize::from((qh >> (3 * l)) & 7) << 8);
                lsum += ternary_sum8(iq1_grid(index), &yb, 32 * ib + 8 * l);
            }
            sumi += ls * lsum;
            sumi1 += ls * delta * (yb.bsum(2 * ib) + yb.bsum(2 * ib + 1));
        }
        sumf += f16_to_f32(xb.d) * yb.d * (sumi as f32 + IQ1_DELTA * sumi1 as f32);
    }
    sumf
}

/// IQ1_M · Q8_K (ggml_vec_dot_iq1_m_q8_K_generic).
pub fn vec_dot_iq1_m_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let mut sumf = 0f32;
    for (xb, yb) in blocks::<BlockIq1M>(x).zip(q8k_blocks(y)).take(n / QK_K) {
        let sc = xb.scale_words();
        let (mut sumi1, mut sumi2) = (0i32, 0i32);
        for ib in 0..QK_K / 32 {
            let qs = &xb.qs[4 * ib..4 * ib + 4];
            let qh = &xb.qh[2 * ib..2 * ib + 2];
            let (mut sum1, mut sum2) = ([0i32; 2], [0i32; 2]);
            for l in 0..4 {
                let (index, negative) = iq1m_group(qs, qh, l);
                let at = 32 * ib + 8 * l;
                let lsum2: i32 = (0..8).map(|j| yb.q(at + j)).sum();
                sum1[l / 2] += ternary_sum8(iq1_grid(index), &yb, at);
                sum2[l / 2] += if negative { -lsum2 } else { lsum2 };
            }
            let ls1 = iq1m_scale(&sc, ib, 0);
            let ls2 = iq1m_scale(&sc, ib, 1);
            sumi1 += sum1[0] * ls1 + sum1[1] * ls2;
            sumi2 += sum2[0] * ls1 + sum2[1] * ls2;
        }
        sumf += f16_to_f32(xb.d()) * yb.d * (sumi1 as f32 + IQ1_DELTA * sumi2 as f32);
    }
    sumf
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{Rng, assert_dot_close, q8_k, random_blocks};
    use super::super::{
        dequantize_row_iq1_m, dequantize_row_iq1_s, dequantize_row_iq2_s, dequantize_row_iq2_xs,
        dequantize_row_iq2_xxs, dequantize_row_iq3_s, dequantize_row_iq3_xxs,
    };
    use super::*;

    type Kernels = (
        &'static str,
        usize,
        bool,
        fn(&[u8], &mut [f32]),
        fn(usize, &[u8], &[u8]) -> f32,
    );

    /// Random blocks (every grid index, sign and scale bit pattern is possible)
    /// against random Q8_K activations: the integer kernels equal f32 math on the
    /// dequantized weights.
    #[test]
    fn dots_match_f32_math_on_dequantized_weights() {
        let formats: [Kernels; 7] = [
            (
                "iq2_xxs",
                66,
                true,
                dequantize_row_iq2_xxs,
                vec_dot_iq2_xxs_q8_k,
            ),
            (
                "iq2_xs",
                74,
                true,
                dequantize_row_iq2_xs,
                vec_dot_iq2_xs_q8_k,
            ),
            ("iq2_s", 82, true, dequantize_row_iq2_s, vec_dot_iq2_s_q8_k),
            (
                "iq3_xxs",
                98,
                true,
                dequantize_row_iq3_xxs,
                vec_dot_iq3_xxs_q8_k,
            ),
            ("iq3_s", 110, true, dequantize_row_iq3_s, vec_dot_iq3_s_q8_k),
            ("iq1_s", 50, true, dequantize_row_iq1_s, vec_dot_iq1_s_q8_k),
            ("iq1_m", 56, false, dequantize_row_iq1_m, vec_dot_iq1_m_q8_k),
        ];
        let mut rng = Rng::new(42);
        let n = 8 * QK_K;
        for (name, bytes, d_at_0, dequantize, dot) in formats {
            let mut x = random_blocks(&mut rng, n / QK_K, bytes, d_at_0);
            if !d_at_0 {
                // IQ1_M: keep the f16 scale (top nibbles of the scale words) finite.
                for b in x.chunks_exact_mut(bytes) {
                    b[bytes - 1] &= 0x3f;
                }
            }
            let (y, a) = q8_k(&mut rng, n);
            let mut w = vec![0f32; n];
            dequantize(&x, &mut w);
            assert_dot_close(name, dot(n, &x, &y), &w, &a);
        }
    }

    #[test]
    fn only_the_first_n_weights_count() {
        let mut rng = Rng::new(3);
        let x = random_blocks(&mut rng, 2, 66, true);
        let (y, _) = q8_k(&mut rng, 2 * QK_K);
        let one = vec_dot_iq2_xxs_q8_k(QK_K, &x, &y);
        assert_eq!(one, vec_dot_iq2_xxs_q8_k(QK_K, &x[..66], &y[..Q8_K_BYTES]));
    }
}
