//! Every SIMD level this machine has, against the scalar reference.
//!
//! * Dot products: equal to the scalar kernel within a per-format tolerance. The
//!   integer part of every block product is exact in both; what differs is only
//!   the order (and, for the float formats, the precision: f32 lanes against the
//!   reference's f64) of the float additions. The error of reassociating a sum is
//!   bounded by (terms per chain) · ε · Σ|term|, so the tolerances are relative to
//!   `magnitude`, a bound on Σ|term| (see there).
//! * Activation quantizers: byte-identical to the scalar reference, including
//!   rounding ties, NaN, infinities and blocks whose scale underflows.
//! * Dequantizers: bit-identical to the scalar reference on arbitrary bytes.
//!
//! The test fails if the machine has a SIMD level but the table for that level
//! still holds the scalar kernel for a format the level must accelerate.
//!
//! On aarch64 these run under qemu-aarch64 in CI (tools/test.sh), with
//! `-cpu max` so that the `dotprod` level is checked too.

use kernels::{Cpu, TensorType, TypeTraits, traits_for};

/// Q4_0 … Q8_0 against Q8_0 / Q8_1 (and IQ4_NL, MXFP4 against Q8_0): blocks of 32
/// scaled once each; up to 512 block terms per row in the tests, summed in 8–16
/// lanes instead of sequentially.
/// 1e-5 is ~80 ε: far above the reassociation error of these sums (measured
/// ≤ 1e-7 relative) yet far below any real bug (a wrong quant moves the result by
/// ~1/N of the magnitude, ≥ 6e-5 for the longest rows).
const LEGACY_TOL: f64 = 1e-5;
/// K-quants against Q8_K: the same reasoning per 256-value super-block, plus the
/// min correction (Q2_K, Q4_K, Q5_K) accumulated separately in both kernels.
const KQUANT_TOL: f64 = 1e-5;
/// F32 / F16 / BF16: the reference accumulates products in f64, the SIMD kernels in
/// 32–64 f32 lanes, each adding up to n/32 products: error ≲ √(n/32) · ε relative
/// (random walk) and ≤ (n/32) · ε worst case, 6e-5 for the longest rows here. The
/// tolerance sits at the random-walk bound times a safety factor of 20.
const FLOAT_TOL: f64 = 2e-5;

/// Formats whose SIMD dot products are compared, with their tolerances.
const DOT_FORMATS: &[(TensorType, f64)] = &[
    (TensorType::Q4_0, LEGACY_TOL),
    (TensorType::Q4_1, LEGACY_TOL),
    (TensorType::Q5_0, LEGACY_TOL),
    (TensorType::Q5_1, LEGACY_TOL),
    (TensorType::Q8_0, LEGACY_TOL),
    (TensorType::Q2_K, KQUANT_TOL),
    (TensorType::Q3_K, KQUANT_TOL),
    (TensorType::Q4_K, KQUANT_TOL),
    (TensorType::Q5_K, KQUANT_TOL),
    (TensorType::Q6_K, KQUANT_TOL),
    (TensorType::IQ4_NL, LEGACY_TOL),
    (TensorType::MXFP4, LEGACY_TOL),
    (TensorType::IQ4_XS, KQUANT_TOL),
    (TensorType::IQ2_XXS, KQUANT_TOL),
    (TensorType::IQ3_XXS, KQUANT_TOL),
    (TensorType::IQ2_XS, KQUANT_TOL),
    (TensorType::IQ2_S, KQUANT_TOL),
    (TensorType::IQ3_S, KQUANT_TOL),
    (TensorType::IQ1_S, KQUANT_TOL),
    (TensorType::IQ1_M, KQUANT_TOL),
    (TensorType::F32, FLOAT_TOL),
    (TensorType::F16, FLOAT_TOL),
    (TensorType::BF16, FLOAT_TOL),
];

/// Formats the NEON levels must accelerate: every dot product of
/// [`DOT_FORMATS`] but the IQ2/IQ3/IQ1 ones (rare in real models; scalar on
/// aarch64).
const NEON_DOTS: &[TensorType] = &[
    TensorType::F32,
    TensorType::F16,
    TensorType::BF16,
    TensorType::Q4_0,
    TensorType::Q4_1,
    TensorType::Q5_0,
    TensorType::Q5_1,
    TensorType::Q8_0,
    TensorType::Q2_K,
    TensorType::Q3_K,
    TensorType::Q4_K,
    TensorType::Q5_K,
    TensorType::Q6_K,
    TensorType::IQ4_NL,
    TensorType::IQ4_XS,
    TensorType::MXFP4,
];

