//! The paged KV cache end to end: [`engine::blocks::BlockManager`] hands out
//! blocks of a [`model::kv_cache::KvPool`] and [`model::Model::forward_paged`]
//! runs through the block tables. A sequence whose prompt starts with blocks
//! another request computed (the prefix cache) gets the logits it gets when it
//! computes them itself, a forked sequence writing into a shared block gets a
//! copy first, and paged sequences equal sequences with caches of their own.

use std::path::Path;

use engine::blocks::{BlockManager, SeqBlocks};
use gguf::TensorType;
use model::kv_cache::KvPool;
use model::synthetic::Spec;
use model::{Batch, LoadOptions, Logits, Model, PagedSeq, SeqStep};

const BLOCK: usize = 16;
const N_CTX: usize = 128;

fn load(preset: &str, ty: TensorType) -> Model {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{preset}-{ty:?}-paged.gguf"));
    Spec::preset(preset).unwrap().write(&path, ty).unwrap();
    Model::load_with(&path, &LoadOptions { threads: Some(2) }).unwrap()
}

fn prompt(seed: u32, n: usize) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (i * 53 + seed * 7 + 1) % 300)
        .collect()
}

/// Runs the uncached rest of `seq`'s `tokens` (reserving its blocks and
/// making the copies the manager asks for) and returns the last token's
/// logits.
fn run(
    model: &Model,
    batch: &mut Batch,
    pool: &mut KvPool,
    m: &mut BlockManager,
    seq: &mut SeqBlocks,
    tokens: &[u32],
) -> Vec<f32> {
    for (from, to) in m.reserve(seq, tokens.len()).unwrap() {
        pool.copy_block(from, to);
    }
    let step = [PagedSeq {
        blocks: &seq.table,
        n_past: seq.n_past(),
        tokens,
        logits: Some(Logits::Last),
        lora: &[],
    }];
    model.forward_paged(batch, pool, &step).unwrap();
    m.commit(seq, tokens);
    batch.logits(0).to_vec()
}

/// The logits of `tokens` run in one call with a cache of its own.
fn alone(model: &Model, tokens: &[u32]) -> Vec<f32> {
    let mut state = model.new_state(N_CTX).unwrap();
    model
        .forward(&mut state, tokens, Logits::Last)
        .unwrap()
        .to_vec()
}

#[test]
fn a_cached_prefix_gives_the_logits_of_computing_it() {
    // Q8_0: bit for bit (its products give each row the same bits whatever
    // the batch, see model/tests/batch_forward.rs); F16 within float noise.
    for (ty, exact) in [(TensorType::Q8_0, true), (TensorType::F16, false)] {
        for preset in [
            "tiny-llama",
            "tiny-qwen2",
            "tiny-gemma3",
            "tiny-gpt-oss",
            "tiny-bloom",
        ] {
            let model = load(preset, ty);
            let mut pool = model.new_kv_pool(BLOCK, 32).unwrap();
            let mut batch = model.new_batch(64, N_CTX).unwrap();
            let mut m = BlockManager::new(32, BLOCK);
            // Two requests with a 40-token shared system prompt.
            let system = prompt(1, 40);
            let first: Vec<u32> = system.iter().copied().chain(prompt(2, 9)).collect();
            let second: Vec<u32> = system.iter().copied().chain(prompt(3, 12)).collect();
            let mut a = m.start(&first);
            assert_eq!(a.n_past(), 0);
            run(&model, &mut batch, &mut pool, &mut m, &mut a, &first);
            m.free(a);
            // The second reuses the two full blocks of the system prompt.
            let mut b = m.start(&second);
            assert_eq!(b.n_past(), 32, "{preset}");
            let rest = second[32..].to_vec();
            let got = run(&model, &mut batch, &mut pool, &mut m, &mut b, &rest);
            let want = alone(&model, &second);
            if exact {
                assert_eq!(got, want, "{preset} {ty:?}");
            } else {
                let d = got
                    .iter()
                    .zip(&want)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0f32, f32::max);
                assert!(d < 1e-2, "{preset} {ty:?}: max diff {d}");
            }
            m.free(b);
        }
    }
}

