//! Behaviour of the llama forward pass that needs no oracle: clear errors for bad
//! files and requests, batch/decode equivalence, the sliding window's reach, and
//! the context shift.

use std::path::{Path, PathBuf};

use gguf::{GgufWriter, TensorType};
use model::synthetic::Spec;
use model::{LoadOptions, Logits, Model, ModelError};

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn load(spec: &Spec, name: &str) -> Model {
    let path = tmp(name);
    spec.write(&path, TensorType::F16).unwrap();
    Model::load_with(&path, &LoadOptions { threads: Some(2) }).unwrap()
}

/// A copy of `spec`'s model with tensor `drop` left out and `reshape` given other dims.
fn altered(
    spec: &Spec,
    name: &str,
    edit: &dyn Fn(&mut GgufWriter, &Spec),
) -> Result<Model, ModelError> {
    let path = tmp(name);
    let mut w = GgufWriter::new();
    edit(&mut w, spec);
    w.write_file(&path).unwrap();
    Model::load(&path)
}

/// The tiny spec's metadata and tensors, except `skip`, with `override_dims`.
fn rebuild(w: &mut GgufWriter, spec: &Spec, skip: &str, bad: Option<(&str, Vec<u64>)>) {
    let full = spec.build(&|_| TensorType::F32).unwrap();
    for (k, v) in full.metadata().iter() {
        w.add(k, v.clone());
    }
    for (name, dims, kind) in spec.tensor_shapes() {
        if name == skip {
            continue;
        }
        let dims = match &bad {
            Some((n, d)) if *n == name => d.clone(),
            _ => dims,
        };
        let n: u64 = dims.iter().product();
        let values = spec.values(&name, n as usize, dims[0] as usize, kind);
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        w.add_tensor(&name, TensorType::F32, &dims, &bytes).unwrap();
    }
}

#[test]
fn unknown_architecture_is_named() {
    let spec = Spec::tiny_llama();
    let err = altered(&spec, "unknown-arch.gguf", &|w, s| {
        rebuild(w, s, "", None);
        w.add_str("general.architecture", "rwkv99");
    })
    .unwrap_err();
    assert!(
        matches!(&err, ModelError::UnknownArchitecture(a) if a == "rwkv99"),
        "{err}"
    );
    assert!(err.to_string().contains("rwkv99"));
}

#[test]
fn an_absurd_layer_count_is_named_not_allocated() {
    for (preset, arch) in [("tiny-llama", "llama"), ("tiny-qwen2", "qwen2")] {
        let spec = Spec::preset(preset).unwrap();
        for count in [u32::MAX, 513] {
            let key = format!("{arch}.block_count");
            let err = altered(&spec, &format!("{preset}-layers-{count}.gguf"), &|w, s| {
                rebuild(w, s, "", None);
                w.add_u32(&key, count);
            })
            .unwrap_err();
            assert!(
                matches!(&err, ModelError::Config { key: k, .. } if *k == key),
                "{preset}, {count}: {err}"
            );
            assert!(err.to_string().contains(&count.to_string()), "{err}");
        }
    }
}

#[test]
fn missing_tensor_is_named() {
    let spec = Spec::tiny_llama();
    let err = altered(&spec, "missing.gguf", &|w, s| {
        rebuild(w, s, "blk.1.ffn_up.weight", None)
    })
    .unwrap_err();
    assert!(err.to_string().contains("blk.1.ffn_up.weight"), "{err}");
    assert!(matches!(err, ModelError::MissingTensor(_)));
}

#[test]
fn wrong_shape_names_tensor_and_both_shapes() {
    let spec = Spec::tiny_llama();
    let err = altered(&spec, "shape.gguf", &|w, s| {
        rebuild(w, s, "", Some(("blk.0.attn_k.weight", vec![256, 64])));
    })
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("blk.0.attn_k.weight")
            && msg.contains("[256, 64]")
            && msg.contains("[256, 128]"),
        "{msg}"
    );
}

#[test]
fn bad_requests_are_errors_that_leave_the_state_alone() {
    let model = load(&Spec::tiny_llama(), "requests.gguf");
    let mut state = model.new_state(8).unwrap();
    let err = model
        .forward(&mut state, &[1, 320, 5], Logits::Last)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::TokenOutOfRange {
                token: 320,
                index: 1,
                n_vocab: 320
            }
        ),
        "{err}"
    );
    model
        .forward(&mut state, &[1, 2, 3, 4, 5], Logits::Last)
        .unwrap();
    let err = model
        .forward(&mut state, &[6, 7, 8, 9], Logits::Last)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::ContextFull {
                n_ctx: 8,
                needed: 9
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("context full"));
    assert_eq!(state.n_past(), 5);
    assert!(model.forward(&mut state, &[], Logits::Last).is_err());
}