/// Activation formats whose SIMD quantizers must match the scalar bytes.
const ACTIVATIONS: &[TensorType] = &[
    TensorType::Q8_0,
    TensorType::Q8_1,
    TensorType::Q8_K,
    TensorType::F16,
    TensorType::BF16,
];

/// Bytes holding each block's scales (and mins): kept from a real quantization
/// when the rest of the block is replaced by random bytes, so that results stay
/// finite while every quant bit pattern is exercised.
fn scale_bytes(ty: TensorType) -> std::ops::Range<usize> {
    match ty {
        TensorType::Q4_0 | TensorType::Q5_0 | TensorType::Q8_0 | TensorType::IQ4_NL => 0..2,
        TensorType::Q4_1 | TensorType::Q5_1 | TensorType::Q4_K | TensorType::Q5_K => 0..4,
        TensorType::Q2_K => 80..84,
        TensorType::Q3_K => 108..110,
        TensorType::Q6_K => 208..210,
        TensorType::IQ4_XS
        | TensorType::IQ2_XXS
        | TensorType::IQ2_XS
        | TensorType::IQ2_S
        | TensorType::IQ3_XXS
        | TensorType::IQ3_S
        | TensorType::IQ1_S => 0..2,
        TensorType::IQ1_M => 48..56,
        TensorType::MXFP4 => 0..1,
        _ => 0..0,
    }
}

/// xorshift64*: reproducible data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-1, 1).
    fn signed(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// Roughly normal, standard deviation 1.
    fn normal(&mut self) -> f32 {
        (0..4).map(|_| self.signed()).sum::<f32>() * 0.866
    }
}

/// Test vectors of `n` values in several distributions.
fn distributions(rng: &mut Rng, n: usize) -> Vec<(&'static str, Vec<f32>)> {
    let mut out = vec![
        ("normal", (0..n).map(|_| rng.normal()).collect::<Vec<_>>()),
        ("tiny", (0..n).map(|_| rng.normal() * 1e-6).collect()),
        ("large", (0..n).map(|_| rng.normal() * 1e4).collect()),
        (
            "positive",
            (0..n).map(|_| rng.signed().abs() + 0.5).collect(),
        ),
    ];
    // Heavy outliers: a few values 100× the rest, as in real activations.
    let mut outliers: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    for i in (0..n).step_by(97) {
        outliers[i] *= 100.0;
    }
    out.push(("outliers", outliers));
    // Blocks alternating between zero and wildly different scales.
    let scaled = (0..n)
        .map(|i| match (i / 32) % 4 {
            0 => 0.0,
            1 => rng.normal() * 1e-3,
            2 => rng.normal() * 1e3,
            _ => rng.normal(),
        })
        .collect();
    out.push(("mixed-scales", scaled));
    out
}

/// Bytes of `n` values (whole blocks) of `ty`.
fn row_bytes(ty: TensorType, n: usize) -> usize {
    n / ty.block_size() * ty.type_size()
}

fn scalar(ty: TensorType) -> &'static TypeTraits {
    traits_for(Cpu::Scalar, ty).expect("every format has a scalar entry")
}

fn quantize_scalar(ty: TensorType, x: &[f32]) -> Vec<u8> {
    let mut q = vec![0u8; row_bytes(ty, x.len())];
    (scalar(ty).from_f32.expect("quantizer"))(x, &mut q);
    q
}

/// Weights in format `ty` for the values `x`: the scalar quantizer's output, or
/// for formats ggml only quantizes with an importance matrix, random blocks whose
/// f16 scale is derived from `x`'s magnitude.
fn weights(ty: TensorType, x: &[f32], rng: &mut Rng) -> Vec<u8> {
    if scalar(ty).from_f32.is_some() {
        return quantize_scalar(ty, x);
    }
    let mut q: Vec<u8> = (0..row_bytes(ty, x.len()))
        .map(|_| rng.next() as u8)
        .collect();
    for (block, xs) in q
        .chunks_exact_mut(ty.type_size())
        .zip(x.chunks(ty.block_size()))
    {
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = kernels::formats::float::f32_to_f16(amax / 64.0);
        if ty == TensorType::IQ1_M {
            // IQ1_M keeps its f16 scale in the top nibbles of its four scale words.
            for k in 0..4 {
                let at = 48 + 2 * k + 1;
                block[at] = (block[at] & 0x0f) | ((((d >> (4 * k)) & 0xf) as u8) << 4);
            }
        } else {
            block[..2].copy_from_slice(&d.to_le_bytes());
        }
    }
    q
}

