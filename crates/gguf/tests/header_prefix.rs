//! `GgufFile::header_from_prefix`: the header of a file from its first bytes
//! (what `hearth estimate` reads of a remote file), checked against the whole
//! file's size.

use gguf::{Error, GgufFile, GgufWriter, TensorType};

#[test]
fn header_parses_from_a_prefix_and_asks_for_more_when_cut() {
    let mut w = GgufWriter::new();
    w.add_str("general.architecture", "llama");
    w.add_u32("llama.block_count", 2);
    let words: Vec<String> = (0..2000).map(|i| format!("word{i}")).collect();
    w.add_str_array("tokenizer.ggml.tokens", &words);
    let data = vec![0u8; 4 * 64 * 64];
    w.add_tensor("a.weight", TensorType::F32, &[64, 64], &data)
        .unwrap();
    w.add_tensor("b.weight", TensorType::F32, &[64, 64], &data)
        .unwrap();
    let path = std::env::temp_dir().join(format!("hearth-prefix-{}.gguf", std::process::id()));
    w.write_file(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let size = bytes.len() as u64;

    let whole = GgufFile::from_bytes(bytes.clone()).unwrap();
    let header_len = whole.data_offset() as usize;
    let h = GgufFile::header_from_prefix(&bytes[..header_len], size).unwrap();
    assert_eq!(h.tensors, whole.tensors());
    assert_eq!(&h.metadata, whole.metadata());
    assert_eq!(h.data_offset, whole.data_offset());

    // Cut inside the vocabulary: an error that says to read more.
    let cut = GgufFile::header_from_prefix(&bytes[..header_len / 2], size).unwrap_err();
    assert!(
        matches!(
            cut,
            Error::Truncated { .. } | Error::StringTooLong { .. } | Error::ArrayTooLong { .. }
        ),
        "{cut:?}"
    );
    // A file size too small for the tensors is a placement error, not a cut.
    let small = GgufFile::header_from_prefix(&bytes[..header_len], size - 100).unwrap_err();
    assert!(!matches!(small, Error::Truncated { .. }), "{small:?}");
}
