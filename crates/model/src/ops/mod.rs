//! The small building blocks of a transformer forward pass, each matching the
//! arithmetic of the ggml CPU op it stands for (ggml/src/ggml-cpu/ops.cpp, vec.h),
//! so that hearth's logits track llama.cpp's to float rounding.
//!
//! Matrix products live in `kernels::matmul`; RoPE in [`rope`]; attention over the
//! f16 KV cache in [`attention`].

pub mod attention;
mod attention_quant;
pub mod rope;

use kernels::formats::float::{f16_to_f32, f32_to_f16};

/// `out = x / sqrt(mean(x²) + eps) * weight` (ggml_rms_norm followed by ggml_mul).
///
/// Like ggml, the sum of squares is accumulated in f64 and the mean rounded to f32
/// before `eps` is added.
pub fn rmsnorm(out: &mut [f32], x: &[f32], weight: &[f32], eps: f32) {
    let sum: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * scale * w;
    }
}

/// `out = (x - mean) / sqrt(variance + eps) * weight (+ bias)` (ggml_norm,
/// then ggml_mul and ggml_add), LayerNorm.
///
/// As ggml's x86-64 AVX-512 build computes it (`ggml_vec_sum_f32`,
/// `ggml_vec_cvar_f32`): the mean from an f64 sum rounded to f32; the squared
/// deviations summed 16 at a time in the tree order of
/// `_mm512_reduce_add_ps` (lanes `i + 8`, then `+ 4`, `+ 2`, `+ 1`), each
/// group's f32 total added to an f64 sum, and the rest one by one.
pub fn layernorm(out: &mut [f32], x: &[f32], weight: &[f32], bias: Option<&[f32]>, eps: f32) {
    let n = x.len();
    let sum: f64 = x.iter().map(|&v| f64::from(v)).sum();
    let mean = sum as f32 / n as f32;
    let mut sq_sum = 0f64;
    let mut groups = x.chunks_exact(16);
    for g in &mut groups {
        let sq: [f32; 16] = std::array::from_fn(|i| (g[i] - mean) * (g[i] - mean));
        let t8: [f32; 8] = std::array::from_fn(|i| sq[i + 8] + sq[i]);
        let t4: [f32; 4] = std::array::from_fn(|i| t8[i + 4] + t8[i]);
        sq_sum += f64::from((t4[0] + t4[2]) + (t4[1] + t4[3]));
    }
    for &v in groups.remainder() {
        sq_sum += f64::from((v - mean) * (v - mean));
    }
    let variance = (sq_sum / n as f64) as f32;
    let scale = 1.0 / (variance + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = (v - mean) * scale * w;
    }
    if let Some(b) = bias {
        add_assign(out, b);
    }
}

/// Softmax in place: `x[i] = exp(x[i] - max) / Σ exp(x[j] - max)`.
///
/// As ggml's `ggml_vec_soft_max_f32`, the sum is accumulated in f64 and its
/// reciprocal taken once. Entries equal to `-inf` get probability 0.
pub fn softmax(x: &mut [f32]) {
    softmax_with_sink(x, None)
}

