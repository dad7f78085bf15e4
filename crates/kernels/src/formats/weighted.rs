//! Importance-weighted quantizers, as llama-quantize uses them when given an
//! importance matrix (ggml-quants.c `quantize_row_*_impl` with `quant_weights`).
//!
//! Each takes one row and one importance per column. The weight of an element is
//! its importance times `sqrt(sigma2 + x²)`, `sigma2` the row's mean square, and
//! each block's scale (and min) minimise the weighted squared error. The
//! arithmetic follows ggml's operation by operation (f32, no fused multiply-add)
//! so that the bytes are the same.

use gguf::TensorType;

use crate::dispatch::WeightedFn;
use crate::formats::float::f32_to_f16;
use crate::formats::iquants as iq4;
use crate::formats::kquants::{self, nearest_int};
use crate::formats::legacy::{QK, pack_q5};

/// ggml-quants.c `GROUP_MAX_EPS`: a block whose largest magnitude is below this is zero.
const GROUP_MAX_EPS: f32 = 1e-15;

/// The weighted quantizer for `ty`, if hearth has one.
pub fn quantizer(ty: TensorType) -> Option<WeightedFn> {
    match ty {
        TensorType::Q4_0 => Some(quantize_q4_0_weighted),
        TensorType::Q4_1 => Some(quantize_q4_1_weighted),
        TensorType::Q5_0 => Some(quantize_q5_0_weighted),
        TensorType::Q5_1 => Some(quantize_q5_1_weighted),
        TensorType::Q2_K => Some(kquants::quantize_q2_k_weighted),
        TensorType::Q3_K => Some(kquants::quantize_q3_k_weighted),
        TensorType::Q4_K => Some(kquants::quantize_q4_k_weighted),
        TensorType::Q5_K => Some(kquants::quantize_q5_k_weighted),
        TensorType::Q6_K => Some(kquants::quantize_q6_k_weighted),
        TensorType::IQ4_NL => Some(iq4::quantize_iq4_nl_weighted),
        TensorType::IQ4_XS => Some(iq4::quantize_iq4_xs_weighted),
        _ => None,
    }
}

/// `sigma2` of a row: its mean square, summed in order as ggml does.
fn row_sigma2(x: &[f32]) -> f32 {
    let mut sum_x2 = 0f32;
    for &v in x {
        sum_x2 += v * v;
    }
    sum_x2 / x.len() as f32
}

/// Per-element weights of one block: `qw[j] * sqrt(sigma2 + x[j]²)`.
fn block_weights(xb: &[f32], qw: &[f32], sigma2: f32, out: &mut [f32]) {
    for ((o, &x), &q) in out.iter_mut().zip(xb).zip(qw) {
        *o = q * (sigma2 + x * x).sqrt();
    }
}

