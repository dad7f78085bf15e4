//! Tokenizer throughput on 1 MB of mixed text (prose, code, CJK, emoji,
//! right-to-left scripts, digits, whitespace runs) built from the conformance
//! corpus.
//!
//! `cargo bench -p model --bench tokenizer` measures the committed fixture
//! vocabularies; with `HEARTH_LLAMA_VOCAB_DIR` set (tools/fetch-llama-vocabs.sh) it
//! also measures llama.cpp's real Llama 2 (SPM), Llama 3 and Qwen2 (BPE), Gemma 4
//! (BPE on raw UTF-8) and BERT (WordPiece) vocabularies. Each figure is the best of
//! several runs; the time to build the tokenizer from the file's metadata is shown
//! beside it (one run).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use model::tokenizer::Tokenizer;

/// About 1 MB of text: the corpus entries, shuffled deterministically and repeated.
fn mixed_text(fixtures: &Path) -> String {
    let corpus: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("corpus.json")).unwrap())
            .unwrap();
    let texts: Vec<&str> = corpus
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .filter(|t| t.len() < 2000)
        .collect();
    let mut text = String::with_capacity(1_050_000);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    while text.len() < 1_000_000 {
        // xorshift: a fixed, dependency-free shuffle.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        text.push_str(texts[(state % texts.len() as u64) as usize]);
        text.push(' ');
    }
    text
}

fn measure(name: &str, path: &Path, text: &str) {
    let file = gguf::GgufFile::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let start = Instant::now();
    let tokenizer = Tokenizer::from_metadata(file.metadata()).unwrap();
    let load = start.elapsed();
    let mut best = Duration::MAX;
    let mut n_tokens = 0;
    for _ in 0..5 {
        let start = Instant::now();
        n_tokens = tokenizer.encode(text, true, false).len();
        best = best.min(start.elapsed());
    }
    let secs = best.as_secs_f64();
    println!(
        "{name:<28} {:>8.1} ms  {:>6.1} MB/s  {:>9} tokens  (load {:.0} ms)",
        secs * 1e3,
        text.len() as f64 / secs / 1e6,
        n_tokens,
        load.as_secs_f64() * 1e3
    );
}

fn main() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer");
    let text = mixed_text(&fixtures);
    println!("{} bytes of mixed text", text.len());
    for name in [
        "spm.gguf",
        "bpe-llama-bpe.gguf",
        "bpe-qwen2.gguf",
        "bpe-default.gguf",
    ] {
        measure(name, &fixtures.join(name), &text);
    }
    if let Some(dir) = std::env::var_os("HEARTH_LLAMA_VOCAB_DIR").map(PathBuf::from) {
        for name in [
            "llama-spm",
            "phi-3",
            "llama-bpe",
            "qwen2",
            "deepseek-coder",
            "gemma-4",
            "bert-bge",
        ] {
            let file = format!("ggml-vocab-{name}.gguf");
            measure(&file, &dir.join(&file), &text);
        }
    }
}
