//! Releasing mapped pages: the header's once it is parsed, a tensor's on
//! request; the bytes read back unchanged afterwards (Linux: the resident size
//! of the mapping is read from /proc/self/smaps).
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};

use gguf::{Array, GgufFile, GgufWriter, TensorType, Value};

/// Resident KiB of the mappings of `path` in this process.
fn mapped_rss_kib(path: &Path) -> u64 {
    gguf::mapped_resident_kib(path).expect("/proc/self/smaps")
}

/// `n` bytes of a pattern that depends on `seed`.
fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 ^ seed).collect()
}

#[test]
fn released_pages_leave_the_resident_set_and_read_back_the_same() {
    const N: usize = 1 << 20;
    let path: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("release.gguf");
    let mut w = GgufWriter::new();
    // A header of several hundred KiB, like a tokenizer's vocabulary.
    let vocab: Vec<String> = (0..40_000).map(|i| format!("token-{i}")).collect();
    w.add_str_array("tokenizer.ggml.tokens", &vocab);
    w.add_tensor("a", TensorType::F32, &[(N / 4) as u64], &pattern(N, 1))
        .unwrap();
    w.add_tensor("b", TensorType::F32, &[(N / 4) as u64], &pattern(N, 2))
        .unwrap();
    w.write_file(&path).unwrap();
    let path = path.canonicalize().unwrap();

    let file = GgufFile::open(&path).unwrap();
    assert!(file.data_offset() > 256 << 10);
    // The parsed header's pages are gone; only what fault-around mapped
    // near the last header read may remain.
    assert!(mapped_rss_kib(&path) < 256, "{} KiB", mapped_rss_kib(&path));
    let Some(Value::Array(Array::String(tokens))) = file.metadata().get("tokenizer.ggml.tokens")
    else {
        panic!("tokenizer.ggml.tokens is not an array of strings");
    };
    assert_eq!(tokens, &vocab);

    let a = file.tensor("a").unwrap().clone();
    assert_eq!(file.tensor_data(&a), pattern(N, 1));
    assert!(mapped_rss_kib(&path) >= (N >> 10) as u64);
    file.release_tensor_pages(&a);
    assert!(mapped_rss_kib(&path) < 256, "{} KiB", mapped_rss_kib(&path));
    // A released tensor reads back from the file unchanged.
    assert_eq!(file.tensor_data(&a), pattern(N, 1));
    let b = file.tensor("b").unwrap();
    assert_eq!(file.tensor_data(b), pattern(N, 2));
}
