//! `hearth quantize` against llama-quantize: for hearth's synthetic models, every
//! preset, with and without an importance matrix, the output file is byte for
//! byte the one llama-quantize wrote (sha256 recorded in
//! crates/store/tests/fixtures/quantize/files.json by
//! tools/reference/gen_llama_quantize_fixtures.py), or hearth refuses where
//! llama-quantize did (an imatrix is required) or where it has no quantizer for a
//! type the preset chose. The binary itself is run for one preset, its result
//! loaded and run, and for its errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use gguf::TensorType;
use model::synthetic::Spec;
use model::{LoadOptions, Logits, Model};
use serde_json::Value;
use sha2::{Digest, Sha256};
use store::quantize::{Imatrix, Options, Preset, QuantizeError, Request, quantize_file};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/tests/fixtures/quantize")
}

/// A directory of this test process, one per test (`sub`), so that one test's
/// files in progress are not another's leftovers.
fn dir(sub: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("hearth-quantize-{}", std::process::id()))
        .join(sub);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The F32 synthetic model `variant`, written once per test process.
fn f32_model(variant: &str) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let path = dir("models").join(format!("{variant}-F32.gguf"));
    if !path.exists() {
        let spec = Spec::preset(variant).expect("fixture names a synthetic preset");
        spec.write(&path, TensorType::F32).unwrap();
    }
    path
}

fn records() -> &'static Vec<Value> {
    static RECORDS: OnceLock<Vec<Value>> = OnceLock::new();
    RECORDS.get_or_init(|| {
        let text = std::fs::read_to_string(fixture_dir().join("files.json")).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        v["entries"].as_array().unwrap().clone()
    })
}

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn tensor_type(name: &str) -> TensorType {
    TensorType::ALL
        .into_iter()
        .find(|t| t.name().eq_ignore_ascii_case(name))
        .unwrap_or_else(|| panic!("unknown type {name}"))
}

const IMATRIX: &str = "imatrix-tiny-llama.gguf";

/// Quantizes every recorded (model, preset, imatrix) in-process and compares.
#[test]
fn every_preset_writes_llama_quantizes_bytes_or_refuses_as_it_does() {
    let imatrix = Imatrix::load(&fixture_dir().join(IMATRIX)).unwrap();
    let mut report = String::new();
    let mut failed = 0;
    let (mut same, mut refused) = (0, 0);
    for rec in records() {
        let model = rec["model"].as_str().unwrap();
        let preset_name = rec["preset"].as_str().unwrap();
        let with_imatrix = rec["imatrix"].as_bool().unwrap();
        let preset = Preset::parse(preset_name).expect("fixture preset parses");
        let input = f32_model(model);
        let output = dir("presets").join(format!("{model}-{preset_name}-{with_imatrix}.gguf"));
        let request = Request {
            input: &input,
            output: &output,
            options: Options::new(preset),
            allow_requantize: false,
            imatrix: with_imatrix.then_some((&imatrix, IMATRIX)),
            n_threads: 2,
        };
        let result = quantize_file(&request, &mut |_| {});
        let label = format!("{model} {preset_name} imatrix={with_imatrix}");
        // What hearth must do: refuse as llama-quantize did, refuse a type it
        // cannot write, or write the same file.
        let verdict = match (rec["error"].as_str(), result) {
            (Some(_), Err(QuantizeError::NeedsImatrix { .. })) => Ok("refused, as llama"),
            (Some(e), other) => Err(format!("llama-quantize: {e}; hearth: {other:?}")),
            (None, result) => {
                let types: Vec<TensorType> = rec["types"]
                    .as_str()
                    .unwrap()
                    .split(' ')
                    .map(tensor_type)
                    .collect();
                let writable = types
                    .iter()
                    .all(|&t| !t.is_quantized() || kernels::can_quantize(t, with_imatrix));
                match (writable, result) {
                    (false, Err(QuantizeError::NoQuantizer { .. })) => Ok("no quantizer in hearth"),
                    (true, Ok(_)) if sha256(&output) == rec["sha256"].as_str().unwrap() => {
                        Ok("same bytes")
                    }
                    (true, Ok(r)) => Err(format!("file differs; types {:?}", r.types)),
                    (w, other) => Err(format!("writable={w}: {other:?}")),
                }
            }
        };
        let _ = std::fs::remove_file(&output);
        match verdict {
            Ok(v) => {
                same += usize::from(v == "same bytes");
                refused += usize::from(v != "same bytes");
                report.push_str(&format!("ok   {label}: {v}\n"));
            }
            Err(e) => {
                failed += 1;
                report.push_str(&format!("FAIL {label}: {e}\n"));
            }
        }
    }
    println!("{report}");
    assert!(same > 0 && refused > 0, "{report}");
    assert_eq!(failed, 0, "{report}");
}

