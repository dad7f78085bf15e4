//! Q4_K (4.5 bits per weight) and Q5_K (5.5 bits per weight).
//!
//! Both split a super-block into 8 sub-blocks of 32 values, each stored as
//! `d·sc·q − dmin·m` with 6-bit `sc` and `m` packed into 12 bytes
//! (`get_scale_min_k4`) and two fp16 super-block scales. Q4_K keeps 4-bit
//! quants; Q5_K adds a fifth bit in `qh`. The scale search is the same for both
//! apart from its parameters. Sources: ggml-common.h `block_q4_K` / `block_q5_K`,
//! ggml-quants.c `quantize_row_q{4,5}_K_ref`, `dequantize_row_q{4,5}_K`,
//! ggml-cpu/quants.c `ggml_vec_dot_q{4,5}_K_q8_K_generic`.

use super::{
    BlockQ8K, K_SCALE_SIZE, KBlock, QK_K, Qkx2Search, Reader, Writer, blocks, get_scale_min_k4,
    make_qkx2_quants, nearest_int, quantize_blocks,
};
use crate::formats::float::{f16_to_f32, f32_to_f16};
use crate::formats::weighted::{make_qkx3_quants_weighted, make_qp_quants};

/// One Q4_K super-block: value `i` is `d·sc·q − dmin·m` with `(sc, m)` of
/// sub-block `i / 32` and `q` in 0..=15.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ4K {
    /// Super-block scale for the scales (fp16 bits).
    pub d: u16,
    /// Super-block scale for the mins (fp16 bits).
    pub dmin: u16,
    /// Eight 6-bit scales and eight 6-bit mins, packed.
    pub scales: [u8; K_SCALE_SIZE],
    /// 4-bit quants: byte `l` of 32-byte chunk `c` holds value `64c + l` in its low
    /// nibble and `64c + 32 + l` in its high nibble.
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockQ4K>() == 144);

impl KBlock for BlockQ4K {
    const SIZE: usize = 144;

    fn read(r: &mut Reader<'_>) -> Self {
        BlockQ4K {
            d: r.u16(),
            dmin: r.u16(),
            scales: r.bytes(),
            qs: r.bytes(),
        }
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.u16(self.d);
        w.u16(self.dmin);
        w.bytes(&self.scales);
        w.bytes(&self.qs);
    }
}

/// One Q5_K super-block: like [`BlockQ4K`] with `q` in 0..=31, its fifth bit in
/// `qh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ5K {
    /// Super-block scale for the scales (fp16 bits).
    pub d: u16,
    /// Super-block scale for the mins (fp16 bits).
    pub dmin: u16,
    /// Eight 6-bit scales and eight 6-bit mins, packed.
    pub scales: [u8; K_SCALE_SIZE],
    /// Fifth quant bit: bit `b` of byte `l` belongs to value `32b + l`.
    pub qh: [u8; QK_K / 8],
    /// Low 4 quant bits, laid out as in [`BlockQ4K::qs`].
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockQ5K>() == 176);

impl KBlock for BlockQ5K {
    const SIZE: usize = 176;

    fn read(r: &mut Reader<'_>) -> Self {
        BlockQ5K {
            d: r.u16(),
            dmin: r.u16(),
            scales: r.bytes(),
            qh: r.bytes(),
            qs: r.bytes(),
        }
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.u16(self.d);
        w.u16(self.dmin);
        w.bytes(&self.scales);
        w.bytes(&self.qh);
        w.bytes(&self.qs);
    }
}

/// Scales and mins shared by Q4_K and Q5_K: the packed 6-bit scales and mins and
/// the fp16 super-block scales, with `l` holding each value's quant (0..=nmax).
struct ScalesMins {
    scales: [u8; K_SCALE_SIZE],
    d: u16,
    dmin: u16,
}

