//! The tensor types llama-quantize chose, per preset, with and without an
//! importance matrix, for model shapes that exercise its rules (16 layers with
//! GQA 4, rows that are not whole blocks, 8 experts, a tied output head), as
//! tools/reference/gen_llama_quantize_fixtures.py recorded them in
//! tests/fixtures/quantize/plans.json. `rules::plan` must choose the same type
//! for every tensor, and require an imatrix exactly where llama-quantize refused
//! to run without one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use gguf::TensorType;
use serde_json::Value;
use store::quantize::Preset;
use store::quantize::rules::{self, ModelFacts, Options, TensorIn};

fn tensor_type(name: &str) -> TensorType {
    TensorType::ALL
        .into_iter()
        .find(|t| t.name().eq_ignore_ascii_case(name))
        .unwrap_or_else(|| panic!("unknown type {name}"))
}

#[test]
fn rules_choose_llama_quantizes_type_for_every_tensor() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quantize/plans.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let models = fixture["entries"].as_array().unwrap();
    assert!(models.len() >= 4, "fixture lists {} models", models.len());
    let mut report = String::new();
    let (mut checked, mut failed) = (0, 0);
    for m in models {
        let u32_of = |k: &str| m[k].as_u64().unwrap() as u32;
        let facts = ModelFacts {
            arch: m["arch"].as_str().unwrap().to_owned(),
            n_layer: u32_of("n_layer"),
            n_head: u32_of("n_head"),
            n_head_kv: u32_of("n_head_kv"),
            n_expert: u32_of("n_expert"),
        };
        let shapes: BTreeMap<String, Vec<u64>> = m["shapes"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let dims = v.as_array().unwrap().iter().map(|d| d.as_u64().unwrap());
                (k.clone(), dims.collect())
            })
            .collect();
        let tensors: Vec<TensorIn> = shapes
            .iter()
            .map(|(name, dims)| TensorIn {
                name,
                ty: TensorType::F32,
                dims,
            })
            .collect();
        for p in m["presets"].as_array().unwrap() {
            let preset_name = p["preset"].as_str().unwrap();
            let mut opts = Options::new(Preset::parse(preset_name).unwrap());
            opts.has_imatrix = p["imatrix"].as_bool().unwrap();
            let label = format!(
                "{} {preset_name} imatrix={}",
                m["model"].as_str().unwrap(),
                opts.has_imatrix
            );
            let plan = rules::plan(&facts, &opts, &tensors).unwrap();
            checked += 1;
            if p["error"].is_string() {
                let needs = plan.iter().any(|d| d.requires_imatrix);
                if !needs {
                    failed += 1;
                    let _ = writeln!(report, "FAIL {label}: llama-quantize required an imatrix");
                }
                continue;
            }
            // One type per tensor, in name order (the order of `shapes`).
            let expected: BTreeMap<&str, TensorType> = shapes
                .keys()
                .map(String::as_str)
                .zip(p["types"].as_str().unwrap().split(' ').map(tensor_type))
                .collect();
            assert_eq!(expected.len(), plan.len(), "{label}");
            for d in &plan {
                let name = tensors[d.index].name;
                let want = expected[name];
                if d.ty != want {
                    failed += 1;
                    let _ = writeln!(report, "FAIL {label}: {name} is {}, llama has {want}", d.ty);
                }
            }
            if !opts.has_imatrix && plan.iter().any(|d| d.requires_imatrix) {
                failed += 1;
                let _ = writeln!(
                    report,
                    "FAIL {label}: requires an imatrix, llama ran without"
                );
            }
        }
    }
    println!("{checked} model/preset/imatrix combinations checked\n{report}");
    assert_eq!(failed, 0, "{report}");
}
