//! Property tests for the legacy formats: quantize → dequantize stays within each
//! format's error bound (derived below from ggml's quantizer arithmetic), and the
//! quantized dot product stays within the bound those errors imply of the f32 one.

use kernels::{TensorType, dequantize, dot, quantize, traits};
use proptest::prelude::*;

/// Elements per legacy block.
const QK: usize = 32;

/// Half a unit in the last place of an f16 near `v`: the error of storing a scale or
/// minimum as f16 (round to nearest even). Normal f16 have 11 significant bits; below
/// 2⁻¹⁴ the spacing is fixed at 2⁻²⁴.
fn f16_err(v: f32) -> f32 {
    (v.abs() / 2048.0).max(1.0 / (1u32 << 25) as f32)
}

/// f32 arithmetic inside the quantizer (`x·id + 8.5`, `(x - min)·id`) and the
/// dequantizer (`q·d + m`) adds a few ulps of the block's magnitude; rounding at an
/// exact .5 boundary may then go either way, which the d/2 terms already cover.
fn arithmetic_slack(block: &[f32]) -> f32 {
    block.iter().fold(0f32, |m, v| m.max(v.abs())) * 1e-6
}

/// The element of largest magnitude, the first on ties (ggml's `max` in the `_0`
/// quantizers).
fn signed_absmax(block: &[f32]) -> f32 {
    block
        .iter()
        .fold(0f32, |m, &v| if m.abs() < v.abs() { v } else { m })
}

/// Per-element error bounds for one 32-element block of `ty`:
///
/// * Q8_0, Q8_1: `d = amax/127`, `q = round(x/d)` with `|q| ≤ 127`: rounding costs
///   `d/2`, storing `d` as f16 moves a value by `|q|·f16_err(d) ≤ 127·f16_err(d)`.
/// * Q4_0 (`k = 8`), Q5_0 (`k = 16`): `d = max/-k` maps the largest magnitude to
///   quant 0 exactly; with `t = x/d ∈ [-k, k]` the quant is `t + k` rounded and
///   clamped to `2k - 1`, so values with `t > k - 1/2` (the opposite extreme) lose
///   `(t - (k - 1))·|d|`, all others at most `|d|/2`; plus `k·f16_err(d)`.
/// * Q4_1 (`n = 15`), Q5_1 (`n = 31`): `d = (max - min)/n`, `q = round((x - min)/d)`
///   in `0..=n`: `d/2`, plus `n·f16_err(d)` for the scale and `f16_err(min)` for the
///   stored minimum.
fn block_bounds(ty: TensorType, block: &[f32]) -> Vec<f32> {
    let slack = arithmetic_slack(block);
    let symmetric = |k: f32| {
        let d = signed_absmax(block) / -k;
        let scale_err = k * f16_err(d);
        block
            .iter()
            .map(|&x| {
                let t = if d != 0.0 { x / d } else { 0.0 };
                let rounding = if t > k - 0.5 {
                    (t - (k - 1.0)) * d.abs()
                } else {
                    d.abs() / 2.0
                };
                rounding + scale_err + slack
            })
            .collect()
    };
    let affine = |n: f32| {
        let min = block.iter().copied().fold(f32::MAX, f32::min);
        let max = block.iter().copied().fold(-f32::MAX, f32::max);
        let d = (max - min) / n;
        vec![d / 2.0 + n * f16_err(d) + f16_err(min) + slack; block.len()]
    };
    match ty {
        TensorType::Q8_0 | TensorType::Q8_1 => {
            let d = block.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            vec![d / 2.0 + 127.0 * f16_err(d) + slack; block.len()]
        }
        TensorType::Q4_0 => symmetric(8.0),
        TensorType::Q5_0 => symmetric(16.0),
        TensorType::Q4_1 => affine(15.0),
        TensorType::Q5_1 => affine(31.0),
        other => panic!("no error bound stated for {other}"),
    }
}

/// Error bounds for every element of `x` (a whole number of blocks).
fn bounds(ty: TensorType, x: &[f32]) -> Vec<f32> {
    x.chunks(QK).flat_map(|b| block_bounds(ty, b)).collect()
}

const LEGACY: [TensorType; 6] = [
    TensorType::Q4_0,
    TensorType::Q4_1,
    TensorType::Q5_0,
    TensorType::Q5_1,
    TensorType::Q8_0,
    TensorType::Q8_1,
];

