//! `matmul` throughput on one thread: a 2048 × 2048 weight matrix (a small
//! model's projection) times 1 token (decode, a matrix-vector product) and 64
//! tokens (a prefill batch, where the GEMM tile kernels reuse each weight block
//! for four tokens), reported as weights × tokens multiply-adds per second. The
//! activation conversion is included, as in a forward pass.
//!
//! Run: `cargo bench -p kernels --bench matmul` (add a filter such as `q4_0`).
//! `HEARTH_CPU=avx2` measures the per-pair `vec_dot` path instead of the tiles.
//! Formats with a packed kernel on this CPU are also measured repacked
//! (`q4_0 packed`, ...), as the model loader uses them.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kernels::TensorType;
use kernels::matmul::{Matrix, PackedMatrix, activation_scratch_len, matmul};
use kernels::pool::ThreadPool;

const N_IN: usize = 2048;
const N_OUT: usize = 2048;

const FORMATS: &[TensorType] = &[
    TensorType::Q4_0,
    TensorType::Q8_0,
    TensorType::Q4_K,
    TensorType::Q6_K,
    TensorType::F16,
];

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let pool = ThreadPool::new(1);
    let mut group = c.benchmark_group("matmul");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    for &ty in FORMATS {
        let w = values(N_IN * N_OUT, 1);
        let mut wq = vec![0u8; ty.row_size((N_IN * N_OUT) as u64).unwrap() as usize];
        kernels::quantize(ty, &w, &mut wq).unwrap();
        let packed = PackedMatrix::new(ty, N_IN, N_OUT, &wq);
        let plain = Matrix::new(ty, N_IN, N_OUT, &wq).unwrap();
        let mut variants = vec![(ty.name().to_owned(), plain)];
        if let Some(p) = &packed {
            variants.push((
                format!("{} packed", ty.name()),
                plain.with_packed(p).unwrap(),
            ));
        }
        for (name, m) in &variants {
            for n_tokens in [1usize, 64] {
                let x = values(N_IN * n_tokens, 2);
                let mut scratch = vec![0u8; activation_scratch_len(ty, N_IN, n_tokens).unwrap()];
                let mut y = vec![0f32; N_OUT * n_tokens];
                group.throughput(Throughput::Elements((N_IN * N_OUT * n_tokens) as u64));
                group.bench_with_input(
                    BenchmarkId::new(name, format!("{n_tokens} tokens")),
                    &n_tokens,
                    |b, _| {
                        b.iter(|| {
                            matmul(&pool, m, black_box(&x), &mut scratch, &mut y).unwrap();
                            black_box(&y);
                        })
                    },
                );
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
