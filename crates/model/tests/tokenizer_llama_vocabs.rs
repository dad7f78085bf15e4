//! The tokenizers against llama.cpp's own test vocabularies: the real vocab-only
//! GGUF files of llama.cpp's `models/` directory (`ggml-vocab-*.gguf`), with its test
//! inputs (`.gguf.inp`) and expected ids (`.gguf.out`), as `test-tokenizer-0` uses
//! them (add_special = false, parse_special = false). For the Gemma 4 and BERT
//! vocabularies, llama.cpp's special ids, `add_special`, `parse_special` and
//! detokenization results on the conformance corpus are checked too
//! (`tests/fixtures/tokenizer/llama_vocabs.json`).
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

/// The ids in a fixture's JSON array.
fn json_ids(value: &serde_json::Value) -> Vec<u32> {
    value
        .as_array()
        .expect("ids are an array")
        .iter()
        .map(|v| v.as_u64().expect("id") as u32)
        .collect()
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The vocabularies no locally trained fixture covers (Gemma 4, BERT) against
/// what llama.cpp does with them beyond the `.inp` cases: special ids, BOS / SEP
/// with `add_special`, special tokens parsed from text, and detokenization, on the
/// conformance corpus (tests/fixtures/tokenizer/llama_vocabs.json, written by
/// tools/tokenizer-fixtures/gen_llama_vocab_fixtures.py).
#[test]
#[cfg_attr(
    not(hearth_llama_vocabs),
    ignore = "needs HEARTH_LLAMA_VOCAB_DIR (tools/fetch-llama-vocabs.sh)"
)]
fn gemma4_and_bert_match_llama_cpp_on_the_corpus() {
    use serde_json::Value;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer");
    let read = |file: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(fixtures.join(file)).unwrap()).unwrap()
    };
    let expected = read("llama_vocabs.json");
    let mut corpus = read("corpus.json").as_array().unwrap().clone();
    corpus.extend(expected["extra_corpus"].as_array().unwrap().iter().cloned());
    assert!(corpus.len() >= 50, "corpus too small");

    let mut failures = String::new();
    let mut checked = 0;
    for (file, vocab) in expected.as_object().unwrap() {
        if file == "extra_corpus" {
            continue;
        }
        let gguf = gguf::GgufFile::open(vocab_dir().join(file)).unwrap();
        let t = Tokenizer::from_metadata(gguf.metadata()).unwrap_or_else(|e| panic!("{file}: {e}"));

        let s = &vocab["specials"];
        let id = |key: &str| u32::try_from(s[key].as_i64().unwrap()).ok();
        let special = t.special_tokens();
        let got = (
            special.bos,
            special.eos,
            special.eot,
            special.sep,
            special.pad,
            special.newline,
        );
        let want = (
            id("bos"),
            id("eos"),
            id("eot"),
            id("sep"),
            id("pad"),
            id("nl"),
        );
        assert_eq!(got, want, "{file}: bos, eos, eot, sep, pad, newline");
        assert_eq!(
            (t.add_bos(), t.add_eos()),
            (s["add_bos"] == true, s["add_eos"] == true),
            "{file}: add_bos, add_eos"
        );
        assert_eq!(
            t.eog_ids(),
            json_ids(&s["eog"]),
            "{file}: end of generation"
        );

        for entry in &corpus {
            let (name, text) = (
                entry["name"].as_str().unwrap(),
                entry["text"].as_str().unwrap(),
            );
            let case = &vocab["cases"][name];
            let raw = json_ids(&case["raw"]);
            let special = match (case.get("special"), case.get("special_prefix")) {
                (Some(ids), _) => json_ids(ids),
                (None, Some(prefix)) => [json_ids(prefix), raw.clone()].concat(),
                (None, None) => raw.clone(),
            };
            let detok = |key: &str| {
                case.get(key)
                    .map_or_else(|| text.as_bytes().to_vec(), |h| unhex(h.as_str().unwrap()))
            };
            let mut check = |what: &str, got: &dyn std::fmt::Debug, want: &dyn std::fmt::Debug| {
                let (got, want) = (format!("{got:?}"), format!("{want:?}"));
                if got != want {
                    failures.push_str(&format!(
                        "{file} / {name} / {what}:\n  got  {got:.300}\n  want {want:.300}\n"
                    ));
                }
            };
            check("raw", &t.encode(text, false, false), &raw);
            check("special", &t.encode(text, true, true), &special);
            check(
                "detok_raw",
                &String::from_utf8_lossy(&t.decode(&raw, false, false)),
                &String::from_utf8_lossy(&detok("detok_raw")),
            );
            check(
                "detok_special",
                &String::from_utf8_lossy(&t.decode(&special, true, true)),
                &String::from_utf8_lossy(&detok("detok_special")),
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 2, "one entry per vocabulary");
    assert!(
        failures.is_empty(),
        "mismatches with llama.cpp:\n{failures}"
    );
}
