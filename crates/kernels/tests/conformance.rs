//! Conformance against ggml: for every format in the reference fixtures
//! (tests/fixtures/kernels, written by tools/reference/gen_kernel_fixtures.py from a
//! llama.cpp build), our quantizer's bytes equal ggml's, our dequantization of ggml's
//! bytes equals ggml's bit for bit, and our dot product matches ggml's CPU dot
//! product within [`DOT_REL_TOL`].
//!
//! The test is driven by the fixture index, not by what the kernels implement: a
//! format in the fixtures that the kernels cannot handle fails the test unless it
//! is listed in [`PENDING`] (kernels being written right now), and a pending format
//! whose kernels have landed fails it too, so the list only ever shrinks.

mod common;

use std::fmt::Write as _;
use std::path::Path;

use common::{bytes, f32s, fixture_dir, index, str_field, tensor_type, usize_field};
use kernels::{TensorType, traits};
use serde_json::Value;

/// Formats present in the fixtures whose kernels have not landed yet; reported,
/// not asserted.
const PENDING: &[TensorType] = &[];

/// Our scalar dot products sum per-block terms left to right in f32; ggml's CPU
/// kernels (AVX2/AVX-512 here, built with -march=native) sum them in SIMD lanes
/// and with fused multiply-adds, i.e. in a different order with different
/// roundings. Both are within a few f32 ulps per block of the exact sum of the
/// block terms: n/32 ≤ 8 blocks per 256-element row, under 4 roundings each, gives
/// |ours − ggml| ≤ 2·(8 + 4)·2⁻²⁴·Σ|terms| ≈ 1.5e-6·Σ|terms|. The scale Σ|x̂ᵢ·aᵢ|
/// uses the unquantized activations `a` in place of their quants (they differ by
/// at most half a quantization step), so the bound is widened to 1e-5.
const DOT_REL_TOL: f64 = 1e-5;

/// An absolute floor for dot products that underflow: ggml's BF16 kernel
/// (AVX512-BF16 `vdpbf16ps`) treats subnormal inputs and results as zero, so on
/// the fixture row of f32 subnormals it returns 0 where the exact sum is a
/// subnormal. Differences below the smallest normal f32 are accepted.
const DOT_ABS_TOL: f64 = f32::MIN_POSITIVE as f64;

/// Whether `ours` is the same f32 as ggml's `expected`, bit for bit, except for
/// the one thing the fixtures' machine decides: the NaN an invalid operation
/// (`0·∞`, `∞ − ∞`) produces. x86 produces its "real indefinite" (sign set,
/// `0xffc0_0000`); Arm produces the positive default NaN `0x7fc0_0000`. The
/// fixtures come from x86-64, so on aarch64 that one pair is the same value.
/// NaNs propagated from an input keep their payload on both and must match.
fn same_f32(ours: f32, expected: f32) -> bool {
    const X86_INDEFINITE: u32 = 0xffc0_0000;
    const ARM_DEFAULT_NAN: u32 = 0x7fc0_0000;
    ours.to_bits() == expected.to_bits()
        || (cfg!(target_arch = "aarch64")
            && ours.to_bits() == ARM_DEFAULT_NAN
            && expected.to_bits() == X86_INDEFINITE)
}

/// What one format's checks found.
#[derive(Default)]
struct Outcome {
    failures: Vec<String>,
    notes: Vec<String>,
}

fn check_quantize(dir: &Path, entry: &Value, ty: TensorType, input: &[f32], out: &mut Outcome) {
    if str_field(entry, "quantizer") == "imatrix" {
        out.notes
            .push("quantizer needs an importance matrix: bytes not compared".into());
        return;
    }
    let Some(quantize) = traits(ty).and_then(|t| t.from_f32) else {
        out.failures
            .push("no quantizer (ggml quantizes it without an imatrix)".into());
        return;
    };
    let expected = bytes(dir, str_field(entry, "quant"));
    let mut ours = vec![0u8; expected.len()];
    quantize(input, &mut ours);
    let block = ty.type_size();
    let n_blocks = expected.len() / block;
    let differing: Vec<usize> = (0..n_blocks)
        .filter(|&b| ours[b * block..(b + 1) * block] != expected[b * block..(b + 1) * block])
        .collect();
    let identical = n_blocks - differing.len();
    out.notes
        .push(format!("quantize: {identical}/{n_blocks} blocks identical"));
    if let Some(&first) = differing.first() {
        out.failures.push(format!(
            "quantize: {} blocks differ, first #{first} (elements {}..): ours {:02x?} ggml {:02x?}",
            differing.len(),
            first * ty.block_size(),
            &ours[first * block..(first + 1) * block],
            &expected[first * block..(first + 1) * block],
        ));
    }
}

