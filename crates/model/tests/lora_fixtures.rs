//! LoRA adapters against llama.cpp: the tiny Llama with adapters written by
//! llama.cpp's gguf-py (as `convert_lora_to_gguf.py` lays them out), run by
//! llama.cpp with `--lora` / `--lora-scaled` (llama_set_adapters_lora), every
//! position's logits recorded. Fixtures by tools/lora-fixtures/gen.py.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gguf::{GgufModel, TensorType};
use model::synthetic::Spec;
use model::{LoadOptions, Logits, LoraUse, Model};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Largest allowed root-mean-square |hearth - llama.cpp| over all logits, as
/// a fraction of the standard deviation of llama.cpp's logits (the F16
/// bound of `llama_fixtures.rs`: the same roundings, f32 sums in other
/// orders off the machines where ggml's orders are mirrored).
const TOLERANCE: f32 = 2e-3;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lora")
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Writes the base with our writer and checks every tensor against the
/// hashes of the file llama.cpp ran.
fn rebuild(ty: &str, hashes: &Value) -> Model {
    let t = match ty {
        "F32" => TensorType::F32,
        "F16" => TensorType::F16,
        other => panic!("base type {other}"),
    };
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("lora-fixture-{ty}.gguf"));
    Spec::tiny_llama().write(&path, t).unwrap();
    let gguf = GgufModel::open(&path).unwrap();
    let hashes = hashes.as_object().unwrap();
    assert_eq!(gguf.tensors().count(), hashes.len());
    for (shard, info) in gguf.tensors() {
        let sha = format!(
            "{:x}",
            Sha256::digest(gguf.files()[shard].tensor_data(info))
        );
        assert_eq!(
            hashes[&info.name]["sha256"].as_str().unwrap(),
            sha,
            "{}",
            info.name
        );
    }
    Model::load_with(&path, &LoadOptions { threads: Some(2) }).unwrap()
}

/// (rms diff / std, the std) of `ours` against `theirs`.
fn rms_ratio(ours: &[f32], theirs: &[f32]) -> (f32, f32) {
    assert_eq!(ours.len(), theirs.len());
    let n = theirs.len() as f32;
    let mean = theirs.iter().sum::<f32>() / n;
    let std = (theirs.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
    let sq: f32 = ours.iter().zip(theirs).map(|(a, b)| (a - b).powi(2)).sum();
    ((sq / n).sqrt() / std, std)
}

#[test]
fn adapters_move_the_logits_as_llama_cpp_does() {
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("lora.json")).unwrap()).unwrap();
    let tokens: Vec<u32> = meta["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect();
    let base_logits = read_f32(&dir().join("f32-base.logits"));
    let mut models: HashMap<String, Model> = HashMap::new();
    for case in meta["cases"].as_array().unwrap() {
        let name = case["case"].as_str().unwrap();
        let ty = case["base"].as_str().unwrap();
        let model = models
            .entry(ty.to_owned())
            .or_insert_with(|| rebuild(ty, &meta["bases"][ty]));
        let uses: Vec<LoraUse> = case["adapters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| LoraUse {
                lora: Arc::new(
                    model
                        .load_lora(&dir().join(a["file"].as_str().unwrap()))
                        .unwrap(),
                ),
                scale: a["scale"].as_f64().unwrap() as f32,
            })
            .collect();
        let expected = read_f32(&dir().join(format!("{name}.logits")));
        let mut state = model.new_state(tokens.len()).unwrap();
        state.set_lora(uses);
        let logits = model
            .forward(&mut state, &tokens, Logits::All)
            .unwrap()
            .to_vec();
        let (ratio, _) = rms_ratio(&logits, &expected);
        // The adapters' effect is far above the tolerance.
        let (moved, _) = rms_ratio(&base_logits, &expected);
        eprintln!("{name}: rms diff / std {ratio:.2e}; the adapters moved it {moved:.2e}");
        assert!(moved > 20.0 * TOLERANCE, "{name}: adapters barely matter");
        assert!(
            ratio <= TOLERANCE,
            "{name}: rms diff / std {ratio} exceeds {TOLERANCE}"
        );
    }
}