#[test]
fn one_batch_equals_token_by_token_and_across_batch_boundaries() {
    let model = load(&Spec::tiny_moe(), "batching.gguf");
    let n_vocab = model.info().n_vocab;
    let tokens: Vec<u32> = (0..70).map(|i| (i * 37 + 5) % 320).collect();
    let mut a = model.new_state(80).unwrap();
    let all = model
        .forward(&mut a, &tokens, Logits::All)
        .unwrap()
        .to_vec();
    let mut b = model.new_state(80).unwrap();
    for (i, &t) in tokens.iter().enumerate() {
        let last = model.forward(&mut b, &[t], Logits::Last).unwrap();
        let row = &all[i * n_vocab..(i + 1) * n_vocab];
        // Only the order of float sums may differ: as in llama.cpp, a batch
        // is summed in tinyBLAS' order and a single token in vec_dot's, and
        // activations are rounded to f16 before every F16 product, so a
        // different order can flip one rounding (2^-11 relative) on the way.
        // A wrong position, cache row or expert moves the logits by O(1).
        let d = last
            .iter()
            .zip(row)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let mean = row.iter().sum::<f32>() / n_vocab as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n_vocab as f32;
        assert!(d < 1e-2 * var.sqrt(), "position {i} differs by {d}");
    }
}

#[test]
fn sliding_window_hides_tokens_beyond_its_reach() {
    // Window 16, 2 layers: position p sees positions > p - 16 directly, and
    // through the first layer's outputs, positions > p - 31. So the first
    // token affects positions < 31 only.
    let spec = Spec::tiny_swa();
    let model = load(&spec, "swa.gguf");
    let n = model.info().n_vocab;
    let run = |first: u32| {
        let mut s = model.new_state(40).unwrap();
        let tokens: Vec<u32> = std::iter::once(first)
            .chain((1..40).map(|i| (i * 13 + 7) % 320))
            .collect();
        model
            .forward(&mut s, &tokens, Logits::All)
            .unwrap()
            .to_vec()
    };
    let (a, b) = (run(1), run(2));
    let differs = |p: usize| a[p * n..(p + 1) * n] != b[p * n..(p + 1) * n];
    assert!(differs(0) && differs(15) && differs(30));
    assert!((31..40).all(|p| !differs(p)));

    let full = load(
        &Spec {
            sliding_window: None,
            ..spec
        },
        "no-swa.gguf",
    );
    let mut s = full.new_state(40).unwrap();
    let tokens: Vec<u32> = std::iter::once(1)
        .chain((1..40).map(|i| (i * 13 + 7) % 320))
        .collect();
    let c = full.forward(&mut s, &tokens, Logits::All).unwrap();
    assert_ne!(&c[35 * n..36 * n], &a[35 * n..36 * n]);
}

#[test]
fn context_shift_keeps_the_prefix_and_continues() {
    // One layer: its keys and values depend on each token alone, so after the
    // shift the cache equals a fresh run's up to re-rotation. (With more layers
    // the kept tokens' deeper keys still carry what they attended to before.)
    let spec = Spec {
        n_layer: 1,
        ..Spec::tiny_llama()
    };
    let model = load(&spec, "shift.gguf");
    let n = model.info().n_vocab;
    let tokens: Vec<u32> = (0..32).map(|i| (i * 11 + 3) % 320).collect();
    let mut s = model.new_state(32).unwrap();
    model.forward(&mut s, &tokens, Logits::Last).unwrap();
    assert!(matches!(
        model.forward(&mut s, &[5], Logits::Last),
        Err(ModelError::ContextFull { .. })
    ));
    // Ollama's policy: keep 4, drop half of the rest.
    s.shift(&model, 4, 14).unwrap();
    assert_eq!(s.n_past(), 18);
    let shifted = model.forward(&mut s, &[5], Logits::Last).unwrap().to_vec();

    // The same as running the kept tokens from scratch, up to the f16 rounding
    // of the re-rotated keys.
    let kept: Vec<u32> = tokens[..4]
        .iter()
        .chain(&tokens[18..])
        .copied()
        .chain([5])
        .collect();
    let mut fresh = model.new_state(32).unwrap();
    let expect = model.forward(&mut fresh, &kept, Logits::Last).unwrap();
    let max = shifted
        .iter()
        .zip(expect)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max < 2e-2, "max diff {max} over {n} logits");
    assert!(s.shift(&model, 10, 20).is_err());
}