/// ggml-quants.c `make_qx_quants` with weights (`rmse_type` 1): a symmetric
/// scale for quants in `-nmax..nmax`, written to `l` offset by `nmax`; a search
/// over 18 scales around `-nmax / max` keeps the one of least weighted error.
pub(crate) fn make_qx_quants_weighted(nmax: i32, x: &[f32], l: &mut [i8], w: &[f32]) -> f32 {
    let (mut max, mut amax) = (0f32, 0f32);
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
    let quant = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    let sums = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0f32, 0f32);
        for (&v, &wi) in x.iter().zip(w) {
            let q = quant(iscale, v) as f32;
            sumlx += wi * v * q;
            suml2 += wi * q * q;
        }
        (sumlx, suml2)
    };
    let iscale = -(nmax as f32) / max;
    for (li, &v) in l.iter_mut().zip(x) {
        *li = (quant(iscale, v) + nmax) as i8;
    }
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        let iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (li, &v) in l.iter_mut().zip(x) {
                *li = (quant(iscale, v) + nmax) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml-quants.c `make_qkx3_quants` with weights and squared error: scale and
/// min with `x ≈ scale·l - min`, `l` in `0..=nmax`; returns `(scale, min)`.
pub(crate) fn make_qkx3_quants_weighted(
    nmax: i32,
    x: &[f32],
    w: &[f32],
    l: &mut [u8],
    (rmin, rdelta, nstep): (f32, f32, i32),
) -> (f32, f32) {
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = w[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max <= min {
        l.fill(0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_mad = 0f32;
    for i in 0..n {
        let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l[i] = q as u8;
        let diff = scale * f32::from(l[i]) + min - x[i];
        best_mad += w[i] * (diff * diff);
    }
    let mut laux = [0u8; 256];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for i in 0..n {
            let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = q as u8;
            let q = q as f32;
            sum_l += w[i] * q;
            sum_l2 += w[i] * q * q;
            sum_xl += w[i] * q * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut mad = 0f32;
            for i in 0..n {
                let diff = this_scale * f32::from(laux[i]) + this_min - x[i];
                mad += w[i] * (diff * diff);
            }
            if mad < best_mad {
                l[..n].copy_from_slice(&laux[..n]);
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// ggml-quants.c `make_qp_quants`: a positive scale for non-negative `x` with
/// quants in `0..=nmax` minimising the error weighted by `qw`, refined by moving
/// single quants. Quants are stored as ggml's `uint8_t` would hold them.
pub(crate) fn make_qp_quants(nmax: i32, x: &[f32], l: &mut [u8], qw: &[f32]) -> f32 {
    let mut max = 0f32;
    for &v in x {
        max = if max > v { max } else { v };
    }
    if max < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let mut iscale = nmax as f32 / max;
    for (li, &v) in l.iter_mut().zip(x) {
        *li = nearest_int(iscale * v) as u8;
    }
    let scale = 1.0 / iscale;
    let mut best_mse = 0f32;
    for ((&v, &li), &w) in x.iter().zip(l.iter()).zip(qw) {
        let diff = v - scale * f32::from(li);
        best_mse += w * diff * diff;
    }
    for is in -4..=4 {
        if is == 0 {
            continue;
        }
        let iscale_is = (0.1 * is as f32 + nmax as f32) / max;
        let scale_is = 1.0 / iscale_is;
        let mut mse = 0f32;
        for (&v, &w) in x.iter().zip(qw) {
            let q = nearest_int(iscale_is * v).min(nmax);
            let diff = v - scale_is * q as f32;
            mse += w * diff * diff;
        }
        if mse < best_mse {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    let (mut sumlx, mut suml2) = (0f32, 0f32);
    for ((&v, li), &w) in x.iter().zip(l.iter_mut()).zip(qw) {
        let q = nearest_int(iscale * v).min(nmax);
        *li = q as u8;
        sumlx += w * v * q as f32;
        suml2 += w * q as f32 * q as f32;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for i in 0..x.len() {
            let (w, v, li) = (qw[i], x[i], f32::from(l[i]));
            let mut slx = sumlx - w * v * li;
            let mut sl2 = suml2 - w * li * li;
            if slx > 0.0 && sl2 > 0.0 {
                let new_l = nearest_int(v * sl2 / slx).min(nmax);
                if new_l != i32::from(l[i]) {
                    slx += w * v * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l[i] = new_l as u8;
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
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

/// Nibbles of 32 quants: byte `j` holds element `j` low and `j + 16` high.
fn pack_q4(l: &[u8]) -> [u8; QK / 2] {
    std::array::from_fn(|j| l[j] | (l[j + QK / 2] << 4))
}

/// Runs `block` over each 32-element block of a row with its weights.
fn for_blocks(
    x: &[f32],
    qw: &[f32],
    dst: &mut [u8],
    bytes: usize,
    mut block: impl FnMut(&[f32], &[f32], &mut [u8]),
) {
    let sigma2 = row_sigma2(x);
    let mut weight = [0f32; QK];
    for ((xb, qb), out) in x
        .chunks_exact(QK)
        .zip(qw.chunks_exact(QK))
        .zip(dst.chunks_exact_mut(bytes))
    {
        block_weights(xb, qb, sigma2, &mut weight);
        block(xb, &weight, out);
    }
}

/// ggml-quants.c `quantize_row_q4_0_impl`.
pub fn quantize_q4_0_weighted(x: &[f32], dst: &mut [u8], qw: &[f32]) {
    for_blocks(x, qw, dst, 18, |xb, w, out| {
        let mut l = [0i8; QK];
        let d = make_qx_quants_weighted(8, xb, &mut l, w);
        out[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        out[2..].copy_from_slice(&pack_q4(&l.map(|v| v as u8)));
    });
}

/// ggml-quants.c `quantize_row_q4_1_impl`.
pub fn quantize_q4_1_weighted(x: &[f32], dst: &mut [u8], qw: &[f32]) {
    for_blocks(x, qw, dst, 20, |xb, w, out| {
        let mut l = [0u8; QK];
        let (d, min) = make_qkx3_quants_weighted(15, xb, w, &mut l, (-0.9, 0.05, 36));
        out[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        out[2..4].copy_from_slice(&f32_to_f16(-min).to_le_bytes());
        out[4..].copy_from_slice(&pack_q4(&l));
    });
}

/// ggml-quants.c `quantize_row_q5_0_impl`.
pub fn quantize_q5_0_weighted(x: &[f32], dst: &mut [u8], qw: &[f32]) {
    for_blocks(x, qw, dst, 22, |xb, w, out| {
        let mut l = [0i8; QK];
        let d = make_qx_quants_weighted(16, xb, &mut l, w);
        let l = l.map(|v| v as u8);
        let (qs, qh) = pack_q5(
            l[..QK / 2].try_into().expect("16"),
            l[QK / 2..].try_into().expect("16"),
        );
        out[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        out[2..6].copy_from_slice(&qh);
        out[6..].copy_from_slice(&qs);
    });
}

/// ggml-quants.c `quantize_row_q5_1_impl`.
pub fn quantize_q5_1_weighted(x: &[f32], dst: &mut [u8], qw: &[f32]) {
    for_blocks(x, qw, dst, 24, |xb, w, out| {
        let mut l = [0u8; QK];
        let (d, min) = make_qkx3_quants_weighted(31, xb, w, &mut l, (-0.9, 0.05, 36));
        let (qs, qh) = pack_q5(
            l[..QK / 2].try_into().expect("16"),
            l[QK / 2..].try_into().expect("16"),
        );
        out[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        out[2..4].copy_from_slice(&f32_to_f16(-min).to_le_bytes());
        out[4..8].copy_from_slice(&qh);
        out[8..].copy_from_slice(&qs);
    });
}