/// [`softmax`] with an optional attention sink (gpt-oss): an extra logit
/// that takes part in the maximum and the sum but has no output, as ggml's
/// `soft_max` with a sinks tensor adds it (`max = max(max, sink)`, then
/// `Σ += expf(sink - max)` with libm's `expf`).
pub fn softmax_with_sink(x: &mut [f32], sink: Option<f32>) {
    #[cfg(target_arch = "x86_64")]
    if has_fma() {
        // SAFETY: the CPU has FMA.
        return unsafe { softmax_fma(x, sink) };
    }
    softmax_body(x, sink)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
fn softmax_fma(x: &mut [f32], sink: Option<f32>) {
    softmax_body(x, sink)
}

#[inline(always)]
fn softmax_body(x: &mut [f32], sink: Option<f32>) {
    let mut max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if let Some(s) = sink {
        max = max.max(s);
    }
    let mut sum = 0f64;
    // ggml takes exp with `ggml_v_expf` over whole 16-wide vectors, libm's expf
    // on the rest; the two differ in the last bit, which the f16 rounding of the
    // probabilities can turn into a different activation.
    let simd = x.len() / EXP_LANES * EXP_LANES;
    for (i, v) in x.iter_mut().enumerate() {
        *v = if i < simd {
            ggml_expf(*v - max)
        } else {
            (*v - max).exp()
        };
        sum += f64::from(*v);
    }
    if let Some(s) = sink {
        sum += f64::from((s - max).exp());
    }
    let inv = (1.0 / sum) as f32;
    x.iter_mut().for_each(|v| *v *= inv);
}

/// SiLU, `x * sigmoid(x)`, as ggml_silu_f32 writes it.
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// `gate[i] = silu(gate[i]) * up[i]` (ggml_swiglu_split): as ggml's
/// `ggml_vec_swiglu_f32` on x86, whole 16-wide vectors take `exp(-x)` from
/// [`ggml_expf`], the rest from libm ([`silu`]).
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_fma() {
        // SAFETY: the CPU has FMA.
        return unsafe { swiglu_fma(gate, up) };
    }
    swiglu_body(gate, up)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
fn swiglu_fma(gate: &mut [f32], up: &[f32]) {
    swiglu_body(gate, up)
}

#[inline(always)]
fn swiglu_body(gate: &mut [f32], up: &[f32]) {
    let simd = gate.len() / EXP_LANES * EXP_LANES;
    for (i, (g, &u)) in gate.iter_mut().zip(up).enumerate() {
        *g = if i < simd {
            let x = *g;
            x / (1.0 + ggml_expf(-x)) * u
        } else {
            silu(*g) * u
        };
    }
}

/// Whether the CPU has FMA. The loops here compute fused multiply-adds with
/// `f32::mul_add` (ggml's roundings); compiled without the target feature each
/// is a call into libm's software `fmaf` (measured: about 7% of a Q4_0 prefill),
/// so the hot ones have a copy compiled with FMA, taken when the CPU has it.
/// The results are the same bits either way.
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_fma() -> bool {
    std::arch::is_x86_feature_detected!("fma")
}

/// Lanes of ggml's widest x86 vector loop (AVX-512) in the exp-based ops; the
/// remainder of a row goes through libm.
const EXP_LANES: usize = 16;

/// ggml-cpu/vec.h `ggml_v_expf`, one lane: ggml's vectorised `expf` (a
/// polynomial after a power-of-two range reduction, within ~2 ulp of the
/// true value, so not always libm's result). Rust's `mul_add` is the fused
/// multiply-add the SIMD code uses.
#[inline(always)]
pub fn ggml_expf(x: f32) -> f32 {
    let r = f32::from_bits(0x4b40_0000); // 0x1.8p23
    let z = x.mul_add(f32::from_bits(0x3fb8_aa3b), r); // log2(e)
    let n = z - r;
    let b = (-n).mul_add(
        f32::from_bits(0x35bf_be8e),                  // ln 2, low part
        (-n).mul_add(f32::from_bits(0x3f31_7200), x), // ln 2, high part
    );
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    let u = b * b;
    let j = f32::from_bits(0x3c07_2010)
        .mul_add(b, f32::from_bits(0x3d2b_9f17))
        .mul_add(
            u,
            f32::from_bits(0x3e2a_af33).mul_add(b, f32::from_bits(0x3eff_fedb)),
        )
        .mul_add(u, f32::from_bits(0x3f7f_fff6).mul_add(b, 1.0));
    // `_mm512_scalef_ps(j, n)`: j · 2ⁿ, in two exact steps where 2ⁿ alone is
    // not a normal f32.
    let n = n as i32;
    let half = n / 2;
    j * pow2(half) * pow2(n - half)
}

/// 2ⁿ for |n| ≤ 126.
fn pow2(n: i32) -> f32 {
    f32::from_bits(((n + 127) as u32) << 23)
}

/// GELU, tanh approximation, as ggml's CPU backend computes it: for |x| < 10 the
/// input is rounded to f16 and the result read from a table of f16 values
/// (vec.h, `GGML_GELU_FP16`); outside that range 0 or x.
pub fn gelu(x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        f16_to_f32(gelu_table()[f32_to_f16(x) as usize])
    }
}

/// ggml's `ggml_table_gelu_f16`: `f16(gelu(x))` for every f16 `x`, built
/// once, with the formula as GCC compiles `ggml_gelu_f32` for ggml-cpu: the
/// `1 + GELU_COEF_A·x·x` contracted to a fused multiply-add. Without it, entry
/// −1.999 (0xbfff) rounds the other way, which moved three GeGLU outputs of
/// the tiny gemma3 F16 fixture's first layer.
fn gelu_table() -> &'static [u16] {
    const GELU_COEF_A: f32 = 0.044715;
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    static TABLE: std::sync::OnceLock<Box<[u16]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| {
                let x = f16_to_f32(bits);
                let inner = (GELU_COEF_A * x).mul_add(x, 1.0);
                f32_to_f16(0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * inner).tanh()))
            })
            .collect()
    })
}

/// `gate[i] = gelu(gate[i]) * up[i]` (ggml_geglu_split: GELU from the f16 table,
/// gemma's GeGLU).
pub fn geglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = gelu(*g) * u;
    }
}

