//! Block layouts of the i-quant formats, as ggml declares them (ggml-common.h,
//! `block_iq*`), and their little-endian (de)serialisation.
//!
//! Tensor data is a `&[u8]` with no alignment guarantee, so blocks are never cast
//! in place: [`ReadBlock::read`] copies the fields out with `from_le_bytes`, which is
//! cheap next to the grid lookups and correct on any host byte order. Multi-byte
//! fields (`d`, the IQ2_XXS/IQ2_XS `qs`, the IQ1_S `qh`) are little-endian in GGUF.

use std::mem::size_of;

/// Reading one block from exactly its size in bytes.
pub(super) trait ReadBlock: Sized {
    /// Bytes one block occupies in a tensor (ggml's `type_size`).
    const BYTES: usize;
    /// Parse a block from `b`, which holds exactly [`Self::BYTES`] bytes.
    fn read(b: &[u8]) -> Self;
}

/// The blocks of `src`, in order; a trailing partial block is ignored (the checked
/// entry points in `dispatch` reject such lengths before calling a kernel).
pub(super) fn blocks<B: ReadBlock>(src: &[u8]) -> impl Iterator<Item = B> {
    src.chunks_exact(B::BYTES).map(B::read)
}

/// A forward cursor over the bytes of one block.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.0[..N]);
        self.0 = &self.0[N..];
        out
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.bytes())
    }

    fn u16s<const N: usize>(&mut self) -> [u16; N] {
        std::array::from_fn(|_| self.u16())
    }
}

/// IQ2_XXS, 2.0625 bits per weight: 8 groups of 32; each group is 4 grid indices
/// (8 bits each) and 4 × 7 sign bits plus a 4-bit scale, packed in two u32.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockIq2Xxs {
    /// Super-block scale (f16 bits).
    pub d: u16,
    /// Grid indices, signs and group scales (two u32 per group of 32).
    pub qs: [u16; 32],
}
const _: () = assert!(size_of::<BlockIq2Xxs>() == 66);

impl ReadBlock for BlockIq2Xxs {
    const BYTES: usize = size_of::<Self>();
    fn read(b: &[u8]) -> Self {
        let mut f = Fields(b);
        Self {
            d: f.u16(),
            qs: f.u16s(),
        }
    }
}

/// IQ2_XS, 2.3125 bits per weight: each u16 holds a 9-bit grid index and 7 sign
/// bits; two 4-bit scales per group of 32.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockIq2Xs {
    /// Super-block scale (f16 bits).
    pub d: u16,
    /// Grid index (low 9 bits) and signs (high 7 bits) per 8 weights.
    pub qs: [u16; 32],
    /// Two 4-bit scales per group of 32 (low nibble: first 16 weights).
    pub scales: [u8; 8],
}
const _: () = assert!(size_of::<BlockIq2Xs>() == 74);

impl ReadBlock for BlockIq2Xs {
    const BYTES: usize = size_of::<Self>();
    fn read(b: &[u8]) -> Self {
        let mut f = Fields(b);
        Self {
            d: f.u16(),
            qs: f.u16s(),
            scales: f.bytes(),
        }
    }
}

/// IQ2_S, 2.5625 bits per weight: 10-bit grid indices (8 low bits in `qs`, 2 high
/// bits in `qh`) and 8 explicit sign bits per 8 weights.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockIq2S {
    /// Super-block scale (f16 bits).
    pub d: u16,
    /// Low 8 bits of the 32 grid indices, then 32 bytes of signs.
    pub qs: [u8; 64],
    /// High 2 bits of the grid indices, four per byte.
    pub qh: [u8; 8],
    /// Two 4-bit scales per group of 32.
    pub scales: [u8; 8],
}
const _: () = assert!(size_of::<BlockIq2S>() == 82);

impl ReadBlock for BlockIq2S {
    const BYTES: usize = size_of::<Self>();
    fn read(b: &[u8]) -> Self {
        let mut f = Fields(b);
        Self {
            d: f.u16(),
            qs: f.bytes(),
            qh: f.bytes(),
            scales: f.bytes(),
        }
    }
}