#[test]
fn forked_sequences_copy_the_shared_block_before_writing() {
    let model = load("tiny-qwen3", TensorType::Q8_0);
    let mut pool = model.new_kv_pool(BLOCK, 16).unwrap();
    let mut batch = model.new_batch(64, N_CTX).unwrap();
    let mut m = BlockManager::new(16, BLOCK);
    let p = prompt(4, 21);
    let mut a = m.start(&p);
    run(&model, &mut batch, &mut pool, &mut m, &mut a, &p);
    // Two continuations of one prompt: the partly filled second block is
    // shared until the first of them writes.
    let mut b = m.fork(&a);
    assert_eq!(a.table, b.table);
    let la = run(&model, &mut batch, &mut pool, &mut m, &mut a, &[7, 8]);
    assert_ne!(a.table[1], b.table[1]);
    let lb = run(&model, &mut batch, &mut pool, &mut m, &mut b, &[9, 10]);
    // Each equals its own text computed from scratch with the same chunks.
    for (tail, got) in [([7, 8], la), ([9, 10], lb)] {
        let mut state = model.new_state(N_CTX).unwrap();
        model.forward(&mut state, &p, Logits::Last).unwrap();
        let want = model.forward(&mut state, &tail, Logits::Last).unwrap();
        assert_eq!(got, want);
    }
}

#[test]
fn paged_sequences_in_one_step_equal_sequences_with_their_own_caches() {
    // Scattered block tables: the paged layout changes where the rows are,
    // never the order of any sum, so every format gives the same bits.
    for preset in ["tiny-llama", "tiny-moe", "tiny-phi3", "tiny-gemma2"] {
        let model = load(preset, TensorType::F16);
        let mut pool = model.new_kv_pool(BLOCK, 24).unwrap();
        let mut batch = model.new_batch(64, N_CTX).unwrap();
        let tables: [Vec<u32>; 2] = [vec![20, 3, 11, 7, 1], vec![0, 22, 5, 16]];
        let texts = [prompt(5, 70), prompt(6, 50)];
        let mut states: Vec<_> = (0..2).map(|_| model.new_state(N_CTX).unwrap()).collect();
        let mut own = model.new_batch(64, N_CTX).unwrap();
        let mut n_past = [0usize; 2];
        // A prefill step (the first prompt split across passes), then decoding.
        for cuts in [[40usize, 30], [20, 10], [1, 1], [1, 1]] {
            let spans: Vec<_> = (0..2).map(|s| n_past[s]..n_past[s] + cuts[s]).collect();
            let step: Vec<PagedSeq<'_>> = (0..2)
                .map(|s| PagedSeq {
                    blocks: &tables[s],
                    n_past: n_past[s],
                    tokens: &texts[s][spans[s].clone()],
                    logits: Some(Logits::Last),
                    lora: &[],
                })
                .collect();
            model.forward_paged(&mut batch, &mut pool, &step).unwrap();
            let [s0, s1] = &mut states[..] else {
                unreachable!()
            };
            let mut seqs = [
                SeqStep {
                    state: s0,
                    tokens: &texts[0][spans[0].clone()],
                    logits: Some(Logits::Last),
                },
                SeqStep {
                    state: s1,
                    tokens: &texts[1][spans[1].clone()],
                    logits: Some(Logits::Last),
                },
            ];
            model.forward_batch(&mut own, &mut seqs).unwrap();
            for s in 0..2 {
                assert_eq!(batch.logits(s), own.logits(s), "{preset} seq {s}");
                n_past[s] += cuts[s];
            }
        }
    }
}

