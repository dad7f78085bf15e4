//! Dequantizers of the grid-based i-quants (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS,
//! IQ3_S, IQ1_S, IQ1_M), transliterated from ggml-quants.c `dequantize_row_iq*`
//! with the same float operations in the same order, so results are bit-identical.

use super::blocks::{
    BlockIq1M, BlockIq1S, BlockIq2S, BlockIq2Xs, BlockIq2Xxs, BlockIq3S, BlockIq3Xxs, blocks,
};
use super::grid_iq1s::IQ1S_GRID;
use super::grids::{IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KSIGNS_IQ2XS};
use super::{IQ1_DELTA, QK_K, sign};
use crate::formats::float::f16_to_f32;

/// The 8 bytes of a grid point (ggml reads the u64 as bytes on a little-endian host).
fn grid8(point: u64) -> [u8; 8] {
    point.to_le_bytes()
}

/// The 4 bytes of an IQ3 grid point.
fn grid4(point: u32) -> [u8; 4] {
    point.to_le_bytes()
}

/// The sign byte of 8 weights from 7 stored bits (`ksigns_iq2xs`).
fn ksigns(bits: u32) -> u8 {
    KSIGNS_IQ2XS[(bits & 127) as usize]
}

/// IQ2_XXS row → f32 (ggml-quants.c, dequantize_row_iq2_xxs).
pub fn dequantize_row_iq2_xxs(src: &[u8], dst: &mut [f32]) {
    for (blk, y) in blocks::<BlockIq2Xxs>(src).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(blk.d);
        for (ib32, y) in y.chunks_exact_mut(32).enumerate() {
            let q = &blk.qs[4 * ib32..4 * ib32 + 4];
            let idx = (u32::from(q[0]) | u32::from(q[1]) << 16).to_le_bytes();
            let aux1 = u32::from(q[2]) | u32::from(q[3]) << 16;
            let db = d * (0.5 + (aux1 >> 28) as f32) * 0.25;
            for (l, y) in y.chunks_exact_mut(8).enumerate() {
                let grid = grid8(IQ2XXS_GRID[usize::from(idx[l])]);
                let signs = ksigns(aux1 >> (7 * l));
                for j in 0..8 {
                    y[j] = db * f32::from(grid[j]) * sign(signs, j);
                }
            }
        }
    }
}

/// IQ2_XS row → f32 (ggml-quants.c, dequantize_row_iq2_xs).
pub fn dequantize_row_iq2_xs(src: &[u8], dst: &mut [f32]) {
    for (blk, y) in blocks::<BlockIq2Xs>(src).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(blk.d);
        for (ib32, y) in y.chunks_exact_mut(32).enumerate() {
            let sc = blk.scales[ib32];
            let db = [
                d * (0.5 + f32::from(sc & 0xf)) * 0.25,
                d * (0.5 + f32::from(sc >> 4)) * 0.25,
            ];
            for (l, y) in y.chunks_exact_mut(8).enumerate() {
                let q = blk.qs[4 * ib32 + l];
                let grid = grid8(IQ2XS_GRID[usize::from(q & 511)]);
                let signs = ksigns(u32::from(q >> 9));
                for j in 0..8 {
                    y[j] = db[l / 2] * f32::from(grid[j]) * sign(signs, j);
                }
            }
        }
    }
}

/// IQ2_S row → f32 (ggml-quants.c, dequantize_row_iq2_s).
pub fn dequantize_row_iq2_s(src: &[u8], dst: &mut [f32]) {
    for (blk, y) in blocks::<BlockIq2S>(src).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(blk.d);
        let (qs, signs) = blk.qs.split_at(QK_K / 8);
        for (ib32, y) in y.chunks_exact_mut(32).enumerate() {
            let sc = blk.scales[ib32];
            let db = [
                d * (0.5 + f32::from(sc & 0xf)) * 0.25,
                d * (0.5 + f32::from(sc >> 4)) * 0.25,
            ];
            for (l, y) in y.chunks_exact_mut(8).enumerate() {
                let index = iq2s_index(qs[4 * ib32 + l], blk.qh[ib32], l);
                let grid = grid8(IQ2S_GRID[index]);
                let s = signs[4 * ib32 + l];
                for j in 0..8 {
                    y[j] = db[l / 2] * f32::from(grid[j]) * sign(s, j);
                }
            }
        }
    }
}

