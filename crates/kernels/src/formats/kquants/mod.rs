//! K-quants: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and the activation format Q8_K.
//!
//! Every K-quant stores super-blocks of [`QK_K`] = 256 values split into sub-blocks
//! of 16 or 32, each with a small integer scale (and for Q2_K, Q4_K, Q5_K a min)
//! that is itself quantized against one or two fp16 super-block scales. Layouts,
//! quantizers and dot products follow ggml (ggml-common.h `block_q*_K`,
//! ggml-quants.c `quantize_row_q*_K_ref` / `dequantize_row_q*_K`, ggml-cpu/quants.c
//! `ggml_vec_dot_q*_K_q8_K_generic`). The quantizers reproduce ggml's float
//! arithmetic operation by operation so that their output is byte-identical to
//! llama-quantize without an importance matrix; Rust never contracts `a * b + c`
//! into a fused multiply-add, which matches ggml-base (built without `-mfma`).
//!
//! This module holds what the formats share: the rounding trick, the weighted
//! scale/min search (`make_qkx2_quants`), the 6-bit scale packing of Q4_K/Q5_K,
//! byte (de)serialisation of blocks and the table entries.

mod q2_q3;
mod q4_q5;
mod q6_q8;

use gguf::TensorType;

pub use q2_q3::{
    BlockQ2K, BlockQ3K, dequantize_row_q2_k, dequantize_row_q3_k, quantize_q2_k_weighted,
    quantize_q3_k_weighted, quantize_row_q2_k_ref, quantize_row_q3_k_ref, vec_dot_q2_k_q8_k,
    vec_dot_q3_k_q8_k,
};
pub use q4_q5::{
    BlockQ4K, BlockQ5K, dequantize_row_q4_k, dequantize_row_q5_k, quantize_q4_k_weighted,
    quantize_q5_k_weighted, quantize_row_q4_k_ref, quantize_row_q5_k_ref, vec_dot_q4_k_q8_k,
    vec_dot_q4_k_q8_k_tiled, vec_dot_q5_k_q8_k, vec_dot_q5_k_q8_k_tiled,
};
pub use q6_q8::{
    BlockQ6K, BlockQ8K, dequantize_row_q6_k, dequantize_row_q8_k, quantize_q6_k_weighted,
    quantize_row_q6_k_ref, quantize_row_q8_k_ref, vec_dot_q6_k_q8_k, vec_dot_q6_k_q8_k_tiled,
    vec_dot_q8_k_q8_k,
};

use crate::TypeTraits;

/// Values per super-block (ggml's `QK_K`).
pub const QK_K: usize = 256;

/// Bytes of packed 6-bit scales and mins in Q4_K / Q5_K (ggml's `K_SCALE_SIZE`).
pub const K_SCALE_SIZE: usize = 12;

/// Groups whose largest magnitude is below this are treated as all zeros
/// (ggml-quants.c `GROUP_MAX_EPS`).
const GROUP_MAX_EPS: f32 = 1e-15;

/// Table entries for this family.
pub(crate) const TRAITS: &[TypeTraits] = &[
    TypeTraits {
        ty: TensorType::Q2_K,
        to_f32: dequantize_row_q2_k,
        from_f32: Some(quantize_row_q2_k_ref),
        from_f32_act: None,
        vec_dot: Some(vec_dot_q2_k_q8_k),
        vec_dot_type: TensorType::Q8_K,
    },
    TypeTraits {
        ty: TensorType::Q3_K,
        to_f32: dequantize_row_q3_k,
        from_f32: Some(quantize_row_q3_k_ref),
        from_f32_act: None,
        vec_dot: Some(vec_dot_q3_k_q8_k),
        vec_dot_type: TensorType::Q8_K,
    },
    TypeTraits {
        ty: TensorType::Q4_K,
        to_f32: dequantize_row_q4_k,
        from_f32: Some(quantize_row_q4_k_ref),
        from_f32_act: None,
        vec_dot: Some(vec_dot_q4_k_q8_k),
        vec_dot_type: TensorType::Q8_K,
    },
    TypeTraits {
        ty: TensorType::Q5_K,
        to_f32: dequantize_row_q5_k,
        from_f32: Some(quantize_row_q5_k_ref),
        from_f32_act: None,
        vec_dot: Some(vec_dot_q5_k_q8_k),
        vec_dot_type: TensorType::Q8_K,
    },
    TypeTraits {
        ty: TensorType::Q6_K,
        to_f32: dequantize_row_q6_k,
        from_f32: Some(quantize_row_q6_k_ref),
        from_f32_act: None,
        vec_dot: Some(vec_dot_q6_k_q8_k),
        vec_dot_type: TensorType::Q8_K,
    },
    TypeTraits {
        ty: TensorType::Q8_K,
        to_f32: dequantize_row_q8_k,
        from_f32: Some(quantize_row_q8_k_ref),
        from_f32_act: None,
        vec_dot: Some(vec_dot_q8_k_q8_k),
        vec_dot_type: TensorType::Q8_K,
    },
];