/// IQ3_XXS, 3.0625 bits per weight: 8-bit indices into a grid of 4 magnitudes,
/// then per group of 32 a u32 of 4 × 7 sign bits and a 4-bit scale.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockIq3Xxs {
    /// Super-block scale (f16 bits).
    pub d: u16,
    /// 64 grid indices, then 8 little-endian u32 of signs and scales.
    pub qs: [u8; 96],
}
const _: () = assert!(size_of::<BlockIq3Xxs>() == 98);

impl ReadBlock for BlockIq3Xxs {
    const BYTES: usize = size_of::<Self>();
    fn read(b: &[u8]) -> Self {
        let mut f = Fields(b);
        Self {
            d: f.u16(),
            qs: f.bytes(),
        }
    }
}

/// IQ3_S, 3.4375 bits per weight: 9-bit grid indices (high bit in `qh`), explicit
/// signs, one 4-bit scale per 32 weights.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockIq3S {
    /// Super-block scale (f16 bits).
    pub d: u16,
    /// Low 8 bits of the 64 grid indices.
    pub qs: [u8; 64],
    /// High bit of each grid index, eight per byte.
    pub qh: [u8; 8],
    /// One sign bit per weight.
    pub signs: [u8; 32],
    /// Two 4-bit scales per 64 weights.
    pub scales: [u8; 4],
}
const _: () = assert!(size_of::<BlockIq3S>() == 110);

impl ReadBlock for BlockIq3S {
    const BYTES: usize = size_of::<Self>();
    fn read(b: &[u8]) -> Self {
        let mut f = Fields(b);
        Self {
            d: f.u16(),
            qs: f.bytes(),
            qh: f.bytes(),
            signs: f.bytes(),
            scales: f.bytes(),
        }
    }
}

/// IQ1_S, 1.5625 bits per weight: 11-bit indices into a ternary grid, a 3-bit
/// scale and a ±delta sign per 32 weights.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockIq1S {
    /// Super-block scale (f16 bits).
    pub d: u16,
    /// Low 8 bits of the 32 grid indices.
    pub qs: [u8; 32],
    /// Per group of 32: 4 × 3 high index bits, a 3-bit scale, the delta sign.
    pub qh: [u16; 8],
}
const _: () = assert!(size_of::<BlockIq1S>() == 50);

impl ReadBlock for BlockIq1S {
    const BYTES: usize = size_of::<Self>();
    fn read(b: &[u8]) -> Self {
        let mut f = Fields(b);
        Self {
            d: f.u16(),
            qs: f.bytes(),
            qh: f.u16s(),
        }
    }
}

/// IQ1_M, 1.75 bits per weight: like IQ1_S with a scale and delta sign per 16
/// weights; it has no `d` field — the f16 super-block scale is stored in the top
/// nibbles of the four u16 words of `scales` (ggml's `iq1m_scale_t`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockIq1M {
    /// Low 8 bits of the 32 grid indices.
    pub qs: [u8; 32],
    /// Per 8 weights: 3 high index bits and a delta sign bit (two per byte).
    pub qh: [u8; 16],
    /// Four little-endian u16: 3-bit scales per 16 weights, and the f16 scale's
    /// nibbles in bits 12..16.
    pub scales: [u8; 8],
}
const _: () = assert!(size_of::<BlockIq1M>() == 56);

impl ReadBlock for BlockIq1M {
    const BYTES: usize = size_of::<Self>();
    fn read(b: &[u8]) -> Self {
        let mut f = Fields(b);
        Self {
            qs: f.bytes(),
            qh: f.bytes(),
            scales: f.bytes(),
        }
    }
}

impl BlockIq1M {
    /// `scales` as the four u16 words ggml reads them as.
    pub fn scale_words(&self) -> [u16; 4] {
        std::array::from_fn(|i| u16::from_le_bytes([self.scales[2 * i], self.scales[2 * i + 1]]))
    }

    /// The f16 bits of the super-block scale, gathered from the top nibble of each
    /// scale word (ggml-quants.c, dequantize_row_iq1_m).
    pub fn d(&self) -> u16 {
        let sc = self.scale_words();
        (sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000)
    }
}