fn dequantize_scalar(ty: TensorType, q: &[u8], n: usize) -> Vec<f32> {
    let mut y = vec![0f32; n];
    (scalar(ty).to_f32)(q, &mut y);
    y
}

/// A bound on Σ|term| of a dot product: per 32 values, the largest |x| times Σ|y|.
/// For the affine formats (with mins) the scale and min parts of a block's sum are
/// each bounded by about twice this, which is what the kernels actually add.
fn magnitude(x: &[f32], y: &[f32]) -> f64 {
    x.chunks(32)
        .zip(y.chunks(32))
        .map(|(xc, yc)| {
            let xmax = xc.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
            xmax * yc.iter().map(|v| v.abs() as f64).sum::<f64>()
        })
        .sum()
}

/// The level-specific tests, once per SIMD level. A level this machine lacks
/// (or that `HEARTH_CPU` rules out, see crates/kernels/build/cpu_cfg.rs) is
/// compiled as ignored with the reason, so the run's summary counts its checks
/// as not done rather than passed.
macro_rules! per_level {
    ($($test:ident),* $(,)?) => {
        mod avx2 {
            $(
                #[test]
                #[cfg_attr(not(hearth_avx2), ignore = "needs AVX2 (x86-64)")]
                fn $test() {
                    super::$test(&[kernels::Cpu::Avx2]);
                }
            )*
        }
        mod avx512 {
            $(
                #[test]
                #[cfg_attr(not(hearth_avx512), ignore = "needs AVX-512 (x86-64)")]
                fn $test() {
                    super::$test(&[kernels::Cpu::Avx512]);
                }
            )*
        }
        mod neon {
            $(
                #[test]
                #[cfg_attr(not(target_arch = "aarch64"), ignore = "needs NEON (aarch64)")]
                fn $test() {
                    super::$test(&[kernels::Cpu::Neon]);
                }
            )*
        }
        mod neon_dotprod {
            $(
                #[test]
                #[cfg_attr(
                    not(hearth_neon_dotprod),
                    ignore = "needs NEON dotprod (aarch64; under qemu, HEARTH_CPU=neon-dotprod)"
                )]
                fn $test() {
                    super::$test(&[kernels::Cpu::NeonDotprod]);
                }
            )*
        }
    };
}

per_level!(
    priority_formats_have_simd_kernels,
    dot_products_match_scalar_within_tolerance,
    float_dot_products_handle_every_tail_length,
    dot_products_ignore_bytes_past_n_and_short_buffers,
    activation_quantizers_are_byte_identical_to_scalar,
    dequantizers_are_bit_identical_to_scalar_on_arbitrary_bytes,
);

/// The formats a level must accelerate: dot products and activation quantizers.
/// NEON covers [`NEON_DOTS`]; its quantizers stay scalar. The x86 levels cover
/// every format compared here.
fn required(level: Cpu) -> (Vec<TensorType>, &'static [TensorType]) {
    match level {
        Cpu::Scalar => (Vec::new(), &[]),
        Cpu::Neon | Cpu::NeonDotprod => (NEON_DOTS.to_vec(), &[]),
        Cpu::Avx2 | Cpu::Avx512 => (
            DOT_FORMATS.iter().map(|&(ty, _)| ty).collect(),
            &ACTIVATIONS[..3],
        ),
    }
}

fn priority_formats_have_simd_kernels(levels: &[Cpu]) {
    for &level in levels {
        let (dots, quantizers) = required(level);
        for ty in dots {
            let simd = traits_for(level, ty).unwrap().vec_dot.unwrap() as usize;
            let reference = scalar(ty).vec_dot.unwrap() as usize;
            assert_ne!(simd, reference, "{level}: {ty} dot product is still scalar");
            if level == Cpu::NeonDotprod
                && !matches!(ty, TensorType::F32 | TensorType::F16 | TensorType::BF16)
            {
                // The integer kernels are the `sdot` builds, not plain NEON's.
                let plain = traits_for(Cpu::Neon, ty).unwrap().vec_dot.unwrap() as usize;
                assert_ne!(simd, plain, "{level}: {ty} dot product is plain NEON's");
            }
        }
        for &ty in quantizers {
            let simd = traits_for(level, ty).unwrap().from_f32.unwrap() as usize;
            let reference = scalar(ty).from_f32.unwrap() as usize;
            assert_ne!(simd, reference, "{level}: {ty} quantizer is still scalar");
        }
    }
}