/// IQ2_S grid index of 8-weight group `l` (0..4): 8 low bits and 2 bits from `qh`.
pub(super) fn iq2s_index(low: u8, qh: u8, l: usize) -> usize {
    usize::from(low) | ((usize::from(qh) << (8 - 2 * l)) & 0x300)
}

/// IQ3_XXS row → f32 (ggml-quants.c, dequantize_row_iq3_xxs).
pub fn dequantize_row_iq3_xxs(src: &[u8], dst: &mut [f32]) {
    for (blk, y) in blocks::<BlockIq3Xxs>(src).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(blk.d);
        let (qs, scales_and_signs) = blk.qs.split_at(QK_K / 4);
        for (ib32, y) in y.chunks_exact_mut(32).enumerate() {
            let aux = iq3xxs_aux(scales_and_signs, ib32);
            let db = d * (0.5 + (aux >> 28) as f32) * 0.5;
            let q = &qs[8 * ib32..8 * ib32 + 8];
            for (l, y) in y.chunks_exact_mut(8).enumerate() {
                let signs = ksigns(aux >> (7 * l));
                let grid1 = grid4(IQ3XXS_GRID[usize::from(q[2 * l])]);
                let grid2 = grid4(IQ3XXS_GRID[usize::from(q[2 * l + 1])]);
                for j in 0..4 {
                    y[j] = db * f32::from(grid1[j]) * sign(signs, j);
                    y[j + 4] = db * f32::from(grid2[j]) * sign(signs, j + 4);
                }
            }
        }
    }
}

/// The IQ3_XXS signs-and-scale word of group `ib32`.
pub(super) fn iq3xxs_aux(scales_and_signs: &[u8], ib32: usize) -> u32 {
    let b = &scales_and_signs[4 * ib32..4 * ib32 + 4];
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// IQ3_S grid indices of the pair `l` (0..4) of 4-weight halves in a group of 32
/// whose high bits are `qh`.
pub(super) fn iq3s_indices(qs: &[u8], qh: u8, l: usize) -> (usize, usize) {
    let qh = usize::from(qh);
    (
        usize::from(qs[2 * l]) | ((qh << (8 - 2 * l)) & 256),
        usize::from(qs[2 * l + 1]) | ((qh << (7 - 2 * l)) & 256),
    )
}

/// IQ3_S row → f32 (ggml-quants.c, dequantize_row_iq3_s).
pub fn dequantize_row_iq3_s(src: &[u8], dst: &mut [f32]) {
    for (blk, y) in blocks::<BlockIq3S>(src).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(blk.d);
        for (ib32, y) in y.chunks_exact_mut(32).enumerate() {
            let sc = blk.scales[ib32 / 2] >> (4 * (ib32 % 2));
            let db = d * (1 + 2 * i32::from(sc & 0xf)) as f32;
            let qs = &blk.qs[8 * ib32..8 * ib32 + 8];
            let signs = &blk.signs[4 * ib32..4 * ib32 + 4];
            for (l, y) in y.chunks_exact_mut(8).enumerate() {
                let (i1, i2) = iq3s_indices(qs, blk.qh[ib32], l);
                let grid1 = grid4(IQ3S_GRID[i1]);
                let grid2 = grid4(IQ3S_GRID[i2]);
                for j in 0..4 {
                    y[j] = db * f32::from(grid1[j]) * sign(signs[l], j);
                    y[j + 4] = db * f32::from(grid2[j]) * sign(signs[l], j + 4);
                }
            }
        }
    }
}

/// The 8 ternary values of IQ1 grid point `index`.
pub(super) fn iq1_grid(index: usize) -> [i8; 8] {
    IQ1S_GRID[index].to_le_bytes().map(|b| b as i8)
}

