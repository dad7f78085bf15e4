//! One forward pass over many sequences ([`Model::forward_batch`]): at greedy
//! decoding each sequence's logits in a mixed batch (prefill chunks and decoding
//! steps of other sequences in the same pass) equal its logits run alone, for
//! every architecture and several weight formats, also when a step has more
//! rows than one pass holds.
//!
//! Where the matrix kernels' per-row order does not depend on how many rows a
//! product has, the logits are the same bits; where it does (see
//! [`bit_identical`]), they agree within the float noise of another summation
//! order, as `archs_forward.rs` allows between a batch and token-by-token runs.

use std::path::{Path, PathBuf};

use gguf::TensorType;
use model::synthetic::Spec;
use model::{LoadOptions, Logits, Model, ModelError, SeqStep};

const PRESETS: [&str; 18] = [
    "tiny-llama",
    "tiny-moe",
    "tiny-swa",
    "tiny-qwen2",
    "tiny-qwen3",
    "tiny-phi3",
    "tiny-gemma2",
    "tiny-gemma3",
    "tiny-qwen3moe",
    "tiny-gemma",
    "tiny-starcoder2",
    "tiny-command-r",
    "tiny-cohere2",
    "tiny-olmo2",
    "tiny-granite",
    "tiny-mistral3",
    "tiny-gpt-oss",
    "tiny-bloom",
];

fn load(spec: &Spec, ty: TensorType, name: &str) -> Model {
    let path: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    spec.write(&path, ty).unwrap();
    Model::load_with(&path, &LoadOptions { threads: Some(2) }).unwrap()
}

/// The sequences' tokens.
fn tokens(seq: usize, n: usize) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (i * (31 + 2 * seq as u32) + 7 * seq as u32 + 3) % 300)
        .collect()
}

/// What each step runs: (sequence, tokens, logits wanted), the sequences'
/// tokens taken in order. Prefill chunks of several sequences, a chunk with
/// no logits, every-token logits and single decoding steps share passes.
fn plan() -> Vec<Vec<(usize, usize, Option<Logits>)>> {
    let last = Some(Logits::Last);
    vec![
        vec![(0, 24, None), (1, 9, last), (2, 30, None)],
        vec![
            (0, 16, last),
            (1, 1, last),
            (2, 30, None),
            (3, 3, Some(Logits::All)),
        ],
        vec![(0, 1, last), (1, 1, last), (2, 10, last), (3, 1, last)],
        vec![(3, 1, last), (2, 1, last), (1, 1, last), (0, 1, last)],
    ]
}

/// Each (step, sequence)'s logits, batched (`n_rows` per pass) or alone.
fn run(model: &Model, n_rows: Option<usize>) -> Vec<Vec<(usize, Vec<f32>)>> {
    let plan = plan();
    let n_seq = 4;
    let n_ctx = 80;
    let all: Vec<Vec<u32>> = (0..n_seq).map(|s| tokens(s, n_ctx)).collect();
    let mut states: Vec<_> = (0..n_seq)
        .map(|_| model.new_state(n_ctx).unwrap())
        .collect();
    let mut batch = n_rows.map(|r| model.new_batch(r, n_ctx).unwrap());
    let mut results = Vec::new();
    for step in &plan {
        let mut out = Vec::new();
        match &mut batch {
            Some(batch) => {
                let mut seqs: Vec<SeqStep<'_>> = Vec::new();
                let mut order = Vec::new();
                // Borrow each state once, in the step's order.
                let mut slots: Vec<Option<&mut model::State>> =
                    states.iter_mut().map(Some).collect();
                for &(s, n, want) in step {
                    let state = slots[s].take().unwrap();
                    let at = state.n_past();
                    seqs.push(SeqStep {
                        state,
                        tokens: &all[s][at..at + n],
                        logits: want,
                    });
                    order.push((s, want.is_some()));
                }
                model.forward_batch(batch, &mut seqs).unwrap();
                for (i, (s, wanted)) in order.into_iter().enumerate() {
                    if wanted {
                        out.push((s, batch.logits(i).to_vec()));
                    }
                }
            }
            None => {
                for &(s, n, want) in step {
                    let state = &mut states[s];
                    let at = state.n_past();
                    let logits = model
                        .forward(state, &all[s][at..at + n], want.unwrap_or(Logits::Last))
                        .unwrap();
                    if want.is_some() {
                        out.push((s, logits.to_vec()));
                    }
                }
            }
        }
        results.push(out);
    }
    results
}

/// Largest difference between two logit rows, in units of the rows' spread.
fn diff_in_std(a: &[f32], b: &[f32], n_vocab: usize) -> f32 {
    let mut worst = 0f32;
    for (ra, rb) in a.chunks(n_vocab).zip(b.chunks(n_vocab)) {
        let mean = rb.iter().sum::<f32>() / n_vocab as f32;
        let var = rb.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n_vocab as f32;
        let d = ra
            .iter()
            .zip(rb)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        worst = worst.max(d / var.sqrt());
    }
    worst
}