/// The common half of `quantize_row_q4_K_ref` and `quantize_row_q5_K_ref`: search a
/// scale and min per 32-value sub-block with weights `av_x + |x|`
/// (`av_x = sqrt(Σx²/32)`), quantize them to 6 bits against fp16 super-block
/// scales, then re-quantize every value against what was stored.
fn quantize_scales_mins(x: &[f32; QK_K], search: &Qkx2Search, l: &mut [u8; QK_K]) -> ScalesMins {
    let mut laux = [0u8; 32];
    let mut weights = [0f32; 32];
    let mut scales = [0f32; QK_K / 32];
    let mut mins = [0f32; QK_K / 32];
    let mut max_scale = 0f32;
    let mut max_min = 0f32;
    for j in 0..QK_K / 32 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0f32;
        for v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        for (w, v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        let (scale, min) =
            make_qkx2_quants(search, xs, &weights, &mut l[32 * j..32 * j + 32], &mut laux);
        scales[j] = scale;
        mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }

    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    // ggml stores nearest_int's result in a uint8_t before clamping.
    let ls = scales.map(|s| (nearest_int(inv_scale * s) as u8).min(63));
    let lm = mins.map(|m| (nearest_int(inv_min * m) as u8).min(63));
    pack_and_requantize(
        x,
        &ls,
        &lm,
        (max_scale / 63.0, max_min / 63.0),
        search.nmax,
        l,
    )
}