/// gpt-oss's clamped SwiGLU (ggml_swiglu_oai, scalar in ggml-cpu): with
/// `x = min(gate, limit)` and `y = clamp(up, -limit, limit)`,
/// `gate = x · sigmoid(alpha · x) · (y + 1)`.
pub fn swiglu_oai(gate: &mut [f32], up: &[f32], alpha: f32, limit: f32) {
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = g.min(limit);
        let y = u.clamp(-limit, limit);
        *g = x / (1.0 + (alpha * -x).exp()) * (y + 1.0);
    }
}

/// `x[i] += y[i]`.
pub fn add_assign(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, &b)| *a += b);
}

/// Index of the largest value (the first one on ties); 0 for an empty slice.
pub fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// Mixture-of-experts routing (llama.cpp's `build_moe_ffn` with softmax gating):
/// softmax over the router logits, the `k` most probable experts in descending
/// order of probability, and their weights renormalised to sum to 1 when
/// `normalize` is set (the sum clamped below at 2⁻¹⁴ as llama.cpp does).
///
/// `logits` is overwritten with the probabilities; `experts` and `weights` receive
/// `k` entries each.
pub fn route_top_k(
    logits: &mut [f32],
    k: usize,
    normalize: bool,
    experts: &mut [usize],
    weights: &mut [f32],
) {
    softmax(logits);
    top_k(logits, k, experts, weights);
    if normalize {
        let sum: f32 = weights[..k].iter().sum::<f32>().max(6.103_515_6e-5);
        weights[..k].iter_mut().for_each(|w| *w /= sum);
    }
}

/// Mixture-of-experts routing with gpt-oss's gating (llama.cpp's
/// `LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX_WEIGHT`): the `k` largest router
/// logits in descending order, their weights the softmax over those `k`
/// logits alone. `experts` and `weights` receive `k` entries each.
pub fn route_top_k_softmax(logits: &[f32], k: usize, experts: &mut [usize], weights: &mut [f32]) {
    top_k(logits, k, experts, weights);
    softmax(&mut weights[..k]);
}