fn check_dequantize(dir: &Path, entry: &Value, ty: TensorType, out: &mut Outcome) {
    let Some(file) = entry["dequant"].as_str() else {
        out.notes
            .push("ggml has no dequantizer: not compared".into());
        return;
    };
    let Some(tr) = traits(ty) else {
        out.failures.push("no dequantizer".into());
        return;
    };
    let expected = f32s(dir, file);
    let mut ours = vec![0f32; expected.len()];
    (tr.to_f32)(&bytes(dir, str_field(entry, "quant")), &mut ours);
    let differing = ours
        .iter()
        .zip(&expected)
        .filter(|&(&a, &b)| !same_f32(a, b))
        .count();
    if let Some(i) = (0..ours.len()).find(|&i| !same_f32(ours[i], expected[i])) {
        out.failures.push(format!(
            "dequantize: {differing}/{} values differ, first #{i}: ours {:#010x} ggml {:#010x}",
            ours.len(),
            ours[i].to_bits(),
            expected[i].to_bits()
        ));
    } else {
        out.notes
            .push(format!("dequantize: {} values bit-identical", ours.len()));
    }
}

fn check_dots(dir: &Path, index: &Value, entry: &Value, ty: TensorType, out: &mut Outcome) {
    let Some(dots) = entry["dots"].as_str() else {
        out.notes.push("ggml has no vec_dot: not compared".into());
        return;
    };
    let vdt = tensor_type(str_field(entry, "vec_dot_type"));
    let Some(tr) = traits(ty).filter(|t| t.vec_dot.is_some()) else {
        out.failures
            .push(format!("no vec_dot (ggml pairs it with {vdt})"));
        return;
    };
    if tr.vec_dot_type != vdt {
        out.failures.push(format!(
            "vec_dot_type is {}, ggml's is {vdt}",
            tr.vec_dot_type
        ));
        return;
    }
    let Some(vec_dot) = tr.vec_dot else { return };
    let n = usize_field(index, "n_per_row");
    let x = bytes(dir, str_field(entry, "quant"));
    let y = bytes(dir, str_field(&index["activation_quants"], vdt.name()));
    let x_hat = f32s(dir, str_field(entry, "dequant"));
    let act = f32s(dir, str_field(index, "activations"));
    let (rbx, rby) = (
        n / ty.block_size() * ty.type_size(),
        n / vdt.block_size() * vdt.type_size(),
    );
    let dots = f32s(dir, dots);
    let mut worst = 0f64;
    let mut non_finite = 0;
    for (r, &expected) in dots.iter().enumerate() {
        let ours = vec_dot(n, &x[r * rbx..(r + 1) * rbx], &y[r * rby..(r + 1) * rby]);
        if !expected.is_finite() {
            // An f16 scale that overflowed: both must give the same inf or NaN.
            non_finite += 1;
            if ours.to_bits() != expected.to_bits() && !(ours.is_nan() && expected.is_nan()) {
                out.failures
                    .push(format!("vec_dot row {r}: ours {ours} ggml {expected}"));
            }
            continue;
        }
        let scale: f64 = (r * n..(r + 1) * n)
            .map(|i| (x_hat[i] as f64 * act[i] as f64).abs())
            .sum();
        let err = (ours as f64 - expected as f64).abs();
        let rel = if scale > 0.0 { err / scale } else { err };
        if err <= DOT_ABS_TOL {
            continue;
        }
        worst = worst.max(rel);
        if rel.is_nan() || rel > DOT_REL_TOL {
            out.failures.push(format!(
                "vec_dot row {r}: ours {ours} ggml {expected} (error {rel:.2e} of Σ|x·a| = {scale})"
            ));
        }
    }
    out.notes.push(format!(
        "vec_dot: {} rows ({non_finite} inf/NaN), worst error {worst:.2e} of Σ|x·a|",
        dots.len()
    ));
}

#[test]
fn kernels_match_ggml_on_reference_fixtures() {
    let dir = fixture_dir("kernels");
    let index = index(&dir);
    let input = f32s(&dir, str_field(&index, "input"));
    let mut report = String::new();
    let mut failed = false;
    let formats = index["formats"]
        .as_array()
        .expect("fixture index lists formats");
    assert!(!formats.is_empty(), "fixture index lists no formats");
    for entry in formats {
        let ty = tensor_type(str_field(entry, "type"));
        let mut out = Outcome::default();
        if PENDING.contains(&ty) {
            if traits(ty).is_some() {
                out.failures
                    .push("kernels have landed: remove it from PENDING".into());
            } else {
                out.notes
                    .push("PENDING: kernels not written yet, not asserted".into());
            }
        } else if traits(ty).is_none() {
            out.failures
                .push("in the fixtures but the kernels do not support it".into());
        } else {
            check_quantize(&dir, entry, ty, &input, &mut out);
            check_dequantize(&dir, entry, ty, &mut out);
            check_dots(&dir, &index, entry, ty, &mut out);
        }
        let status = if out.failures.is_empty() {
            "ok  "
        } else {
            "FAIL"
        };
        failed |= !out.failures.is_empty();
        let _ = writeln!(report, "{status} {:8} {}", ty.name(), out.notes.join("; "));
        for f in &out.failures {
            let _ = writeln!(report, "       {f}");
        }
    }
    println!("{report}");
    assert!(!failed, "kernels differ from ggml:\n{report}");
}
