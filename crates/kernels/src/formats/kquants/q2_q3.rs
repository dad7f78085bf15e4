//! Q2_K (2.625 bits per weight) and Q3_K (3.4375 bits per weight).
//!
//! Both split a super-block into 16 sub-blocks of 16 values and store 2-bit quants
//! packed four to a byte (`pack_2bit`). Q2_K is affine (`d·sc·q − dmin·m`
//! with 4-bit scales and mins); Q3_K is symmetric (`d·(sc−32)·(q−4)` with 6-bit
//! scales and the third quant bit in `hmask`). Sources: ggml-common.h
//! `block_q2_K` / `block_q3_K`, ggml-quants.c `quantize_row_q{2,3}_K_ref`,
//! `dequantize_row_q{2,3}_K`, `make_q3_quants`, ggml-cpu/quants.c
//! `ggml_vec_dot_q{2,3}_K_q8_K_generic`.

use super::{
    BlockQ8K, GROUP_MAX_EPS, KBlock, QK_K, Qkx2Search, Reader, Writer, blocks, make_qkx2_quants,
    nearest_int, pack_2bit, quantize_blocks,
};
use crate::formats::float::{f16_to_f32, f32_to_f16};
use crate::formats::weighted::{
    make_qkx3_quants_weighted, make_qp_quants, make_qx_quants_weighted,
};

/// One Q2_K super-block: 256 values as `d·(scales[j] & 15)·q − dmin·(scales[j] >> 4)`
/// per sub-block `j` of 16, `q` in 0..=3.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ2K {
    /// Per sub-block: 4-bit scale (low nibble) and 4-bit min (high nibble).
    pub scales: [u8; QK_K / 16],
    /// 2-bit quants: byte `l` of 32-byte chunk `c` holds values `128c + l`,
    /// `+ 32`, `+ 64`, `+ 96` in bits 0–1, 2–3, 4–5, 6–7.
    pub qs: [u8; QK_K / 4],
    /// Super-block scale for the scales (fp16 bits).
    pub d: u16,
    /// Super-block scale for the mins (fp16 bits).
    pub dmin: u16,
}
const _: () = assert!(size_of::<BlockQ2K>() == 84);

impl KBlock for BlockQ2K {
    const SIZE: usize = 84;

    fn read(r: &mut Reader<'_>) -> Self {
        BlockQ2K {
            scales: r.bytes(),
            qs: r.bytes(),
            d: r.u16(),
            dmin: r.u16(),
        }
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.bytes(&self.scales);
        w.bytes(&self.qs);
        w.u16(self.d);
        w.u16(self.dmin);
    }
}

/// One Q3_K super-block: 256 values as `d·(sc[j] − 32)·(q − 4)` per sub-block `j`
/// of 16, `q` in 0..=7 from two low bits in `qs` and a high bit in `hmask`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ3K {
    /// High quant bits: bit `b` of byte `m` belongs to value `32·b + m`.
    pub hmask: [u8; QK_K / 8],
    /// Low 2 quant bits, laid out as in [`BlockQ2K::qs`].
    pub qs: [u8; QK_K / 4],
    /// Sixteen 6-bit scales biased by 32: scale `j` keeps its low nibble in byte
    /// `j % 8` (low half for j < 8, high half otherwise) and its top 2 bits in
    /// byte `8 + j % 4` at bit `2·(j / 4)`.
    pub scales: [u8; 12],
    /// Super-block scale (fp16 bits).
    pub d: u16,
}
const _: () = assert!(size_of::<BlockQ3K>() == 110);

impl KBlock for BlockQ3K {
    const SIZE: usize = 110;

    fn read(r: &mut Reader<'_>) -> Self {
        BlockQ3K {
            hmask: r.bytes(),
            qs: r.bytes(),
            scales: r.bytes(),
            d: r.u16(),
        }
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.bytes(&self.hmask);
        w.bytes(&self.qs);
        w.bytes(&self.scales);
        w.u16(self.d);
    }
}

