//! `hearth tokenize` run as a real process on the committed fixture vocabularies.

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures/tokenizer")
        .join(name)
}

fn hearth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("tokenize")
        .args(args)
        .output()
        .expect("run hearth")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// The ids llama-tokenize printed for a corpus entry (see expected.json).
fn expected(vocab: &str, entry: &str, key: &str) -> Vec<u64> {
    let path = fixture("expected.json");
    let all: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let case = &all[vocab][entry];
    let raw: Vec<u64> = case["raw"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    if let Some(ids) = case.get(key) {
        return ids
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
    }
    match case.get(format!("{key}_prefix").as_str()) {
        Some(prefix) => {
            let mut ids: Vec<u64> = prefix
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            ids.extend(raw);
            ids
        }
        None => raw,
    }
}

fn json_ids(text: &str) -> Vec<u64> {
    serde_json::from_str(text.trim()).expect("a JSON array of ids")
}

const CHAT: &str = "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n";

#[test]
fn json_output_matches_llama_tokenize() {
    let spm = fixture("spm.gguf");
    let out = stdout(&hearth(&[spm.to_str().unwrap(), CHAT, "--json"]));
    assert_eq!(
        json_ids(&out),
        expected("spm.gguf", "special_chat", "tokenize")
    );
    // Control-token text becomes control tokens only with --special.
    let out = stdout(&hearth(&[
        spm.to_str().unwrap(),
        CHAT,
        "--json",
        "--special",
    ]));
    assert_eq!(
        json_ids(&out),
        expected("spm.gguf", "special_chat", "tokenize_special")
    );
}

#[test]
fn no_bos_drops_only_the_bos() {
    let spm = fixture("spm.gguf");
    let with = json_ids(&stdout(&hearth(&[
        spm.to_str().unwrap(),
        "Hello world",
        "--json",
    ])));
    let without = json_ids(&stdout(&hearth(&[
        spm.to_str().unwrap(),
        "Hello world",
        "--json",
        "--no-bos",
    ])));
    assert_eq!(with[0], 1);
    assert_eq!(&with[1..], &without[..]);
}

#[test]
fn default_output_lists_ids_with_pieces() {
    let bpe = fixture("bpe-gpt-2.gguf");
    let out = stdout(&hearth(&[bpe.to_str().unwrap(), "Hello world"]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(!lines.is_empty());
    let mut text = String::new();
    for line in &lines {
        // Format of llama-tokenize: "%6d -> '%s'".
        let (id, piece) = line.split_once(" -> ").expect("id -> 'piece'");
        id.trim().parse::<u32>().expect("numeric id");
        text.push_str(
            piece
                .strip_prefix('\'')
                .unwrap()
                .strip_suffix('\'')
                .unwrap(),
        );
    }
    assert_eq!(text, "Hello world");
}

#[test]
fn file_input_is_read_byte_for_byte() {
    let dir = std::env::temp_dir().join(format!("hearth-tokenize-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("input.txt");
    // A trailing newline and a backslash sequence must survive unchanged.
    std::fs::write(&path, "tab\\t and newline\n").unwrap();
    let spm = fixture("spm.gguf");
    let from_file = json_ids(&stdout(&hearth(&[
        spm.to_str().unwrap(),
        "-f",
        path.to_str().unwrap(),
        "--json",
    ])));
    let from_arg = json_ids(&stdout(&hearth(&[
        spm.to_str().unwrap(),
        "tab\\t and newline\n",
        "--json",
    ])));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(from_file, from_arg);
}

#[test]
fn bad_model_is_an_error_not_a_panic() {
    let out = hearth(&["/nonexistent/model.gguf", "x"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error:"), "{stderr}");
}