#[test]
fn unavailable_levels_have_no_table() {
    for level in Cpu::ALL {
        assert_eq!(
            traits_for(level, TensorType::Q4_0).is_some(),
            level.is_available(),
            "{level}"
        );
    }
}

/// Compare one format's dot product at `level` with the scalar one on `x` (weights,
/// already in format `ty`) and `y` (f32 activations, quantized here).
fn check_dot(level: Cpu, ty: TensorType, tol: f64, qx: &[u8], y: &[f32], what: &str) -> f64 {
    let n = y.len();
    let reference = scalar(ty);
    let simd = traits_for(level, ty).unwrap();
    let qy = quantize_scalar(reference.vec_dot_type, y);
    let want = (reference.vec_dot.unwrap())(n, qx, &qy);
    let got = (simd.vec_dot.unwrap())(n, qx, &qy);
    let fx = dequantize_scalar(ty, qx, n);
    let fy = dequantize_scalar(reference.vec_dot_type, &qy, n);
    let mag = magnitude(&fx, &fy);
    let err = (got as f64 - want as f64).abs();
    assert!(
        err <= tol * mag || (got == want),
        "{level} {ty} n={n} {what}: simd {got} vs scalar {want} (error {err:e}, allowed {:e})",
        tol * mag
    );
    if mag > 0.0 { err / mag } else { 0.0 }
}

fn dot_products_match_scalar_within_tolerance(levels: &[Cpu]) {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for &level in levels {
        for &(ty, tol) in DOT_FORMATS {
            let block = ty.block_size().max(32);
            let mut worst = 0f64;
            for blocks in [1, 2, 3, 7, 64] {
                let n = block * blocks;
                for (what, x) in distributions(&mut rng, n) {
                    let y: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
                    let qx = weights(ty, &x, &mut rng);
                    worst = worst.max(check_dot(level, ty, tol, &qx, &y, what));
                }
            }
            // Long rows (the shapes of real models) and arbitrary quant bytes.
            for n in [4096usize, 16384] {
                let n = n / block * block;
                let x: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
                let y: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
                let mut qx = weights(ty, &x, &mut rng);
                worst = worst.max(check_dot(level, ty, tol, &qx, &y, "long"));
                let keep = scale_bytes(ty);
                if !keep.is_empty() {
                    for (j, b) in qx.iter_mut().enumerate() {
                        if !keep.contains(&(j % ty.type_size())) {
                            *b = rng.next() as u8;
                        }
                    }
                    worst = worst.max(check_dot(level, ty, tol, &qx, &y, "random quants"));
                }
            }
            eprintln!("{level} {ty}: worst relative error {worst:.2e} (tolerance {tol:e})");
        }
    }
}

fn float_dot_products_handle_every_tail_length(levels: &[Cpu]) {
    let mut rng = Rng(77);
    for &level in levels {
        for ty in [TensorType::F32, TensorType::F16, TensorType::BF16] {
            for n in (0..130).chain([255, 1000, 1023]) {
                let x: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
                let y: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
                let qx = quantize_scalar(ty, &x);
                check_dot(level, ty, FLOAT_TOL, &qx, &y, "tail");
            }
        }
    }
}

fn dot_products_ignore_bytes_past_n_and_short_buffers(levels: &[Cpu]) {
    // The kernels read n elements (or fewer when a buffer is short) and never
    // beyond, like the scalar ones: the same answer from exact and oversized
    // buffers, and no panic on short ones.
    let mut rng = Rng(99);
    for &level in levels {
        for &(ty, _) in DOT_FORMATS {
            let n = 4 * ty.block_size().max(32);
            let x: Vec<f32> = (0..2 * n).map(|_| rng.normal()).collect();
            let y: Vec<f32> = (0..2 * n).map(|_| rng.normal()).collect();
            let simd = traits_for(level, ty).unwrap();
            let qx = weights(ty, &x, &mut rng);
            let qy = quantize_scalar(simd.vec_dot_type, &y);
            let dot = simd.vec_dot.unwrap();
            let exact = dot(
                n,
                &qx[..row_bytes(ty, n)],
                &qy[..row_bytes(simd.vec_dot_type, n)],
            );
            assert_eq!(dot(n, &qx, &qy), exact, "{level} {ty}");
            if ty.block_size() == 1 {
                // The scalar float kernels index by `n` and panic on a short
                // buffer (the checked entry points reject one first).
                continue;
            }
            let short = dot(n, &qx[..row_bytes(ty, n) / 2], &qy);
            let reference = (scalar(ty).vec_dot.unwrap())(n, &qx[..row_bytes(ty, n) / 2], &qy);
            assert!(
                (short - reference).abs() <= 1e-3 * reference.abs().max(1.0),
                "{level} {ty}"
            );
        }
    }
}