/// The sixteen signed scales of a Q3_K block: scale `j` has its low nibble in byte
/// `j` (j < 8) or the high nibble of byte `j − 8`, and its top 2 bits in byte
/// `8 + j % 4` at bit `2·(j / 4)`; the stored 6-bit value is biased by 32.
fn q3_scales(s: &[u8; 12]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let low = if j < 8 { s[j] & 0xF } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = (low | (high << 4)) as i8 - 32;
    }
    out
}

/// Quantize `x` (a multiple of 256 values) to Q2_K, bit-exact with ggml's
/// `quantize_row_q2_K_ref`.
pub fn quantize_row_q2_k_ref(x: &[f32], dst: &mut [u8]) {
    quantize_blocks(x, dst, quantize_block_q2_k);
}

fn quantize_block_q2_k(x: &[f32; QK_K]) -> BlockQ2K {
    const Q4SCALE: f32 = 15.0;
    let search = Qkx2Search {
        nmax: 3,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: true,
    };
    let mut l = [0u8; QK_K];
    let mut laux = [0u8; 16];
    let mut weights = [0f32; 16];
    let mut scales = [0f32; QK_K / 16];
    let mut mins = [0f32; QK_K / 16];

    // A scale and min per sub-block; scales are positive as the min is subtracted.
    let mut max_scale = 0f32;
    let mut max_min = 0f32;
    for j in 0..QK_K / 16 {
        let xs = &x[16 * j..16 * j + 16];
        for (w, v) in weights.iter_mut().zip(xs) {
            *w = v.abs();
        }
        let (scale, min) = make_qkx2_quants(
            &search,
            xs,
            &weights,
            &mut l[16 * j..16 * j + 16],
            &mut laux,
        );
        scales[j] = scale;
        mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }

    // Quantize the scales and mins to 4 bits against fp16 super-block scales.
    let mut b = BlockQ2K {
        scales: [0; QK_K / 16],
        qs: [0; QK_K / 4],
        d: 0,
        dmin: 0,
    };
    if max_scale > 0.0 {
        let iscale = Q4SCALE / max_scale;
        for (s, v) in b.scales.iter_mut().zip(&scales) {
            *s = nearest_int(iscale * v) as u8;
        }
        b.d = f32_to_f16(max_scale / Q4SCALE);
    } else {
        b.d = f32_to_f16(0.0);
    }
    if max_min > 0.0 {
        let iscale = Q4SCALE / max_min;
        for (s, v) in b.scales.iter_mut().zip(&mins) {
            *s |= (nearest_int(iscale * v) << 4) as u8;
        }
        b.dmin = f32_to_f16(max_min / Q4SCALE);
    } else {
        b.dmin = f32_to_f16(0.0);
    }

    q2_k_finish(x, b, &mut l)
}

/// Re-quantize every value of a Q2_K block against the scales actually stored,
/// and pack the quants.
fn q2_k_finish(x: &[f32; QK_K], mut b: BlockQ2K, l: &mut [u8; QK_K]) -> BlockQ2K {
    let d_all = f16_to_f32(b.d);
    let dmin_all = f16_to_f32(b.dmin);
    for j in 0..QK_K / 16 {
        let d = d_all * (b.scales[j] & 0xF) as f32;
        if d == 0.0 {
            continue;
        }
        let dm = dmin_all * (b.scales[j] >> 4) as f32;
        for i in 16 * j..16 * j + 16 {
            l[i] = nearest_int((x[i] + dm) / d).clamp(0, 3) as u8;
        }
    }
    b.qs = pack_2bit(l);
    b
}