/// Packs 6-bit sub-block scales `ls` and mins `lm` with super-block scales `d`
/// (`d`, `dmin`) into a Q4_K / Q5_K header, then re-quantizes every value of `x`
/// against what was stored, into `l` (0..=nmax).
fn pack_and_requantize(
    x: &[f32; QK_K],
    ls: &[u8; QK_K / 32],
    lm: &[u8; QK_K / 32],
    d: (f32, f32),
    nmax: i32,
    l: &mut [u8; QK_K],
) -> ScalesMins {
    let mut packed = [0u8; K_SCALE_SIZE];
    for j in 0..QK_K / 32 {
        let (ls, lm) = (ls[j], lm[j]);
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    let out = ScalesMins {
        scales: packed,
        d: f32_to_f16(d.0),
        dmin: f32_to_f16(d.1),
    };

    let d_all = f16_to_f32(out.d);
    let dmin_all = f16_to_f32(out.dmin);
    for j in 0..QK_K / 32 {
        let (sc, m) = get_scale_min_k4(j, &out.scales);
        let d = d_all * sc as f32;
        if d == 0.0 {
            continue;
        }
        let dm = dmin_all * m as f32;
        for i in 32 * j..32 * j + 32 {
            l[i] = nearest_int((x[i] + dm) / d).clamp(0, nmax) as u8;
        }
    }
    out
}

/// Quantize `x` (a multiple of 256 values) to Q4_K, bit-exact with ggml's
/// `quantize_row_q4_K_ref`.
pub fn quantize_row_q4_k_ref(x: &[f32], dst: &mut [u8]) {
    quantize_blocks(x, dst, quantize_block_q4_k);
}

fn quantize_block_q4_k(x: &[f32; QK_K]) -> BlockQ4K {
    let search = Qkx2Search {
        nmax: 15,
        rmin: -1.0,
        rdelta: 0.1,
        nstep: 20,
        use_mad: false,
    };
    let mut l = [0u8; QK_K];
    let sm = quantize_scales_mins(x, &search, &mut l);
    q4_k_block(&sm, &l)
}

fn q4_k_block(sm: &ScalesMins, l: &[u8; QK_K]) -> BlockQ4K {
    let mut qs = [0u8; QK_K / 2];
    for (c, chunk) in qs.chunks_exact_mut(32).enumerate() {
        for (i, q) in chunk.iter_mut().enumerate() {
            *q = l[64 * c + i] | (l[64 * c + 32 + i] << 4);
        }
    }
    BlockQ4K {
        d: sm.d,
        dmin: sm.dmin,
        scales: sm.scales,
        qs,
    }
}

/// The 4-bit values of a Q4_K / Q5_K `qs` array in value order: byte `l` of
/// 32-byte chunk `c` holds value `64c + l` (low nibble) and `64c + 32 + l`.
fn nibbles(qs: &[u8; QK_K / 2]) -> [u8; QK_K] {
    let mut q = [0u8; QK_K];
    for (out, bytes) in q.chunks_exact_mut(64).zip(qs.chunks_exact(32)) {
        for (l, &b) in bytes.iter().enumerate() {
            out[l] = b & 0xF;
            out[l + 32] = b >> 4;
        }
    }
    q
}

/// `d·sc·q − dmin·m` for each 32-value sub-block of a Q4_K / Q5_K block, as
/// `dequantize_row_q{4,5}_K` computes it.
fn dequantize_affine(
    d: u16,
    dmin: u16,
    scales: &[u8; K_SCALE_SIZE],
    q: &[u8; QK_K],
    out: &mut [f32],
) {
    let d = f16_to_f32(d);
    let min = f16_to_f32(dmin);
    for (j, (sub, qs)) in out.chunks_exact_mut(32).zip(q.chunks_exact(32)).enumerate() {
        let (sc, m) = get_scale_min_k4(j, scales);
        let (d1, m1) = (d * sc as f32, min * m as f32);
        for (v, &q) in sub.iter_mut().zip(qs) {
            *v = d1 * q as f32 - m1;
        }
    }
}

/// Dequantize Q4_K blocks into `y` (ggml's `dequantize_row_q4_K`).
pub fn dequantize_row_q4_k(src: &[u8], y: &mut [f32]) {
    for (b, out) in blocks::<BlockQ4K>(src).zip(y.chunks_exact_mut(QK_K)) {
        dequantize_affine(b.d, b.dmin, &b.scales, &nibbles(&b.qs), out);
    }
}

/// The shared tail of ggml's `ggml_vec_dot_q{4,5}_K_q8_K_generic` for one block:
/// quants `a` (0..=31) times Q8_K quants, summed per lane (index mod 8) with the
/// sub-block scales; returns the eight lane sums and the min correction
/// `Σ bsums[j]·m[j/2]`.
fn dot_lanes_with_mins(
    a: &[u8; QK_K],
    scales: &[u8; K_SCALE_SIZE],
    by: &BlockQ8K,
) -> ([i32; 8], i32) {
    let mut sc = [0i32; 8];
    let mut mins = [0i32; 8];
    for j in 0..8 {
        let (s, m) = get_scale_min_k4(j, scales);
        sc[j] = s as i32;
        mins[j] = m as i32;
    }
    let sumi = by
        .bsums
        .iter()
        .enumerate()
        .map(|(j, &s)| s as i32 * mins[j / 2])
        .sum();
    let mut aux32 = [0i32; 8];
    for i in 0..QK_K {
        aux32[i % 8] += sc[i / 32] * (by.qs[i] as i32 * a[i] as i32);
    }
    (aux32, sumi)
}

/// Q4_K · Q8_K dot product of `n` values (ggml's `ggml_vec_dot_q4_K_q8_K_generic`).
pub fn vec_dot_q4_k_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let mut sums = [0f32; 8];
    let mut sumf = 0f32;
    for (bx, by) in blocks::<BlockQ4K>(x)
        .zip(blocks::<BlockQ8K>(y))
        .take(n / QK_K)
    {
        let a = nibbles(&bx.qs);
        let (aux32, sumi) = dot_lanes_with_mins(&a, &bx.scales, &by);
        let d = f16_to_f32(bx.d) * by.d;
        for (s, &v) in sums.iter_mut().zip(&aux32) {
            *s += d * v as f32;
        }
        let dmin = f16_to_f32(bx.dmin) * by.d;
        sumf -= dmin * sumi as f32;
    }
    sums.iter().fold(sumf, |acc, &s| acc + s)
}

