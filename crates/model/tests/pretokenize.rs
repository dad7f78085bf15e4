//! Differential test of the pre-tokenizers against llama.cpp.
//!
//! `fixtures/pretokenize/llama_cpp_splits.json` holds how llama.cpp's
//! `unicode_regex_split` splits a generated corpus (CJK, emoji, combining marks,
//! RTL scripts, whitespace runs, digits, code, contractions, control chars, random
//! codepoints from every plane) under each pre-tokenizer; regenerate it with
//! `tools/pretokenize/gen_fixture.py`.

use model::tokenizer::pretokenize::PreTokenizer;
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pretokenize/llama_cpp_splits.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("read fixture"))
        .expect("parse fixture")
}

fn word_lengths(pre: PreTokenizer, text: &str) -> String {
    let mut words = Vec::new();
    pre.split(text, &mut words);
    words
        .iter()
        .map(|w| w.len().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn every_pre_tokenizer_splits_like_llama_cpp() {
    let fixture = fixture();
    let texts: Vec<&str> = fixture["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let names = fixture["names"].as_object().unwrap();
    assert!(names.len() > 50, "fixture lists {} names", names.len());
    let mut mismatches = Vec::new();
    for (name, family) in names {
        let pre =
            PreTokenizer::from_name(name).unwrap_or_else(|| panic!("{name} is not recognised"));
        let expected = fixture["splits"][family.as_str().unwrap()]
            .as_array()
            .unwrap();
        assert_eq!(expected.len(), texts.len());
        for (text, expected) in texts.iter().zip(expected) {
            let got = word_lengths(pre, text);
            if got != expected.as_str().unwrap() {
                mismatches.push(format!(
                    "{name} {text:?}: llama.cpp [{}], hearth [{got}]",
                    expected.as_str().unwrap()
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches, first ones:\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn names_llama_cpp_maps_elsewhere_are_not_recognised() {
    let fixture = fixture();
    for name in fixture["unsupported_names"].as_array().unwrap() {
        let name = name.as_str().unwrap();
        assert_eq!(PreTokenizer::from_name(name), None, "{name}");
    }
}
