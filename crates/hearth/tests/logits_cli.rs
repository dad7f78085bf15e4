//! `hearth logits` as a real process: the file it writes holds every position's
//! logits (n_tokens × n_vocab little-endian f32, token-major), the same numbers
//! the library's forward pass returns; bad input is a named error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gguf::TensorType;
use model::synthetic::Spec;
use model::{LoadOptions, Logits, Model};

fn dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-logits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A tiny random-weight Llama, written once per test process.
fn tiny_model() -> &'static Path {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let path = dir().join("tiny.gguf");
        Spec::tiny_llama().write(&path, TensorType::Q8_0).unwrap();
        path
    })
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
fn writes_every_positions_logits_as_the_library_computes_them() {
    let model_path = tiny_model();
    let out = dir().join("logits.bin");
    let tokens = [1u32, 17, 42, 5, 300];
    let list = tokens.map(|t| t.to_string()).join(",");
    let run = hearth(&[
        "logits",
        model_path.to_str().unwrap(),
        "--tokens",
        &list,
        "--out",
        out.to_str().unwrap(),
        "--threads",
        "1",
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));

    let model = Model::load_with(model_path, &LoadOptions { threads: Some(1) }).unwrap();
    let mut state = model.new_state(tokens.len()).unwrap();
    let expected = model.forward(&mut state, &tokens, Logits::All).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(bytes.len(), tokens.len() * model.info().n_vocab * 4);
    let got: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert!(
        got.iter()
            .zip(expected)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "the file differs from Model::forward's logits"
    );
}

#[test]
fn a_token_outside_the_vocabulary_is_named() {
    let out = dir().join("bad.bin");
    let run = hearth(&[
        "logits",
        tiny_model().to_str().unwrap(),
        "--tokens",
        "1,99999",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!run.status.success());
    let stderr = text(&run.stderr);
    assert!(
        stderr.contains("token id 99999 at position 1 is out of range"),
        "{stderr}"
    );
}