/// Q4_K · Q8_K dot product of `n` values in the order of ggml-cpu's tiled
/// matmul, which llama.cpp uses for batches of
/// [`TILED_MIN_BATCH`](crate::formats::iquants::TILED_MIN_BATCH) activation
/// rows or more (prompt processing); [`vec_dot_q4_k_q8_k`] is its order for
/// fewer (decoding).
///
/// Per super-block the tile kernels sum `s1 = Σ_j scale_j · Σ q·y` and
/// `s2 = Σ_j min_j · (sum of sub-block j's activations)` exactly in integers,
/// then `r = fma(−dmin, f32(s2), f32(s1) · d)` and `acc = fma(r, d_y, acc)`,
/// super-blocks in order from zero (ggml-cpu/tiled/tiled-kernel.cpp, the
/// `HAS_MIN` epilogue of `tiled_run_micro_vnni_8x16` and
/// `tiled_run_microtile_avx2`).
pub fn vec_dot_q4_k_q8_k_tiled(n: usize, x: &[u8], y: &[u8]) -> f32 {
    blocks::<BlockQ4K>(x)
        .zip(blocks::<BlockQ8K>(y))
        .take(n / QK_K)
        .fold(0f32, |acc, (bx, by)| {
            tiled_affine_step(acc, &nibbles(&bx.qs), bx.d, bx.dmin, &bx.scales, &by)
        })
}

/// One super-block of the tiled order shared by Q4_K and Q5_K (see
/// [`vec_dot_q4_k_q8_k_tiled`]): `acc + r · d_y`, fused.
fn tiled_affine_step(
    acc: f32,
    q: &[u8; QK_K],
    d: u16,
    dmin: u16,
    scales: &[u8; K_SCALE_SIZE],
    by: &BlockQ8K,
) -> f32 {
    let (mut s1, mut s2) = (0i32, 0i32);
    for j in 0..QK_K / 32 {
        let (sc, m) = get_scale_min_k4(j, scales);
        let raw: i32 = (32 * j..32 * j + 32)
            .map(|i| q[i] as i32 * by.qs[i] as i32)
            .sum();
        s1 += sc as i32 * raw;
        s2 += m as i32 * (by.bsums[2 * j] as i32 + by.bsums[2 * j + 1] as i32);
    }
    let r = (-f16_to_f32(dmin)).mul_add(s2 as f32, s1 as f32 * f16_to_f32(d));
    r.mul_add(by.d, acc)
}

/// Quantize `x` (a multiple of 256 values) to Q5_K, bit-exact with ggml's
/// `quantize_row_q5_K_ref`.
pub fn quantize_row_q5_k_ref(x: &[f32], dst: &mut [u8]) {
    quantize_blocks(x, dst, quantize_block_q5_k);
}

fn quantize_block_q5_k(x: &[f32; QK_K]) -> BlockQ5K {
    let search = Qkx2Search {
        nmax: 31,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: false,
    };
    let mut l = [0u8; QK_K];
    let sm = quantize_scales_mins(x, &search, &mut l);
    q5_k_block(&sm, &l)
}

fn q5_k_block(sm: &ScalesMins, l: &[u8; QK_K]) -> BlockQ5K {
    let mut qs = [0u8; QK_K / 2];
    let mut qh = [0u8; QK_K / 8];
    for (c, chunk) in qs.chunks_exact_mut(32).enumerate() {
        for (i, q) in chunk.iter_mut().enumerate() {
            let (lo, hi) = (l[64 * c + i], l[64 * c + 32 + i]);
            qh[i] |= (lo >> 4) << (2 * c) | (hi >> 4) << (2 * c + 1);
            *q = (lo & 0xF) | ((hi & 0xF) << 4);
        }
    }
    BlockQ5K {
        d: sm.d,
        dmin: sm.dmin,
        scales: sm.scales,
        qh,
        qs,
    }
}

/// The 256 quants (0..=31) of a Q5_K block: the nibbles of `qs` plus 16 where
/// bit `i / 32` of `qh[i % 32]` is set.
fn q5_quants(b: &BlockQ5K) -> [u8; QK_K] {
    let mut q = nibbles(&b.qs);
    for (i, v) in q.iter_mut().enumerate() {
        *v |= ((b.qh[i % 32] >> (i / 32)) & 1) << 4;
    }
    q
}

/// Dequantize Q5_K blocks into `y` (ggml's `dequantize_row_q5_K`).
pub fn dequantize_row_q5_k(src: &[u8], y: &mut [f32]) {
    for (b, out) in blocks::<BlockQ5K>(src).zip(y.chunks_exact_mut(QK_K)) {
        dequantize_affine(b.d, b.dmin, &b.scales, &q5_quants(&b), out);
    }
}

