//! Behaviour of the tokenizers on tiny hand-made vocabularies. Conformance with
//! llama.cpp on real and trained vocabularies is in `tests/tokenizer_*.rs`.

use gguf::{Array, Metadata, Value};

use super::{StreamDecoder, TokenAttr, Tokenizer, TokenizerError};

fn strings(items: &[&str]) -> Value {
    Value::Array(Array::String(items.iter().map(|s| s.to_string()).collect()))
}

/// An SPM vocabulary: specials, a control token, all 256 byte tokens, then a few
/// pieces with scores that favour longer merges.
fn spm_metadata() -> Metadata {
    let mut tokens = vec![
        "<unk>".to_owned(),
        "<s>".into(),
        "</s>".into(),
        "<|im_end|>".into(),
    ];
    let mut types = vec![2, 3, 3, 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
    }
    let pieces = [
        "▁", "h", "e", "l", "o", "he", "ll", "hell", "hello", "▁hello", "▁▁",
    ];
    for piece in pieces {
        tokens.push(piece.to_owned());
        types.push(1);
    }
    let scores: Vec<f32> = (0..tokens.len()).map(|i| i as f32).collect();
    let mut m = Metadata::new();
    m.set("tokenizer.ggml.model", Value::String("llama".into()));
    m.set("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)));
    m.set("tokenizer.ggml.scores", Value::Array(Array::F32(scores)));
    m.set("tokenizer.ggml.token_type", Value::Array(Array::I32(types)));
    m
}

/// A byte-level BPE vocabulary: the 256 byte characters, a few merges, and
/// `<|endoftext|>` as a control token.
fn bpe_metadata(pre: &str) -> Metadata {
    let mut tokens: Vec<String> = (0..=255u8)
        .map(|b| super::bytes::byte_to_char(b).to_string())
        .collect();
    tokens.extend(["he", "ll", "hell", "hello", "Ġw", "Ġwo", "<|endoftext|>"].map(String::from));
    let mut types = vec![1; tokens.len()];
    *types.last_mut().unwrap() = 3;
    let mut m = Metadata::new();
    m.set("tokenizer.ggml.model", Value::String("gpt2".into()));
    m.set("tokenizer.ggml.pre", Value::String(pre.into()));
    m.set("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)));
    m.set("tokenizer.ggml.token_type", Value::Array(Array::I32(types)));
    m.set(
        "tokenizer.ggml.merges",
        strings(&["h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o"]),
    );
    m
}

fn id(t: &Tokenizer, text: &str) -> u32 {
    t.token_id(text)
        .unwrap_or_else(|| panic!("no token {text:?}"))
}

#[test]
fn spm_merges_by_score_and_prefixes_a_space() {
    let t = Tokenizer::from_metadata(&spm_metadata()).unwrap();
    assert_eq!(t.encode("hello", false, false), [id(&t, "▁hello")]);
    assert_eq!(t.encode("hello", true, false), [1, id(&t, "▁hello")]);
    assert_eq!(t.decode(&[1, id(&t, "▁hello")], true, false), b" hello");
    assert_eq!(t.decode(&[id(&t, "▁hello")], false, false), b"hello");
}

#[test]
fn spm_falls_back_to_byte_tokens() {
    let t = Tokenizer::from_metadata(&spm_metadata()).unwrap();
    let ids = t.encode("hé", false, false);
    assert_eq!(
        ids,
        [id(&t, "▁"), id(&t, "h"), id(&t, "<0xC3>"), id(&t, "<0xA9>")]
    );
    assert_eq!(t.decode(&ids, false, false), "hé".as_bytes());
}

#[test]
fn control_tokens_are_text_unless_parse_special() {
    let t = Tokenizer::from_metadata(&spm_metadata()).unwrap();
    let im_end = id(&t, "<|im_end|>");
    assert!(!t.encode("hello<|im_end|>", false, false).contains(&im_end));
    assert_eq!(
        t.encode("hello<|im_end|>", false, true),
        [id(&t, "▁hello"), im_end]
    );
    // Rendered only when asked for.
    assert_eq!(t.token_to_piece(im_end, false), b"");
    assert_eq!(t.token_to_piece(im_end, true), b"<|im_end|>");
}

#[test]
fn end_of_generation_tokens_are_found_by_text() {
    let t = Tokenizer::from_metadata(&spm_metadata()).unwrap();
    let im_end = id(&t, "<|im_end|>");
    assert_eq!(
        (t.bos(), t.eos(), t.eot()),
        (Some(1), Some(2), Some(im_end))
    );
    assert!(t.is_eog(2) && t.is_eog(im_end) && !t.is_eog(1));
    assert!(t.token_attr(im_end).intersects(TokenAttr::CONTROL));
    assert_eq!(t.special_tokens().newline, Some(id(&t, "<0x0A>")));
}

#[test]
fn stream_decoder_holds_back_partial_characters() {
    let t = Tokenizer::from_metadata(&spm_metadata()).unwrap();
    let ids = t.encode("hé", false, false);
    let mut decoder = StreamDecoder::new(&t, false);
    let pieces: Vec<String> = ids.iter().map(|&i| decoder.push(i)).collect();
    assert_eq!(pieces, ["", "h", "", "é"]);
    assert_eq!(decoder.finish(), "");
}

#[test]
fn stream_decoder_flushes_invalid_bytes_as_replacement() {
    let t = Tokenizer::from_metadata(&spm_metadata()).unwrap();
    let mut decoder = StreamDecoder::new(&t, false);
    assert_eq!(decoder.push(id(&t, "<0xFF>")), "\u{FFFD}");
    assert_eq!(decoder.push(id(&t, "<0xC3>")), "");
    assert_eq!(decoder.finish(), "\u{FFFD}");
}

#[test]
fn bpe_merges_by_rank_within_words() {
    let t = Tokenizer::from_metadata(&bpe_metadata("gpt-2")).unwrap();
    let ids = t.encode("hello world", false, false);
    let want: Vec<u32> = ["hello", "Ġwo", "r", "l", "d"]
        .iter()
        .map(|s| id(&t, s))
        .collect();
    assert_eq!(ids, want);
    assert_eq!(t.decode(&ids, false, false), b"hello world");
    assert!(t.warnings().is_empty(), "{:?}", t.warnings());
}

#[test]
fn bpe_decode_cleans_spaces_like_llama_cpp() {
    let t = Tokenizer::from_metadata(&bpe_metadata("gpt-2")).unwrap();
    let ids = t.encode("a , b 's c ' d", false, false);
    assert_eq!(t.decode(&ids, false, false), b"a, b's c'd");
}

#[test]
fn unknown_pre_tokenizer_warns_and_uses_the_default() {
    let t = Tokenizer::from_metadata(&bpe_metadata("no-such-pre")).unwrap();
    assert!(
        t.warnings().iter().any(|w| w.contains("no-such-pre")),
        "{:?}",
        t.warnings()
    );
    let default = Tokenizer::from_metadata(&bpe_metadata("default")).unwrap();
    let text = "hello world 12345 it's";
    assert_eq!(
        t.encode(text, false, false),
        default.encode(text, false, false)
    );
}

#[test]
fn bad_metadata_is_a_typed_error() {
    let mut m = spm_metadata();
    m.set("tokenizer.ggml.model", Value::String("rwkv".into()));
    assert!(
        matches!(Tokenizer::from_metadata(&m), Err(TokenizerError::UnknownModel(name)) if name == "rwkv")
    );

    let mut m = spm_metadata();
    m.set("tokenizer.ggml.tokens", Value::U32(3));
    assert!(matches!(
        Tokenizer::from_metadata(&m),
        Err(TokenizerError::Metadata {
            key: "tokenizer.ggml.tokens",
            ..
        })
    ));

    let mut m = spm_metadata();
    m.set("tokenizer.ggml.tokens", strings(&[]));
    assert!(matches!(
        Tokenizer::from_metadata(&m),
        Err(TokenizerError::EmptyVocab)
    ));

    let mut m = spm_metadata();
    m.set(
        "tokenizer.ggml.scores",
        Value::Array(Array::F32(vec![0.0; 3])),
    );
    assert!(matches!(
        Tokenizer::from_metadata(&m),
        Err(TokenizerError::LengthMismatch { found: 3, .. })
    ));

    let mut m = bpe_metadata("gpt-2");
    m.set("tokenizer.ggml.merges", strings(&["h e", "nospace"]));
    assert!(matches!(
        Tokenizer::from_metadata(&m),
        Err(TokenizerError::MalformedMerge { index: 1, .. })
    ));

    let mut m = bpe_metadata("gpt-2");
    m.set("tokenizer.ggml.merges", strings(&["h e", "€ x"]));
    assert!(matches!(
        Tokenizer::from_metadata(&m),
        Err(TokenizerError::MergeNotInVocab { index: 1, piece, .. }) if piece == "€"
    ));

    let mut m = Metadata::new();
    m.set("tokenizer.ggml.model", Value::String("gpt2".into()));
    m.set("tokenizer.ggml.tokens", strings(&["a"]));
    assert!(matches!(
        Tokenizer::from_metadata(&m),
        Err(TokenizerError::MissingMerges)
    ));
}

#[test]
fn out_of_range_special_ids_fall_back_with_a_warning() {
    let mut m = spm_metadata();
    m.set("tokenizer.ggml.eos_token_id", Value::U32(1_000_000));
    let t = Tokenizer::from_metadata(&m).unwrap();
    assert_eq!(t.eos(), Some(2));
    assert!(t.warnings().iter().any(|w| w.contains("eos_token_id")));
}

#[test]
fn spm_merges_across_words_when_a_token_spans_a_space() {
    // "o▁" and "o▁w" have a ▁ after another character, so words may not be merged
    // apart.
    let mut m = spm_metadata();
    let mut tokens = match m.get("tokenizer.ggml.tokens") {
        Some(Value::Array(Array::String(tokens))) => tokens.clone(),
        _ => unreachable!("set above"),
    };
    tokens.extend(["w", "o▁", "o▁w"].map(String::from));
    let n = tokens.len();
    let mut types = vec![2, 3, 3, 3];
    types.extend(std::iter::repeat_n(6, 256));
    types.resize(n, 1);
    m.set("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)));
    m.set("tokenizer.ggml.token_type", Value::Array(Array::I32(types)));
    m.set(
        "tokenizer.ggml.scores",
        Value::Array(Array::F32((0..n).map(|i| i as f32).collect())),
    );
    let t = Tokenizer::from_metadata(&m).unwrap();
    let ids = t.encode("o wo", false, false);
    assert_eq!(ids, [id(&t, "▁"), id(&t, "o▁w"), id(&t, "o")]);
    assert_eq!(t.decode(&ids, false, false), b"o wo");
}

#[test]
fn tokenizer_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tokenizer>();
}

/// A Gemma 4 style vocabulary (`gemma4`): BPE on raw UTF-8 with `▁` for spaces,
/// the 256 `<0xNN>` byte tokens, a newline-run token and a few merges.
fn gemma4_metadata() -> Metadata {
    let mut tokens: Vec<String> = ["<pad>", "<eos>", "<bos>", "<unk>"]
        .map(String::from)
        .into();
    let mut types = vec![3; 4];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
    }
    for piece in [
        "▁", "h", "e", "l", "o", "w", "r", "d", "\n", "he", "ll", "hell", "hello", "▁w", "▁wo",
        "\n\n\n",
    ] {
        tokens.push(piece.to_owned());
        types.push(1);
    }
    let mut m = Metadata::new();
    m.set("tokenizer.ggml.model", Value::String("gemma4".into()));
    m.set("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)));
    m.set("tokenizer.ggml.token_type", Value::Array(Array::I32(types)));
    m.set(
        "tokenizer.ggml.merges",
        strings(&["h e", "l l", "he ll", "hell o", "▁ w", "▁w o"]),
    );
    m.set("tokenizer.ggml.bos_token_id", Value::U32(2));
    m.set("tokenizer.ggml.eos_token_id", Value::U32(1));
    // llama.cpp adds BOS to Gemma 4 prompts even when the file says not to.
    m.set("tokenizer.ggml.add_bos_token", Value::Bool(false));
    m
}

#[test]
fn gemma4_merges_raw_utf8_with_escaped_spaces() {
    let t = Tokenizer::from_metadata(&gemma4_metadata()).unwrap();
    let ids = t.encode("hello world", false, false);
    let want: Vec<u32> = ["hello", "▁wo", "r", "l", "d"]
        .iter()
        .map(|s| id(&t, s))
        .collect();
    assert_eq!(ids, want);
    assert_eq!(t.decode(&ids, false, false), b"hello world");
    assert_eq!(t.encode("hello", true, false), [2, id(&t, "hello")]);
    assert!(t.add_bos());
}

#[test]
fn gemma4_falls_back_to_byte_tokens_and_keeps_newline_runs_whole() {
    let t = Tokenizer::from_metadata(&gemma4_metadata()).unwrap();
    let ids = t.encode("hé", false, false);
    assert_eq!(ids, [id(&t, "h"), id(&t, "<0xC3>"), id(&t, "<0xA9>")]);
    assert_eq!(t.decode(&ids, false, false), "hé".as_bytes());
    // A run of newlines that is a token is taken whole; one that is not is merged.
    let (h, nl) = (id(&t, "h"), id(&t, "\n"));
    assert_eq!(t.encode("h\n\n\nh", false, false), [h, id(&t, "\n\n\n"), h]);
    assert_eq!(t.encode("h\n\nh", false, false), [h, nl, nl, h]);
}

/// A WordPiece vocabulary as GGUF stores BERT's: word starts carry `▁`,
/// continuations (`##able`) are plain.
fn wpm_metadata() -> Metadata {
    let tokens = [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "▁hello", "▁un", "aff", "able", "▁,", "▁!", "▁cafe",
        "▁我",
    ];
    let mut types = vec![1; tokens.len()];
    types[..4].fill(3);
    let mut m = Metadata::new();
    m.set("tokenizer.ggml.model", Value::String("bert".into()));
    m.set("tokenizer.ggml.tokens", strings(&tokens));
    m.set("tokenizer.ggml.token_type", Value::Array(Array::I32(types)));
    m.set("tokenizer.ggml.bos_token_id", Value::U32(2));
    m.set("tokenizer.ggml.unknown_token_id", Value::U32(1));
    m.set("tokenizer.ggml.seperator_token_id", Value::U32(3));
    m
}

#[test]
fn wordpiece_takes_the_longest_pieces_and_unknown_words() {
    let t = Tokenizer::from_metadata(&wpm_metadata()).unwrap();
    let want: Vec<u32> = ["▁hello", "▁,", "▁un", "aff", "able", "▁!"]
        .iter()
        .map(|s| id(&t, s))
        .collect();
    assert_eq!(t.encode("Hello, UNaffable!", false, false), want);
    // Accents go, case goes, and a word the pieces cannot cover is [UNK].
    assert_eq!(
        t.encode("Café xyz 我", false, false),
        [id(&t, "▁cafe"), 1, id(&t, "▁我")]
    );
    // add_special: CLS ... SEP.
    assert_eq!(t.encode("hello", true, false), [2, id(&t, "▁hello"), 3]);
    assert_eq!(
        t.decode(&want[..2], false, false),
        b" hello,",
        "▁ is a space again; the space before the comma is cleaned up"
    );
}

#[test]
fn wordpiece_keeps_case_when_the_file_says_so() {
    let mut m = wpm_metadata();
    m.set("tokenizer.ggml.normalizer.lowercase", Value::Bool(false));
    let t = Tokenizer::from_metadata(&m).unwrap();
    assert_eq!(t.encode("Hello hello", false, false), [1, id(&t, "▁hello")]);
}