/// IQ1_S row → f32 (ggml-quants.c, dequantize_row_iq1_s).
pub fn dequantize_row_iq1_s(src: &[u8], dst: &mut [f32]) {
    for (blk, y) in blocks::<BlockIq1S>(src).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(blk.d);
        for (ib, y) in y.chunks_exact_mut(32).enumerate() {
            let qh = blk.qh[ib];
            let dl = d * (2 * i32::from((qh >> 12) & 7) + 1) as f32;
            let delta = if qh & 0x8000 != 0 {
                -IQ1_DELTA
            } else {
                IQ1_DELTA
            };
            for (l, y) in y.chunks_exact_mut(8).enumerate() {
                let index =
                    usize::from(blk.qs[4 * ib + l]) | (usize::from((qh >> (3 * l)) & 7) << 8);
                let grid = iq1_grid(index);
                for j in 0..8 {
                    y[j] = dl * (f32::from(grid[j]) + delta);
                }
            }
        }
    }
}

/// IQ1_M grid index and delta sign (`true`: negative) of 8-weight group `l`
/// (0..4) in a group of 32 whose index bytes are `qs` and high bits `qh`.
pub(super) fn iq1m_group(qs: &[u8], qh: &[u8], l: usize) -> (usize, bool) {
    let h = qh[l / 2] >> (4 * (l % 2));
    let index = usize::from(qs[l]) | ((usize::from(h) << 8) & 0x700);
    (index, h & 0x08 != 0)
}

/// IQ1_M 3-bit scale of the half `half` (0 or 1) of group `ib`, as `2s + 1`.
pub(super) fn iq1m_scale(sc: &[u16; 4], ib: usize, half: usize) -> i32 {
    2 * i32::from((sc[ib / 2] >> (6 * (ib % 2) + 3 * half)) & 7) + 1
}