/// A super-block with a fixed little-endian byte layout (its `#[repr(C)]` struct
/// without padding). Blocks are parsed field by field rather than cast, because
/// tensor data in a mapped file is not necessarily aligned.
trait KBlock: Sized {
    /// Bytes per block.
    const SIZE: usize;
    /// Parse one block from exactly `SIZE` bytes.
    fn read(r: &mut Reader<'_>) -> Self;
    /// Serialise one block into exactly `SIZE` bytes.
    fn write(&self, w: &mut Writer<'_>);
}

/// The blocks of a row, parsed one at a time; trailing bytes that do not make a
/// whole block are ignored (the checked entry points reject them earlier).
fn blocks<B: KBlock>(src: &[u8]) -> impl Iterator<Item = B> {
    src.chunks_exact(B::SIZE)
        .map(|b| B::read(&mut Reader { b, at: 0 }))
}

/// Quantize whole super-blocks of `src` into `dst` with `quantize_block`.
fn quantize_blocks<B: KBlock>(src: &[f32], dst: &mut [u8], quantize_block: fn(&[f32; QK_K]) -> B) {
    let xs = src
        .chunks_exact(QK_K)
        .filter_map(|c| <&[f32; QK_K]>::try_from(c).ok());
    for (x, out) in xs.zip(dst.chunks_exact_mut(B::SIZE)) {
        quantize_block(x).write(&mut Writer { b: out, at: 0 });
    }
}

/// Sequential little-endian reader over one block's bytes.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.b[self.at..self.at + N]);
        self.at += N;
        a
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.bytes())
    }
}

/// Sequential little-endian writer over one block's bytes.
struct Writer<'a> {
    b: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, v: &[u8]) {
        self.b[self.at..self.at + v.len()].copy_from_slice(v);
        self.at += v.len();
    }

    fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
}

/// Round to the nearest integer, ties to even, for |x| ≤ 2^22 (ggml-quants.c
/// `nearest_int`): adding 1.5·2^23 leaves the integer in the low mantissa bits.
/// Larger inputs give the same wrapped result as ggml, which callers then clamp.
#[inline]
pub(crate) fn nearest_int(x: f32) -> i32 {
    let biased = x + 12_582_912.0;
    ((biased.to_bits() as i32) & 0x007f_ffff) - 0x0040_0000
}

/// Parameters of ggml's `make_qkx2_quants` search, as each caller passes them.
struct Qkx2Search {
    /// Largest quant (3, 15 or 31).
    nmax: i32,
    /// First offset tried on `nmax` when rescaling.
    rmin: f32,
    /// Step between tried offsets.
    rdelta: f32,
    /// Number of steps (the loop runs `nstep + 1` times).
    nstep: i32,
    /// Minimise weighted absolute error instead of weighted squared error.
    use_mad: bool,
}