/// Inputs that stress the quantizers' rounding and special cases.
fn quantizer_inputs(rng: &mut Rng) -> Vec<(&'static str, Vec<f32>)> {
    let n = 1024;
    let mut out = distributions(rng, n);
    // Exact ties: with amax 127 the Q8_0 scale is 1, so k + 0.5 stays a tie.
    let ties = (0..n)
        .map(|i| match i % 32 {
            0 => 127.0,
            j => (j as f32 - 16.0) + 0.5,
        })
        .collect();
    out.push(("ties", ties));
    // Q8_K's scale is −127/max: ties after scaling appear for max = −127.
    let ties_k = (0..n)
        .map(|i| match i % 256 {
            0 => -127.0,
            j => (j % 64) as f32 - 32.5,
        })
        .collect();
    out.push(("ties-k", ties_k));
    let mut special: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    special[3] = f32::NAN;
    special[40] = f32::INFINITY;
    special[70] = f32::NEG_INFINITY;
    special[100] = -0.0;
    special[300] = f32::NAN;
    special[301] = 5.0;
    special[600] = f32::from_bits(0x7fa0_0001); // signalling NaN
    out.push(("nan-inf", special));
    // Scales that underflow: 1/d overflows to infinity in Q8_0.
    out.push(("subnormal", (0..n).map(|_| rng.normal() * 1e-40).collect()));
    out.push(("huge", (0..n).map(|_| rng.normal() * 3e38).collect()));
    out.push(("zeros", vec![0.0; n]));
    out.push(("negative-zeros", vec![-0.0; n]));
    // Largest magnitude repeated with both signs: the first one wins.
    out.push((
        "tied-max",
        (0..n)
            .map(|i| {
                if i % 5 == 0 {
                    if i % 2 == 0 { 3.0 } else { -3.0 }
                } else {
                    1.0
                }
            })
            .collect(),
    ));
    out
}

fn activation_quantizers_are_byte_identical_to_scalar(levels: &[Cpu]) {
    let mut rng = Rng(0xfeed_beef);
    let inputs = quantizer_inputs(&mut rng);
    for &level in levels {
        for &ty in ACTIVATIONS {
            let simd = traits_for(level, ty).unwrap().from_f32.unwrap();
            for (what, x) in &inputs {
                let want = quantize_scalar(ty, x);
                let mut got = vec![0xAAu8; want.len()];
                simd(x, &mut got);
                if let Some(at) = want.iter().zip(&got).position(|(a, b)| a != b) {
                    panic!(
                        "{level} {ty} {what}: byte {at} (block {}) is {:#04x}, scalar wrote {:#04x}",
                        at / ty.type_size(),
                        got[at],
                        want[at]
                    );
                }
            }
        }
    }
}

fn dequantizers_are_bit_identical_to_scalar_on_arbitrary_bytes(levels: &[Cpu]) {
    // Each value is one conversion or one `d · q` product in both, so even NaN
    // payloads and signed zeros must agree.
    let mut rng = Rng(0xdec0de);
    for &level in levels {
        for ty in [
            TensorType::F16,
            TensorType::BF16,
            TensorType::Q8_0,
            TensorType::Q4_0,
        ] {
            let simd = traits_for(level, ty).unwrap().to_f32;
            for blocks in [1, 3, 8, 33, 67] {
                let n = blocks * ty.block_size();
                let bytes: Vec<u8> = (0..row_bytes(ty, n)).map(|_| rng.next() as u8).collect();
                let want = dequantize_scalar(ty, &bytes, n);
                let mut got = vec![0f32; n];
                simd(&bytes, &mut got);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(g.to_bits(), w.to_bits(), "{level} {ty} n={n} value {i}");
                }
            }
        }
    }
}