/// The `k` largest `scores` in descending order (the first on ties), their
/// indices into `experts` and values into `weights`.
fn top_k(scores: &[f32], k: usize, experts: &mut [usize], weights: &mut [f32]) {
    // Selection sort of the top k: k is small (2 of 8 for Mixtral).
    for slot in 0..k {
        let mut best: Option<usize> = None;
        for (e, &p) in scores.iter().enumerate() {
            if experts[..slot].contains(&e) {
                continue;
            }
            if best.is_none_or(|b| p > scores[b]) {
                best = Some(e);
            }
        }
        let e = best.unwrap_or(0);
        experts[slot] = e;
        weights[slot] = scores[e];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layernorm_centres_and_scales() {
        // 20 values: one group of 16 in the tree order and 4 one by one.
        let x: Vec<f32> = (0..20)
            .map(|i| (i as f32 * 0.7).sin() * 3.0 + 1.0)
            .collect();
        let w = vec![2.0f32; 20];
        let b = vec![0.5f32; 20];
        let mut out = vec![0.0; 20];
        layernorm(&mut out, &x, &w, Some(&b), 1e-5);
        let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / 20.0;
        let var = x
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / 20.0;
        for (o, &v) in out.iter().zip(&x) {
            let want = (f64::from(v) - mean) / (var + 1e-5).sqrt() * 2.0 + 0.5;
            assert!((f64::from(*o) - want).abs() < 1e-5, "{o} vs {want}");
        }
    }

    #[test]
    fn gpt_oss_routing_weights_the_top_logits_by_their_own_softmax() {
        let logits = [0.0f32, 3.0, 1.0, 2.0];
        let (mut experts, mut weights) = ([0usize; 2], [0f32; 2]);
        route_top_k_softmax(&logits, 2, &mut experts, &mut weights);
        assert_eq!(experts, [1, 3]);
        let e = (-1.0f32).exp();
        assert!((weights[0] - 1.0 / (1.0 + e)).abs() < 1e-6);
        assert!((weights[1] - e / (1.0 + e)).abs() < 1e-6);
    }

    #[test]
    fn swiglu_oai_clamps_gate_above_and_up_both_ways() {
        let sig = |x: f32| 1.0 / (1.0 + (-x).exp());
        let mut gate = [10.0f32, -1.0, 2.0];
        swiglu_oai(&mut gate, &[-10.0, 0.5, 8.0], 1.702, 7.0);
        let want = [
            7.0 * sig(1.702 * 7.0) * (-7.0 + 1.0),
            -sig(-1.702) * 1.5,
            2.0 * sig(1.702 * 2.0) * 8.0,
        ];
        for (g, w) in gate.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
    }

    #[test]
    fn softmax_sink_takes_a_share_and_joins_the_maximum() {
        let mut x = [1.0f32, 2.0];
        softmax_with_sink(&mut x, Some(3.0));
        let z = 1.0f32.exp() + 2.0f32.exp() + 3.0f32.exp();
        assert!((x[0] - 1.0f32.exp() / z).abs() < 1e-6);
        assert!((x[1] - 2.0f32.exp() / z).abs() < 1e-6);
        // A sink far below the scores changes nothing.
        let mut y = [1.0f32, 2.0];
        let mut plain = y;
        softmax_with_sink(&mut y, Some(-100.0));
        softmax(&mut plain);
        assert_eq!(y, plain);
    }

    #[test]
    fn rmsnorm_scales_to_unit_rms() {
        let x = [3.0f32, -4.0, 0.0, 5.0];
        let w = [1.0f32, 2.0, 1.0, 1.0];
        let mut out = [0.0; 4];
        rmsnorm(&mut out, &x, &w, 0.0);
        let rms = (50.0f32 / 4.0).sqrt();
        assert!((out[0] - 3.0 / rms).abs() < 1e-6);
        assert!((out[1] - 2.0 * -4.0 / rms).abs() < 1e-6);
        assert_eq!(out[2], 0.0);
    }

    #[test]
    fn softmax_sums_to_one_and_ignores_masked() {
        let mut x = [1.0f32, 2.0, f32::NEG_INFINITY, 3.0];
        softmax(&mut x);
        assert_eq!(x[2], 0.0);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[3] > x[1] && x[1] > x[0]);
    }

    #[test]
    fn ggml_expf_is_within_three_ulp_and_not_always_libm() {
        assert_eq!(ggml_expf(0.0), 1.0);
        assert_eq!(ggml_expf(200.0), f32::INFINITY);
        assert_eq!(ggml_expf(-200.0), 0.0);
        let mut differs = 0;
        for i in -8000..8000 {
            let x = i as f32 * 0.01;
            let got = ggml_expf(x);
            let exact = f64::from(x).exp();
            let ulp = f64::from(f32::from_bits(got.to_bits() + 1) - got);
            assert!((f64::from(got) - exact).abs() <= 3.0 * ulp, "{x}: {got}");
            differs += usize::from(got != x.exp());
        }
        // Matching ggml bit for bit is the point: libm rounds differently often.
        assert!(differs > 100, "{differs}");
    }

    #[test]
    fn swiglu_uses_ggml_expf_on_whole_vectors_and_libm_on_the_tail() {
        let gate: Vec<f32> = (0..17).map(|i| i as f32 * 0.37 - 3.0).collect();
        let up: Vec<f32> = (0..17).map(|i| 1.0 + i as f32 * 0.1).collect();
        let mut out = gate.clone();
        swiglu(&mut out, &up);
        for i in 0..16 {
            assert_eq!(out[i], gate[i] / (1.0 + ggml_expf(-gate[i])) * up[i]);
        }
        assert_eq!(out[16], silu(gate[16]) * up[16]);
    }

    #[test]
    fn silu_and_gelu_known_values() {
        assert_eq!(silu(0.0), 0.0);
        assert!((silu(2.0) - 2.0 / (1.0 + (-2.0f32).exp())).abs() < 1e-7);
        assert_eq!(gelu(-20.0), 0.0);
        assert_eq!(gelu(20.0), 20.0);
        // gelu(1) = 0.8412 (tanh form), within f16 rounding.
        assert!((gelu(1.0) - 0.8412).abs() < 1e-3);
        // llama.cpp's ggml_table_gelu_f16 (read from libggml-cpu after
        // ggml_cpu_init) at 0xbfff (x = -1.999): 0xa9d3, where the formula
        // without a fused multiply-add rounds to 0xa9d2.
        assert_eq!(gelu(-1.999_284_6), f16_to_f32(0xa9d3));
        assert_eq!(gelu(-2.0), f16_to_f32(0xa9d0));
    }

    #[test]
    fn top_k_routing_picks_largest_and_renormalises() {
        let mut logits = [0.1f32, 2.0, -1.0, 1.5];
        let mut experts = [0usize; 2];
        let mut weights = [0f32; 2];
        route_top_k(&mut logits, 2, true, &mut experts, &mut weights);
        assert_eq!(experts, [1, 3]);
        assert!((weights[0] + weights[1] - 1.0).abs() < 1e-6);
        let expected = 1.0 / (1.0 + (-0.5f32).exp());
        assert!((weights[0] - expected).abs() < 1e-6);
    }

    #[test]
    fn argmax_first_on_ties() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), 1);
        assert_eq!(argmax(&[]), 0);
    }
}