/// Q5_K · Q8_K dot product of `n` values (ggml's `ggml_vec_dot_q5_K_q8_K_generic`).
pub fn vec_dot_q5_k_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let mut sums = [0f32; 8];
    let mut sumf = 0f32;
    for (bx, by) in blocks::<BlockQ5K>(x)
        .zip(blocks::<BlockQ8K>(y))
        .take(n / QK_K)
    {
        let a = q5_quants(&bx);
        let (aux32, sumi) = dot_lanes_with_mins(&a, &bx.scales, &by);
        let d = f16_to_f32(bx.d) * by.d;
        for (s, &v) in sums.iter_mut().zip(&aux32) {
            *s += d * v as f32;
        }
        let dmin = f16_to_f32(bx.dmin) * by.d;
        sumf -= dmin * sumi as f32;
    }
    sums.iter().fold(sumf, |acc, &s| acc + s)
}

/// Q5_K · Q8_K in the order of ggml-cpu's tiled matmul (batches), as
/// [`vec_dot_q4_k_q8_k_tiled`] with 5-bit quants.
pub fn vec_dot_q5_k_q8_k_tiled(n: usize, x: &[u8], y: &[u8]) -> f32 {
    blocks::<BlockQ5K>(x)
        .zip(blocks::<BlockQ8K>(y))
        .take(n / QK_K)
        .fold(0f32, |acc, (bx, by)| {
            tiled_affine_step(acc, &q5_quants(&bx), bx.d, bx.dmin, &bx.scales, &by)
        })
}

/// The weighted half of ggml's `quantize_row_q4_K_impl` / `quantize_row_q5_K_impl`
/// (with `quant_weights`): a scale and min per 32 values by `make_qkx3_quants`
/// under weights `qw·sqrt(sigma2 + x²)`, the 6-bit scales and mins by
/// `make_qp_quants` weighted by each sub-block's total weight.
fn weighted_scales_mins(x: &[f32; QK_K], qw: &[f32], nmax: i32, l: &mut [u8; QK_K]) -> ScalesMins {
    let mut sum_x2 = 0f32;
    for v in x {
        sum_x2 += v * v;
    }
    let sigma2 = 2.0 * sum_x2 / QK_K as f32;
    let mut weights = [0f32; 32];
    let (mut sw, mut scales, mut mins) = ([0f32; 8], [0f32; 8], [0f32; 8]);
    for j in 0..QK_K / 32 {
        let xs = &x[32 * j..32 * j + 32];
        for ((w, &v), &q) in weights.iter_mut().zip(xs).zip(&qw[32 * j..]) {
            *w = q * (sigma2 + v * v).sqrt();
        }
        let mut sumw = 0f32;
        for w in &weights {
            sumw += w;
        }
        sw[j] = sumw;
        (scales[j], mins[j]) = make_qkx3_quants_weighted(
            nmax,
            xs,
            &weights,
            &mut l[32 * j..32 * j + 32],
            (-0.9, 0.05, 36),
        );
    }
    let (mut ls, mut lm) = ([0u8; 8], [0u8; 8]);
    let d_block = make_qp_quants(63, &scales, &mut ls, &sw);
    let m_block = make_qp_quants(63, &mins, &mut lm, &sw);
    if nmax == 31 {
        // quantize_row_q5_K_impl clamps to 63; the Q4_K one does not.
        (ls, lm) = (ls.map(|v| v.min(63)), lm.map(|v| v.min(63)));
    }
    pack_and_requantize(x, &ls, &lm, (d_block, m_block), nmax, l)
}

