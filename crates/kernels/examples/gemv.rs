//! One-token `matmul` (decode) over the matrices of a Llama-3.2-1B layer and
//! its output head, per format, read in place (`vec_dot`) and repacked where
//! the CPU has a packed kernel: the time per token of the weight products
//! alone and the bytes per second they stream.
//!
//! ```text
//! cargo run --release -p kernels --example gemv -- [THREADS] [FORMAT...]
//! HEARTH_CPU=avx2 target/release/examples/gemv 2 q4_K q6_K
//! ```
//! Each figure is the best of `GEMV_ROUNDS` (3) rounds, the variants
//! interleaved, per shape (GB/s after each shape). With one thread the time is the thread's time on a CPU, so that a busy
//! machine disturbs the figures less. A "token" is the 16 layers' seven matrices plus the head (what a decode
//! step multiplies), so `tokens/s` is an upper bound of the model's decode
//! speed on this machine.

use std::time::Instant;

use kernels::TensorType;
use kernels::matmul::{Matrix, PackedMatrix, activation_scratch_len, matmul};
use kernels::pool::ThreadPool;

/// (n_in, n_out, times per token) of Llama-3.2-1B's products: per layer
/// q, k, v, o, gate, up, down (16 layers), then the head.
const SHAPES: &[(usize, usize, usize)] = &[
    (2048, 2048, 32),
    (2048, 512, 32),
    (2048, 8192, 32),
    (8192, 2048, 16),
    (2048, 128_256, 1),
];

/// Bytes of copies per shape: more than the last-level cache.
const COLD_BYTES: usize = 128 << 20;

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

/// Seconds this thread has run on a CPU (Linux), if known.
fn cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n_threads = args.first().and_then(|a| a.parse().ok()).unwrap_or(2);
    let names: Vec<&str> = if args.len() > 1 {
        args[1..].iter().map(String::as_str).collect()
    } else {
        vec!["q4_0", "q8_0", "q4_K", "q6_K", "iq4_xs"]
    };
    let pool = ThreadPool::new(n_threads);
    // GEMV_COLD_MB=0: one copy per shape, cache-resident where it fits (the
    // kernels' arithmetic alone).
    let cold_bytes = std::env::var("GEMV_COLD_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(COLD_BYTES, |mb| mb << 20);
    let rounds: usize = std::env::var("GEMV_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    println!(
        "level {:?}, {n_threads} threads ({})",
        kernels::cpu_level(),
        if n_threads == 1 {
            "CPU time"
        } else {
            "wall time"
        }
    );
    for name in names {
        let Some(ty) = (0..64)
            .filter_map(TensorType::from_id)
            .find(|t| t.name().eq_ignore_ascii_case(name))
        else {
            eprintln!("unknown format {name}");
            continue;
        };
        // Per shape: copies of the quantized matrix (enough that they do not
        // fit in the caches, as a model's weights do not) and their packed
        // copies.
        let mats: Vec<(usize, usize, usize, Vec<Vec<u8>>)> = SHAPES
            .iter()
            .map(|&(n_in, n_out, k)| {
                let w = values(n_in * n_out, (n_in ^ n_out) as u64);
                let mut wq = vec![0u8; ty.row_size((n_in * n_out) as u64).unwrap() as usize];
                kernels::quantize(ty, &w, &mut wq).unwrap();
                let copies = (cold_bytes / wq.len()).max(1);
                (n_in, n_out, k, vec![wq; copies])
            })
            .collect();
        let packed: Vec<Vec<Option<PackedMatrix>>> = mats
            .iter()
            .map(|(n_in, n_out, _, wqs)| {
                wqs.iter()
                    .map(|wq| PackedMatrix::new(ty, *n_in, *n_out, wq))
                    .collect()
            })
            .collect();
        let variants: Vec<bool> = [false, true]
            .into_iter()
            .filter(|&p| !p || packed.iter().flatten().any(Option::is_some))
            .collect();
        // best[v][s]: the shortest time per call of variant v on shape s over
        // the rounds, the variants interleaved in each round.
        let mut best = vec![vec![f64::INFINITY; SHAPES.len()]; variants.len()];
        for _ in 0..rounds {
            for (si, ((n_in, n_out, _, wqs), ps)) in mats.iter().zip(&packed).enumerate() {
                for (vi, &use_packed) in variants.iter().enumerate() {
                    let ms: Vec<Matrix<'_>> = wqs
                        .iter()
                        .zip(ps)
                        .map(|(wq, p)| {
                            let m = Matrix::new(ty, *n_in, *n_out, wq).unwrap();
                            match p {
                                Some(p) if use_packed => m.with_packed(p).unwrap(),
                                _ => m,
                            }
                        })
                        .collect();
                    let x = values(*n_in, 7);
                    let mut scratch = vec![0u8; activation_scratch_len(ty, *n_in, 1).unwrap()];
                    let mut y = vec![0f32; *n_out];
                    // Enough calls to stream ~0.5 GB, after a warm-up.
                    let reps = (5e8 / wqs[0].len() as f64).ceil() as usize;
                    for i in 0..reps.div_ceil(10) {
                        matmul(&pool, &ms[i % ms.len()], &x, &mut scratch, &mut y).unwrap();
                    }
                    let (t, cpu) = (Instant::now(), cpu_seconds());
                    for i in 0..reps {
                        matmul(&pool, &ms[i % ms.len()], &x, &mut scratch, &mut y).unwrap();
                    }
                    // One thread: the time on the CPU, which a busy machine
                    // does not inflate as it does the wall time.
                    let elapsed = match cpu {
                        Some(c0) if n_threads == 1 => cpu_seconds().unwrap_or(c0) - c0,
                        _ => t.elapsed().as_secs_f64(),
                    };
                    best[vi][si] = best[vi][si].min(elapsed / reps as f64);
                }
            }
        }
        for (vi, &use_packed) in variants.iter().enumerate() {
            let mut total = 0f64;
            let mut bytes = 0usize;
            let mut per_shape = Vec::new();
            for ((n_in, n_out, k, wqs), &per_call) in mats.iter().zip(&best[vi]) {
                total += per_call * *k as f64;
                bytes += wqs[0].len() * k;
                per_shape.push(format!(
                    "{n_out}x{n_in} {:.1}",
                    wqs[0].len() as f64 / per_call / 1e9
                ));
            }
            println!(
                "{:7} {:8} {:6.2} ms/token {:6.1} tokens/s {:5.1} GB/s | {}",
                ty.name(),
                if use_packed { "packed" } else { "vec_dot" },
                total * 1e3,
                1.0 / total,
                bytes as f64 / total / 1e9,
                per_shape.join(", ")
            );
        }
    }
}
