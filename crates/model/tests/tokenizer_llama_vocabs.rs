//! The tokenizers against llama.cpp's own test vocabularies: the real vocab-only
//! GGUF files of llama.cpp's `models/` directory (`ggml-vocab-*.gguf`), with its test
//! inputs (`.gguf.inp`) and expected ids (`.gguf.out`), as `test-tokenizer-0` uses
//! them (add_special = false, parse_special = false).
//!
//! The files are not committed: `tools/fetch-llama-vocabs.sh` unpacks them from the
//! llama-cpp-python source package and prints the directory to put in
//! `HEARTH_LLAMA_VOCAB_DIR` (tools/test.sh does both). Built without it, the tests
//! are compiled as ignored (crates/model/build.rs), so the run's summary shows they
//! were not checked.

use std::path::{Path, PathBuf};

use model::tokenizer::Tokenizer;

/// The directory of llama.cpp's vocabularies.
fn vocab_dir() -> PathBuf {
    std::env::var_os("HEARTH_LLAMA_VOCAB_DIR")
        .map(PathBuf::from)
        .expect("HEARTH_LLAMA_VOCAB_DIR is not set (run tools/fetch-llama-vocabs.sh)")
}

/// Splits a `.gguf.inp` / `.gguf.out` pair into (text, ids) cases, the way
/// llama.cpp's tests/test-tokenizer-0.cpp reads them.
fn cases(inp: &Path) -> Vec<(String, Vec<u32>)> {
    let raw = std::fs::read_to_string(inp).unwrap();
    let out = std::fs::read_to_string(inp.with_extension("out")).unwrap();
    const SEP: &str = "\n__ggml_vocab_test__\n";
    let mut texts = Vec::new();
    let mut rest = raw.as_str();
    while !rest.is_empty() {
        match rest.find(SEP) {
            Some(pos) => {
                texts.push(rest[..pos].to_owned());
                rest = &rest[pos + SEP.len()..];
            }
            None => {
                texts.push(rest.to_owned());
                break;
            }
        }
    }
    let ids: Vec<Vec<u32>> = out
        .lines()
        .map(|line| {
            line.split_whitespace()
                .map(|id| id.parse().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(texts.len(), ids.len(), "{}", inp.display());
    texts.into_iter().zip(ids).collect()
}

#[test]
#[cfg_attr(
    not(hearth_llama_vocabs),
    ignore = "needs HEARTH_LLAMA_VOCAB_DIR (tools/fetch-llama-vocabs.sh)"
)]
fn llama_cpp_vocabularies_tokenize_like_llama_cpp() {
    let tested = check_vocabularies();
    assert!(tested >= 15, "too few vocabularies found: {tested}");
}

/// Checks every vocabulary against its test cases and returns how many were
/// checked. A vocabulary of a tokenizer kind hearth does not implement fails
/// here rather than going unchecked.
fn check_vocabularies() -> usize {
    let dir = vocab_dir();
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".gguf.inp"))
        .collect();
    inputs.sort();

    let mut tested = Vec::new();
    let mut failures = String::new();
    for inp in inputs {
        let gguf_path = inp.with_extension("");
        let name = gguf_path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let file = gguf::GgufFile::open(&gguf_path).unwrap();
        let tokenizer =
            Tokenizer::from_metadata(file.metadata()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut n_failed = 0;
        for (text, want) in cases(&inp) {
            let got = tokenizer.encode(&text, false, false);
            if got != want {
                n_failed += 1;
                if n_failed <= 3 {
                    failures.push_str(&format!(
                        "{name}: {text:?}\n  got  {got:?}\n  want {want:?}\n"
                    ));
                }
            }
        }
        if n_failed > 3 {
            failures.push_str(&format!("{name}: ... {n_failed} cases failed in all\n"));
        }
        tested.push(name);
    }
    eprintln!("tested: {}", tested.join(", "));
    assert!(
        failures.is_empty(),
        "mismatches with llama.cpp:\n{failures}"
    );
    tested.len()
}

/// A vocabulary file's expected (bos, eos, eot, end-of-generation ids).
type Specials = (&'static str, u32, u32, Option<u32>, &'static [u32]);

#[test]
#[cfg_attr(
    not(hearth_llama_vocabs),
    ignore = "needs HEARTH_LLAMA_VOCAB_DIR (tools/fetch-llama-vocabs.sh)"
)]
fn special_ids_match_llama_cpp() {
    let dir = vocab_dir();
    // (file, bos, eos, eot, end-of-generation ids), as llama.cpp's print_info reports them.
    let cases: [Specials; 6] = [
        ("llama-spm", 1, 2, None, &[2]),
        ("llama-bpe", 128000, 128001, Some(128009), &[128001, 128009]),
        ("phi-3", 1, 32000, Some(32007), &[2, 32000, 32007]),
        (
            "qwen2",
            151643,
            151643,
            Some(151645),
            &[128247, 151643, 151645],
        ),
        ("command-r", 5, 255001, None, &[0, 255001]),
        ("refact", 0, 0, Some(0), &[0, 4, 18]),
    ];
    for (name, bos, eos, eot, eog) in cases {
        let path = dir.join(format!("ggml-vocab-{name}.gguf"));
        let file = gguf::GgufFile::open(&path).unwrap();
        let t = Tokenizer::from_metadata(file.metadata()).unwrap();
        assert_eq!(
            (t.bos(), t.eos(), t.eot()),
            (Some(bos), Some(eos), eot),
            "{name}"
        );
        assert_eq!(t.eog_ids(), eog, "{name}");
    }
}