/// Quantize one row to Q4_K with an importance matrix `qw` (one weight per
/// column), bit-exact with ggml's `quantize_q4_K`.
pub fn quantize_q4_k_weighted(x: &[f32], dst: &mut [u8], qw: &[f32]) {
    for (i, (xb, out)) in x
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(<BlockQ4K as KBlock>::SIZE))
        .enumerate()
    {
        let xb: &[f32; QK_K] = xb.try_into().expect("a super-block");
        let mut l = [0u8; QK_K];
        let sm = weighted_scales_mins(xb, &qw[QK_K * i..QK_K * (i + 1)], 15, &mut l);
        q4_k_block(&sm, &l).write(&mut Writer { b: out, at: 0 });
    }
}

/// Quantize one row to Q5_K with an importance matrix `qw`, bit-exact with
/// ggml's `quantize_q5_K`.
pub fn quantize_q5_k_weighted(x: &[f32], dst: &mut [u8], qw: &[f32]) {
    for (i, (xb, out)) in x
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(<BlockQ5K as KBlock>::SIZE))
        .enumerate()
    {
        let xb: &[f32; QK_K] = xb.try_into().expect("a super-block");
        let mut l = [0u8; QK_K];
        let sm = weighted_scales_mins(xb, &qw[QK_K * i..QK_K * (i + 1)], 31, &mut l);
        q5_k_block(&sm, &l).write(&mut Writer { b: out, at: 0 });
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{Rng, dot_error, relative_rmse, round_trip};
    use super::*;
    use gguf::TensorType;

    #[test]
    fn q4_k_round_trip_error_is_bounded() {
        let x = Rng::new(3).normals(16 * QK_K, 1.0);
        let e = relative_rmse(&x, &round_trip(TensorType::Q4_K, &x));
        assert!((0.06..0.085).contains(&e), "Q4_K relative RMSE {e}");
    }

    #[test]
    fn q5_k_round_trip_error_is_bounded() {
        let x = Rng::new(4).normals(16 * QK_K, 1.0);
        let e = relative_rmse(&x, &round_trip(TensorType::Q5_K, &x));
        assert!((0.03..0.043).contains(&e), "Q5_K relative RMSE {e}");
    }

    #[test]
    fn zero_and_constant_blocks() {
        for ty in [TensorType::Q4_K, TensorType::Q5_K] {
            let y = round_trip(ty, &[0f32; QK_K]);
            assert!(y.iter().all(|v| *v == 0.0), "{ty}: {y:?}");
            // A constant positive block has min 0 and one level per value.
            let y = round_trip(ty, &[2.0f32; QK_K]);
            assert!(y.iter().all(|v| (v - 2.0).abs() < 2e-3), "{ty}: {y:?}");
        }
    }

    #[test]
    fn q5_k_hand_built_block() {
        // d = 1, dmin = 0.5, every sub-block scale 1 and min 4; quant i % 32 with
        // the fifth bit set in odd sub-blocks: value i = (i%32 + 16·(j odd)) − 2.
        let mut scales = [0u8; K_SCALE_SIZE];
        for j in 0..4 {
            scales[j] = 1;
            scales[j + 4] = 4;
            scales[j + 8] = 1 | (4 << 4);
        }
        let b = BlockQ5K {
            d: f32_to_f16(1.0),
            dmin: f32_to_f16(0.5),
            scales,
            qh: [0b1010_1010; QK_K / 8],
            qs: std::array::from_fn(|i| (i % 32) as u8 & 0xF | (((i % 32) as u8 & 0xF) << 4)),
        };
        let mut bytes = [0u8; BlockQ5K::SIZE];
        b.write(&mut Writer {
            b: &mut bytes,
            at: 0,
        });
        let mut y = [0f32; QK_K];
        dequantize_row_q5_k(&bytes, &mut y);
        for (i, v) in y.iter().enumerate() {
            let q = (i % 16) + if (i / 32) % 2 == 1 { 16 } else { 0 };
            assert_eq!(*v, q as f32 - 2.0, "value {i}");
        }
    }

    #[test]
    fn dots_match_dequantized_f32_dot() {
        for ty in [TensorType::Q4_K, TensorType::Q5_K] {
            let (got, want, scale) = dot_error(ty, 8);
            assert!(
                (got - want).abs() <= 1e-6 * scale,
                "{ty}: dot {got} vs {want}"
            );
        }
    }
}