/// IQ4_NL: blocks of 32 weights, 4-bit indices into the non-linear table
/// `kvalues_iq4nl`, one f16 scale.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockIq4Nl {
    /// Block scale (f16 bits).
    pub d: u16,
    /// Byte `j` holds weight `j` (low nibble) and weight `j + 16` (high nibble).
    pub qs: [u8; 16],
}
const _: () = assert!(size_of::<BlockIq4Nl>() == 18);

impl ReadBlock for BlockIq4Nl {
    const BYTES: usize = size_of::<Self>();
    fn read(b: &[u8]) -> Self {
        let mut f = Fields(b);
        Self {
            d: f.u16(),
            qs: f.bytes(),
        }
    }
}

impl BlockIq4Nl {
    /// Serialise into exactly [`ReadBlock::BYTES`] bytes.
    pub(super) fn write(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..].copy_from_slice(&self.qs);
    }
}

/// IQ4_XS: super-blocks of 256 weights with the IQ4_NL table, a 6-bit signed
/// scale (offset by 32) per 32 weights and an f16 super-block scale.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockIq4Xs {
    /// Super-block scale (f16 bits).
    pub d: u16,
    /// High 2 bits of the 8 group scales.
    pub scales_h: u16,
    /// Low 4 bits of the 8 group scales, two per byte.
    pub scales_l: [u8; 4],
    /// Per group of 32: byte `j` holds weight `j` (low) and `j + 16` (high nibble).
    pub qs: [u8; 128],
}
const _: () = assert!(size_of::<BlockIq4Xs>() == 136);

impl ReadBlock for BlockIq4Xs {
    const BYTES: usize = size_of::<Self>();
    fn read(b: &[u8]) -> Self {
        let mut f = Fields(b);
        Self {
            d: f.u16(),
            scales_h: f.u16(),
            scales_l: f.bytes(),
            qs: f.bytes(),
        }
    }
}

impl BlockIq4Xs {
    /// The 6-bit scale of group `ib` (0..8), still offset by 32.
    pub fn group_scale(&self, ib: usize) -> i32 {
        let low = (self.scales_l[ib / 2] >> (4 * (ib % 2))) & 0xf;
        let high = (self.scales_h >> (2 * ib)) & 3;
        i32::from(low) | (i32::from(high) << 4)
    }

    /// Serialise into exactly [`ReadBlock::BYTES`] bytes.
    pub(super) fn write(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..4].copy_from_slice(&self.scales_h.to_le_bytes());
        out[4..8].copy_from_slice(&self.scales_l);
        out[8..].copy_from_slice(&self.qs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_byte_fields_are_little_endian() {
        let mut b = [0u8; 50];
        b[0] = 0x00;
        b[1] = 0x3c; // f16 1.0
        b[34] = 0x34;
        b[35] = 0x12;
        let blk = BlockIq1S::read(&b);
        assert_eq!(blk.d, 0x3c00);
        assert_eq!(blk.qh[0], 0x1234);
    }

    #[test]
    fn iq1m_scale_is_gathered_from_top_nibbles() {
        // f16 0x3c00 (1.0): nibbles 0, 0, c, 3 from words 0..4.
        let mut blk = BlockIq1M {
            qs: [0; 32],
            qh: [0; 16],
            scales: [0; 8],
        };
        blk.scales[5] = 0xc0 | 0x05; // word 2 = 0xc5.., top nibble c; low bits are scales
        blk.scales[7] = 0x30;
        assert_eq!(blk.d(), 0x3c00);
        assert_eq!(blk.scale_words()[2], 0xc500);
    }

    #[test]
    fn iq4_xs_round_trips_through_bytes() {
        let blk = BlockIq4Xs {
            d: 0xabcd,
            scales_h: 0x1234,
            scales_l: [1, 2, 3, 4],
            qs: std::array::from_fn(|i| i as u8),
        };
        let mut out = [0u8; 136];
        blk.write(&mut out);
        assert_eq!(BlockIq4Xs::read(&out), blk);
        assert_eq!(out[0], 0xcd);
        assert_eq!(out[2], 0x34);
    }
}