fn round_trip(ty: TensorType, x: &[f32]) -> Vec<f32> {
    let mut q = vec![0u8; x.len() / ty.block_size() * ty.type_size()];
    quantize(ty, x, &mut q).expect("whole blocks");
    let mut y = vec![0f32; x.len()];
    dequantize(ty, &q, &mut y).expect("whole blocks");
    y
}

/// Blocks of values at one scale (log-uniform over 1e-6 .. 1e3, which keeps every
/// scale below the f16 maximum), optionally shifted away from zero so that the
/// `_1` formats' minimum matters.
fn blocks(max_blocks: usize) -> impl Strategy<Value = Vec<f32>> {
    (1..=max_blocks).prop_flat_map(|nb| {
        prop::collection::vec(
            (
                -6.0f32..3.0,
                -2.0f32..2.0,
                prop::collection::vec(-1.0f32..1.0, QK),
            ),
            nb,
        )
        .prop_map(|blocks| {
            blocks
                .into_iter()
                .flat_map(|(exp, shift, v)| {
                    let scale = 10f32.powf(exp);
                    v.into_iter().map(move |u| (u + shift) * scale)
                })
                .collect()
        })
    })
}

/// Our dot products accumulate one f32 term per block (a few roundings each) left
/// to right: relative to Σ|x̂·ŷ| that is below 1e-6 for the few blocks used here.
const DOT_ROUNDING: f64 = 1e-5;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip_error_is_within_the_format_bound(x in blocks(4)) {
        for ty in LEGACY {
            let y = round_trip(ty, &x);
            let bound = bounds(ty, &x);
            for i in 0..x.len() {
                let err = (x[i] - y[i]).abs();
                prop_assert!(err <= bound[i], "{ty}: x[{i}] = {} came back as {}, error {err} > bound {}", x[i], y[i], bound[i]);
            }
        }
    }

    #[test]
    fn f16_and_bf16_round_to_nearest(x in prop::collection::vec(-6.0e4f32..6.0e4, 1..64)) {
        let y = round_trip(TensorType::F16, &x);
        for (a, b) in x.iter().zip(&y) {
            prop_assert!((a - b).abs() <= f16_err(*a), "f16: {a} came back as {b}");
        }
        let y = round_trip(TensorType::BF16, &x);
        for (a, b) in x.iter().zip(&y) {
            prop_assert!((a - b).abs() <= a.abs() / 256.0, "bf16: {a} came back as {b}");
        }
    }

    #[test]
    fn quantized_dot_is_close_to_the_f32_dot(x in blocks(4), seed in any::<u64>()) {
        // Activations: a deterministic pseudo-random vector of the same length.
        let mut state = seed | 1;
        let a: Vec<f32> = (0..x.len()).map(|_| {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        }).collect();
        let exact: f64 = x.iter().zip(&a).map(|(&p, &q)| p as f64 * q as f64).sum();
        for ty in LEGACY {
            let Some(tr) = traits(ty).filter(|t| t.vec_dot.is_some()) else { continue };
            let vdt = tr.vec_dot_type;
            let mut qx = vec![0u8; x.len() / QK * ty.type_size()];
            let mut qa = vec![0u8; a.len() / QK * vdt.type_size()];
            quantize(ty, &x, &mut qx).expect("whole blocks");
            quantize(vdt, &a, &mut qa).expect("whole blocks");
            let ours = dot(ty, x.len(), &qx, &qa).expect("lengths agree") as f64;
            let (bx, ba) = (bounds(ty, &x), bounds(vdt, &a));
            let (xh, ah) = (round_trip(ty, &x), round_trip(vdt, &a));
            let mut bound = 0f64;
            let mut magnitude = 0f64;
            for i in 0..x.len() {
                let (ex, ea) = (bx[i] as f64, ba[i] as f64);
                bound += ex * (a[i] as f64).abs() + (x[i] as f64).abs() * ea + ex * ea;
                magnitude += (xh[i] as f64 * ah[i] as f64).abs();
            }
            bound += DOT_ROUNDING * magnitude + f32::MIN_POSITIVE as f64;
            prop_assert!((ours - exact).abs() <= bound, "{ty}·{vdt}: {ours} vs f32 dot {exact}, bound {bound}");
        }
    }
}
