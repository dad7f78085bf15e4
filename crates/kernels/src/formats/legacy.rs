//! Legacy block formats, 32 elements per block: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1.
//!
//! Layouts are ggml's (`block_q4_0` … in ggml-common.h). The quantizers transliterate
//! the arithmetic of ggml-quants.c's `quantize_row_*_ref` operation by operation, so
//! that they produce the same bytes, and the dot products follow ggml-cpu/quants.c's
//! `ggml_vec_dot_*_generic`. Blocks are parsed field by field from little-endian
//! bytes: a `&[u8]` into a mapped file may be unaligned, so it is never cast to a
//! block reference.
//!
//! `_0` formats store `x ≈ d·q`; `_1` formats store `x ≈ d·q + m`. Q8_1 is an
//! activation format (the second operand of the Q4_1 and Q5_1 dot products): its
//! `s` field caches `d·Σq` so the dot product can apply `m` once per block.

use gguf::TensorType;

use crate::TypeTraits;
use crate::formats::float::{f16_to_f32, f32_to_f16};

/// Elements per block in every legacy format (ggml's `QK4_0` … `QK8_1`).
pub const QK: usize = 32;

/// Table entries for this family.
pub(crate) const TRAITS: &[TypeTraits] = &[
    TypeTraits {
        ty: TensorType::Q4_0,
        to_f32: dequantize_row_q4_0,
        from_f32: Some(quantize_row_q4_0_ref),
        from_f32_act: None,
        vec_dot: Some(vec_dot_q4_0_q8_0),
        vec_dot_type: TensorType::Q8_0,
    },
    TypeTraits {
        ty: TensorType::Q4_1,
        to_f32: dequantize_row_q4_1,
        from_f32: Some(quantize_row_q4_1_ref),
        from_f32_act: None,
        vec_dot: Some(vec_dot_q4_1_q8_1),
        vec_dot_type: TensorType::Q8_1,
    },
    TypeTraits {
        ty: TensorType::Q5_0,
        to_f32: dequantize_row_q5_0,
        from_f32: Some(quantize_row_q5_0_ref),
        from_f32_act: None,
        vec_dot: Some(vec_dot_q5_0_q8_0),
        vec_dot_type: TensorType::Q8_0,
    },
    TypeTraits {
        ty: TensorType::Q5_1,
        to_f32: dequantize_row_q5_1,
        from_f32: Some(quantize_row_q5_1_ref),
        from_f32_act: None,
        vec_dot: Some(vec_dot_q5_1_q8_1),
        vec_dot_type: TensorType::Q8_1,
    },
    TypeTraits {
        ty: TensorType::Q8_0,
        to_f32: dequantize_row_q8_0,
        from_f32: Some(quantize_row_q8_0_ref),
        from_f32_act: Some(quantize_row_q8_0_act),
        vec_dot: Some(vec_dot_q8_0_q8_0),
        vec_dot_type: TensorType::Q8_0,
    },
    // ggml has no Q8_1 weight kernels (no to_float, no vec_dot): it only ever
    // quantizes activations to Q8_1. Dequantizing is still well defined (d·q).
    TypeTraits {
        ty: TensorType::Q8_1,
        to_f32: dequantize_row_q8_1,
        from_f32: Some(quantize_row_q8_1_ref),
        from_f32_act: Some(quantize_row_q8_1_act),
        vec_dot: None,
        vec_dot_type: TensorType::Q8_1,
    },
];

/// 4-bit quants with one f16 scale: `x = d·(q - 8)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockQ4_0 {
    /// Scale, f16 bits.
    pub d: u16,
    /// Quants: element `j` in the low nibble of byte `j`, element `j + 16` in its high nibble.
    pub qs: [u8; QK / 2],
}

/// 4-bit quants with an f16 scale and minimum: `x = d·q + m`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockQ4_1 {
    /// Scale, f16 bits.
    pub d: u16,
    /// Minimum, f16 bits.
    pub m: u16,
    /// Quants, nibbles laid out as in [`BlockQ4_0`].
    pub qs: [u8; QK / 2],
}