#[test]
fn quantized_kv_pools_equal_quantized_caches_of_their_own_and_reuse_prefixes() {
    // q8_0 and q4_0 (HEARTH_KV_CACHE_TYPE): blocks of a pool hold the same
    // quantized, rotated rows as a sequence's own cache, so paged steps give
    // the same bits; heads of 64 (tiny-llama) and 128 (tiny-gemma2: keys
    // rotated by 128, soft-capped scores, a sliding window).
    for kv in [model::KvType::Q8_0, model::KvType::Q4_0] {
        for preset in ["tiny-llama", "tiny-gemma2"] {
            let mut model = load(preset, TensorType::Q8_0);
            model.set_kv_type(kv).unwrap();
            let mut pool = model.new_kv_pool(BLOCK, 24).unwrap();
            assert_eq!(pool.kv_type(), kv);
            let mut batch = model.new_batch(64, N_CTX).unwrap();
            let tables: [Vec<u32>; 2] = [vec![20, 3, 11, 7, 1], vec![0, 22, 5, 16]];
            let texts = [prompt(5, 70), prompt(6, 50)];
            let mut states: Vec<_> = (0..2).map(|_| model.new_state(N_CTX).unwrap()).collect();
            let mut own = model.new_batch(64, N_CTX).unwrap();
            let mut n_past = [0usize; 2];
            for cuts in [[40usize, 30], [20, 10], [1, 1], [1, 1]] {
                let spans: Vec<_> = (0..2).map(|s| n_past[s]..n_past[s] + cuts[s]).collect();
                let step: Vec<PagedSeq<'_>> = (0..2)
                    .map(|s| PagedSeq {
                        blocks: &tables[s],
                        n_past: n_past[s],
                        tokens: &texts[s][spans[s].clone()],
                        logits: Some(Logits::Last),
                        lora: &[],
                    })
                    .collect();
                model.forward_paged(&mut batch, &mut pool, &step).unwrap();
                let [s0, s1] = &mut states[..] else {
                    unreachable!()
                };
                let mut seqs = [
                    SeqStep {
                        state: s0,
                        tokens: &texts[0][spans[0].clone()],
                        logits: Some(Logits::Last),
                    },
                    SeqStep {
                        state: s1,
                        tokens: &texts[1][spans[1].clone()],
                        logits: Some(Logits::Last),
                    },
                ];
                model.forward_batch(&mut own, &mut seqs).unwrap();
                for s in 0..2 {
                    assert_eq!(batch.logits(s), own.logits(s), "{preset} {kv} seq {s}");
                    n_past[s] += cuts[s];
                }
            }
            // A prompt that starts with cached blocks gets the logits of
            // computing it whole.
            let mut m = BlockManager::new(24, BLOCK);
            let mut pool = model.new_kv_pool(BLOCK, 24).unwrap();
            let system = prompt(1, 40);
            let first: Vec<u32> = system.iter().copied().chain(prompt(2, 9)).collect();
            let second: Vec<u32> = system.iter().copied().chain(prompt(3, 12)).collect();
            let mut a = m.start(&first);
            run(&model, &mut batch, &mut pool, &mut m, &mut a, &first);
            m.free(a);
            let mut b = m.start(&second);
            assert_eq!(b.n_past(), 32, "{preset} {kv}");
            let rest = second[32..].to_vec();
            let got = run(&model, &mut batch, &mut pool, &mut m, &mut b, &rest);
            assert_eq!(got, alone(&model, &second), "{preset} {kv}");
        }
    }
}

#[test]
fn a_step_beyond_the_blocks_is_an_error() {
    let model = load("tiny-qwen2", TensorType::F16);
    // A pool sized by a memory budget: 4 blocks' worth.
    let budget = 4 * model.kv_block_bytes(BLOCK) + 100;
    let mut pool = model
        .new_kv_pool(BLOCK, budget / model.kv_block_bytes(BLOCK))
        .unwrap();
    assert_eq!(pool.size_bytes(), budget - 100);
    let mut batch = model.new_batch(64, N_CTX).unwrap();
    let tokens = prompt(7, 17);
    let step = [PagedSeq {
        blocks: &[0],
        n_past: 0,
        tokens: &tokens,
        logits: None,
        lora: &[],
    }];
    assert!(model.forward_paged(&mut batch, &mut pool, &step).is_err());
    let step = [PagedSeq {
        blocks: &[0, 9],
        n_past: 0,
        tokens: &tokens,
        logits: None,
        lora: &[],
    }];
    assert!(model.forward_paged(&mut batch, &mut pool, &step).is_err());
}