/// Quantize one row to Q2_K with an importance matrix `qw` (one weight per
/// column), bit-exact with ggml's `quantize_q2_K` (`quantize_row_q2_K_impl`).
pub fn quantize_q2_k_weighted(x: &[f32], dst: &mut [u8], qw: &[f32]) {
    for (i, (xb, out)) in x
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(<BlockQ2K as KBlock>::SIZE))
        .enumerate()
    {
        let xb: &[f32; QK_K] = xb.try_into().expect("a super-block");
        let qw = &qw[QK_K * i..QK_K * (i + 1)];
        let mut sumx2 = 0f32;
        for v in xb {
            sumx2 += v * v;
        }
        let sigma2 = sumx2 / QK_K as f32;
        let mut l = [0u8; QK_K];
        let (mut scales, mut mins, mut sw) = ([0f32; 16], [0f32; 16], [0f32; 16]);
        let mut weight = [0f32; 16];
        for j in 0..QK_K / 16 {
            let xs = &xb[16 * j..16 * j + 16];
            for ((w, &v), &q) in weight.iter_mut().zip(xs).zip(&qw[16 * j..]) {
                *w = q * (sigma2 + v * v).sqrt();
            }
            for w in &weight {
                sw[j] += w;
            }
            (scales[j], mins[j]) = make_qkx3_quants_weighted(
                3,
                xs,
                &weight,
                &mut l[16 * j..16 * j + 16],
                (-0.9, 0.05, 36),
            );
        }
        let (mut ls, mut lm) = ([0u8; 16], [0u8; 16]);
        let dm = make_qp_quants(15, &scales, &mut ls, &sw);
        let mm = make_qp_quants(15, &mins, &mut lm, &sw);
        let b = BlockQ2K {
            scales: std::array::from_fn(|j| ls[j] | (lm[j] << 4)),
            qs: [0; QK_K / 4],
            d: f32_to_f16(dm),
            dmin: f32_to_f16(mm),
        };
        q2_k_finish(xb, b, &mut l).write(&mut Writer { b: out, at: 0 });
    }
}

/// Dequantize Q2_K blocks into `y` (ggml's `dequantize_row_q2_K`).
pub fn dequantize_row_q2_k(src: &[u8], y: &mut [f32]) {
    for (b, out) in blocks::<BlockQ2K>(src).zip(y.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(b.d);
        let min = f16_to_f32(b.dmin);
        for (i, v) in out.iter_mut().enumerate() {
            // Value i sits in 128-half i/128, at shift 2·((i%128)/32), byte i%32.
            let q = (b.qs[32 * (i / 128) + i % 32] >> (2 * ((i % 128) / 32))) & 3;
            let sc = b.scales[i / 16];
            let dl = d * (sc & 0xF) as f32;
            let ml = min * (sc >> 4) as f32;
            *v = dl * q as f32 - ml;
        }
    }
}