/// 5-bit quants with one f16 scale: `x = d·(q - 16)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockQ5_0 {
    /// Scale, f16 bits.
    pub d: u16,
    /// Fifth bit of element `j` in bit `j` of this little-endian u32.
    pub qh: [u8; 4],
    /// Low four bits, nibbles laid out as in [`BlockQ4_0`].
    pub qs: [u8; QK / 2],
}

/// 5-bit quants with an f16 scale and minimum: `x = d·q + m`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockQ5_1 {
    /// Scale, f16 bits.
    pub d: u16,
    /// Minimum, f16 bits.
    pub m: u16,
    /// Fifth bits, as in [`BlockQ5_0`].
    pub qh: [u8; 4],
    /// Low four bits, as in [`BlockQ5_0`].
    pub qs: [u8; QK / 2],
}

/// 8-bit quants with one f16 scale: `x = d·q`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockQ8_0 {
    /// Scale, f16 bits.
    pub d: u16,
    /// Quants.
    pub qs: [i8; QK],
}

/// 8-bit quants with an f16 scale and the f16 of `d·Σq` (activations for Q4_1, Q5_1).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockQ8_1 {
    /// Scale, f16 bits.
    pub d: u16,
    /// `d` times the sum of the quants, f16 bits.
    pub s: u16,
    /// Quants.
    pub qs: [i8; QK],
}

// The structs mirror the on-disk layout: no padding, the sizes ggml-common.h asserts.
const _: () = assert!(size_of::<BlockQ4_0>() == 18);
const _: () = assert!(size_of::<BlockQ4_1>() == 20);
const _: () = assert!(size_of::<BlockQ5_0>() == 22);
const _: () = assert!(size_of::<BlockQ5_1>() == 24);
const _: () = assert!(size_of::<BlockQ8_0>() == 34);
const _: () = assert!(size_of::<BlockQ8_1>() == 36);

/// Reading and writing one block's little-endian encoding.
pub trait Block<const N: usize>: Sized {
    /// Parse a block from its `N` bytes.
    fn from_bytes(b: &[u8; N]) -> Self;
    /// The block's `N` bytes.
    fn to_bytes(&self) -> [u8; N];
}

#[inline]
fn u16_le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

#[inline]
fn copy_array<const M: usize>(b: &[u8]) -> [u8; M] {
    let mut out = [0u8; M];
    out.copy_from_slice(&b[..M]);
    out
}

#[inline]
fn to_i8_array(b: &[u8]) -> [i8; QK] {
    std::array::from_fn(|i| b[i] as i8)
}

impl Block<18> for BlockQ4_0 {
    fn from_bytes(b: &[u8; 18]) -> Self {
        Self {
            d: u16_le(b, 0),
            qs: copy_array(&b[2..]),
        }
    }
    fn to_bytes(&self) -> [u8; 18] {
        let mut out = [0u8; 18];
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..].copy_from_slice(&self.qs);
        out
    }
}

impl Block<20> for BlockQ4_1 {
    fn from_bytes(b: &[u8; 20]) -> Self {
        Self {
            d: u16_le(b, 0),
            m: u16_le(b, 2),
            qs: copy_array(&b[4..]),
        }
    }
    fn to_bytes(&self) -> [u8; 20] {
        let mut out = [0u8; 20];
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..4].copy_from_slice(&self.m.to_le_bytes());
        out[4..].copy_from_slice(&self.qs);
        out
    }
}

impl Block<22> for BlockQ5_0 {
    fn from_bytes(b: &[u8; 22]) -> Self {
        Self {
            d: u16_le(b, 0),
            qh: copy_array(&b[2..]),
            qs: copy_array(&b[6..]),
        }
    }
    fn to_bytes(&self) -> [u8; 22] {
        let mut out = [0u8; 22];
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..6].copy_from_slice(&self.qh);
        out[6..].copy_from_slice(&self.qs);
        out
    }
}