/// Whether the weight format's products give each row the same bits whatever
/// the number of rows, as measured on AVX-512 VNNI. Q8_0 and Q4_0: yes (their
/// tile and packed kernels, AVX2's included, sum each output's integer block
/// products in one order for any number of rows). F16 on AVX2 and AVX-512:
/// no — one row follows `ggml_vec_dot_f16`'s order and two or more tinyBLAS'
/// (as llama.cpp does), so a decoding step batched with other rows differs
/// from the same step alone, and prefill rows differ by a few ulps with the
/// batch's tiling. The
/// K-quants: no — their packed kernels follow ggml's decoding order for calls
/// of fewer than `TILED_MIN_BATCH` rows and the tiled order for more.
fn bit_identical(ty: TensorType) -> bool {
    matches!(ty, TensorType::Q8_0 | TensorType::Q4_0)
        || (ty == TensorType::F16 && kernels::cpu_level() < kernels::Cpu::Avx2)
}

/// Largest allowed difference (in logit standard deviations) where the bits
/// may differ, as llama_fixtures.rs allows between hearth and llama.cpp where
/// the orders of additions differ: F16 within float noise (measured: at most
/// 2.4e-3); a quantized format may flip one activation's rounding when it is
/// converted for the next product (~5e-2 std, measured up to 3.8e-2 in the
/// MoE model where it also moves the routing weights).
fn tolerance(ty: TensorType) -> f32 {
    if ty == TensorType::F16 { 1e-2 } else { 1e-1 }
}

#[test]
fn each_sequence_in_a_mixed_batch_equals_it_alone() {
    let formats = [
        TensorType::F16,
        TensorType::Q8_0,
        TensorType::Q4_0,
        TensorType::Q4_K,
        TensorType::Q6_K,
    ];
    for ty in formats {
        for preset in PRESETS {
            // The K-quants need rows of 256: the llama presets have them.
            let k_quant = matches!(ty, TensorType::Q4_K | TensorType::Q6_K);
            if k_quant && !matches!(preset, "tiny-llama" | "tiny-moe" | "tiny-swa") {
                continue;
            }
            let spec = Spec::preset(preset).unwrap();
            let model = load(&spec, ty, &format!("{preset}-{ty:?}-batch.gguf"));
            let n_vocab = model.info().n_vocab;
            let alone = run(&model, None);
            // 64 rows: every step in one pass; 16: steps split across passes,
            // a sequence's chunk split between two.
            for n_rows in [64, 16] {
                let batched = run(&model, Some(n_rows));
                for (step, (a, b)) in batched.iter().zip(&alone).enumerate() {
                    for ((s, x), (s2, y)) in a.iter().zip(b) {
                        assert_eq!(s, s2);
                        let d = diff_in_std(x, y, n_vocab);
                        let what = format!("{preset} {ty:?} rows {n_rows} step {step} seq {s}");
                        if bit_identical(ty) {
                            assert!(x == y, "{what}: differs by {d} std");
                        } else {
                            assert!(d < tolerance(ty), "{what}: differs by {d} std");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a_batch_of_one_sequence_is_the_single_sequence_call() {
    let model = load(&Spec::tiny_qwen2(), TensorType::F16, "one-seq-batch.gguf");
    let t = tokens(0, 20);
    let mut alone = model.new_state(32).unwrap();
    let expect = model.forward(&mut alone, &t, Logits::All).unwrap().to_vec();
    let mut state = model.new_state(32).unwrap();
    let mut batch = model.new_batch(64, 32).unwrap();
    let mut seqs = [SeqStep {
        state: &mut state,
        tokens: &t,
        logits: Some(Logits::All),
    }];
    model.forward_batch(&mut batch, &mut seqs).unwrap();
    assert_eq!(batch.logits(0), &expect[..]);
    assert_eq!(state.n_past(), 20);
}

#[test]
fn a_bad_sequence_fails_the_step_and_leaves_every_state_alone() {
    let model = load(&Spec::tiny_qwen3(), TensorType::F16, "bad-batch.gguf");
    let mut a = model.new_state(8).unwrap();
    let mut b = model.new_state(8).unwrap();
    let mut batch = model.new_batch(16, 8).unwrap();
    let good = [1u32, 2, 3];
    let too_long = [1u32; 9];
    let mut seqs = [
        SeqStep {
            state: &mut a,
            tokens: &good,
            logits: Some(Logits::Last),
        },
        SeqStep {
            state: &mut b,
            tokens: &too_long,
            logits: Some(Logits::Last),
        },
    ];
    assert!(matches!(
        model.forward_batch(&mut batch, &mut seqs),
        Err(ModelError::ContextFull {
            n_ctx: 8,
            needed: 9
        })
    ));
    assert_eq!((a.n_past(), b.n_past()), (0, 0));
    // A sequence longer than the batch was made for.
    let mut long = model.new_state(32).unwrap();
    let mut seqs = [SeqStep {
        state: &mut long,
        tokens: &good,
        logits: None,
    }];
    assert!(matches!(
        model.forward_batch(&mut batch, &mut seqs),
        Err(ModelError::InvalidRequest(_))
    ));
}
