//! Single-thread `vec_dot` throughput per format and SIMD level: a matrix-vector
//! product of 4096 weight rows of 2048 values (the shape of a small model's
//! projection) with one activation row, reported as GB/s of weight bytes read.
//! The activation quantizers are measured per level too.
//!
//! Run: `cargo bench -p kernels --bench vec_dot` (add a filter such as `q4_K` to
//! run one format). Levels this CPU lacks are skipped.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kernels::{Cpu, TensorType, traits_for};

const ROWS: usize = 4096;
const COLS: usize = 2048;

const FORMATS: &[TensorType] = &[
    TensorType::Q4_0,
    TensorType::Q8_0,
    TensorType::Q4_K,
    TensorType::Q6_K,
    TensorType::F16,
    TensorType::Q4_1,
    TensorType::Q5_0,
    TensorType::Q5_1,
    TensorType::Q2_K,
    TensorType::Q3_K,
    TensorType::Q5_K,
    TensorType::IQ4_NL,
    TensorType::IQ4_XS,
    TensorType::MXFP4,
    TensorType::BF16,
    TensorType::F32,
];

/// Deterministic, roughly normal values.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    let mut uniform = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    (0..n)
        .map(|_| (0..4).map(|_| uniform()).sum::<f32>())
        .collect()
}

fn quantize(ty: TensorType, x: &[f32]) -> Vec<u8> {
    let mut q = vec![0u8; x.len() / ty.block_size() * ty.type_size()];
    kernels::quantize(ty, x, &mut q).expect("benchmark formats have quantizers");
    q
}

fn vec_dot(c: &mut Criterion) {
    let levels: Vec<Cpu> = Cpu::available().collect();
    for &ty in FORMATS {
        let weights = quantize(ty, &values(ROWS * COLS, 1));
        let row_bytes = weights.len() / ROWS;
        let mut group = c.benchmark_group(format!("vec_dot/{ty}"));
        group.throughput(Throughput::Bytes(weights.len() as u64));
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));
        for &level in &levels {
            let tr = traits_for(level, ty).expect("available level");
            let dot = tr.vec_dot.expect("benchmark formats have dot products");
            let act = quantize(tr.vec_dot_type, &values(COLS, 2));
            let mut out = vec![0f32; ROWS];
            group.bench_function(BenchmarkId::from_parameter(level), |b| {
                b.iter(|| {
                    for (o, row) in out.iter_mut().zip(weights.chunks_exact(row_bytes)) {
                        *o = dot(COLS, row, &act);
                    }
                    black_box(&out);
                })
            });
        }
        group.finish();
    }
}

fn quantize_activations(c: &mut Criterion) {
    let levels: Vec<Cpu> = Cpu::available().collect();
    let x = values(16 * COLS, 3);
    for ty in [
        TensorType::Q8_0,
        TensorType::Q8_1,
        TensorType::Q8_K,
        TensorType::F16,
    ] {
        let mut group = c.benchmark_group(format!("quantize/{ty}"));
        group.throughput(Throughput::Elements(x.len() as u64));
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(1));
        for &level in &levels {
            let q = traits_for(level, ty)
                .and_then(|t| t.from_f32)
                .expect("activation quantizer");
            let mut out = vec![0u8; x.len() / ty.block_size() * ty.type_size()];
            group.bench_function(BenchmarkId::from_parameter(level), |b| {
                b.iter(|| {
                    q(&x, &mut out);
                    black_box(&out);
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, vec_dot, quantize_activations);
criterion_main!(benches);