impl Block<24> for BlockQ5_1 {
    fn from_bytes(b: &[u8; 24]) -> Self {
        Self {
            d: u16_le(b, 0),
            m: u16_le(b, 2),
            qh: copy_array(&b[4..]),
            qs: copy_array(&b[8..]),
        }
    }
    fn to_bytes(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..4].copy_from_slice(&self.m.to_le_bytes());
        out[4..8].copy_from_slice(&self.qh);
        out[8..].copy_from_slice(&self.qs);
        out
    }
}

impl Block<34> for BlockQ8_0 {
    fn from_bytes(b: &[u8; 34]) -> Self {
        Self {
            d: u16_le(b, 0),
            qs: to_i8_array(&b[2..]),
        }
    }
    fn to_bytes(&self) -> [u8; 34] {
        let mut out = [0u8; 34];
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        for (o, q) in out[2..].iter_mut().zip(self.qs) {
            *o = q as u8;
        }
        out
    }
}

impl Block<36> for BlockQ8_1 {
    fn from_bytes(b: &[u8; 36]) -> Self {
        Self {
            d: u16_le(b, 0),
            s: u16_le(b, 2),
            qs: to_i8_array(&b[4..]),
        }
    }
    fn to_bytes(&self) -> [u8; 36] {
        let mut out = [0u8; 36];
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..4].copy_from_slice(&self.s.to_le_bytes());
        for (o, q) in out[4..].iter_mut().zip(self.qs) {
            *o = q as u8;
        }
        out
    }
}

/// The whole blocks of `src`, parsed.
fn blocks<const N: usize, B: Block<N>>(src: &[u8]) -> impl Iterator<Item = B> {
    src.chunks_exact(N)
        .filter_map(|c| <&[u8; N]>::try_from(c).ok())
        .map(B::from_bytes)
}

/// Quantize whole blocks of `src` with `quantize` and store them into `dst`.
fn quantize_blocks<const N: usize, B: Block<N>>(
    src: &[f32],
    dst: &mut [u8],
    quantize: impl Fn(&[f32; QK]) -> B,
) {
    let xs = src
        .chunks_exact(QK)
        .filter_map(|c| <&[f32; QK]>::try_from(c).ok());
    for (x, out) in xs.zip(dst.chunks_exact_mut(N)) {
        out.copy_from_slice(&quantize(x).to_bytes());
    }
}

/// C's float → int conversion as x86-64 executes it (`cvttss2si`): truncate toward
/// zero; NaN and values outside the i32 range give `i32::MIN`. ggml then narrows the
/// result to 8 bits (`(int8_t)(x0 + 8.5f)`). The difference from Rust's saturating
/// `as` shows for blocks whose scale is an f32 subnormal: `1/d` overflows to infinity,
/// ggml stores the low byte of `i32::MIN` (0) where `as` would give 127.
#[inline]
fn c_float_to_int(v: f32) -> i32 {
    if (-2_147_483_648.0..2_147_483_648.0).contains(&v) {
        v as i32
    } else {
        i32::MIN
    }
}

/// ggml's `MIN(max_q, (int8_t)v)` stored into a `uint8_t`.
#[inline]
fn quant_clamped(v: f32, max_q: i8) -> u8 {
    (c_float_to_int(v) as i8).min(max_q) as u8
}

