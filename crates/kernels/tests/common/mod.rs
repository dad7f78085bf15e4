//! Loading the reference fixtures written by tools/reference/ (format: tools/reference/README.md).

use std::path::{Path, PathBuf};

use kernels::TensorType;
use serde_json::Value;

/// The fixture directory of one generator (`kernels`, `llama_quantize`).
pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// The parsed `index.json` of a fixture directory.
pub fn index(dir: &Path) -> Value {
    let path = dir.join("index.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run tools/reference/)", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The raw bytes of a fixture file.
pub fn bytes(dir: &Path, file: &str) -> Vec<u8> {
    let path = dir.join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fixture file of little-endian f32 values.
pub fn f32s(dir: &Path, file: &str) -> Vec<f32> {
    bytes(dir, file)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The tensor type ggml names `name` (`q4_K`, `iq2_xxs`, …).
pub fn tensor_type(name: &str) -> TensorType {
    TensorType::ALL
        .into_iter()
        .find(|t| t.name() == name)
        .unwrap_or_else(|| panic!("fixture names unknown tensor type {name:?}"))
}

/// A string field of a JSON object.
pub fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("fixture field {key:?} missing in {v}"))
}

/// An unsigned integer field of a JSON object.
pub fn usize_field(v: &Value, key: &str) -> usize {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("fixture field {key:?} missing in {v}")) as usize
}
