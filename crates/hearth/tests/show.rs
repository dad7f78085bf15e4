//! `hearth show` run as a real process on files written by our GGUF writer.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gguf::{Array, GgufWriter, TensorType, Value};

fn hearth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .output()
        .unwrap()
}

/// A fresh directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-show-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A two-layer "qwen2" file: Q4_K matrices, per-layer KV head counts, 300 tokens.
fn model_writer() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.add_str("general.architecture", "qwen2");
    w.add_str("general.name", "tiny test");
    w.add_u32("general.file_type", 15);
    w.add("qwen2.context_length", Value::U64(32768));
    w.add_u32("qwen2.embedding_length", 256);
    w.add_u32("qwen2.block_count", 2);
    w.add_u32("qwen2.attention.head_count", 4);
    w.add(
        "qwen2.attention.head_count_kv",
        Value::Array(Array::U32(vec![2, 1])),
    );
    w.add_str("tokenizer.ggml.model", "gpt2");
    let tokens: Vec<String> = (0..300).map(|i| format!("t{i}")).collect();
    w.add_str_array("tokenizer.ggml.tokens", &tokens);
    for l in 0..2 {
        let q4k = vec![0u8; 144 * 256];
        w.add_tensor(
            &format!("blk.{l}.attn_q.weight"),
            TensorType::Q4_K,
            &[256, 256],
            &q4k,
        )
        .unwrap();
        w.add_tensor(
            &format!("blk.{l}.attn_norm.weight"),
            TensorType::F32,
            &[256],
            &[0; 1024],
        )
        .unwrap();
    }
    w
}

fn write_model(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.gguf");
    model_writer().write_file(&path).unwrap();
    path
}

#[test]
fn shows_a_good_file() {
    let dir = temp_dir("good");
    let path = write_model(&dir);
    let out = hearth(&["show", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "architecture      qwen2",
        "parameters        132K",
        "file type         Q4_K - Medium (mostly q4_K: 100% of parameters)",
        "context length    32768",
        "embedding length  256",
        "layers            2",
        "heads             4",
        "kv heads          1-2 per layer (2 layers)",
        "tokenizer         gpt2, 300 tokens",
        "chat template     no",
        "tensors           4",
        "GGUF v3",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("metadata ("),
        "summary only without --verbose"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn verbose_lists_metadata_and_tensors() {
    let dir = temp_dir("verbose");
    let path = write_model(&dir);
    let out = hearth(&["show", "--verbose", path.to_str().unwrap()]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = |needle: &str| {
        stdout
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(stdout.contains("metadata (10 entries)"), "{stdout}");
    let tokens = line("tokenizer.ggml.tokens");
    assert!(
        tokens.contains("array[string]")
            && tokens.ends_with(r#"["t0", "t1", "t2", ... (300 items)]"#),
        "{tokens}"
    );
    assert!(
        line("qwen2.attention.head_count_kv").ends_with("array[u32]     [2, 1]"),
        "{stdout}"
    );
    assert!(stdout.contains("tensors (4)"));
    let q = line("blk.1.attn_q.weight");
    let fields: Vec<&str> = q.split_whitespace().collect();
    // index, name, type, shape "[256," "256]", offset after attn_q 0 (36864 B) and
    // attn_norm 0 (1024 B), both multiples of the alignment.
    assert_eq!(
        fields,
        ["2", "blk.1.attn_q.weight", "q4_K", "[256,", "256]", "37888"],
        "{q}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn truncated_file_is_an_error() {
    let dir = temp_dir("truncated");
    let path = write_model(&dir);
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.join("cut.gguf");
    for len in [0, 3, 100, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let out = hearth(&["show", cut.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{len} bytes: exit status {:?}",
            out.status
        );
        assert!(
            stderr.starts_with("error: ") && stderr.contains("cut.gguf"),
            "{len} bytes: {stderr}"
        );
        assert!(out.stdout.is_empty());
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn missing_file_is_an_error() {
    let out = hearth(&["show", "/nonexistent/dir/model.gguf"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: /nonexistent/dir/model.gguf: "),
        "{stderr}"
    );
}

#[test]
fn split_model_is_shown_whole() {
    let dir = temp_dir("split");
    // Shard 1 holds the metadata and two tensors, shard 2 the other two.
    let full = model_writer();
    let mut shards = [GgufWriter::new(), GgufWriter::new()];
    for (key, value) in full.metadata().iter() {
        shards[0].add(key, value.clone());
    }
    for (i, shard) in shards.iter_mut().enumerate() {
        shard.add("split.no", Value::U16(i as u16));
        shard.add("split.count", Value::U16(2));
        shard.add("split.tensors.count", Value::I32(4));
        shard
            .add_tensor(
                &format!("blk.{i}.attn_q.weight"),
                TensorType::Q4_K,
                &[256, 256],
                &vec![0; 144 * 256],
            )
            .unwrap();
        shard
            .add_tensor(
                &format!("blk.{i}.attn_norm.weight"),
                TensorType::F32,
                &[256],
                &[0; 1024],
            )
            .unwrap();
        shard
            .write_file(dir.join(format!("tiny-{:05}-of-00002.gguf", i + 1)))
            .unwrap();
    }
    let first = dir.join("tiny-00001-of-00002.gguf");
    let out = hearth(&["show", "-v", first.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("parameters        132K") && stdout.contains("in 2 shards"),
        "{stdout}"
    );
    assert!(stdout.contains("tensors           4"), "{stdout}");

    std::fs::remove_file(dir.join("tiny-00002-of-00002.gguf")).unwrap();
    let out = hearth(&["show", first.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("missing shard") && stderr.contains("tiny-00002-of-00002.gguf"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