/// Q2_K · Q8_K dot product of `n` values (ggml's `ggml_vec_dot_q2_K_q8_K_generic`):
/// integer sums per block, the mins applied through Q8_K's 16-value sums.
pub fn vec_dot_q2_k_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let mut sumf = 0f32;
    for (bx, by) in blocks::<BlockQ2K>(x)
        .zip(blocks::<BlockQ8K>(y))
        .take(n / QK_K)
    {
        let summs: i32 = by
            .bsums
            .iter()
            .zip(&bx.scales)
            .map(|(&s, &sc)| s as i32 * (sc >> 4) as i32)
            .sum();
        let dall = by.d * f16_to_f32(bx.d);
        let dmin = by.d * f16_to_f32(bx.dmin);
        let mut isum = 0i32;
        for (j, &sc) in bx.scales.iter().enumerate() {
            // Sub-block j: 16 values in 128-half j/8, shift 2·((j%8)/2), bytes
            // 16·(j%2)..+16 of that half.
            let half = j / 8;
            let shift = 2 * ((j % 8) / 2);
            let q2 = &bx.qs[32 * half + 16 * (j % 2)..][..16];
            let q8 = &by.qs[16 * j..16 * j + 16];
            let isuml: i32 = q8
                .iter()
                .zip(q2)
                .map(|(&a, &q)| a as i32 * ((q >> shift) & 3) as i32)
                .sum();
            isum += (sc & 0xF) as i32 * isuml;
        }
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

/// Scale search for one Q3_K sub-block (ggml-quants.c `make_q3_quants` with
/// `do_rmse = true`): start from `−nmax/max`, then for up to five rounds move single
/// quants when that raises the weighted fit `(Σwxl)²/Σwl²` with `w = x²`. Writes
/// quants `0..2·nmax` (biased by `nmax`) to `l` and returns the scale.
fn make_q3_quants(nmax: i32, x: &[f32], l: &mut [i8]) -> f32 {
    let mut max = 0f32;
    let mut amax = 0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let mut sumlx = 0f32;
    let mut suml2 = 0f32;
    for (q, &v) in l.iter_mut().zip(x) {
        let li = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        *q = li as i8;
        let w = v * v;
        sumlx += w * v * li as f32;
        suml2 += w * li as f32 * li as f32;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for (q, &v) in l.iter_mut().zip(x) {
            let w = v * v;
            let old = *q as f32;
            let mut slx = sumlx - w * v * old;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * old * old;
                let new_l = nearest_int(v * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != *q as i32 {
                    let nl = new_l as f32;
                    slx += w * v * nl;
                    sl2 += w * nl * nl;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *q = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for q in l.iter_mut() {
        *q += nmax as i8;
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

/// Quantize `x` (a multiple of 256 values) to Q3_K, bit-exact with ggml's
/// `quantize_row_q3_K_ref`.
pub fn quantize_row_q3_k_ref(x: &[f32], dst: &mut [u8]) {
    quantize_blocks(x, dst, quantize_block_q3_k);
}

fn quantize_block_q3_k(x: &[f32; QK_K]) -> BlockQ3K {
    let mut l = [0i8; QK_K];
    let mut scales = [0f32; QK_K / 16];

    // A signed scale per sub-block; keep the one of largest magnitude.
    let mut max_scale = 0f32;
    let mut amax = 0f32;
    for j in 0..QK_K / 16 {
        scales[j] = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
        if scales[j].abs() > amax {
            amax = scales[j].abs();
            max_scale = scales[j];
        }
    }

    // 6-bit scales relative to the fp16 super-block scale.
    let mut b = BlockQ3K {
        hmask: [0; QK_K / 8],
        qs: [0; QK_K / 4],
        scales: [0; 12],
        d: 0,
    };
    if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        for (j, &s) in scales.iter().enumerate() {
            // ggml stores nearest_int's result in an int8_t before clamping.
            let q = ((nearest_int(iscale * s) as i8).clamp(-32, 31) + 32) as u8;
            if j < 8 {
                b.scales[j] = q & 0xF;
            } else {
                b.scales[j - 8] |= (q & 0xF) << 4;
            }
            b.scales[j % 4 + 8] |= (q >> 4) << (2 * (j / 4));
        }
        b.d = f32_to_f16(1.0 / iscale);
    } else {
        b.d = f32_to_f16(0.0);
    }

    q3_k_finish(x, b, &mut l)
}

/// Re-quantize every value of a Q3_K block against the stored scales, and pack
/// the quants.
fn q3_k_finish(x: &[f32; QK_K], mut b: BlockQ3K, l: &mut [i8; QK_K]) -> BlockQ3K {
    let d_all = f16_to_f32(b.d);
    for (j, &sc) in q3_scales(&b.scales).iter().enumerate() {
        let d = d_all * sc as f32;
        if d == 0.0 {
            continue;
        }
        for i in 16 * j..16 * j + 16 {
            l[i] = nearest_int(x[i] / d).clamp(-4, 3) as i8 + 4;
        }
    }

    // Third bit into hmask (bit b of byte m for value 32·b + m), low bits into qs.
    let mut low = [0u8; QK_K];
    for (i, (&q, lo)) in l.iter().zip(low.iter_mut()).enumerate() {
        let q = q as u8;
        if q > 3 {
            b.hmask[i % 32] |= 1 << (i / 32);
            *lo = q - 4;
        } else {
            *lo = q;
        }
    }
    b.qs = pack_2bit(&low);
    b
}

/// Quantize one row to Q3_K with an importance matrix `qw` (one weight per
/// column), bit-exact with ggml's `quantize_q3_K` (`quantize_row_q3_K_impl`).
pub fn quantize_q3_k_weighted(x: &[f32], dst: &mut [u8], qw: &[f32]) {
    for (i, (xb, out)) in x
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(<BlockQ3K as KBlock>::SIZE))
        .enumerate()
    {
        let xb: &[f32; QK_K] = xb.try_into().expect("a super-block");
        let qw = &qw[QK_K * i..QK_K * (i + 1)];
        let mut sumx2 = 0f32;
        for v in xb {
            sumx2 += v * v;
        }
        let sigma2 = 2.0 * sumx2 / QK_K as f32;
        let mut l = [0i8; QK_K];
        let (mut scales, mut sw) = ([0f32; 16], [0f32; 16]);
        let mut weight = [0f32; 16];
        for j in 0..QK_K / 16 {
            let xs = &xb[16 * j..16 * j + 16];
            for ((w, &v), &q) in weight.iter_mut().zip(xs).zip(&qw[16 * j..]) {
                *w = q * (sigma2 + v * v).sqrt();
            }
            let mut sumw = 0f32;
            for w in &weight {
                sumw += w;
            }
            sw[j] = sumw;
            scales[j] = make_qx_quants_weighted(4, xs, &mut l[16 * j..16 * j + 16], &weight);
        }
        let mut ls = [0i8; 16];
        let d_block = make_qx_quants_weighted(32, &scales, &mut ls, &sw);
        let mut b = BlockQ3K {
            hmask: [0; QK_K / 8],
            qs: [0; QK_K / 4],
            scales: [0; 12],
            d: f32_to_f16(d_block),
        };
        for (j, &q) in ls.iter().enumerate() {
            let q = q as u8;
            if j < 8 {
                b.scales[j] = q & 0xF;
            } else {
                b.scales[j - 8] |= (q & 0xF) << 4;
            }
            b.scales[j % 4 + 8] |= (q >> 4) << (2 * (j / 4));
        }
        q3_k_finish(xb, b, &mut l).write(&mut Writer { b: out, at: 0 });
    }
}

/// The 256 quants (−4..=3) of a Q3_K block: in each 128-value half `h`, value
/// `32k + l` takes bits `2k` of `qs[32h + l]` and loses 4 unless bit `4h + k` of
/// `hmask[l]` is set.
fn q3_quants(b: &BlockQ3K) -> [i8; QK_K] {
    let mut q = [0i8; QK_K];
    for (i, chunk) in q.chunks_exact_mut(32).enumerate() {
        let (h, k) = (i / 4, i % 4);
        for (l, v) in chunk.iter_mut().enumerate() {
            let low = (b.qs[32 * h + l] >> (2 * k)) & 3;
            let high_set = b.hmask[l] & (1 << i) != 0;
            *v = low as i8 - if high_set { 0 } else { 4 };
        }
    }
    q
}

/// Dequantize Q3_K blocks into `y` (ggml's `dequantize_row_q3_K`).
pub fn dequantize_row_q3_k(src: &[u8], y: &mut [f32]) {
    for (b, out) in blocks::<BlockQ3K>(src).zip(y.chunks_exact_mut(QK_K)) {
        let d_all = f16_to_f32(b.d);
        let scales = q3_scales(&b.scales);
        let q = q3_quants(&b);
        for ((sub, qs), &sc) in out
            .chunks_exact_mut(16)
            .zip(q.chunks_exact(16))
            .zip(&scales)
        {
            let dl = d_all * sc as f32;
            for (v, &q) in sub.iter_mut().zip(qs) {
                *v = dl * q as f32;
            }
        }
    }
}

/// Q3_K · Q8_K dot product of `n` values (ggml's `ggml_vec_dot_q3_K_q8_K_generic`):
/// integer sums in eight lanes (value index mod 8), scaled per block into eight
/// float lanes that are added up at the end.
pub fn vec_dot_q3_k_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let mut sums = [0f32; 8];
    for (bx, by) in blocks::<BlockQ3K>(x)
        .zip(blocks::<BlockQ8K>(y))
        .take(n / QK_K)
    {
        let scales = q3_scales(&bx.scales);
        let a = q3_quants(&bx);
        let mut aux32 = [0i32; 8];
        for i in 0..QK_K {
            aux32[i % 8] += scales[i / 16] as i32 * (by.qs[i] as i32 * a[i] as i32);
        }
        let d = f16_to_f32(bx.d) * by.d;
        for (s, &a) in sums.iter_mut().zip(&aux32) {
            *s += d * a as f32;
        }
    }
    sums.iter().fold(0f32, |acc, &s| acc + s)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{Rng, dot_error, relative_rmse, round_trip};
    use super::*;
    use gguf::TensorType;

    #[test]
    fn q2_k_round_trip_error_is_bounded() {
        let x = Rng::new(1).normals(16 * QK_K, 1.0);
        let e = relative_rmse(&x, &round_trip(TensorType::Q2_K, &x));
        assert!((0.25..0.35).contains(&e), "Q2_K relative RMSE {e}");
    }

    #[test]
    fn q3_k_round_trip_error_is_bounded() {
        let x = Rng::new(2).normals(16 * QK_K, 1.0);
        let e = relative_rmse(&x, &round_trip(TensorType::Q3_K, &x));
        assert!((0.12..0.18).contains(&e), "Q3_K relative RMSE {e}");
    }

    #[test]
    fn zero_blocks_dequantize_to_zero() {
        for ty in [TensorType::Q2_K, TensorType::Q3_K] {
            let y = round_trip(ty, &[0f32; QK_K]);
            assert!(y.iter().all(|v| *v == 0.0), "{ty}: {y:?}");
        }
    }

    #[test]
    fn q2_k_hand_built_block() {
        // d = 0.5, dmin = 0.25; sub-block j has scale j and min 2; every quant is
        // 3, so value i = 0.5·j·3 − 0.25·2 with j = i / 16.
        let b = BlockQ2K {
            scales: std::array::from_fn(|j| j as u8 | (2 << 4)),
            qs: [0xFF; QK_K / 4],
            d: f32_to_f16(0.5),
            dmin: f32_to_f16(0.25),
        };
        let mut bytes = [0u8; BlockQ2K::SIZE];
        b.write(&mut Writer {
            b: &mut bytes,
            at: 0,
        });
        let mut y = [0f32; QK_K];
        dequantize_row_q2_k(&bytes, &mut y);
        for (i, v) in y.iter().enumerate() {
            assert_eq!(*v, 1.5 * (i / 16) as f32 - 0.5, "value {i}");
        }
    }

    #[test]
    fn q3_k_equal_values_are_exact() {
        // A constant block needs one level: the scale search must land on it.
        let y = round_trip(TensorType::Q3_K, &[0.75f32; QK_K]);
        assert!(y.iter().all(|v| *v == 0.75), "{y:?}");
    }

    #[test]
    fn q3_scales_unpack_what_the_quantizer_packs() {
        // Sixteen distinct 6-bit values packed as quantize_row_q3_K_ref does.
        let want: [i8; 16] = std::array::from_fn(|j| (j as i8 * 4) - 32 + (j as i8 % 3));
        let mut s = [0u8; 12];
        for (j, &w) in want.iter().enumerate() {
            let q = (w + 32) as u8;
            if j < 8 {
                s[j] = q & 0xF;
            } else {
                s[j - 8] |= (q & 0xF) << 4;
            }
            s[j % 4 + 8] |= (q >> 4) << (2 * (j / 4));
        }
        assert_eq!(q3_scales(&s), want);
    }

    #[test]
    fn dots_match_dequantized_f32_dot() {
        for ty in [TensorType::Q2_K, TensorType::Q3_K] {
            let (got, want, scale) = dot_error(ty, 7);
            assert!(
                (got - want).abs() <= 1e-6 * scale,
                "{ty}: dot {got} vs {want}"
            );
        }
    }
}