/// Find a scale and min so that `x[i] ≈ scale * l[i] - min` with `l[i]` in
/// `0..=nmax`, minimising the weighted error (ggml-quants.c `make_qkx2_quants`).
/// Writes the quants to `l` and returns `(scale, min)`; `min` is ≥ 0.
fn make_qkx2_quants(
    p: &Qkx2Search,
    x: &[f32],
    weights: &[f32],
    l: &mut [u8],
    laux: &mut [u8],
) -> (f32, f32) {
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.fill(0);
        return (0.0, -min);
    }
    let nmax = p.nmax as f32;
    let mut iscale = nmax / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0f32;
    for i in 0..n {
        let q = nearest_int(iscale * (x[i] - min));
        l[i] = q.clamp(0, p.nmax) as u8;
        let diff = scale * l[i] as f32 + min - x[i];
        let diff = if p.use_mad { diff.abs() } else { diff * diff };
        best_error += weights[i] * diff;
    }
    if p.nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=p.nstep {
        iscale = (p.rmin + p.rdelta * is as f32 + nmax) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for i in 0..n {
            let q = nearest_int(iscale * (x[i] - min)).clamp(0, p.nmax);
            laux[i] = q as u8;
            let w = weights[i];
            let q = q as f32;
            sum_l += w * q;
            sum_l2 += w * q * q;
            sum_xl += w * q * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                let diff = if p.use_mad { diff.abs() } else { diff * diff };
                cur_error += weights[i] * diff;
            }
            if cur_error < best_error {
                l[..n].copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Unpack the 6-bit scale and min of sub-block `j` (0..8) from the 12 packed bytes
/// of a Q4_K / Q5_K block (ggml-quants.c `get_scale_min_k4`): bytes 0..4 hold
/// scales 0..4 and bytes 4..8 mins 0..4 in their low 6 bits; sub-blocks 4..8 keep
/// their low nibbles in bytes 8..12 and their top 2 bits in the spare bits of
/// bytes 0..8.
#[inline]
fn get_scale_min_k4(j: usize, q: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Pack 2-bit quants (0..=3) of one super-block the way Q2_K and Q3_K store them:
/// byte `l` of each 32-byte half holds values `l`, `l+32`, `l+64`, `l+96` of its
/// 128 values, low bits first (ggml-quants.c `quantize_row_q2_K_ref`).
fn pack_2bit(l: &[u8; QK_K]) -> [u8; QK_K / 4] {
    let mut qs = [0u8; QK_K / 4];
    for j in (0..QK_K).step_by(128) {
        for i in 0..32 {
            qs[j / 4 + i] =
                l[j + i] | (l[j + i + 32] << 2) | (l[j + i + 64] << 4) | (l[j + i + 96] << 6);
        }
    }
    qs
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Deterministic test data and error measures shared by the format tests.

    use super::QK_K;
    use gguf::TensorType;

    /// A small xorshift generator: reproducible pseudo-random data without a
    /// dependency.
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Self {
            Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }

        /// Uniform in [0, 1).
        pub fn uniform(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 40) as f32 / (1u64 << 24) as f32
        }

        /// Approximately normal with mean 0 and standard deviation `sd` (Irwin–Hall).
        pub fn normal(&mut self, sd: f32) -> f32 {
            let s: f32 = (0..12).map(|_| self.uniform()).sum();
            (s - 6.0) * sd
        }

        pub fn normals(&mut self, n: usize, sd: f32) -> Vec<f32> {
            (0..n).map(|_| self.normal(sd)).collect()
        }
    }

    /// Bytes of `n` values (whole blocks) in format `ty`.
    pub fn bytes(ty: TensorType, n: usize) -> usize {
        n / ty.block_size() * ty.type_size()
    }

    /// Quantize `x` to `ty` and back through the dispatch table.
    pub fn round_trip(ty: TensorType, x: &[f32]) -> Vec<f32> {
        let mut q = vec![0u8; bytes(ty, x.len())];
        crate::quantize(ty, x, &mut q).unwrap();
        let mut y = vec![0f32; x.len()];
        crate::dequantize(ty, &q, &mut y).unwrap();
        y
    }

    /// Quantize two random vectors (`ty` and Q8_K) and return the kernel's dot
    /// product, the f64 dot product of their dequantized values, and the sum of
    /// the absolute products (the scale against which rounding error is judged).
    pub fn dot_error(ty: TensorType, seed: u64) -> (f64, f64, f64) {
        let n = 8 * QK_K;
        let mut rng = Rng::new(seed);
        let (a, b) = (rng.normals(n, 1.0), rng.normals(n, 1.0));
        let mut qa = vec![0u8; bytes(ty, n)];
        crate::quantize(ty, &a, &mut qa).unwrap();
        let mut qb = vec![0u8; bytes(TensorType::Q8_K, n)];
        crate::quantize(TensorType::Q8_K, &b, &mut qb).unwrap();
        let (mut fa, mut fb) = (vec![0f32; n], vec![0f32; n]);
        crate::dequantize(ty, &qa, &mut fa).unwrap();
        crate::dequantize(TensorType::Q8_K, &qb, &mut fb).unwrap();
        let want = fa.iter().zip(&fb).map(|(x, y)| *x as f64 * *y as f64).sum();
        let scale = fa
            .iter()
            .zip(&fb)
            .map(|(x, y)| (*x as f64 * *y as f64).abs())
            .sum();
        let got = crate::dot(ty, n, &qa, &qb).unwrap() as f64;
        (got, want, scale)
    }

    /// Root mean square of `a - b` divided by the root mean square of `a`.
    pub fn relative_rmse(a: &[f32], b: &[f32]) -> f32 {
        let err: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
        let norm: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum();
        (err / norm).sqrt() as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-1.5), -2);
        assert_eq!(nearest_int(-0.4), 0);
        assert_eq!(nearest_int(31.49), 31);
        assert_eq!(nearest_int(-4_194_303.0), -4_194_303);
    }

    #[test]
    fn scale_min_k4_unpacks_what_q4_k_packs() {
        // Pack eight (scale, min) pairs the way quantize_row_q4_K_ref does.
        let pairs: [(u8, u8); 8] = [
            (1, 63),
            (62, 0),
            (33, 17),
            (5, 48),
            (63, 63),
            (0, 1),
            (40, 21),
            (16, 32),
        ];
        let mut q = [0u8; K_SCALE_SIZE];
        for (j, &(ls, lm)) in pairs.iter().enumerate() {
            if j < 4 {
                q[j] = ls;
                q[j + 4] = lm;
            } else {
                q[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
                q[j - 4] |= (ls >> 4) << 6;
                q[j] |= (lm >> 4) << 6;
            }
        }
        for (j, &pair) in pairs.iter().enumerate() {
            assert_eq!(get_scale_min_k4(j, &q), pair, "sub-block {j}");
        }
    }

    #[test]
    fn non_finite_input_and_arbitrary_bytes_do_not_panic() {
        // Debug builds check integer overflow: quantizers must survive NaN and
        // infinities, and dequantizers / dots any bit pattern (a corrupt file).
        let mut x = test_util::Rng::new(11).normals(2 * QK_K, 1.0);
        x[3] = f32::NAN;
        x[300] = f32::INFINITY;
        x[301] = f32::NEG_INFINITY;
        let junk: Vec<u8> = (0..2 * BlockQ8K::SIZE)
            .map(|i| (i * 131 + 7) as u8)
            .collect();
        for t in TRAITS {
            let size = 2 * t.ty.type_size();
            let mut q = vec![0u8; size];
            crate::quantize(t.ty, &x, &mut q).unwrap();
            let mut y = vec![0f32; 2 * QK_K];
            crate::dequantize(t.ty, &junk[..size], &mut y).unwrap();
            crate::dot(t.ty, 2 * QK_K, &junk[..size], &junk).unwrap();
        }
    }

    #[test]
    fn qkx2_finds_exact_affine_grid() {
        // Values on an exact grid 0.5 * l - 1 are recovered with zero error.
        let x: Vec<f32> = (0..16).map(|i| 0.5 * (i % 4) as f32 - 1.0).collect();
        let w: Vec<f32> = x.iter().map(|v| v.abs()).collect();
        let (mut l, mut laux) = ([0u8; 16], [0u8; 16]);
        let p = Qkx2Search {
            nmax: 3,
            rmin: -0.5,
            rdelta: 0.1,
            nstep: 15,
            use_mad: true,
        };
        let (scale, min) = make_qkx2_quants(&p, &x, &w, &mut l, &mut laux);
        for i in 0..16 {
            assert_eq!(scale * l[i] as f32 - min, x[i]);
        }
    }
}
