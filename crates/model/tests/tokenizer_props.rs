//! Properties of the tokenizers over arbitrary text, on the committed fixture
//! vocabularies: byte-level BPE and SPM byte fallback lose nothing, parsing special
//! tokens never panics, and streaming decode equals whole decode.

use std::path::Path;

use model::tokenizer::{StreamDecoder, Tokenizer};
use proptest::prelude::*;

fn load(name: &str) -> Tokenizer {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tokenizer")
        .join(name);
    Tokenizer::from_metadata(gguf::GgufFile::open(&path).unwrap().metadata()).unwrap()
}

/// Text mixing ASCII (with the characters special tokens are made of), whitespace,
/// and arbitrary code points.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            "[a-z <|>_\\[\\]/'.,!?0-9]{0,8}",
            "[ \t\r\n]{1,4}",
            any::<char>().prop_map(String::from),
            Just("<|im_end|>".to_owned()),
            Just("<tool_call>".to_owned()),
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// qwen2 keeps spaces as they are (no clean_spaces), so byte-level BPE round-trips.
    #[test]
    fn byte_level_bpe_round_trips(s in text()) {
        let t = load("bpe-qwen2.gguf");
        let ids = t.encode(&s, false, false);
        prop_assert_eq!(t.decode(&ids, false, false), s.as_bytes());
        let ids = t.encode(&s, false, true);
        prop_assert_eq!(t.decode(&ids, false, true), s.as_bytes());
    }

    /// Without a space prefix, SPM with byte fallback round-trips any text that has
    /// no literal U+2581 (which SPM uses for spaces).
    #[test]
    fn spm_byte_fallback_round_trips(s in text().prop_filter("no U+2581", |s| !s.contains('\u{2581}'))) {
        let t = load("spm-noprefix.gguf");
        let ids = t.encode(&s, false, false);
        prop_assert_eq!(t.decode(&ids, false, false), s.as_bytes());
    }

    /// Streaming decode yields exactly the whole decode (these vocabularies have no
    /// clean_spaces pass), including the SPM leading-space handling.
    #[test]
    fn streaming_equals_whole_decode(s in text()) {
        for name in ["spm.gguf", "bpe-qwen2.gguf", "bpe-tekken.gguf"] {
            let t = load(name);
            let ids = t.encode(&s, true, true);
            let mut decoder = StreamDecoder::new(&t, true);
            let mut streamed: String = ids.iter().map(|&id| decoder.push(id)).collect();
            streamed.push_str(&decoder.finish());
            let whole = t.decode(&ids, false, true);
            prop_assert_eq!(streamed, String::from_utf8_lossy(&whole).into_owned(), "{}", name);
        }
    }
}