/// IQ1_M row → f32 (ggml-quants.c, dequantize_row_iq1_m).
pub fn dequantize_row_iq1_m(src: &[u8], dst: &mut [f32]) {
    for (blk, y) in blocks::<BlockIq1M>(src).zip(dst.chunks_exact_mut(QK_K)) {
        let sc = blk.scale_words();
        let d = f16_to_f32(blk.d());
        for (ib, y) in y.chunks_exact_mut(32).enumerate() {
            let dl = [
                d * iq1m_scale(&sc, ib, 0) as f32,
                d * iq1m_scale(&sc, ib, 1) as f32,
            ];
            let qs = &blk.qs[4 * ib..4 * ib + 4];
            let qh = &blk.qh[2 * ib..2 * ib + 2];
            for (l, y) in y.chunks_exact_mut(8).enumerate() {
                let (index, negative) = iq1m_group(qs, qh, l);
                let delta = if negative { -IQ1_DELTA } else { IQ1_DELTA };
                let grid = iq1_grid(index);
                for j in 0..8 {
                    y[j] = dl[l / 2] * (f32::from(grid[j]) + delta);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Hand-built blocks: grid point 0 of each format is a constant vector (8s
    //! for IQ2, 4s for IQ3_XXS, 1s for IQ3_S, -1s for IQ1), so the expected values
    //! follow from the scale arithmetic alone.

    use super::*;

    const ONE: [u8; 2] = [0x00, 0x3c]; // f16 1.0

    fn run(f: fn(&[u8], &mut [f32]), block: &[u8]) -> Vec<f32> {
        let mut y = vec![0f32; QK_K];
        f(block, &mut y);
        y
    }

    /// Expected group of 32: `v` everywhere except `neg` positions negated.
    fn group(v: f32, neg: &[usize]) -> Vec<f32> {
        (0..32)
            .map(|j| if neg.contains(&j) { -v } else { v })
            .collect()
    }

    #[test]
    fn iq2_xxs_scale_and_signs() {
        let mut b = [0u8; 66];
        b[..2].copy_from_slice(&ONE);
        // Group 0: grid indices 0; scale 3 and sign pattern 1 (→ ksigns 0x81).
        b[6..10].copy_from_slice(&((3u32 << 28) | 1).to_le_bytes());
        let y = run(dequantize_row_iq2_xxs, &b);
        // (0.5 + 3) · 0.25 · 8 = 7; other groups (0.5 + 0) · 0.25 · 8 = 1.
        assert_eq!(y[..32], group(7.0, &[0, 7])[..]);
        assert!(y[32..].iter().all(|&v| v == 1.0));
    }

    #[test]
    fn iq2_xs_two_scales_per_group() {
        let mut b = [0u8; 74];
        b[..2].copy_from_slice(&ONE);
        b[2..4].copy_from_slice(&(1u16 << 9).to_le_bytes()); // signs 0x81, index 0
        b[66] = 0x21; // scales 1 and 2 for group 0
        let y = run(dequantize_row_iq2_xs, &b);
        let mut want = group(3.0, &[0, 7]); // (0.5 + 1) · 0.25 · 8
        want[16..].fill(5.0); // (0.5 + 2) · 0.25 · 8
        assert_eq!(y[..32], want[..]);
        assert!(y[32..].iter().all(|&v| v == 1.0));
    }

    #[test]
    fn iq2_s_explicit_signs() {
        let mut b = [0u8; 82];
        b[..2].copy_from_slice(&ONE);
        b[2 + 32] = 0x81; // sign byte of the first 8 weights
        b[2 + 64 + 8] = 0x21;
        let y = run(dequantize_row_iq2_s, &b);
        let mut want = group(3.0, &[0, 7]);
        want[16..].fill(5.0);
        assert_eq!(y[..32], want[..]);
        assert!(y[32..].iter().all(|&v| v == 1.0));
    }

    #[test]
    fn iq3_xxs_scale_and_signs() {
        let mut b = [0u8; 98];
        b[..2].copy_from_slice(&ONE);
        b[2 + 64..2 + 68].copy_from_slice(&((1u32 << 28) | 1).to_le_bytes());
        let y = run(dequantize_row_iq3_xxs, &b);
        // (0.5 + 1) · 0.5 · 4 = 3; other groups 0.5 · 0.5 · 4 = 1.
        assert_eq!(y[..32], group(3.0, &[0, 7])[..]);
        assert!(y[32..].iter().all(|&v| v == 1.0));
    }

    #[test]
    fn iq3_s_scales_per_group_of_32() {
        let mut b = [0u8; 110];
        b[..2].copy_from_slice(&ONE);
        b[2 + 64 + 8] = 0x80; // sign of weight 7
        b[2 + 64 + 8 + 32] = 0x21; // groups 0 and 1: 1 + 2·1 = 3, 1 + 2·2 = 5
        let y = run(dequantize_row_iq3_s, &b);
        assert_eq!(y[..32], group(3.0, &[7])[..]);
        assert!(y[32..64].iter().all(|&v| v == 5.0));
        assert!(y[64..].iter().all(|&v| v == 1.0));
    }

    #[test]
    fn iq1_s_scale_and_delta_sign() {
        let mut b = [0u8; 50];
        b[..2].copy_from_slice(&ONE);
        b[34..36].copy_from_slice(&(1u16 << 12).to_le_bytes()); // group 0: scale 3
        b[36..38].copy_from_slice(&0x8000u16.to_le_bytes()); // group 1: delta −1/8
        let y = run(dequantize_row_iq1_s, &b);
        assert!(y[..32].iter().all(|&v| v == 3.0 * (-1.0 + 0.125)));
        assert!(y[32..64].iter().all(|&v| v == -1.0 - 0.125));
        assert!(y[64..].iter().all(|&v| v == -1.0 + 0.125));
    }

    #[test]
    fn iq1_m_scale_spread_over_the_scale_words() {
        let mut b = [0u8; 56];
        b[32] = 0x80; // weights 8..16: delta −1/8
        // Word 0: scales 1 and 2 for group 0 (→ 3 and 5); words 2 and 3 carry
        // the f16 1.0 (0x3c00) in their top nibbles.
        b[48..56].copy_from_slice(&[0x11, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x30]);
        let y = run(dequantize_row_iq1_m, &b);
        assert!(y[..8].iter().all(|&v| v == 3.0 * (-1.0 + 0.125)));
        assert!(y[8..16].iter().all(|&v| v == 3.0 * (-1.0 - 0.125)));
        assert!(y[16..32].iter().all(|&v| v == 5.0 * (-1.0 + 0.125)));
        assert!(y[32..].iter().all(|&v| v == -1.0 + 0.125));
    }

    #[test]
    fn partial_trailing_input_is_ignored() {
        let mut y = vec![7f32; QK_K];
        dequantize_row_iq2_xxs(&[0u8; 65], &mut y);
        assert!(y.iter().all(|&v| v == 7.0));
    }
}
