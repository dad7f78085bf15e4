//! Behaviour of the qwen2, qwen3, phi3, gemma2, gemma3, qwen3moe, gemma,
//! starcoder2, command-r, cohere2, olmo2, granite, mistral3, gpt-oss and bloom
//! forward passes
//! that need no oracle (llama_fixtures.rs compares their logits with
//! llama.cpp's): batches
//! equal token-by-token decoding across the batch boundary, phi3 picks its
//! LongRoPE factors by context size, gemma2's final soft-cap bounds the
//! logits, the context shift re-rotates keys with each layer's RoPE, and a
//! missing architecture-specific tensor is named in the error.

use std::path::{Path, PathBuf};

use gguf::{GgufWriter, TensorType};
use model::synthetic::Spec;
use model::{LoadOptions, Logits, Model, ModelError};

const ARCHS: [&str; 15] = [
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

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn load(spec: &Spec, name: &str) -> Model {
    let path = tmp(name);
    spec.write(&path, TensorType::F16).unwrap();
    Model::load_with(&path, &LoadOptions { threads: Some(2) }).unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

#[test]
fn batch_equals_token_by_token_across_the_batch_boundary() {
    for preset in ARCHS {
        let model = load(
            &Spec::preset(preset).unwrap(),
            &format!("{preset}-batch.gguf"),
        );
        let n = model.info().n_vocab;
        // 100 tokens: more than one batch of 64, and past gemma's 16-token window.
        let tokens: Vec<u32> = (0..100).map(|i| (i * 37 + 5) % 320).collect();
        let mut batch = model.new_state(100).unwrap();
        let all = model
            .forward(&mut batch, &tokens, Logits::All)
            .unwrap()
            .to_vec();
        let mut single = model.new_state(100).unwrap();
        for (p, &t) in tokens.iter().enumerate() {
            let row = model.forward(&mut single, &[t], Logits::Last).unwrap();
            let d = max_diff(row, &all[p * n..(p + 1) * n]);
            // Only the order of float sums may differ. As in llama.cpp, a
            // batch is summed in tinyBLAS' order and a single token in
            // vec_dot's, and the activations are rounded to f16 before every
            // F16 product, so a different order can flip an f16 rounding
            // (2^-11 relative) on the way: up to ~4e-3 of the logits' spread
            // here. A wrong position or cache row moves them by O(1).
            let row = &all[p * n..(p + 1) * n];
            let mean = row.iter().sum::<f32>() / n as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
            let std = var.sqrt();
            assert!(
                d < 1e-2 * std,
                "{preset}: position {p} differs by {d} (std {std})"
            );
        }
    }
}

#[test]
fn phi3_uses_the_long_rope_factors_beyond_the_original_context() {
    // tiny-phi3's original context is 64: up to 64 positions use the short
    // factors, more use the long ones.
    let model = load(&Spec::tiny_phi3(), "phi3-factors.gguf");
    let tokens: Vec<u32> = (0..12).map(|i| (i * 29 + 1) % 320).collect();
    let run = |n_ctx: usize| {
        let mut s = model.new_state(n_ctx).unwrap();
        model
            .forward(&mut s, &tokens, Logits::Last)
            .unwrap()
            .to_vec()
    };
    let (short_a, short_b, long) = (run(16), run(64), run(65));
    assert_eq!(short_a, short_b);
    assert!(max_diff(&short_a, &long) > 1e-3);
}

#[test]
fn gemma2_final_soft_cap_bounds_the_logits() {
    let spec = Spec::tiny_gemma2();
    let cap = spec.final_softcap.unwrap();
    let model = load(&spec, "gemma2-cap.gguf");
    let tokens: Vec<u32> = (0..20).map(|i| (i * 31 + 2) % 320).collect();
    let mut s = model.new_state(20).unwrap();
    let logits = model.forward(&mut s, &tokens, Logits::All).unwrap();
    assert!(logits.iter().all(|l| l.abs() < cap));
    // The cap bites: some logits are pushed close to it.
    assert!(logits.iter().any(|l| l.abs() > 0.7 * cap));
}

#[test]
fn context_shift_matches_a_fresh_run_for_every_arch() {
    // One layer, as in llama_forward.rs: after the shift the cache equals a fresh
    // run's up to the f16 rounding of the re-rotated keys. gemma3's single layer
    // slides (16 positions, RoPE base 10000), gemma2's too. phi3 runs without
    // LongRoPE here: its `rope.scaling.attn_factor` scales cos and sin, and
    // llama.cpp's K-shift (`build_rope_shift`), which hearth mirrors, applies it
    // to the shifted keys a second time, so they would differ from a fresh run.
    // gpt-oss runs without YaRN for the same reason: without a log multiplier
    // YaRN leaves its magnitude factor (1 + 0.1 ln 32) on cos and sin.
    for preset in ARCHS {
        let base = Spec::preset(preset).unwrap();
        let spec = Spec {
            n_layer: 1,
            long_rope: None,
            yarn: base.yarn.filter(|&(_, _, log_mul)| log_mul != 0.0),
            ..base
        };
        let model = load(&spec, &format!("{preset}-shift.gguf"));
        let tokens: Vec<u32> = (0..32).map(|i| (i * 11 + 3) % 320).collect();
        let mut s = model.new_state(32).unwrap();
        model.forward(&mut s, &tokens, Logits::Last).unwrap();
        s.shift(&model, 4, 14).unwrap();
        assert_eq!(s.n_past(), 18);
        let shifted = model.forward(&mut s, &[5], Logits::Last).unwrap().to_vec();
        let kept: Vec<u32> = tokens[..4]
            .iter()
            .chain(&tokens[18..])
            .copied()
            .chain([5])
            .collect();
        let mut fresh = model.new_state(32).unwrap();
        let expect = model.forward(&mut fresh, &kept, Logits::Last).unwrap();
        let d = max_diff(&shifted, expect);
        assert!(d < 2e-2, "{preset}: max diff {d}");
    }
}

#[test]
fn missing_arch_specific_tensors_are_named() {
    for (preset, missing) in [
        ("tiny-qwen3", "blk.1.attn_k_norm.weight"),
        ("tiny-phi3", "blk.0.ffn_up.weight"),
        ("tiny-gemma2", "blk.1.post_ffw_norm.weight"),
        ("tiny-gemma3", "blk.5.attn_q_norm.weight"),
        ("tiny-qwen3moe", "blk.1.ffn_down_exps.weight"),
        ("tiny-starcoder2", "blk.0.ffn_norm.bias"),
        ("tiny-command-r", "blk.1.ffn_gate.weight"),
        ("tiny-gpt-oss", "blk.1.attn_sinks.weight"),
        ("tiny-gpt-oss", "blk.0.post_attention_norm.weight"),
        ("tiny-bloom", "token_embd_norm.bias"),
    ] {
        let spec = Spec::preset(preset).unwrap();
        let full = spec.build(&|_| TensorType::F32).unwrap();
        let mut w = GgufWriter::new();
        for (k, v) in full.metadata().iter() {
            w.add(k, v.clone());
        }
        for (name, dims, kind) in spec.tensor_shapes() {
            if name == missing {
                continue;
            }
            let n = dims.iter().product::<u64>() as usize;
            let values = spec.values(&name, n, dims[0] as usize, kind);
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            w.add_tensor(&name, TensorType::F32, &dims, &bytes).unwrap();
        }
        let path = tmp(&format!("{preset}-missing.gguf"));
        w.write_file(&path).unwrap();
        match Model::load(&path) {
            Err(ModelError::MissingTensor(name)) => assert_eq!(name, missing, "{preset}"),
            other => panic!("{preset}: expected a missing tensor error, got {other:?}"),
        }
    }
}

#[test]
fn qwen3moe_without_experts_is_a_config_error() {
    let spec = Spec {
        n_expert: 0,
        n_expert_used: 0,
        ..Spec::tiny_qwen3moe()
    };
    let path = tmp("tiny-qwen3moe-dense.gguf");
    spec.write(&path, TensorType::F32).unwrap();
    match Model::load(&path) {
        Err(ModelError::Config { key, .. }) => assert_eq!(key, "qwen3moe.expert_count"),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn files_of_unsupported_variants_are_config_errors() {
    // OLMo 3 (olmo2 with sliding-window layers) and Command R+ (64 layers
    // and more, with per-head q/k LayerNorms) load in llama.cpp; hearth names
    // the key instead of running them without those parts.
    let olmo3 = Spec {
        sliding_window: Some(16),
        ..Spec::tiny_olmo2()
    };
    let command_r_plus = Spec {
        n_layer: 64,
        n_embd: 64,
        n_head: 2,
        n_head_kv: 2,
        n_ff: 64,
        ..Spec::tiny_command_r()
    };
    for (spec, key) in [
        (olmo3, "olmo2.attention.sliding_window"),
        (command_r_plus, "command-r.block_count"),
    ] {
        let path = tmp(&format!("{}-unsupported.gguf", spec.arch));
        spec.write(&path, TensorType::F32).unwrap();
        match Model::load(&path) {
            Err(ModelError::Config { key: k, .. }) => assert_eq!(k, key),
            other => panic!("{key}: expected a config error, got {other:?}"),
        }
    }
}