/// The signed value with the largest magnitude (the first one on ties), as the
/// `_0` quantizers pick it: `if (amax < fabsf(v)) { amax = fabsf(v); max = v; }`.
#[inline]
fn signed_absmax(x: &[f32]) -> f32 {
    let mut amax = 0f32;
    let mut max = 0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// `(min, max)` of a block, as the `_1` quantizers compute it (NaNs are skipped).
#[inline]
fn min_max(x: &[f32]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// Largest magnitude as the `Q8` quantizers compute it: `amax = MAX(amax, fabsf(v))`
/// with ggml's `MAX(a, b) = a > b ? a : b` (a NaN is kept only until the next value).
#[inline]
fn abs_max_q8(x: &[f32]) -> f32 {
    x.iter()
        .fold(0f32, |amax, v| if amax > v.abs() { amax } else { v.abs() })
}

/// The inverse scale, zero for a zero scale (`id = d ? 1.0f/d : 0.0f`).
#[inline]
fn inverse(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

impl BlockQ4_0 {
    /// ggml-quants.c, `quantize_row_q4_0_ref`: `d = max / -8` where `max` is the
    /// element of largest magnitude, so that it maps to quant 0 exactly.
    pub fn quantize(x: &[f32; QK]) -> Self {
        let d = signed_absmax(x) / -8.0;
        let id = inverse(d);
        let mut qs = [0u8; QK / 2];
        for (j, q) in qs.iter_mut().enumerate() {
            let lo = quant_clamped(x[j] * id + 8.5, 15);
            let hi = quant_clamped(x[j + QK / 2] * id + 8.5, 15);
            *q = lo | (hi << 4);
        }
        Self {
            d: f32_to_f16(d),
            qs,
        }
    }

    /// ggml-quants.c, `dequantize_row_q4_0`.
    pub fn dequantize(&self, y: &mut [f32; QK]) {
        let d = f16_to_f32(self.d);
        for (j, &q) in self.qs.iter().enumerate() {
            y[j] = ((q & 0x0f) as i32 - 8) as f32 * d;
            y[j + QK / 2] = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
}

impl BlockQ4_1 {
    /// ggml-quants.c, `quantize_row_q4_1_ref`: `d = (max - min) / 15`, `m = min`.
    pub fn quantize(x: &[f32; QK]) -> Self {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = inverse(d);
        let mut qs = [0u8; QK / 2];
        for (j, q) in qs.iter_mut().enumerate() {
            let lo = quant_clamped((x[j] - min) * id + 0.5, 15);
            let hi = quant_clamped((x[j + QK / 2] - min) * id + 0.5, 15);
            *q = lo | (hi << 4);
        }
        Self {
            d: f32_to_f16(d),
            m: f32_to_f16(min),
            qs,
        }
    }

    /// ggml-quants.c, `dequantize_row_q4_1`.
    pub fn dequantize(&self, y: &mut [f32; QK]) {
        let d = f16_to_f32(self.d);
        let m = f16_to_f32(self.m);
        for (j, &q) in self.qs.iter().enumerate() {
            y[j] = (q & 0x0f) as f32 * d + m;
            y[j + QK / 2] = (q >> 4) as f32 * d + m;
        }
    }
}

/// Split 32 five-bit quants into low nibbles and the `qh` bit field (ggml's layout).
#[inline]
pub(crate) fn pack_q5(lo: &[u8; QK / 2], hi: &[u8; QK / 2]) -> ([u8; QK / 2], [u8; 4]) {
    let mut qs = [0u8; QK / 2];
    let mut qh = 0u32;
    for j in 0..QK / 2 {
        qs[j] = (lo[j] & 0x0f) | ((hi[j] & 0x0f) << 4);
        qh |= (((lo[j] & 0x10) >> 4) as u32) << j;
        qh |= (((hi[j] & 0x10) >> 4) as u32) << (j + QK / 2);
    }
    (qs, qh.to_le_bytes())
}

/// The five-bit quants of elements `j` and `j + 16` (unsigned, 0..=31).
#[inline]
fn unpack_q5(qs: &[u8; QK / 2], qh: &[u8; 4], j: usize) -> (i32, i32) {
    let qh = u32::from_le_bytes(*qh);
    let h0 = ((qh >> j) << 4) & 0x10;
    let h1 = (qh >> (j + 12)) & 0x10;
    (
        (qs[j] & 0x0f) as i32 | h0 as i32,
        (qs[j] >> 4) as i32 | h1 as i32,
    )
}

impl BlockQ5_0 {
    /// ggml-quants.c, `quantize_row_q5_0_ref`: `d = max / -16`.
    pub fn quantize(x: &[f32; QK]) -> Self {
        let d = signed_absmax(x) / -16.0;
        let id = inverse(d);
        let lo: [u8; QK / 2] = std::array::from_fn(|j| quant_clamped(x[j] * id + 16.5, 31));
        let hi: [u8; QK / 2] =
            std::array::from_fn(|j| quant_clamped(x[j + QK / 2] * id + 16.5, 31));
        let (qs, qh) = pack_q5(&lo, &hi);
        Self {
            d: f32_to_f16(d),
            qh,
            qs,
        }
    }

    /// ggml-quants.c, `dequantize_row_q5_0`.
    pub fn dequantize(&self, y: &mut [f32; QK]) {
        let d = f16_to_f32(self.d);
        for j in 0..QK / 2 {
            let (q0, q1) = unpack_q5(&self.qs, &self.qh, j);
            y[j] = (q0 - 16) as f32 * d;
            y[j + QK / 2] = (q1 - 16) as f32 * d;
        }
    }
}

impl BlockQ5_1 {
    /// ggml-quants.c, `quantize_row_q5_1_ref`: `d = (max - min) / 31`, `m = min`.
    /// Unlike Q4_1 there is no clamp: ggml stores `(uint8_t)(x0 + 0.5f)` directly.
    pub fn quantize(x: &[f32; QK]) -> Self {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = inverse(d);
        let quant = |v: f32| c_float_to_int((v - min) * id + 0.5) as u8;
        let lo: [u8; QK / 2] = std::array::from_fn(|j| quant(x[j]));
        let hi: [u8; QK / 2] = std::array::from_fn(|j| quant(x[j + QK / 2]));
        let (qs, qh) = pack_q5(&lo, &hi);
        Self {
            d: f32_to_f16(d),
            m: f32_to_f16(min),
            qh,
            qs,
        }
    }

    /// ggml-quants.c, `dequantize_row_q5_1`.
    pub fn dequantize(&self, y: &mut [f32; QK]) {
        let d = f16_to_f32(self.d);
        let m = f16_to_f32(self.m);
        for j in 0..QK / 2 {
            let (q0, q1) = unpack_q5(&self.qs, &self.qh, j);
            y[j] = q0 as f32 * d + m;
            y[j + QK / 2] = q1 as f32 * d + m;
        }
    }
}

/// Round `x·id` half away from zero (`roundf`) and store it as ggml's `int8_t` does.
#[inline]
fn quant_q8(x: &[f32; QK], id: f32) -> [i8; QK] {
    std::array::from_fn(|j| c_float_to_int((x[j] * id).round()) as i8)
}

impl BlockQ8_0 {
    /// ggml-quants.c, `quantize_row_q8_0_ref`: `d = amax / 127`, quants rounded half
    /// away from zero.
    pub fn quantize(x: &[f32; QK]) -> Self {
        let d = abs_max_q8(x) / 127.0;
        Self {
            d: f32_to_f16(d),
            qs: quant_q8(x, inverse(d)),
        }
    }

    /// ggml-quants.c, `dequantize_row_q8_0`.
    pub fn dequantize(&self, y: &mut [f32; QK]) {
        let d = f16_to_f32(self.d);
        for (y, &q) in y.iter_mut().zip(&self.qs) {
            *y = q as f32 * d;
        }
    }
}

impl BlockQ8_1 {
    /// ggml-quants.c, `quantize_row_q8_1_ref`: as Q8_0, plus `s = f16(d·Σq)` with
    /// the sum taken over the stored quants.
    pub fn quantize(x: &[f32; QK]) -> Self {
        let d = abs_max_q8(x) / 127.0;
        let qs = quant_q8(x, inverse(d));
        let sum: i32 = qs.iter().map(|&q| q as i32).sum();
        Self {
            d: f32_to_f16(d),
            s: f32_to_f16(sum as f32 * d),
            qs,
        }
    }

    /// `d·q` (ggml has no Q8_1 dequantizer; this is the value the format encodes).
    pub fn dequantize(&self, y: &mut [f32; QK]) {
        let d = f16_to_f32(self.d);
        for (y, &q) in y.iter_mut().zip(&self.qs) {
            *y = q as f32 * d;
        }
    }
}

/// ggml-cpu/arch/x86/quants.c `quantize_row_q8_0` (AVX), the run-time activation
/// converter: scale `id = 127/amax` (not `1/(amax/127)`, which can differ in the
/// last bit) and `_mm256_round_ps(.., _MM_ROUND_NEAREST)`, half to even. Returns
/// `d`, the stored quants (`_mm256_cvtps_epi32` then saturating packs: NaN and
/// ±inf give −128) and ggml's Q8_1 sum, taken over the 32-bit integers before
/// the packs (wrapping, as `hsum_i32_8` does).
#[inline]
fn quant_q8_act(x: &[f32; QK]) -> (f32, [i8; QK], i32) {
    let amax = abs_max_q8(x);
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let wide: [i32; QK] = std::array::from_fn(|j| c_float_to_int((x[j] * id).round_ties_even()));
    let qs = wide.map(|v| v.clamp(-128, 127) as i8);
    let sum = wide.iter().fold(0i32, |s, &v| s.wrapping_add(v));
    (amax / 127.0, qs, sum)
}

impl BlockQ8_0 {
    /// ggml-cpu's x86 `quantize_row_q8_0`: the activation converter (see
    /// [`quantize_row_q8_0_act`]).
    pub fn quantize_act(x: &[f32; QK]) -> Self {
        let (d, qs, _) = quant_q8_act(x);
        Self {
            d: f32_to_f16(d),
            qs,
        }
    }
}

impl BlockQ8_1 {
    /// ggml-cpu's x86 `quantize_row_q8_1`: as [`BlockQ8_0::quantize_act`], plus
    /// `s = f16(d·Σq)`.
    pub fn quantize_act(x: &[f32; QK]) -> Self {
        let (d, qs, sum) = quant_q8_act(x);
        Self {
            d: f32_to_f16(d),
            s: f32_to_f16(d * sum as f32),
            qs,
        }
    }
}

/// Quantize activations `src` into whole Q8_0 blocks as ggml-cpu does on x86 before
/// a matmul (`type_traits_cpu[Q8_0].from_float`): half to even with scale
/// `127/amax`, where llama-quantize's weights use [`quantize_row_q8_0_ref`].
pub fn quantize_row_q8_0_act(src: &[f32], dst: &mut [u8]) {
    quantize_blocks::<34, BlockQ8_0>(src, dst, BlockQ8_0::quantize_act);
}

/// Quantize activations `src` into whole Q8_1 blocks as ggml-cpu does on x86
/// (`type_traits_cpu[Q8_1].from_float`); see [`quantize_row_q8_0_act`].
pub fn quantize_row_q8_1_act(src: &[f32], dst: &mut [u8]) {
    quantize_blocks::<36, BlockQ8_1>(src, dst, BlockQ8_1::quantize_act);
}

macro_rules! row_kernels {
    ($block:ty, $size:literal, $dequantize:ident, $quantize:ident, $name:literal) => {
        #[doc = concat!("Dequantize whole ", $name, " blocks of `src` into `dst`.")]
        pub fn $dequantize(src: &[u8], dst: &mut [f32]) {
            let ys = dst
                .chunks_exact_mut(QK)
                .filter_map(|c| <&mut [f32; QK]>::try_from(c).ok());
            for (b, y) in blocks::<$size, $block>(src).zip(ys) {
                b.dequantize(y);
            }
        }

        #[doc = concat!("Quantize `src` into whole ", $name, " blocks, bit-exact with ")]
        #[doc = concat!("ggml's `quantize_row_", $name, "_ref`.")]
        pub fn $quantize(src: &[f32], dst: &mut [u8]) {
            quantize_blocks::<$size, $block>(src, dst, <$block>::quantize);
        }
    };
}

row_kernels!(
    BlockQ4_0,
    18,
    dequantize_row_q4_0,
    quantize_row_q4_0_ref,
    "q4_0"
);
row_kernels!(
    BlockQ4_1,
    20,
    dequantize_row_q4_1,
    quantize_row_q4_1_ref,
    "q4_1"
);
row_kernels!(
    BlockQ5_0,
    22,
    dequantize_row_q5_0,
    quantize_row_q5_0_ref,
    "q5_0"
);
row_kernels!(
    BlockQ5_1,
    24,
    dequantize_row_q5_1,
    quantize_row_q5_1_ref,
    "q5_1"
);
row_kernels!(
    BlockQ8_0,
    34,
    dequantize_row_q8_0,
    quantize_row_q8_0_ref,
    "q8_0"
);
row_kernels!(
    BlockQ8_1,
    36,
    dequantize_row_q8_1,
    quantize_row_q8_1_ref,
    "q8_1"
);

/// Q4_0 · Q8_0 over `n` elements (ggml-cpu/quants.c, `ggml_vec_dot_q4_0_q8_0_generic`):
/// integer dot per block, then `sumf += sumi·dx·dy`.
pub fn vec_dot_q4_0_q8_0(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let xs = blocks::<18, BlockQ4_0>(x);
    let ys = blocks::<34, BlockQ8_0>(y);
    let mut sumf = 0f32;
    for (bx, by) in xs.zip(ys).take(n / QK) {
        let mut sumi = 0i32;
        for (j, &q) in bx.qs.iter().enumerate() {
            sumi += ((q & 0x0f) as i32 - 8) * by.qs[j] as i32;
            sumi += ((q >> 4) as i32 - 8) * by.qs[j + QK / 2] as i32;
        }
        sumf += sumi as f32 * f16_to_f32(bx.d) * f16_to_f32(by.d);
    }
    sumf
}

/// Q4_1 · Q8_1 over `n` elements (`ggml_vec_dot_q4_1_q8_1_generic`):
/// `sumf += (dx·dy)·sumi + mx·sy`.
pub fn vec_dot_q4_1_q8_1(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let xs = blocks::<20, BlockQ4_1>(x);
    let ys = blocks::<36, BlockQ8_1>(y);
    let mut sumf = 0f32;
    for (bx, by) in xs.zip(ys).take(n / QK) {
        let mut sumi = 0i32;
        for (j, &q) in bx.qs.iter().enumerate() {
            sumi += (q & 0x0f) as i32 * by.qs[j] as i32;
            sumi += (q >> 4) as i32 * by.qs[j + QK / 2] as i32;
        }
        sumf += (f16_to_f32(bx.d) * f16_to_f32(by.d)) * sumi as f32
            + f16_to_f32(bx.m) * f16_to_f32(by.s);
    }
    sumf
}

/// Q5_0 · Q8_0 over `n` elements (`ggml_vec_dot_q5_0_q8_0_generic`).
pub fn vec_dot_q5_0_q8_0(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let xs = blocks::<22, BlockQ5_0>(x);
    let ys = blocks::<34, BlockQ8_0>(y);
    let mut sumf = 0f32;
    for (bx, by) in xs.zip(ys).take(n / QK) {
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let (q0, q1) = unpack_q5(&bx.qs, &bx.qh, j);
            sumi += (q0 - 16) * by.qs[j] as i32;
            sumi += (q1 - 16) * by.qs[j + QK / 2] as i32;
        }
        sumf += (f16_to_f32(bx.d) * f16_to_f32(by.d)) * sumi as f32;
    }
    sumf
}

/// Q5_1 · Q8_1 over `n` elements (`ggml_vec_dot_q5_1_q8_1_generic`).
pub fn vec_dot_q5_1_q8_1(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let xs = blocks::<24, BlockQ5_1>(x);
    let ys = blocks::<36, BlockQ8_1>(y);
    let mut sumf = 0f32;
    for (bx, by) in xs.zip(ys).take(n / QK) {
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let (q0, q1) = unpack_q5(&bx.qs, &bx.qh, j);
            sumi += q0 * by.qs[j] as i32;
            sumi += q1 * by.qs[j + QK / 2] as i32;
        }
        sumf += (f16_to_f32(bx.d) * f16_to_f32(by.d)) * sumi as f32
            + f16_to_f32(bx.m) * f16_to_f32(by.s);
    }
    sumf
}

/// Q8_0 · Q8_0 over `n` elements (`ggml_vec_dot_q8_0_q8_0_generic`):
/// `sumf += sumi·(dx·dy)`.
pub fn vec_dot_q8_0_q8_0(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let xs = blocks::<34, BlockQ8_0>(x);
    let ys = blocks::<34, BlockQ8_0>(y);
    let mut sumf = 0f32;
    for (bx, by) in xs.zip(ys).take(n / QK) {
        let sumi: i32 = bx
            .qs
            .iter()
            .zip(&by.qs)
            .map(|(&a, &b)| a as i32 * b as i32)
            .sum();
        sumf += sumi as f32 * (f16_to_f32(bx.d) * f16_to_f32(by.d));
    }
    sumf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_float_to_int_matches_x86_truncation() {
        assert_eq!(c_float_to_int(8.99), 8);
        assert_eq!(c_float_to_int(-0.99), 0);
        assert_eq!(c_float_to_int(-127.5), -127);
        assert_eq!(c_float_to_int(f32::INFINITY), i32::MIN);
        assert_eq!(c_float_to_int(f32::NEG_INFINITY), i32::MIN);
        assert_eq!(c_float_to_int(f32::NAN), i32::MIN);
        assert_eq!(c_float_to_int(3e9), i32::MIN);
        assert_eq!(c_float_to_int(-2_147_483_648.0), i32::MIN);
    }

    #[test]
    fn q4_0_maps_the_largest_magnitude_to_quant_zero() {
        let mut x = [0f32; QK];
        x[3] = -2.0;
        x[20] = 1.0;
        let b = BlockQ4_0::quantize(&x);
        // d = -2 / -8 = 0.25; -2 → q 0, 1 → q 12, 0 → q 8.
        assert_eq!(f16_to_f32(b.d), 0.25);
        assert_eq!(b.qs[3] & 0x0f, 0);
        assert_eq!(b.qs[4], 8 | (12 << 4));
        let mut y = [0f32; QK];
        b.dequantize(&mut y);
        assert_eq!(y, x);
    }

    #[test]
    fn q5_high_bits_round_trip_through_qh() {
        let x: [f32; QK] = std::array::from_fn(|i| i as f32 - 15.0);
        let b = BlockQ5_1::quantize(&x);
        assert_eq!(f16_to_f32(b.d), 1.0);
        assert_eq!(f16_to_f32(b.m), -15.0);
        // Quants are 0..=31 in order: the fifth bit is set for elements 16..32.
        assert_eq!(u32::from_le_bytes(b.qh), 0xffff_0000);
        let mut y = [0f32; QK];
        b.dequantize(&mut y);
        assert_eq!(y, x);
    }

    #[test]
    fn q8_1_caches_scaled_sum() {
        let x: [f32; QK] = std::array::from_fn(|i| if i == 0 { 127.0 } else { 1.0 });
        let b = BlockQ8_1::quantize(&x);
        assert_eq!(f16_to_f32(b.d), 1.0);
        assert_eq!(f16_to_f32(b.s), 127.0 + 31.0);
    }

    #[test]
    fn blocks_round_trip_through_bytes() {
        let x: [f32; QK] = std::array::from_fn(|i| (i as f32 * 0.7).sin());
        let b = BlockQ5_0::quantize(&x);
        assert_eq!(BlockQ5_0::from_bytes(&b.to_bytes()), b);
        let b = BlockQ8_1::quantize(&x);
        assert_eq!(BlockQ8_1::from_bytes(&b.to_bytes()), b);
    }

    #[test]
    fn zero_block_has_zero_scale_and_midpoint_quants() {
        let x = [0f32; QK];
        let b = BlockQ4_0::quantize(&x);
        // d = 0 / -8 is negative zero, and ggml stores it as such.
        assert_eq!(b.d, 0x8000);
        assert!(b.qs.iter().all(|&q| q == 0x88));
    }
}
