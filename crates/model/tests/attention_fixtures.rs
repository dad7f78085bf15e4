//! hearth's attention against llama.cpp's, on llama.cpp's own inputs.
//!
//! tests/fixtures/attention (made by tools/attention-fixtures/gen.py) holds
//! the first layer of tiny-llama Q4_K_M in llama.cpp (flash attention off,
//! f16 cache): its roped queries and keys, its values and its attention
//! output `kqv_out`, for a 64-token prompt run as one batch and for a single
//! decoding step at position 63. Fed the same q, k and v, hearth's
//! `ops::attention` must give llama.cpp's output bit for bit on AVX-512 CPUs,
//! where it sums `K·q` and `V·p` in the orders of the ggml routines llama.cpp
//! runs there (llamafile's tinyBLAS for a batch, `ggml_vec_dot_f16` for a
//! single query), and within float noise elsewhere.

use std::path::Path;

use kernels::pool::ThreadPool;
use model::kv_cache::KvCache;
use model::ops::attention::{AttentionShape, attention, scratch_len};

const N_HEAD: usize = 4;
const N_HEAD_KV: usize = 2;
const HEAD_DIM: usize = 64;
const N_POS: usize = 64;

/// Largest |hearth − llama.cpp| allowed off AVX-512, relative to the largest
/// output: the same roundings, other summation orders (~1e-7 each), with a
/// margin; a missing f16 rounding of q or p moves outputs by ~1e-4.
const TOL: f32 = 2e-6;

fn load(name: &str, len: usize) -> Vec<f32> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/attention")
        .join(format!("{name}.f32"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(bytes.len(), 4 * len, "{}", path.display());
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// hearth's attention of `q` (queries at `pos0..`) over a cache of positions
/// `0..N_POS` filled with `k` and `v`.
fn run(case: &str, n_threads: usize) -> (Vec<f32>, Vec<f32>) {
    let (q_dim, kv_dim) = (N_HEAD * HEAD_DIM, N_HEAD_KV * HEAD_DIM);
    let n_q = if case == "decode" { 1 } else { N_POS };
    let q = load(&format!("{case}-q"), n_q * q_dim);
    let k = load(&format!("{case}-k"), N_POS * kv_dim);
    let v = load(&format!("{case}-v"), N_POS * kv_dim);
    let want = load(&format!("{case}-out"), n_q * q_dim);
    // A cache longer than the prompt, as in a real context.
    let mut kv = KvCache::new(1, 256, kv_dim);
    for j in 0..N_POS {
        kv.store(0, j, &k[j * kv_dim..][..kv_dim], &v[j * kv_dim..][..kv_dim]);
    }
    let shape = AttentionShape {
        n_head: N_HEAD,
        n_head_kv: N_HEAD_KV,
        head_dim: HEAD_DIM,
        kq_scale: 1.0 / (HEAD_DIM as f32).sqrt(),
        window: None,
        softcap: None,
    };
    let pool = ThreadPool::new(n_threads);
    let mut scratch = vec![0f32; scratch_len(&pool, kv.n_ctx(), HEAD_DIM)];
    let mut out = vec![0f32; q.len()];
    attention(
        &pool,
        &shape,
        kv.layer(0),
        &q,
        N_POS - n_q,
        &mut out,
        &mut scratch,
    );
    (out, want)
}

/// Compares with llama.cpp's output: bit for bit where `exact`, within
/// [`TOL`] otherwise.
fn check(case: &str, exact: bool) {
    if exact {
        assert_eq!(kernels::cpu_level(), kernels::Cpu::Avx512);
    }
    for n_threads in [1, 3] {
        let (got, want) = run(case, n_threads);
        let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(scale > 0.0);
        let q_dim = N_HEAD * HEAD_DIM;
        let mut differing = 0;
        let mut worst = 0f32;
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            if g.to_bits() != w.to_bits() {
                if differing == 0 {
                    eprintln!(
                        "{case}: first difference at token {} value {}: {g:e} vs llama.cpp {w:e}",
                        i / q_dim,
                        i % q_dim
                    );
                }
                differing += 1;
            }
            worst = worst.max((g - w).abs() / scale);
        }
        eprintln!(
            "{case}, {n_threads} threads: {differing}/{} values differ, worst {worst:e}",
            got.len()
        );
        if exact {
            assert_eq!(differing, 0, "{case}: not llama.cpp's bits on AVX-512");
        } else {
            assert!(worst <= TOL, "{case}: {worst:e} off llama.cpp");
        }
    }
}

/// The same orders as ggml's AVX-512 routines: llama.cpp's bits.
#[test]
#[cfg_attr(not(hearth_avx512), ignore = "needs AVX-512 (ggml's summation orders)")]
fn prompt_batch_matches_llama_cpp_bit_for_bit() {
    check("batch", true);
}

/// The same orders as ggml's AVX-512 routines: llama.cpp's bits.
#[test]
#[cfg_attr(not(hearth_avx512), ignore = "needs AVX-512 (ggml's summation orders)")]
fn single_query_matches_llama_cpp_bit_for_bit() {
    check("decode", true);
}

/// Other levels sum in their own orders: within float noise. (On AVX-512
/// the bit-for-bit tests above cover this.)
#[cfg(not(hearth_avx512))]
#[test]
fn prompt_batch_matches_llama_cpp_within_tolerance() {
    check("batch", false);
}

/// Other levels sum in their own orders: within float noise.
#[cfg(not(hearth_avx512))]
#[test]
fn single_query_matches_llama_cpp_within_tolerance() {
    check("decode", false);
}