fn hearth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_binary_quantizes_and_the_result_loads_and_runs() {
    let input = f32_model("tiny-llama");
    let output = dir("cli").join("cli-Q4_K_M.gguf");
    let run = hearth(&[
        "quantize",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "q4_k_m",
        "-t",
        "2",
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert!(
        text(&run.stdout).contains("Q4_K_M"),
        "{}",
        text(&run.stdout)
    );
    let expected = records()
        .iter()
        .find(|r| r["model"] == "tiny-llama" && r["preset"] == "Q4_K_M" && r["imatrix"] == false)
        .expect("fixture records tiny-llama Q4_K_M");
    assert_eq!(sha256(&output), expected["sha256"].as_str().unwrap());

    let model = Model::load_with(&output, &LoadOptions { threads: Some(1) }).unwrap();
    let tokens = [1u32, 17, 42];
    let mut state = model.new_state(tokens.len()).unwrap();
    let logits = model.forward(&mut state, &tokens, Logits::Last).unwrap();
    assert!(!logits.is_empty() && logits.iter().all(|x| x.is_finite()));
}

#[test]
fn bad_requests_are_named_errors_and_leave_no_file() {
    let input = f32_model("tiny-llama");
    let d = dir("errors");
    let quantized = d.join("requant-src.gguf");
    assert!(
        hearth(&[
            "quantize",
            input.to_str().unwrap(),
            quantized.to_str().unwrap(),
            "Q8_0"
        ])
        .status
        .success()
    );
    let out = d.join("refused.gguf");
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "quantize",
                input.to_str().unwrap(),
                out.to_str().unwrap(),
                "Q4_K_X",
            ],
            "unknown preset 'Q4_K_X'",
        ),
        (
            &[
                "quantize",
                quantized.to_str().unwrap(),
                out.to_str().unwrap(),
                "Q4_0",
            ],
            "--allow-requantize",
        ),
        (
            &[
                "quantize",
                input.to_str().unwrap(),
                out.to_str().unwrap(),
                "IQ2_XXS",
            ],
            "needs an importance matrix",
        ),
        (
            &[
                "quantize",
                input.to_str().unwrap(),
                input.to_str().unwrap(),
                "Q4_0",
            ],
            "same file",
        ),
    ];
    for (args, message) in cases {
        let run = hearth(args);
        assert!(!run.status.success(), "{args:?} succeeded");
        assert!(
            text(&run.stderr).contains(message),
            "{args:?}: {}",
            text(&run.stderr)
        );
        assert!(!out.exists(), "{args:?} left a file");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    let run = hearth(&[
        "quantize",
        "--allow-requantize",
        quantized.to_str().unwrap(),
        out.to_str().unwrap(),
        "Q4_0",
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
}

/// `hearth create NAME -f Modelfile -q PRESET` in a store of its own (no
/// server): the stored weights are the bytes llama-quantize writes for that
/// preset, and quantized weights are refused as Ollama refuses them.
#[test]
fn create_quantizes_on_the_way_into_the_store() {
    let input = f32_model("tiny-llama");
    let d = dir("create");
    let models = d.join("models");
    let create = |name: &str, from: &Path, preset: &str| {
        let modelfile = d.join(format!("{name}.Modelfile"));
        std::fs::write(
            &modelfile,
            format!("FROM {}\nPARAMETER temperature 0\n", from.display()),
        )
        .unwrap();
        Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args([
                "create",
                name,
                "-f",
                modelfile.to_str().unwrap(),
                "-q",
                preset,
            ])
            .env("HEARTH_MODELS", &models)
            .env("HOME", &d)
            .env("HEARTH_HOST", "127.0.0.1:9")
            .env_remove("OLLAMA_HOST")
            .output()
            .unwrap()
    };
    let out = create("small", &input, "q4_K_M");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("quantizing model to Q4_K_M"),
        "{}",
        text(&out.stderr)
    );
    let expected = records()
        .iter()
        .find(|r| r["model"] == "tiny-llama" && r["preset"] == "Q4_K_M" && r["imatrix"] == false)
        .expect("fixture records tiny-llama Q4_K_M");
    let blob = models
        .join("blobs")
        .join(format!("sha256-{}", expected["sha256"].as_str().unwrap()));
    assert!(blob.is_file(), "no blob {}", blob.display());
    // No quantized file is left behind outside the blobs.
    let partial = models.join("partial");
    let leftovers: Vec<_> = std::fs::read_dir(&partial)
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
                .collect()
        })
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Already quantized weights are refused, and so is an unknown preset.
    let q8 = d.join("q8.gguf");
    assert!(
        hearth(&[
            "quantize",
            input.to_str().unwrap(),
            q8.to_str().unwrap(),
            "Q8_0"
        ])
        .status
        .success()
    );
    let out = create("again", &q8, "q4_K_M");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("only supported for F16, BF16 and F32"),
        "{}",
        text(&out.stderr)
    );
    let out = create("odd", &input, "q9_X");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unknown quantization type 'q9_X'"),
        "{}",
        text(&out.stderr)
    );
}
